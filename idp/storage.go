package idp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
)

// authCode is what an authorization code points at (store.KindAuthCode, keyed by the
// code's SHA-256 so the store never holds a usable code).
type authCode struct {
	AuthRequestID string `json:"auth_request"`
}

// accessToken is an issued access token (store.KindToken; owner = subject for a user's
// token, none for a service token). The bearer value the client holds is op's encryption of
// "<ID>:<Subject>".
type accessToken struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub"`
	Username  string    `json:"username"`
	SessionID string    `json:"sid,omitempty"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires"`
	// FamilyID is the refresh token family the token was issued with, if any: revoking the
	// family revokes the token.
	FamilyID string `json:"family,omitempty"`
	// Service marks a client_credentials token: Subject is the client id, there is no user.
	Service bool `json:"service,omitempty"`
}

// errUserInactive means the user was removed, disabled or renamed since signing in.
var errUserInactive = errors.New("the user no longer exists or is disabled")

// opStorage is op.Storage on top of the IdP's store and directory.
type opStorage struct {
	p *IdP
}

var (
	_ op.Storage                   = (*opStorage)(nil)
	_ op.CanSetUserinfoFromRequest = (*opStorage)(nil)
)

func (s *opStorage) authRequests() store.Collection[authRequest] {
	return store.Collection[authRequest]{Store: s.p.store, Kind: store.KindAuthRequest}
}

func (s *opStorage) codes() store.Collection[authCode] {
	return store.Collection[authCode]{Store: s.p.store, Kind: store.KindAuthCode}
}

func (s *opStorage) tokens() store.Collection[accessToken] {
	return store.Collection[accessToken]{Store: s.p.store, Kind: store.KindToken}
}

// newID returns a random 256-bit identifier, URL-safe.
func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("idp: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func codeKey(code string) string {
	h := sha256.Sum256([]byte(code))
	return hex.EncodeToString(h[:])
}

// CreateAuthRequest stores a validated authorization request. It also enforces what op
// leaves to us: PKCE for public clients, S256 only, and the openid scope.
func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	c, ok := s.p.clients.get(req.ClientID)
	if !ok {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client")
	}
	if !c.hasGrant(GrantAuthorizationCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the authorization code flow")
	}
	if req.CodeChallenge == "" && c.isPublic() {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required for this client: send code_challenge with code_challenge_method=S256")
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	now := s.p.now()
	a := &authRequest{
		ID:                  newID(),
		CreatedAt:           now,
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              c.grantUserScopes(req.Scopes), // drops what the client may not have
		ResponseType:        req.ResponseType,
		ResponseMode:        req.ResponseMode,
		Prompt:              slices.Clone(req.Prompt),
		LoginHint:           req.LoginHint,
		HintSubject:         hintSubject,
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: req.CodeChallengeMethod,
		ACRValues:           knownACRValues(req.ACRValues),
	}
	if req.MaxAge != nil {
		v := int64(*req.MaxAge)
		a.MaxAge = &v
	}
	if err := s.authRequests().Create(ctx, a.ID, "", now.Add(authRequestLifetime), *a); err != nil {
		return nil, fmt.Errorf("saving the auth request: %w", err)
	}
	return a, nil
}

// errAuthRequestGone is shown when a sign-in request id is unknown or expired.
var errAuthRequestGone = errors.New("this sign-in request has expired or is unknown; go back to the application and sign in again")

// AuthRequestByID loads a stored authorization request.
func (s *opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, err := s.authRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (s *opStorage) authRequest(ctx context.Context, id string) (*authRequest, error) {
	if id == "" {
		return nil, errAuthRequestGone
	}
	a, err := s.authRequests().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errAuthRequestGone
	}
	if err != nil {
		return nil, fmt.Errorf("loading the auth request: %w", err)
	}
	return &a, nil
}

// SaveAuthCode stores a new authorization code for a completed request (one minute, single use).
func (s *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	if err := s.codes().Create(ctx, codeKey(code), "", s.p.now().Add(authCodeLifetime), authCode{AuthRequestID: id}); err != nil {
		return fmt.Errorf("saving the authorization code: %w", err)
	}
	return nil
}

// AuthRequestByCode consumes a code and its auth request: both are taken atomically, so a
// replayed code, or a second code for the same request, fails even under concurrency.
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	c, err := s.codes().Take(ctx, codeKey(code))
	if err != nil {
		return nil, fmt.Errorf("redeeming the authorization code: %w", err)
	}
	a, err := s.authRequests().Take(ctx, c.AuthRequestID)
	if err != nil {
		return nil, fmt.Errorf("redeeming the authorization code: auth request: %w", err)
	}
	if !a.Completed {
		return nil, errors.New("redeeming the authorization code: the sign-in was not completed")
	}
	return &a, nil
}

// DeleteAuthRequest removes an auth request (op calls it once tokens are issued).
func (s *opStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.authRequests().Delete(ctx, id)
}

// CreateAccessToken stores an access token without a refresh token: for a completed
// authorization request, or for a service account (client_credentials).
func (s *opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	switch r := req.(type) {
	case *authRequest:
		c, ok := s.p.clients.get(r.ClientID)
		if !ok {
			return "", time.Time{}, oidc.ErrInvalidClient().WithDescription("unknown client")
		}
		if _, err := s.activeUser(r.Username, r.UserID); err != nil {
			return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
		}
		if err := s.p.noteSessionClient(ctx, c, r); err != nil {
			return "", time.Time{}, err
		}
		return s.createUserToken(ctx, c, r.UserID, r.Username, r.SessionID, r.Scopes, nil)
	case *serviceRequest:
		return s.createServiceToken(ctx, r)
	}
	return "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

// createUserToken stores a user's access token for client c, in refresh family fam if any
// (then it expires with the family at the latest).
func (s *opStorage) createUserToken(ctx context.Context, c *Client, subject, username, sid string, scopes []string, fam *refreshFamily) (string, time.Time, error) {
	if strings.Contains(subject, ":") {
		// op's opaque bearer token is "<token id>:<subject>" and could not be parsed back.
		return "", time.Time{}, oidc.ErrServerError().WithDescription("user id contains ':'")
	}
	t := accessToken{
		ID:        newID(),
		ClientID:  c.ID,
		Subject:   subject,
		Username:  username,
		SessionID: sid,
		Scopes:    slices.Clone(scopes),
		ExpiresAt: s.p.now().Add(c.accessTokenLifetime(s.p.accessTokenLifetime)),
	}
	if fam != nil {
		t.FamilyID = fam.ID
		if fam.ExpiresAt.Before(t.ExpiresAt) {
			t.ExpiresAt = fam.ExpiresAt
		}
	}
	if err := s.tokens().Create(ctx, t.ID, t.Subject, t.ExpiresAt, t); err != nil {
		return "", time.Time{}, fmt.Errorf("saving the access token: %w", err)
	}
	return t.ID, t.ExpiresAt, nil
}

// TerminateSession revokes the access tokens and refresh token families of a user issued
// to a client (every client when clientID is empty).
func (s *opStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	if err := s.revokeFamilies(ctx, userID, func(f refreshFamily) bool { return clientID == "" || f.ClientID == clientID }); err != nil {
		return err
	}
	return s.revokeTokens(ctx, userID, func(t accessToken) bool { return !t.Service && (clientID == "" || t.ClientID == clientID) })
}

// revokeSessionTokens revokes the access tokens and refresh token families issued under
// one SSO session.
func (s *opStorage) revokeSessionTokens(ctx context.Context, userID, sid string) error {
	if err := s.revokeFamilies(ctx, userID, func(f refreshFamily) bool { return f.SessionID == sid }); err != nil {
		return err
	}
	return s.revokeTokens(ctx, userID, func(t accessToken) bool { return !t.Service && t.SessionID == sid })
}

func (s *opStorage) revokeTokens(ctx context.Context, userID string, match func(accessToken) bool) error {
	if userID == "" {
		return nil
	}
	list, err := s.tokens().ListByOwner(ctx, userID)
	if err != nil {
		return fmt.Errorf("listing access tokens: %w", err)
	}
	for _, t := range list {
		if !match(t) {
			continue
		}
		if err := s.tokens().Delete(ctx, t.ID); err != nil {
			return fmt.Errorf("revoking access token: %w", err)
		}
	}
	return nil
}

// RevokeToken serves RFC 7009 revocation for the client the token was issued to: a refresh
// token revokes its whole family, an access token only itself. userID is set when op found
// the token (GetRefreshTokenInfo, or an access token it could decrypt); otherwise
// tokenOrTokenID is the raw token as sent, which may still be a refresh token sent with
// token_type_hint=access_token (section 2.1: search the other types too).
func (s *opStorage) RevokeToken(ctx context.Context, tokenOrTokenID, userID, clientID string) *oidc.Error {
	if hash, ok := isRefreshTokenID(tokenOrTokenID); ok && userID != "" {
		return s.revokeRefresh(ctx, hash, clientID)
	}
	if userID == "" {
		return s.revokeRefresh(ctx, codeKey(tokenOrTokenID), clientID)
	}
	t, err := s.tokens().Get(ctx, tokenOrTokenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // unknown or expired: revoked already (RFC 7009 section 2.2)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if t.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	if err := s.tokens().Delete(ctx, t.ID); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// SigningKey returns the current key that signs the ID tokens of this request's client:
// the RS256 key for a client with SigningAlgorithm RS256, the ES256 key otherwise.
func (s *opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.p.currentSigner(ctx, signingAlgFromContext(ctx))
	if err != nil {
		return nil, err
	}
	return opSigningKey{k}, nil
}

// currentSigner returns the current signing key for alg (RS256, or ES256 for anything else).
func (p *IdP) currentSigner(ctx context.Context, alg jose.SignatureAlgorithm) (*signer, error) {
	set, err := p.keys.get(ctx)
	if err != nil {
		return nil, err
	}
	k, ok := set.signingKey(alg)
	if !ok {
		// A client added on another node asked for RS256 first: create the RSA keys.
		if err := p.keys.ensureRSA(ctx); err != nil {
			return nil, err
		}
		if set, err = p.keys.get(ctx); err != nil {
			return nil, err
		}
		if k, ok = set.signingKey(alg); !ok {
			return nil, errors.New("no RS256 signing key")
		}
	}
	return k, nil
}

// SignatureAlgorithms lists ES256, and RS256 once a client uses it.
func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	if s.p.clients.usesRSA() {
		return []jose.SignatureAlgorithm{jose.ES256, jose.RS256}, nil
	}
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

// KeySet returns the public keys for the JWKS: current, next and (for a while after a
// rotation) previous, of each algorithm in use.
func (s *opStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	set, err := s.p.keys.get(ctx)
	if err != nil {
		return nil, err
	}
	return set.published(s.p.now(), s.p.keys.grace), nil
}

// GetClientByClientID returns a snapshot of a registered client. On the token endpoint it
// also notes the client's signing algorithm for SigningKey.
func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, ok := s.p.clients.get(id)
	if !ok {
		return nil, errors.New("unknown client")
	}
	noteSigningAlg(ctx, c.signingAlgorithm())
	return s.opClient(c), nil
}

func (s *opStorage) opClient(c *Client) *opClient {
	return &opClient{c: c, loginURL: s.p.issuer + pathLogin, idTokenLifetime: s.p.idTokenLifetime}
}

// activeUser returns the user a token or code is for if it still exists with the same id
// and is not disabled.
func (s *opStorage) activeUser(username, subject string) (directory.User, error) {
	u, ok := s.p.users.Lookup(username)
	if !ok || u.Disabled || u.ID != subject || subject == "" {
		return directory.User{}, errUserInactive
	}
	return u, nil
}

// setUserinfo fills the claims of the granted scopes.
func setUserinfo(info *oidc.UserInfo, u directory.User, scopes []string, groups bool) {
	info.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.PreferredUsername = u.Username
			info.Name = u.Name
		case oidc.ScopeEmail:
			if u.Email != "" {
				info.Email = u.Email
				info.EmailVerified = oidc.Bool(true)
			}
		case scopeGroups:
			if groups {
				info.AppendClaims(claimGroups, append([]string{}, u.Groups...))
			}
		}
	}
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims, at sign-in and at refresh.
// scopes are the ones op lets into the ID token (profile and email only for clients with
// IDTokenUserinfoClaims); groups follows the same rule. The sid claim names the SSO session.
func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	var username, subject, clientID, sid, deviceID string
	switch r := req.(type) {
	case *authRequest:
		username, subject, clientID, sid, deviceID = r.Username, r.UserID, r.ClientID, r.SessionID, r.DeviceID
	case *refreshRequest:
		username, subject, clientID, sid, deviceID = r.fam.Username, r.fam.Subject, r.fam.ClientID, r.fam.SessionID, r.fam.DeviceID
	default:
		return oidc.ErrServerError().WithDescription("unexpected token request")
	}
	u, err := s.activeUser(username, subject)
	if err != nil {
		return oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	c, ok := s.p.clients.get(clientID)
	if !ok {
		return oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	setUserinfo(info, u, scopes, c.IDTokenUserinfoClaims)
	if sid != "" {
		info.AppendClaims("sid", sid)
	}
	if s.p.deviceTrust != nil {
		trust := "UNKNOWN"
		if deviceID != "" {
			trust = s.p.deviceTrust(ctx, deviceID)
		}
		info.AppendClaims(claimDeviceTrust, trust)
	}
	return nil
}

// liveToken loads an access token and checks it is for subject, not expired, and not
// revoked with its refresh token family; a service token's client must still have the
// client_credentials grant.
func (s *opStorage) liveToken(ctx context.Context, tokenID, subject string) (accessToken, error) {
	invalid := errors.New("access token is invalid or expired")
	t, err := s.tokens().Get(ctx, tokenID)
	if errors.Is(err, store.ErrNotFound) {
		return t, invalid
	}
	if err != nil {
		return t, fmt.Errorf("loading access token: %w", err)
	}
	if t.Subject != subject || !s.p.now().Before(t.ExpiresAt) {
		return t, invalid
	}
	if t.FamilyID != "" {
		if err := s.liveFamily(ctx, t.FamilyID); err != nil {
			return t, err
		}
	}
	if t.Service {
		if c, ok := s.p.clients.get(t.ClientID); !ok || !c.hasGrant(GrantClientCredentials) {
			return t, invalid
		}
	}
	return t, nil
}

// SetUserinfoFromToken answers the userinfo endpoint. A service token has no user and
// gets no answer.
func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if t.Service {
		return errors.New("a client_credentials token has no user")
	}
	u, err := s.activeUser(t.Username, t.Subject)
	if err != nil {
		return err
	}
	setUserinfo(info, u, t.Scopes, true)
	return nil
}

// SetIntrospectionFromToken answers the introspection endpoint for the token's own client.
func (s *opStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if t.ClientID != clientID {
		return errors.New("token was not issued to this client")
	}
	if t.Service {
		resp.Subject = t.Subject
		resp.Scope = t.Scopes
		resp.ClientID = t.ClientID
		resp.Expiration = oidc.FromTime(t.ExpiresAt)
		resp.Audience = []string{t.ClientID}
		resp.TokenType = oidc.BearerToken
		return nil
	}
	u, err := s.activeUser(t.Username, t.Subject)
	if err != nil {
		return err
	}
	info := new(oidc.UserInfo)
	setUserinfo(info, u, t.Scopes, true)
	resp.SetUserInfo(info)
	resp.Scope = t.Scopes
	resp.ClientID = t.ClientID
	resp.Expiration = oidc.FromTime(t.ExpiresAt)
	resp.Audience = []string{t.ClientID}
	return nil
}

// GetPrivateClaimsFromScopes: no private claims (access tokens are opaque).
func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID: op's own JWT client authentication and the JWT profile grant are
// not used; private_key_jwt is checked before op (verifyClientAssertion).
func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication through op is not supported")
}

// ValidateJWTProfileScopes: the JWT profile grant is not offered.
func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health checks the store.
func (s *opStorage) Health(ctx context.Context) error {
	return s.p.store.Health(ctx)
}

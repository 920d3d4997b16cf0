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

// accessToken is an issued access token (store.KindToken, owner = subject). The bearer value
// the client holds is op's encryption of "<ID>:<Subject>".
type accessToken struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Subject   string    `json:"sub"`
	Username  string    `json:"username"`
	SessionID string    `json:"sid,omitempty"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires"`
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

// unsupportedScopes are standard scopes op passes through that this IdP does not grant.
var unsupportedScopes = []string{oidc.ScopePhone, oidc.ScopeAddress, oidc.ScopeOfflineAccess}

// CreateAuthRequest stores a validated authorization request. It also enforces what op
// leaves to us: PKCE for public clients, S256 only, and the openid scope.
func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	c, ok := s.p.clients.get(req.ClientID)
	if !ok {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client")
	}
	if req.CodeChallenge == "" && c.Secret == "" {
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
		Scopes:              slices.DeleteFunc(slices.Clone(req.Scopes), func(sc string) bool { return slices.Contains(unsupportedScopes, sc) }),
		ResponseType:        req.ResponseType,
		ResponseMode:        req.ResponseMode,
		Prompt:              slices.Clone(req.Prompt),
		LoginHint:           req.LoginHint,
		HintSubject:         hintSubject,
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: req.CodeChallengeMethod,
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

// CreateAccessToken stores an access token for a completed authorization request.
func (s *opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	if _, err := s.activeUser(a.Username, a.UserID); err != nil {
		return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	if strings.Contains(a.UserID, ":") {
		// op's opaque bearer token is "<token id>:<subject>" and could not be parsed back.
		return "", time.Time{}, oidc.ErrServerError().WithDescription("user id contains ':'")
	}
	t := accessToken{
		ID:        newID(),
		ClientID:  a.ClientID,
		Subject:   a.UserID,
		Username:  a.Username,
		SessionID: a.SessionID,
		Scopes:    slices.Clone(a.Scopes),
		ExpiresAt: s.p.now().Add(s.p.accessTokenLifetime),
	}
	if err := s.tokens().Create(ctx, t.ID, t.Subject, t.ExpiresAt, t); err != nil {
		return "", time.Time{}, fmt.Errorf("saving the access token: %w", err)
	}
	return t.ID, t.ExpiresAt, nil
}

// errNoRefresh is returned wherever refresh tokens would be needed.
func errNoRefresh() *oidc.Error {
	return oidc.ErrUnsupportedGrantType().WithDescription("refresh tokens are not supported")
}

// CreateAccessAndRefreshTokens is not reached (clients have no refresh_token grant).
func (s *opStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNoRefresh()
}

// TokenRequestByRefreshToken: refresh tokens are not supported.
func (s *opStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errNoRefresh()
}

// GetRefreshTokenInfo: there are no refresh tokens.
func (s *opStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// TerminateSession revokes the access tokens of a user issued to a client.
func (s *opStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return s.revokeTokens(ctx, userID, func(t accessToken) bool { return clientID == "" || t.ClientID == clientID })
}

// revokeSessionTokens revokes the access tokens issued under one SSO session.
func (s *opStorage) revokeSessionTokens(ctx context.Context, userID, sid string) error {
	return s.revokeTokens(ctx, userID, func(t accessToken) bool { return t.SessionID == sid })
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

// RevokeToken revokes one access token (by id) for the client it was issued to.
func (s *opStorage) RevokeToken(ctx context.Context, tokenOrTokenID, userID, clientID string) *oidc.Error {
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

// SigningKey returns the current signing key.
func (s *opStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return opSigningKey{s.p.keys}, nil
}

// SignatureAlgorithms lists ES256.
func (s *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

// KeySet returns the public keys for the JWKS.
func (s *opStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{opPublicKey{s.p.keys}}, nil
}

// GetClientByClientID returns a snapshot of a registered client.
func (s *opStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.p.clients.get(id)
	if !ok {
		return nil, errors.New("unknown client")
	}
	return &opClient{c: c, loginURL: s.p.issuer + pathLogin, idTokenLifetime: s.p.idTokenLifetime}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret in constant time.
func (s *opStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.p.clients.get(id)
	if !ok {
		secretMatches("", secret) // same work as a known client
		return errors.New("unknown client")
	}
	if c.Secret == "" {
		return errors.New("client has no secret")
	}
	if !secretMatches(c.Secret, secret) {
		return errors.New("wrong client secret")
	}
	return nil
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

// SetUserinfoFromRequest fills the ID token's user claims. scopes are the ones op lets into
// the ID token (profile and email only for clients with IDTokenUserinfoClaims); groups
// follows the same rule. The sid claim names the SSO session.
func (s *opStorage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	a, ok := req.(*authRequest)
	if !ok {
		return oidc.ErrServerError().WithDescription("unexpected token request")
	}
	u, err := s.activeUser(a.Username, a.UserID)
	if err != nil {
		return oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	c, ok := s.p.clients.get(a.ClientID)
	if !ok {
		return oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	setUserinfo(info, u, scopes, c.IDTokenUserinfoClaims)
	if a.SessionID != "" {
		info.AppendClaims("sid", a.SessionID)
	}
	return nil
}

// liveToken loads an access token and checks it is for subject and not expired.
func (s *opStorage) liveToken(ctx context.Context, tokenID, subject string) (accessToken, error) {
	t, err := s.tokens().Get(ctx, tokenID)
	if errors.Is(err, store.ErrNotFound) {
		return t, errors.New("access token is invalid or expired")
	}
	if err != nil {
		return t, fmt.Errorf("loading access token: %w", err)
	}
	if t.Subject != subject || !s.p.now().Before(t.ExpiresAt) {
		return t, errors.New("access token is invalid or expired")
	}
	return t, nil
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil {
		return err
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

// GetKeyByIDAndClientID: JWT client authentication and the JWT profile grant are not offered.
func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not supported")
}

// ValidateJWTProfileScopes: the JWT profile grant is not offered.
func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health checks the store.
func (s *opStorage) Health(ctx context.Context) error {
	return s.p.store.Health(ctx)
}

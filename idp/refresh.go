package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/store"
)

// Store kinds of the refresh token records.
const (
	kindRefreshToken  store.Kind = "refreshtoken"  // SHA-256 of a refresh token -> its family
	kindRefreshFamily store.Kind = "refreshfamily" // the refresh state of one sign-in
)

// refreshTokenPrefix starts every refresh token. The dot keeps it from ever decoding as one
// of op's encrypted access tokens (raw base64url, or a five-part JWE): op tries to decrypt
// whatever it is sent at the revocation endpoint, and its unauthenticated AES-CFB fallback
// turns other random strings into a "token id:subject" now and then. It also lets secret
// scanners recognize a leaked token.
const refreshTokenPrefix = "zgrt."

// newRefreshToken returns a new opaque refresh token: the prefix and 256 random bits.
func newRefreshToken() string { return refreshTokenPrefix + newID() }

// refreshTokenIDPrefix marks the token id GetRefreshTokenInfo hands op's revocation
// endpoint: the prefix and the SHA-256 of the refresh token.
const refreshTokenIDPrefix = "refresh."

// refreshFamily is the refresh state of one sign-in (kindRefreshFamily, owner = subject).
// Deleting it revokes every refresh and access token of the family at once: both look it
// up before they are honoured.
type refreshFamily struct {
	ID        string `json:"id"`
	ClientID  string `json:"client_id"`
	Subject   string `json:"sub"`
	Username  string `json:"username"`
	SessionID string `json:"sid,omitempty"`
	// DeviceID is the device the sign-in came from, if known: RevokeDevice ends the family.
	DeviceID  string    `json:"device,omitempty"`
	Scopes    []string  `json:"scopes"`
	AMR       []string  `json:"amr,omitempty"`
	AuthTime  time.Time `json:"auth_time,omitzero"`
	CreatedAt time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires"` // absolute: CreatedAt + the client's refresh lifetime
	// Current is the SHA-256 (hex) of the one refresh token that may be used now. Every
	// other token of the family was rotated away; presenting one again is reuse.
	Current   string `json:"current"`
	Rotations int    `json:"rotations,omitempty"`
}

// refreshToken is one issued refresh token (kindRefreshToken, keyed by the token's
// SHA-256, owner = subject). It is kept until the family expires, so that a rotated token
// is still recognized as one of the family.
type refreshToken struct {
	Hash     string    `json:"hash"`
	FamilyID string    `json:"family"`
	IssuedAt time.Time `json:"issued"`
}

// Errors of the refresh grant. Their text reaches the client and the logs: no token in it.
var (
	errRefreshInvalid = errors.New("the refresh token is invalid, expired or revoked")
	errRefreshReused  = errors.New("the refresh token was already used; its sign-in has been revoked")
)

func (s *opStorage) refreshTokens() store.Collection[refreshToken] {
	return store.Collection[refreshToken]{Store: s.p.store, Kind: kindRefreshToken}
}

func (s *opStorage) families() store.Collection[refreshFamily] {
	return store.Collection[refreshFamily]{Store: s.p.store, Kind: kindRefreshFamily}
}

// refreshRequest is a refresh grant in progress: the family of the presented token.
type refreshRequest struct {
	fam       refreshFamily
	tokenHash string   // SHA-256 of the presented token
	scopes    []string // this refresh's scopes: the family's, or fewer if the client asked
}

var (
	_ op.RefreshTokenRequest = (*refreshRequest)(nil)
	_ op.IDTokenRequest      = (*refreshRequest)(nil)
)

func (r *refreshRequest) GetAMR() []string                 { return slices.Clone(r.fam.AMR) }
func (r *refreshRequest) GetAudience() []string            { return []string{r.fam.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.fam.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.fam.ClientID }
func (r *refreshRequest) GetScopes() []string              { return slices.Clone(r.scopes) }
func (r *refreshRequest) GetSubject() string               { return r.fam.Subject }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = slices.Clone(scopes) }

// LogValue keeps the token hash out of logs.
func (r *refreshRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("family", r.fam.ID), slog.String("client_id", r.fam.ClientID))
}

// familyOf finds the live family of a presented refresh token.
func (s *opStorage) familyOf(ctx context.Context, token string) (refreshFamily, string, error) {
	if !strings.HasPrefix(token, refreshTokenPrefix) {
		return refreshFamily{}, "", errRefreshInvalid
	}
	hash := codeKey(token)
	rt, err := s.refreshTokens().Get(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return refreshFamily{}, hash, errRefreshInvalid
	}
	if err != nil {
		return refreshFamily{}, hash, fmt.Errorf("loading the refresh token: %w", err)
	}
	fam, err := s.families().Get(ctx, rt.FamilyID)
	if errors.Is(err, store.ErrNotFound) {
		return refreshFamily{}, hash, errRefreshInvalid
	}
	if err != nil {
		return refreshFamily{}, hash, fmt.Errorf("loading the refresh token family: %w", err)
	}
	if !s.p.now().Before(fam.ExpiresAt) {
		return refreshFamily{}, hash, errRefreshInvalid
	}
	return fam, hash, nil
}

// TokenRequestByRefreshToken starts a refresh grant. A token that is not the family's
// current one was rotated away: presenting it is reuse (a stolen copy, or a replay), and
// the whole family is revoked.
func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	fam, hash, err := s.familyOf(ctx, token)
	if err != nil {
		return nil, err
	}
	if fam.Current != hash {
		s.reuseDetected(ctx, fam)
		return nil, errRefreshReused
	}
	if _, err := s.activeUser(fam.Username, fam.Subject); err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	if err := s.p.lifecycleAllows(ctx, fam.Subject); err != nil {
		if errors.Is(err, errNotActive) {
			return nil, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
		}
		return nil, oidc.ErrServerError().WithDescription("the account state could not be checked").WithParent(err)
	}
	return &refreshRequest{fam: fam, tokenHash: hash, scopes: slices.Clone(fam.Scopes)}, nil
}

// CreateAccessAndRefreshTokens issues an access token with a refresh token: a new family for
// a sign-in with offline_access, the next token of the family for a refresh (rotation).
func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	switch r := req.(type) {
	case *authRequest:
		return s.startFamily(ctx, r)
	case *refreshRequest:
		if currentRefreshToken == "" || codeKey(currentRefreshToken) != r.tokenHash {
			return "", "", time.Time{}, oidc.ErrInvalidGrant()
		}
		return s.rotate(ctx, r)
	}
	return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
}

// startFamily issues the first refresh token of a sign-in and its access token.
func (s *opStorage) startFamily(ctx context.Context, a *authRequest) (string, string, time.Time, error) {
	c, ok := s.p.clients.get(a.ClientID)
	if !ok {
		return "", "", time.Time{}, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if !c.hasGrant(GrantRefreshToken) {
		return "", "", time.Time{}, oidc.ErrUnauthorizedClient()
	}
	if _, err := s.activeUser(a.Username, a.UserID); err != nil {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	if err := s.p.noteSessionClient(ctx, c, a); err != nil {
		return "", "", time.Time{}, err
	}
	now := s.p.now()
	token := newRefreshToken()
	fam := refreshFamily{
		ID:        newID(),
		ClientID:  a.ClientID,
		Subject:   a.UserID,
		Username:  a.Username,
		SessionID: a.SessionID,
		DeviceID:  a.DeviceID,
		Scopes:    slices.Clone(a.Scopes),
		AMR:       slices.Clone(a.AMR),
		AuthTime:  a.AuthTime,
		CreatedAt: now,
		ExpiresAt: now.Add(c.refreshTokenLifetime()),
		Current:   codeKey(token),
	}
	if err := s.families().Create(ctx, fam.ID, fam.Subject, fam.ExpiresAt, fam); err != nil {
		return "", "", time.Time{}, fmt.Errorf("saving the refresh token family: %w", err)
	}
	rt := refreshToken{Hash: fam.Current, FamilyID: fam.ID, IssuedAt: now}
	if err := s.refreshTokens().Create(ctx, rt.Hash, fam.Subject, fam.ExpiresAt, rt); err != nil {
		return "", "", time.Time{}, fmt.Errorf("saving the refresh token: %w", err)
	}
	id, exp, err := s.createUserToken(ctx, c, a.UserID, a.Username, a.SessionID, a.Scopes, &fam)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s.p.log.InfoContext(ctx, "idp: refresh token issued", slog.String("user", fam.Username),
		slog.String("client_id", fam.ClientID), slog.String("family", fam.ID))
	return id, token, exp, nil
}

// rotate replaces the family's current refresh token with a new one and issues an access
// token. The swap is a compare-and-swap on the family: of two requests racing with the
// same token one wins and the other is treated as reuse.
func (s *opStorage) rotate(ctx context.Context, r *refreshRequest) (string, string, time.Time, error) {
	c, ok := s.p.clients.get(r.fam.ClientID)
	if !ok {
		return "", "", time.Time{}, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	now := s.p.now()
	token := newRefreshToken()
	rt := refreshToken{Hash: codeKey(token), FamilyID: r.fam.ID, IssuedAt: now}
	// The new token is stored first: if the swap then fails it was never handed out, and a
	// swap that succeeded never points at a token the store lacks.
	if err := s.refreshTokens().Create(ctx, rt.Hash, r.fam.Subject, r.fam.ExpiresAt, rt); err != nil {
		return "", "", time.Time{}, fmt.Errorf("saving the refresh token: %w", err)
	}
	fam, err := s.families().Update(ctx, r.fam.ID, func(f refreshFamily) (refreshFamily, time.Time, error) {
		if f.Current != r.tokenHash {
			return f, time.Time{}, errRefreshReused
		}
		if !now.Before(f.ExpiresAt) {
			return f, time.Time{}, errRefreshInvalid
		}
		f.Current = rt.Hash
		f.Rotations++
		return f, time.Time{}, nil
	})
	if err != nil {
		if derr := s.refreshTokens().Delete(ctx, rt.Hash); derr != nil {
			s.p.log.WarnContext(ctx, "idp: removing an unused refresh token", slog.Any("error", derr))
		}
		switch {
		case errors.Is(err, errRefreshReused):
			s.reuseDetected(ctx, r.fam)
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("%s", errRefreshReused.Error())
		case errors.Is(err, errRefreshInvalid), errors.Is(err, store.ErrNotFound):
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("%s", errRefreshInvalid.Error())
		}
		return "", "", time.Time{}, fmt.Errorf("rotating the refresh token: %w", err)
	}
	id, exp, err := s.createUserToken(ctx, c, fam.Subject, fam.Username, fam.SessionID, r.scopes, &fam)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s.p.log.DebugContext(ctx, "idp: refresh token rotated", slog.String("user", fam.Username),
		slog.String("client_id", fam.ClientID), slog.String("family", fam.ID), slog.Int("rotations", fam.Rotations))
	return id, token, exp, nil
}

// reuseDetected revokes the family of a reused refresh token and says so at warn level.
func (s *opStorage) reuseDetected(ctx context.Context, fam refreshFamily) {
	s.p.log.WarnContext(ctx, "idp: refresh token reuse detected; revoking its token family",
		slog.String("user", fam.Username), slog.String("client_id", fam.ClientID), slog.String("family", fam.ID))
	if err := s.revokeFamily(ctx, fam); err != nil {
		s.p.log.ErrorContext(ctx, "idp: revoking a refresh token family", slog.String("family", fam.ID), slog.Any("error", err))
	}
}

// revokeFamily deletes a family, which ends its refresh and access tokens at once, then
// removes their records.
func (s *opStorage) revokeFamily(ctx context.Context, fam refreshFamily) error {
	if err := s.families().Delete(ctx, fam.ID); err != nil {
		return fmt.Errorf("deleting the refresh token family: %w", err)
	}
	rts, err := s.refreshTokens().ListByOwner(ctx, fam.Subject)
	if err != nil {
		return fmt.Errorf("listing refresh tokens: %w", err)
	}
	for _, rt := range rts {
		if rt.FamilyID != fam.ID {
			continue
		}
		if err := s.refreshTokens().Delete(ctx, rt.Hash); err != nil {
			return fmt.Errorf("deleting a refresh token: %w", err)
		}
	}
	return s.revokeTokens(ctx, fam.Subject, func(t accessToken) bool { return t.FamilyID == fam.ID })
}

// revokeFamilies revokes the families of subject that match.
func (s *opStorage) revokeFamilies(ctx context.Context, subject string, match func(refreshFamily) bool) error {
	if subject == "" {
		return nil
	}
	fams, err := s.families().ListByOwner(ctx, subject)
	if err != nil {
		return fmt.Errorf("listing refresh token families: %w", err)
	}
	for _, f := range fams {
		if !match(f) {
			continue
		}
		if err := s.revokeFamily(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// revokeRefresh serves RFC 7009 revocation of a refresh token (by its SHA-256): its whole
// family ends. An unknown or already revoked token is not an error (section 2.2).
func (s *opStorage) revokeRefresh(ctx context.Context, hash, clientID string) *oidc.Error {
	rt, err := s.refreshTokens().Get(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	fam, err := s.families().Get(ctx, rt.FamilyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if fam.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	if err := s.revokeFamily(ctx, fam); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	s.p.log.InfoContext(ctx, "idp: refresh token revoked", slog.String("user", fam.Username),
		slog.String("client_id", fam.ClientID), slog.String("family", fam.ID))
	return nil
}

// GetRefreshTokenInfo tells op's revocation endpoint whether token is a live refresh token;
// the token id it returns leads RevokeToken to the family.
func (s *opStorage) GetRefreshTokenInfo(ctx context.Context, _ string, token string) (string, string, error) {
	fam, hash, err := s.familyOf(ctx, token)
	if errors.Is(err, errRefreshInvalid) {
		return "", "", op.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", err
	}
	return fam.Subject, refreshTokenIDPrefix + hash, nil
}

// liveFamily checks that an access token's family still exists (a revoked family's access
// tokens stop working at once).
func (s *opStorage) liveFamily(ctx context.Context, id string) error {
	fam, err := s.families().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("access token is invalid or expired")
	}
	if err != nil {
		return fmt.Errorf("loading the refresh token family: %w", err)
	}
	if !s.p.now().Before(fam.ExpiresAt) {
		return errors.New("access token is invalid or expired")
	}
	return nil
}

// isRefreshTokenID reports whether id came from GetRefreshTokenInfo, and the hash in it.
func isRefreshTokenID(id string) (string, bool) {
	return strings.CutPrefix(id, refreshTokenIDPrefix)
}

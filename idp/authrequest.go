package idp

import (
	"log/slog"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// authRequest is a pending authorization request as stored (store.KindAuthRequest). The
// login fills the second block when the user is authenticated.
type authRequest struct {
	ID                  string                   `json:"id"`
	CreatedAt           time.Time                `json:"created"`
	ClientID            string                   `json:"client_id"`
	RedirectURI         string                   `json:"redirect_uri"`
	State               string                   `json:"state,omitempty"`
	Nonce               string                   `json:"nonce,omitempty"`
	Scopes              []string                 `json:"scopes"`
	ResponseType        oidc.ResponseType        `json:"response_type"`
	ResponseMode        oidc.ResponseMode        `json:"response_mode,omitempty"`
	Prompt              []string                 `json:"prompt,omitempty"`
	MaxAge              *int64                   `json:"max_age,omitempty"` // seconds; 0 with prompt=login
	LoginHint           string                   `json:"login_hint,omitempty"`
	HintSubject         string                   `json:"hint_sub,omitempty"` // sub of a valid id_token_hint
	CodeChallenge       string                   `json:"code_challenge,omitempty"`
	CodeChallengeMethod oidc.CodeChallengeMethod `json:"code_challenge_method,omitempty"`
	// ACRValues are the acr_values the client asked for: the factor words of a policy rule
	// (password, otp, webauthn, phishing_resistant, any_mfa). Others are ignored.
	ACRValues []string `json:"acr_values,omitempty"`

	Completed bool      `json:"done,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	Username  string    `json:"username,omitempty"`
	AuthTime  time.Time `json:"auth_time,omitzero"`
	AMR       []string  `json:"amr,omitempty"`
	SessionID string    `json:"sid,omitempty"`
	// SessionExpiresAt is the session's absolute expiry: the back-channel logout record of
	// the clients that received tokens under it lives as long.
	SessionExpiresAt time.Time `json:"sid_expires,omitzero"`
	// DeviceID is the device the session was started from, if known.
	DeviceID string `json:"device,omitempty"`
}

var (
	_ op.AuthRequest    = (*authRequest)(nil)
	_ op.LogAuthRequest = (*authRequest)(nil)
	_ op.IDTokenRequest = (*authRequest)(nil)
)

func (a *authRequest) GetID() string                      { return a.ID }
func (a *authRequest) GetACR() string                     { return acrFor(a.AMR) }
func (a *authRequest) GetAMR() []string                   { return slices.Clone(a.AMR) }
func (a *authRequest) GetAudience() []string              { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.AuthTime }
func (a *authRequest) GetClientID() string                { return a.ClientID }
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return slices.Clone(a.Scopes) }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.UserID }
func (a *authRequest) Done() bool                         { return a.Completed }

// GetCodeChallenge passes the method through so op refuses an unsupported one.
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}

// LogValue is what op's (and our) logs show: no state, nonce or challenge.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", a.ID),
		slog.String("client_id", a.ClientID),
		slog.String("redirect_uri", a.RedirectURI),
		slog.Any("scopes", a.Scopes),
		slog.Bool("done", a.Completed),
	)
}

// hasPrompt reports whether the request carried prompt=p.
func (a *authRequest) hasPrompt(p string) bool { return slices.Contains(a.Prompt, p) }

// needsFreshLogin reports whether a session authenticated at authTime is too old for this
// request (prompt=login, or max_age exceeded).
func (a *authRequest) needsFreshLogin(authTime, now time.Time) bool {
	if a.hasPrompt(oidc.PromptLogin) {
		return true
	}
	if a.MaxAge == nil {
		return false
	}
	if *a.MaxAge == 0 {
		return true
	}
	return now.Sub(authTime) > time.Duration(*a.MaxAge)*time.Second
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDC is how the gate reaches its issuer as a relying party.
type OIDC struct {
	// Issuer is the issuer URL; discovery reads Issuer + "/.well-known/openid-configuration".
	Issuer string
	// ClientID is the gate's client_id at the issuer.
	ClientID string
	// ClientSecret is its secret; empty for a public client (PKCE is always used).
	ClientSecret string
	// Scopes asked for. Default openid, profile, email, groups; "openid" is added if missing.
	Scopes []string
	// HTTPClient reaches the issuer. Nil means http.DefaultClient; the embedded IdP passes its
	// in-process client.
	HTTPClient *http.Client
	// GroupsClaim names the claim that holds the user's groups (a list of strings), for issuers
	// that do not call it "groups" (Entra ID app roles: "roles"). Default "groups".
	GroupsClaim string
}

// DefaultScopes are the scopes asked for when OIDC.Scopes is empty.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}

const (
	// discoveryTimeout bounds one discovery attempt.
	discoveryTimeout = 10 * time.Second
	// discoveryRetryAfter is how long a failed discovery is remembered before the next
	// request tries again, so a down issuer is not asked once per request.
	discoveryRetryAfter = 2 * time.Second
	// exchangeTimeout bounds the code exchange (and userinfo) at the issuer.
	exchangeTimeout = 15 * time.Second
)

// relyingParty is the discovered issuer.
type relyingParty struct {
	provider *oidc.Provider
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// discovery finds the issuer's endpoints on first use and keeps them. A failure is kept for
// discoveryRetryAfter (real time) and then retried.
type discovery struct {
	mu      sync.Mutex
	rp      *relyingParty
	err     error
	errTime time.Time
}

// errIssuerUnavailable marks failures to reach the issuer (503 rather than 400).
var errIssuerUnavailable = errors.New("issuer unavailable")

// relyingParty returns the discovered issuer, discovering it if needed.
func (g *Gate) relyingParty(ctx context.Context) (*relyingParty, error) {
	d := &g.discovery
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rp != nil {
		return d.rp, nil
	}
	if d.err != nil && time.Since(d.errTime) < discoveryRetryAfter {
		return nil, d.err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discoveryTimeout)
	defer cancel()
	ctx = g.clientContext(ctx)
	p, err := oidc.NewProvider(ctx, g.cfg.OIDC.Issuer)
	if err != nil {
		d.err = fmt.Errorf("%w: discovering issuer %q: %w", errIssuerUnavailable, g.cfg.OIDC.Issuer, err)
		d.errTime = time.Now()
		return nil, d.err
	}
	// Send the client secret in the Authorization header, always. x/oauth2's auto-detection
	// retries a failed exchange with the secret in the body, and that retry can only fail:
	// the first attempt has already used the single-use code up.
	endpoint := p.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	d.rp = &relyingParty{
		provider: p,
		oauth: &oauth2.Config{
			ClientID:     g.cfg.OIDC.ClientID,
			ClientSecret: g.cfg.OIDC.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  g.callbackURL,
			Scopes:       g.scopes,
		},
		verifier: p.Verifier(&oidc.Config{ClientID: g.cfg.OIDC.ClientID, Now: g.now}),
	}
	d.err = nil
	return d.rp, nil
}

// clientContext puts the issuer's HTTP client in ctx for go-oidc and oauth2.
func (g *Gate) clientContext(ctx context.Context) context.Context {
	if g.cfg.OIDC.HTTPClient != nil {
		return oidc.ClientContext(ctx, g.cfg.OIDC.HTTPClient)
	}
	return ctx
}

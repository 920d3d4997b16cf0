// Package idp is zonegate's embedded OpenID Connect provider: endpoints, login, sessions and keys.
//
// The protocol endpoints (discovery, JWKS, authorize, token, userinfo, introspection,
// revocation) come from github.com/zitadel/oidc's op package; this package supplies the storage
// behind them (auth requests, single-use codes and access tokens in a store.Store, an ES256
// signing key kept in the store), the login and sign-out pages, and the single-sign-on session.
//
// Only the authorization code flow is offered. Public clients (no secret) must use PKCE with
// S256; every client that sends a code_challenge must use S256. Refresh tokens are not issued
// yet. Redirect URIs match exactly.
package idp

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
)

// Default lifetimes.
const (
	DefaultAccessTokenLifetime = 10 * time.Minute
	DefaultIDTokenLifetime     = 10 * time.Minute

	authRequestLifetime = 10 * time.Minute
	authCodeLifetime    = time.Minute
)

// Paths of the pages this package serves next to op's endpoints.
const (
	pathLogin      = "/login"
	pathHealth     = "/healthz"
	pathEndSession = "/end_session" // op's default; wrapped here to end the SSO session
	pathLoggedOut  = "/logged-out"
)

// sessionKind is the websession.Session.Kind of the IdP's single-sign-on sessions.
const sessionKind = "idp"

// Directory is where users and their passwords live (a *directory.File satisfies it).
type Directory interface {
	// Authenticate checks a username and password. It returns an error wrapping
	// directory.ErrInvalidCredentials for an unknown user, a wrong password or a disabled
	// user, and any other error when it could not decide.
	Authenticate(ctx context.Context, username, password string) (directory.User, error)
	// Lookup returns the user with that username.
	Lookup(username string) (directory.User, bool)
}

var _ Directory = (*directory.File)(nil)

// Client is one OAuth 2.0 / OpenID Connect client (relying party) of the IdP.
type Client struct {
	// ID is the client_id.
	ID string
	// Secret is the client_secret. Empty makes a public client, which must use PKCE (S256).
	Secret string
	// RedirectURIs are the absolute redirect URIs the client may use; they match exactly.
	RedirectURIs []string
	// PostLogoutRedirectURIs are where end_session may send the browser afterwards.
	PostLogoutRedirectURIs []string
	// IDTokenUserinfoClaims puts the userinfo claims (name, email, groups, ...) of the granted
	// scopes into the ID token too, not only behind the userinfo endpoint.
	IDTokenUserinfoClaims bool
}

// Config configures an IdP.
type Config struct {
	// Issuer is the issuer URL, e.g. "https://id.example.com": scheme and host only, no
	// trailing slash.
	// Plain http only for localhost, 127.0.0.1 and ::1.
	Issuer string
	// Store keeps auth requests, codes, access tokens and the signing key.
	Store store.Store
	// Users checks passwords and finds users.
	Users Directory
	// Sessions keeps the IdP's single-sign-on sessions (cookie on the issuer's host).
	Sessions *websession.Manager
	// CSRF protects the login and sign-out forms.
	CSRF *csrf.Protector
	// CryptoKey encrypts authorization codes and opaque access tokens (op.Config.CryptoKey).
	// The caller keeps it in the store so every node uses the same one.
	CryptoKey [32]byte
	// Clients are the registered clients.
	Clients []Client
	// AccessTokenLifetime defaults to 10 minutes.
	AccessTokenLifetime time.Duration
	// IDTokenLifetime defaults to 10 minutes.
	IDTokenLifetime time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// IdP is the embedded OpenID Connect provider. It is an http.Handler for the issuer's site.
type IdP struct {
	issuer    string
	issuerURL *url.URL
	users     Directory
	sessions  *websession.Manager
	csrf      *csrf.Protector
	store     store.Store
	log       *slog.Logger
	now       func() time.Time

	accessTokenLifetime time.Duration
	idTokenLifetime     time.Duration

	clients *clientRegistry
	keys    *keyPair
	storage *opStorage
	op      *op.Provider
	mux     *http.ServeMux
}

// New checks cfg, loads or creates the signing key and returns the IdP.
func New(ctx context.Context, cfg Config) (*IdP, error) {
	issuerURL, err := parseIssuer(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	switch {
	case cfg.Store == nil:
		return nil, errors.New("idp: no store")
	case cfg.Users == nil:
		return nil, errors.New("idp: no user directory")
	case cfg.Sessions == nil:
		return nil, errors.New("idp: no session manager")
	case cfg.CSRF == nil:
		return nil, errors.New("idp: no CSRF protector")
	case cfg.CryptoKey == [32]byte{}:
		return nil, errors.New("idp: crypto key is all zeros")
	case cfg.AccessTokenLifetime < 0 || cfg.IDTokenLifetime < 0:
		return nil, errors.New("idp: token lifetimes must be positive")
	}
	if cfg.AccessTokenLifetime == 0 {
		cfg.AccessTokenLifetime = DefaultAccessTokenLifetime
	}
	if cfg.IDTokenLifetime == 0 {
		cfg.IDTokenLifetime = DefaultIDTokenLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	p := &IdP{
		issuer:              issuerURL.String(),
		issuerURL:           issuerURL,
		users:               cfg.Users,
		sessions:            cfg.Sessions,
		csrf:                cfg.CSRF,
		store:               cfg.Store,
		log:                 cfg.Logger,
		now:                 cfg.Now,
		accessTokenLifetime: cfg.AccessTokenLifetime,
		idTokenLifetime:     cfg.IDTokenLifetime,
	}
	p.clients = newClientRegistry(p)
	for i, c := range cfg.Clients {
		if err := p.clients.add(c); err != nil {
			return nil, fmt.Errorf("idp: client %d: %w", i+1, err)
		}
	}

	p.keys, err = loadOrCreateSigningKey(ctx, cfg.Store, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	p.storage = &opStorage{p: p}

	opts := []op.Option{
		// No origin gets CORS headers (browser apps are not served cross-origin yet).
		op.WithCORSOptions(&cors.Options{AllowOriginFunc: func(string) bool { return false }}),
	}
	if issuerURL.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CryptoKey:                cfg.CryptoKey,
		DefaultLogoutRedirectURI: p.issuer + pathLoggedOut,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, scopeGroups},
		SupportedClaims: []string{
			"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "c_hash", "at_hash",
			"azp", "sid", "preferred_username", "name", "email", "email_verified", claimGroups,
		},
	}, p.storage, op.StaticIssuer(p.issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("idp: creating the OpenID provider: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathLogin, p.handleLoginForm)
	mux.HandleFunc("POST "+pathLogin, p.handleLoginSubmit)
	mux.HandleFunc(p.op.AuthorizationEndpoint().Relative()+"/callback", p.handleAuthCallback)
	mux.HandleFunc(pathEndSession, p.handleEndSession)
	mux.HandleFunc("GET "+pathLoggedOut, p.handleLoggedOut)
	mux.HandleFunc("GET "+pathHealth, p.handleHealth)
	mux.Handle("/", p.op)
	p.mux = mux
	return p, nil
}

// parseIssuer checks an issuer URL: absolute, https (http only for loopback hosts), no
// user info, path, query or fragment. Not even a trailing slash: relying parties compare the
// issuer as a string, so it must be written exactly as discovery will state it.
func parseIssuer(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("issuer is empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("issuer %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("issuer %q: scheme must be https", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("issuer %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("issuer %q: must not carry user info", s)
	case u.Path != "", u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.Contains(s, "#"):
		return nil, fmt.Errorf("issuer %q: must be scheme and host only (no path, query, fragment or trailing slash)", s)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		return nil, fmt.Errorf("issuer %q: plain http is only allowed for localhost, 127.0.0.1 and ::1", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

// Issuer returns the issuer URL.
func (p *IdP) Issuer() string { return p.issuer }

// ServeHTTP serves the issuer's site: op's endpoints plus /login, /end_session, /logged-out
// and /healthz.
func (p *IdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(op.ContextWithIssuer(r.Context(), p.issuer))
	p.mux.ServeHTTP(w, r)
}

// AddClient registers another client. It is safe to call while serving.
func (p *IdP) AddClient(c Client) error {
	if err := p.clients.add(c); err != nil {
		return fmt.Errorf("idp: adding client: %w", err)
	}
	return nil
}

// AddRedirectURI adds uri to a client's redirect URIs (no-op if already there). It is safe
// to call while serving.
func (p *IdP) AddRedirectURI(clientID, uri string) error {
	if err := p.clients.addRedirectURI(clientID, uri); err != nil {
		return fmt.Errorf("idp: client %q: %w", clientID, err)
	}
	return nil
}

// SigningKey returns the current ES256 signing key and its key id (the JWKS publishes it).
func (p *IdP) SigningKey(ctx context.Context) (kid string, key *ecdsa.PrivateKey, err error) {
	return p.keys.kid, p.keys.private, nil
}

// EndSession ends the single-sign-on session with id sid (the ID token's sid claim): the
// session, the gate sessions started from it, and the access tokens issued under it.
// Ending an unknown session is not an error.
func (p *IdP) EndSession(ctx context.Context, sid string) error {
	if sid == "" {
		return errors.New("idp: ending session: empty session id")
	}
	s, err := p.sessions.Get(ctx, sid)
	switch {
	case errors.Is(err, websession.ErrNoSession):
		// Already gone or expired: still make sure the record is removed.
	case err != nil:
		return fmt.Errorf("idp: ending session: %w", err)
	default:
		if _, err := p.sessions.RevokeChildren(ctx, s.UserID, s.ID); err != nil {
			return fmt.Errorf("idp: ending session: %w", err)
		}
		if err := p.storage.revokeSessionTokens(ctx, s.UserID, s.ID); err != nil {
			return fmt.Errorf("idp: ending session: %w", err)
		}
	}
	if err := p.sessions.Revoke(ctx, sid); err != nil {
		return fmt.Errorf("idp: ending session: %w", err)
	}
	return nil
}

// Health returns nil when the store can serve reads and writes.
func (p *IdP) Health(ctx context.Context) error {
	if err := p.store.Health(ctx); err != nil {
		return fmt.Errorf("idp: store: %w", err)
	}
	return nil
}

func (p *IdP) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := p.Health(r.Context()); err != nil {
		p.log.WarnContext(r.Context(), "idp health check failed", "error", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"status":"unavailable"}`+"\n")
		return
	}
	_, _ = io.WriteString(w, `{"status":"ok"}`+"\n")
}

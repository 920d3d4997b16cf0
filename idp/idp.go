// Package idp is zonegate's embedded OpenID Connect provider: endpoints, login, sessions and keys.
//
// The protocol endpoints (discovery, JWKS, authorize, token, userinfo, introspection,
// revocation) come from github.com/zitadel/oidc's op package; this package supplies the storage
// behind them (auth requests, single-use codes, access and refresh tokens in a store.Store,
// rotating signing keys kept in the store), the login and sign-out pages, and the
// single-sign-on session.
//
// Grants: the authorization code flow for every client (unless its GrantTypes say
// otherwise); refresh tokens for clients with the refresh_token grant that ask for
// offline_access; client_credentials for confidential clients that have that grant (service
// accounts: the token's subject is the client id, no ID token).
//
// Public clients (AuthNone: no secret, no keys) must use PKCE with S256; every client that
// sends a code_challenge must use S256. Redirect URIs match exactly.
//
// Client authentication at the token, revocation and introspection endpoints is checked
// here, before op sees the request, by the one method the client registered
// (Client.AuthMethod): client_secret_basic, client_secret_post, private_key_jwt (RFC 7523
// assertions verified with the client's JWKS or JWKSURL, aud the issuer or the endpoint,
// each jti used once) or none. Sending two methods at once is a bad request (RFC 6749
// section 2.3). A refused client gets invalid_client before any code is redeemed.
//
// A client's sign-on Policy decides, when a sign-in to it would complete, whether the user
// may use it from where the browser is (Config.Zones); a refusal reaches the client as
// error=access_denied.
//
// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a sign-in session ends
// (EndSession, the end_session endpoint, or another user signing in in the same browser),
// each client with a BackChannelLogoutURI that received tokens under it is sent a signed
// logout token in the background.
//
// Refresh tokens are opaque random values stored only as their SHA-256. Each sign-in starts
// a family; every use rotates the token (the old one stops working) and presenting a
// rotated token again revokes the whole family, refresh and access tokens alike. Revoking a
// refresh token (RFC 7009) or ending the sign-in session it came from ends the family too.
// A disabled or removed user cannot refresh. A family expires RefreshTokenLifetime after the
// sign-in, however often it is used.
//
// Scopes: unknown scopes and scopes the client is not allowed are dropped from the grant (as
// op does for unknown scopes), never refused; the token response's scope says what was
// granted. A refresh that asks for a scope beyond the original grant is refused
// (invalid_scope), as op does.
//
// The sign-in form is defended against password guessing (Config.BruteForce): attempts are
// limited per client address (429 with Retry-After and X-Rate-Limit-* headers), an account
// is locked out for a while after repeated failures (answering exactly as a wrong password
// does, right password or not, and the same for unknown usernames), and an address failing
// on many usernames is blocked. The counters live in the store, shared by every node; a
// store error refuses the sign-in (503).
//
// Signing keys are a set {current, next, previous} in the store. Rotation is lazy: the first
// SigningKey or KeySet call after the current key is older than Config.KeyRotation promotes
// next to current (compare-and-swap, so nodes agree). The JWKS publishes all three, previous
// until the tokens it signed have expired.
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
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/websession"
	"github.com/zonegate/zonegate/zones"
)

// Default lifetimes.
const (
	DefaultAccessTokenLifetime  = 10 * time.Minute
	DefaultIDTokenLifetime      = 10 * time.Minute
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
	// DefaultKeyRotation is how long a signing key signs before the next one takes over.
	DefaultKeyRotation = 30 * 24 * time.Hour

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
	// LookupID returns the user with that stable id (directory.User.ID).
	LookupID(id string) (directory.User, bool)
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
	// GrantTypes are the grants the client may use: GrantAuthorizationCode,
	// GrantRefreshToken (needs GrantAuthorizationCode) and GrantClientCredentials (needs a
	// Secret). Empty means authorization_code only.
	GrantTypes []string
	// Scopes are the scopes the client may be granted; requested scopes outside them are
	// dropped. With the authorization_code grant they must include "openid". Empty means
	// openid, profile, email, groups and offline_access (the last only with the
	// refresh_token grant) for users, and none for client_credentials tokens. Scopes other
	// than those are passed through into access tokens (introspection shows them).
	Scopes []string
	// AccessTokenLifetime overrides Config.AccessTokenLifetime for this client; 0 keeps it.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is how long a refresh token family lives from the sign-in,
	// however often it is rotated (absolute). Default DefaultRefreshTokenLifetime (30 days).
	RefreshTokenLifetime time.Duration
	// CORSOrigins are browser origins ("https://app.example.com", "http://localhost:9093":
	// scheme, host and port only) allowed to call the token, userinfo, JWKS, discovery,
	// revocation and introspection endpoints cross-origin. They are pooled: an origin any
	// client lists is allowed on those endpoints. No credentials (cookies) are allowed.
	CORSOrigins []string
	// SigningAlgorithm signs the client's ID tokens (and back-channel logout tokens):
	// AlgES256 (default) or AlgRS256 for legacy relying parties. RS256 keeps an RSA key set
	// next to the EC one.
	SigningAlgorithm string

	// AuthMethod is how the client authenticates at the token, revocation and introspection
	// endpoints: AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT or AuthNone,
	// and a client must use exactly that one. Empty means AuthNone for a client without a
	// Secret and, for a client with one, client_secret_basic that still also accepts
	// client_secret_post (what every client could use before this setting existed).
	AuthMethod string
	// JWKS is the client's public keys for AuthPrivateKeyJWT, as an inline JSON Web Key Set
	// ({"keys":[...]}). Only public signing keys: RSA (2048 bits or more), EC P-256/384/521
	// or Ed25519. Exactly one of JWKS and JWKSURL goes with AuthPrivateKeyJWT.
	JWKS string
	// JWKSURL is where the client publishes its JSON Web Key Set for AuthPrivateKeyJWT: https,
	// or http only for localhost, 127.0.0.1 and ::1. It is fetched (5 s timeout) on first
	// use, cached for 5 minutes, and fetched again early (at most every 10 seconds) when an
	// assertion names a key it lacks. When a refetch fails the cached keys keep working.
	JWKSURL string

	// Policy, if set, decides whether a user may sign in to this client. It is evaluated when
	// a sign-in to the client would complete (after the password, or silently from the
	// single-sign-on session) with the user's username and groups, the zones of the
	// browser's address (Config.Zones, Config.ClientIP), method GET and path "/": a client
	// policy's rules must not depend on the path or method. Allow lets the sign-in finish;
	// anything else ends it with error=access_denied at the client's redirect URI. It must be
	// compiled against Config.Zones. It is not evaluated again when the client refreshes
	// tokens, nor for client_credentials (no user). Nil allows every user.
	Policy *policy.Policy

	// BackChannelLogoutURI is the client's OpenID Connect Back-Channel Logout endpoint:
	// absolute https (http only for localhost, 127.0.0.1 and ::1), no fragment. When a
	// sign-in session under which the client received tokens ends, the IdP POSTs it a
	// logout token. Empty: no back-channel logout.
	BackChannelLogoutURI string
	// BackChannelLogoutSessionRequired says the client needs the sid claim in logout tokens.
	// The IdP always sends sid, so this only records the client's registration metadata.
	BackChannelLogoutSessionRequired bool

	// keys are the client's private_key_jwt keys (from JWKS or JWKSURL), set by checkClient.
	keys *clientKeys
}

// SignInObserver hears about every sign-in attempt (for metrics): the method ("pwd", or
// "otp" for the second step's codes) and the outcome: "success", or why it failed
// ("wrong_password", "unknown_user", "disabled", "locked_out", "invalid_code", "replayed",
// or the rate limit that refused it). It must be cheap and safe for concurrent use.
type SignInObserver interface {
	SignIn(method, outcome string)
}

// Config configures an IdP.
type Config struct {
	// Issuer is the issuer URL, e.g. "https://id.example.com": scheme and host only, no
	// trailing slash.
	// Plain http only for localhost, 127.0.0.1 and ::1.
	Issuer string
	// Store keeps auth requests, codes, access and refresh tokens, and the signing keys.
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
	// KeyRotation is how long a signing key is current before the next one replaces it,
	// checked lazily whenever a key is needed. 0 means DefaultKeyRotation (30 days);
	// negative means never.
	KeyRotation time.Duration
	// Zones places the browser's address in network zones for the clients' sign-on
	// Policies. Nil: every address is in no zone.
	Zones *zones.Table
	// ClientIP returns the browser's address for Zones. Default: the request's peer address
	// (RemoteAddr). Behind a proxy pass one that believes forwarded addresses only from
	// trusted proxies (Caddy's client_ip); a zero Addr is in no zone.
	ClientIP func(*http.Request) netip.Addr
	// BruteForce limits sign-in attempts per client address (ClientIP) and failures per
	// username (account lockout) and detects credential stuffing; see BruteForce. The zero
	// value applies the defaults; BruteForce.Disabled turns it off.
	BruteForce BruteForce
	// SignIns, when set, hears about every password sign-in attempt (for metrics).
	SignIns SignInObserver
	// TOTP, when set, turns on authenticator-app codes as a second factor: a user with a
	// TOTP device is asked for a code after the password (POST /login/otp), and a signed-in
	// user can add a device at /account/totp. Nil: passwords only, no enrollment page.
	TOTP *totp.Manager
	// Passkeys, when set, turns on WebAuthn security keys and passkeys: a user with a key
	// is asked for it after the password (POST /login/webauthn), the login page offers a
	// username-less passkey sign-in (POST /login/passkey, also as autofill), a request whose
	// acr_values need a key takes a user without one through setting it up
	// (POST /login/webauthn/enroll), and /account lists, renames and removes keys. Nil: no
	// security keys.
	Passkeys *passkey.Manager
	// Lifecycle, when set, is asked whether a user's account is active whenever a sign-in
	// completes (password, passkey or single sign-on) and whenever a refresh token is used;
	// a user who is not is refused as a wrong password would be. NotActive tells its
	// "not active" errors from failures to decide (which refuse with 503).
	Lifecycle Lifecycle
	NotActive func(error) bool
	// DeviceID, when set, names the browser's device at the IdP (a client certificate Caddy
	// verified on the issuer's site). Sessions and refresh tokens started from a device record
	// it, RevokeDevice ends them, and ID tokens carry the device's trust (DeviceTrust).
	DeviceID func(r *http.Request) (string, bool)
	// DeviceTrust returns a device's trust level (TRUSTED, NOT_TRUSTED or UNKNOWN) for the
	// device_trust claim; nil leaves the claim out.
	DeviceTrust func(ctx context.Context, deviceID string) string
	// OnLockout, when set, hears when the sign-in counters lock a known user out, and until
	// when (to show the account as locked out; ClearLockout undoes it).
	OnLockout func(ctx context.Context, userID string, until time.Time)
	// Events, when set, receives the IdP's system-log events (sign-ins, failures, lockouts,
	// sessions ending, authenticators added and removed).
	Events EventSink
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
	keys    *keyManager
	storage *opStorage
	op      *op.Provider
	mux     *http.ServeMux

	corsPaths map[string]bool // endpoints that answer CORS requests; set once in New
	tokenPath string          // the token endpoint's path
	// clientAuthPaths are the endpoints where clients authenticate (token, revocation,
	// introspection); set once in New.
	clientAuthPaths map[string]bool

	zones       *zones.Table
	clientIP    func(*http.Request) netip.Addr
	brute       *bruteForce // sign-in limiters; nil when disabled
	signIns     SignInObserver
	totp        *totp.Manager    // second factor; nil when off
	passkeys    *passkey.Manager // security keys and passkeys; nil when off
	lifecycle   Lifecycle
	notActive   func(error) bool
	onLockout   func(ctx context.Context, userID string, until time.Time)
	deviceID    func(r *http.Request) (string, bool)
	deviceTrust func(ctx context.Context, deviceID string) string
	events      EventSink

	jwksClient  *http.Client // fetches clients' JWKSURL
	backchannel *backchannel // sends back-channel logout tokens
}

// New checks cfg, loads or creates the signing keys (completing a key record written by an
// older version) and returns the IdP.
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
	if cfg.KeyRotation == 0 {
		cfg.KeyRotation = DefaultKeyRotation
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
	if cfg.ClientIP == nil {
		cfg.ClientIP = peerAddr
	}

	brute, err := newBruteForce(cfg.Store, cfg.BruteForce, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("idp: brute force: %w", err)
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
		zones:               cfg.Zones,
		clientIP:            cfg.ClientIP,
		brute:               brute,
		signIns:             cfg.SignIns,
		totp:                cfg.TOTP,
		passkeys:            cfg.Passkeys,
		lifecycle:           cfg.Lifecycle,
		notActive:           cfg.NotActive,
		onLockout:           cfg.OnLockout,
		deviceID:            cfg.DeviceID,
		deviceTrust:         cfg.DeviceTrust,
		events:              cfg.Events,
		jwksClient:          newJWKSClient(),
	}
	p.backchannel = newBackchannel(p)
	p.clients = newClientRegistry()
	for i, c := range cfg.Clients {
		if err := p.clients.add(c); err != nil {
			return nil, fmt.Errorf("idp: client %d: %w", i+1, err)
		}
	}

	if err := p.clients.add(p.accountClient()); err != nil {
		return nil, fmt.Errorf("idp: the self-service client: %w", err)
	}

	p.keys = newKeyManager(cfg.Store, cfg.Now, cfg.KeyRotation, previousKeyGrace(cfg.IDTokenLifetime), cfg.Logger)
	if err := p.keys.init(ctx, p.clients.usesRSA()); err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	p.storage = &opStorage{p: p}

	// The interceptor runs inside op's router, after its CORS handling: it serves discovery
	// and authenticates clients before op's token, revocation and introspection endpoints.
	opts := []op.Option{op.WithCORSOptions(p.corsOptions()), op.WithHttpInterceptors(p.intercept)}
	if issuerURL.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CryptoKey:                cfg.CryptoKey,
		DefaultLogoutRedirectURI: p.issuer + pathLoggedOut,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, scopeGroups, oidc.ScopeOfflineAccess},
		GrantTypeRefreshToken:    true,
		// Back-channel logout always carries sid.
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
		SupportedClaims: []string{
			"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "c_hash", "at_hash",
			"azp", "sid", "preferred_username", "name", "email", "email_verified", claimGroups, claimDeviceTrust,
		},
	}, p.storage, op.StaticIssuer(p.issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("idp: creating the OpenID provider: %w", err)
	}
	p.setCORSPaths()
	p.tokenPath = p.op.TokenEndpoint().Relative()
	p.clientAuthPaths = map[string]bool{
		p.tokenPath:                             true,
		p.op.RevocationEndpoint().Relative():    true,
		p.op.IntrospectionEndpoint().Relative(): true,
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathLogin, p.handleLoginForm)
	mux.HandleFunc("POST "+pathLogin, p.handleLoginSubmit)
	if p.totp != nil {
		mux.HandleFunc("POST "+pathLoginOTP, p.handleOTPSubmit)
		mux.HandleFunc("GET "+pathAccountTOTP, p.handleEnrollForm)
		mux.HandleFunc("POST "+pathAccountTOTP, p.handleEnrollSubmit)
		mux.HandleFunc("POST "+pathLoginEnroll, p.handleEnrollInFlowSubmit)
	}
	if p.passkeys != nil {
		mux.HandleFunc("POST "+pathLoginPasskey, p.handlePasskeySubmit)
		mux.HandleFunc("POST "+pathLoginWebAuthn, p.handleKeySubmit)
		mux.HandleFunc("POST "+pathLoginEnrollKey, p.handleEnrollKeySubmit)
		mux.HandleFunc("GET "+pathAssetsWebAuthnJS, serveWebAuthnJS)
		mux.HandleFunc("GET "+pathEnroll, p.handleEnrollLinkForm)
		mux.HandleFunc("POST "+pathEnroll, p.handleEnrollLinkSubmit)
	}
	p.accountRoutes(mux)
	mux.HandleFunc(p.op.AuthorizationEndpoint().Relative()+"/callback", p.handleAuthCallback)
	mux.HandleFunc(pathEndSession, p.handleEndSession)
	mux.HandleFunc("GET "+pathLoggedOut, p.handleLoggedOut)
	mux.HandleFunc("GET "+pathHealth, p.handleHealth)
	mux.Handle(p.op.UserinfoEndpoint().Relative(), bearerChallenge(p.op))
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
	ctx := op.ContextWithIssuer(r.Context(), p.issuer)
	if r.URL.Path == p.tokenPath {
		ctx = withAlgHint(ctx)
	}
	p.mux.ServeHTTP(w, r.WithContext(ctx))
}

// AddClient registers another client. It is safe to call while serving. A client with
// SigningAlgorithm RS256 makes sure the RSA keys exist in the store first.
func (p *IdP) AddClient(c Client) error {
	if c.SigningAlgorithm == AlgRS256 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.keys.ensureRSA(ctx); err != nil {
			return fmt.Errorf("idp: adding client %q: %w", c.ID, err)
		}
	}
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
// It rotates the key set first when the current key is due (see Config.KeyRotation), so
// callers should ask again for each signature rather than keep the key.
func (p *IdP) SigningKey(ctx context.Context) (kid string, key *ecdsa.PrivateKey, err error) {
	set, err := p.keys.get(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("idp: %w", err)
	}
	priv, ok := set.ec.current.private.(*ecdsa.PrivateKey)
	if !ok {
		return "", nil, errors.New("idp: the current signing key is not an EC key")
	}
	return set.ec.current.kid, priv, nil
}

// EndSession ends the single-sign-on session with id sid (the ID token's sid claim): the
// session, the gate sessions started from it, and the access and refresh tokens issued
// under it. Clients with a BackChannelLogoutURI that received tokens under it are sent a
// logout token in the background; EndSession does not wait for them.
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
		// The gate sessions and tokens started under this session, and under the sessions of
		// the same user it replaced (a later sign-in keeps them alive, so a sign-out must end
		// them too).
		for _, id := range append(slices.Clone(s.Predecessors), s.ID) {
			if _, err := p.sessions.RevokeChildren(ctx, s.UserID, id); err != nil {
				return fmt.Errorf("idp: ending session: %w", err)
			}
			if err := p.storage.revokeSessionTokens(ctx, s.UserID, id); err != nil {
				return fmt.Errorf("idp: ending session: %w", err)
			}
		}
	}
	if err := p.sessions.Revoke(ctx, sid); err != nil {
		return fmt.Errorf("idp: ending session: %w", err)
	}
	if err := p.backchannelLogout(ctx, sid); err != nil {
		return fmt.Errorf("idp: ending session: %w", err)
	}
	if s != nil {
		p.emit(ctx, nil, Event{Type: "user.session.end", Outcome: "SUCCESS", UserID: s.UserID, Username: s.Username})
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

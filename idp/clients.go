package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// scopeGroups asks for the groups claim.
const (
	scopeGroups = "groups"
	claimGroups = "groups"
	// claimDeviceTrust is the trust of the device the sign-in came from: TRUSTED,
	// NOT_TRUSTED or UNKNOWN (ID tokens, when the IdP knows devices).
	claimDeviceTrust = "device_trust"
)

// Grant types a Client may list in GrantTypes.
const (
	// GrantAuthorizationCode is the authorization code flow (sign-in in a browser). It is
	// what a client with no GrantTypes gets.
	GrantAuthorizationCode = "authorization_code"
	// GrantRefreshToken lets a client that signed a user in with offline_access get a
	// rotating refresh token. It needs GrantAuthorizationCode too.
	GrantRefreshToken = "refresh_token"
	// GrantClientCredentials lets a confidential client get access tokens for itself (a
	// service account).
	GrantClientCredentials = "client_credentials"
)

// Signing algorithms a Client may name in SigningAlgorithm.
const (
	// AlgES256 is ECDSA P-256 with SHA-256, the default.
	AlgES256 = "ES256"
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256, for relying parties that know nothing else.
	AlgRS256 = "RS256"
)

// Client authentication methods a Client may name in AuthMethod (the names of RFC 7591's
// token_endpoint_auth_method).
const (
	// AuthClientSecretBasic sends the client id and secret in an HTTP Basic Authorization
	// header (RFC 6749 section 2.3.1).
	AuthClientSecretBasic = "client_secret_basic"
	// AuthClientSecretPost sends client_id and client_secret in the form body.
	AuthClientSecretPost = "client_secret_post"
	// AuthPrivateKeyJWT sends a JWT signed with the client's private key as
	// client_assertion (RFC 7523 section 2.2); the IdP checks it with the client's JWKS or
	// JWKSURL.
	AuthPrivateKeyJWT = "private_key_jwt"
	// AuthNone is a public client: it only names itself with client_id and must use PKCE.
	AuthNone = "none"
)

// defaultUserScopes are what a client without Scopes may be granted in a user's sign-in
// (offline_access only with the refresh_token grant).
var defaultUserScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, scopeGroups, oidc.ScopeOfflineAccess}

// hasGrant reports whether the client may use grant type g.
func (c *Client) hasGrant(g string) bool {
	if len(c.GrantTypes) == 0 {
		return g == GrantAuthorizationCode
	}
	return slices.Contains(c.GrantTypes, g)
}

// userScopeAllowed reports whether a user's sign-in through this client may be granted sc.
func (c *Client) userScopeAllowed(sc string) bool {
	if sc == oidc.ScopeOfflineAccess && !c.hasGrant(GrantRefreshToken) {
		return false
	}
	if len(c.Scopes) == 0 {
		return slices.Contains(defaultUserScopes, sc)
	}
	return slices.Contains(c.Scopes, sc)
}

// grantUserScopes keeps the requested scopes this client may be granted for a user, in
// order and without duplicates (unallowed ones are dropped, as op drops unknown scopes).
func (c *Client) grantUserScopes(requested []string) []string {
	out := make([]string, 0, len(requested))
	for _, sc := range requested {
		if c.userScopeAllowed(sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// grantServiceScopes returns the scopes a client_credentials token gets: the requested
// ones the client's Scopes allow (unallowed ones are dropped), or all of its Scopes when
// none were requested. openid and offline_access mean nothing without a user and are
// never granted.
func (c *Client) grantServiceScopes(requested []string) []string {
	if len(requested) == 0 {
		requested = c.Scopes
	}
	out := make([]string, 0, len(requested))
	for _, sc := range requested {
		if sc == oidc.ScopeOpenID || sc == oidc.ScopeOfflineAccess {
			continue
		}
		if slices.Contains(c.Scopes, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// authMethod is the client's effective authentication method.
func (c *Client) authMethod() string {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod
	case c.Secret == "":
		return AuthNone
	}
	return AuthClientSecretBasic
}

// acceptsAuth reports whether the client may authenticate with method: its AuthMethod
// only, or for a client with a secret and no AuthMethod either way of sending the secret.
func (c *Client) acceptsAuth(method string) bool {
	if c.AuthMethod == "" && c.Secret != "" {
		return method == AuthClientSecretBasic || method == AuthClientSecretPost
	}
	return method == c.authMethod()
}

// isPublic reports whether the client has no credentials (AuthNone): it must use PKCE.
func (c *Client) isPublic() bool { return c.authMethod() == AuthNone }

// accessTokenLifetime is the client's access token lifetime, def when it has none.
func (c *Client) accessTokenLifetime(def time.Duration) time.Duration {
	if c.AccessTokenLifetime > 0 {
		return c.AccessTokenLifetime
	}
	return def
}

// refreshTokenLifetime is the absolute lifetime of the client's refresh token families.
func (c *Client) refreshTokenLifetime() time.Duration {
	if c.RefreshTokenLifetime > 0 {
		return c.RefreshTokenLifetime
	}
	return DefaultRefreshTokenLifetime
}

// signingAlgorithm is the algorithm of the client's ID tokens.
func (c *Client) signingAlgorithm() jose.SignatureAlgorithm {
	if c.SigningAlgorithm == AlgRS256 {
		return jose.RS256
	}
	return jose.ES256
}

// clientRegistry holds the clients; reads and additions may run concurrently.
type clientRegistry struct {
	mu      sync.RWMutex
	m       map[string]*Client
	origins map[string]bool // every client's CORSOrigins
	rsa     bool            // some client signs with RS256
}

func newClientRegistry() *clientRegistry {
	return &clientRegistry{m: make(map[string]*Client), origins: make(map[string]bool)}
}

// checkClient validates c and returns the copy the registry keeps (slices cloned, origins
// in canonical form).
func checkClient(c Client) (Client, error) {
	if err := validateClientID(c.ID); err != nil {
		return c, err
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	c.GrantTypes = slices.Clone(c.GrantTypes)
	c.Scopes = slices.Clone(c.Scopes)
	c.CORSOrigins = slices.Clone(c.CORSOrigins)
	for i, u := range c.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return c, fmt.Errorf("client %q: redirect URI %d: %w", c.ID, i+1, err)
		}
	}
	for i, u := range c.PostLogoutRedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return c, fmt.Errorf("client %q: post-logout redirect URI %d: %w", c.ID, i+1, err)
		}
	}
	for i, g := range c.GrantTypes {
		switch g {
		case GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials:
		default:
			return c, fmt.Errorf("client %q: grant type %d: %q is not one of %s, %s, %s",
				c.ID, i+1, g, GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials)
		}
	}
	switch {
	case c.hasGrant(GrantRefreshToken) && !c.hasGrant(GrantAuthorizationCode):
		return c, fmt.Errorf("client %q: the %s grant needs the %s grant too", c.ID, GrantRefreshToken, GrantAuthorizationCode)
	case c.hasGrant(GrantClientCredentials) && c.isPublic():
		return c, fmt.Errorf("client %q: the %s grant needs a client secret or %s", c.ID, GrantClientCredentials, AuthPrivateKeyJWT)
	case c.hasGrant(GrantClientCredentials) && strings.Contains(c.ID, ":"):
		// The token's subject is the client id, and op's bearer token is "<id>:<subject>".
		return c, fmt.Errorf("client %q: the %s grant needs a client id without ':'", c.ID, GrantClientCredentials)
	case c.AccessTokenLifetime < 0:
		return c, fmt.Errorf("client %q: access token lifetime %v is negative", c.ID, c.AccessTokenLifetime)
	case c.RefreshTokenLifetime < 0:
		return c, fmt.Errorf("client %q: refresh token lifetime %v is negative", c.ID, c.RefreshTokenLifetime)
	case c.SigningAlgorithm != "" && c.SigningAlgorithm != AlgES256 && c.SigningAlgorithm != AlgRS256:
		return c, fmt.Errorf("client %q: signing algorithm %q is not %s or %s", c.ID, c.SigningAlgorithm, AlgES256, AlgRS256)
	}
	if err := checkClientAuth(&c); err != nil {
		return c, fmt.Errorf("client %q: %w", c.ID, err)
	}
	if c.BackChannelLogoutURI != "" {
		if err := validateBackchannelURI(c.BackChannelLogoutURI); err != nil {
			return c, fmt.Errorf("client %q: back-channel logout URI: %w", c.ID, err)
		}
	}
	for i, sc := range c.Scopes {
		if err := validateScope(sc); err != nil {
			return c, fmt.Errorf("client %q: scope %d: %w", c.ID, i+1, err)
		}
	}
	if len(c.Scopes) > 0 && c.hasGrant(GrantAuthorizationCode) && !slices.Contains(c.Scopes, oidc.ScopeOpenID) {
		return c, fmt.Errorf("client %q: scopes must include %q for the %s grant", c.ID, oidc.ScopeOpenID, GrantAuthorizationCode)
	}
	for i, o := range c.CORSOrigins {
		canon, err := canonicalOrigin(o)
		if err != nil {
			return c, fmt.Errorf("client %q: CORS origin %d: %w", c.ID, i+1, err)
		}
		c.CORSOrigins[i] = canon
	}
	return c, nil
}

func (r *clientRegistry) add(c Client) error {
	c, err := checkClient(c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[c.ID]; dup {
		return fmt.Errorf("client %q: duplicate client id", c.ID)
	}
	r.m[c.ID] = &c
	for _, o := range c.CORSOrigins {
		r.origins[o] = true
	}
	if c.SigningAlgorithm == AlgRS256 {
		r.rsa = true
	}
	return nil
}

// originAllowed reports whether some client lists origin (exactly, as the browser sends
// it) in CORSOrigins.
func (r *clientRegistry) originAllowed(origin string) bool {
	if origin == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.origins[origin]
}

// usesRSA reports whether some client has its ID tokens signed with RS256.
func (r *clientRegistry) usesRSA() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rsa
}

func (r *clientRegistry) addRedirectURI(clientID, uri string) error {
	if err := validateRedirectURI(uri); err != nil {
		return fmt.Errorf("redirect URI: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[clientID]
	if !ok {
		return errors.New("no such client")
	}
	if slices.Contains(c.RedirectURIs, uri) {
		return nil
	}
	// Copy on write: snapshots handed out earlier keep their own slice.
	nc := *c
	nc.RedirectURIs = append(slices.Clone(c.RedirectURIs), uri)
	r.m[clientID] = &nc
	return nil
}

// get returns a snapshot of the client.
func (r *clientRegistry) get(id string) (*Client, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.m[id]
	return c, ok
}

func validateClientID(id string) error {
	if id == "" {
		return errors.New("client id is empty")
	}
	for _, c := range id {
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return fmt.Errorf("client id %q: only printable characters without spaces", id)
		}
	}
	return nil
}

// validateRedirectURI accepts absolute http and https URLs with a host and without user
// info or fragment (RFC 6749 section 3.1.2).
func validateRedirectURI(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q contains white space", s)
	}
	if strings.Contains(s, "#") {
		return fmt.Errorf("%q must not have a fragment", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if !u.IsAbs() {
		return fmt.Errorf("%q is relative; it must be an absolute http or https URL", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https or http", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry user info", s)
	}
	return nil
}

// validateScope accepts an RFC 6749 scope token: one or more of %x21 / %x23-5B / %x5D-7E.
func validateScope(sc string) error {
	if sc == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(sc); i++ {
		b := sc[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return fmt.Errorf("%q: a scope is printable ASCII without spaces, quotes or backslashes", sc)
		}
	}
	return nil
}

// canonicalOrigin checks a CORS origin ("scheme://host[:port]", http or https, no path,
// query, fragment or user info) and returns it as browsers serialize it in the Origin
// header: lower case, without the scheme's default port.
func canonicalOrigin(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n#?\\") {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "https" && scheme != "http":
		return "", fmt.Errorf("%q: scheme must be https or http", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return "", fmt.Errorf("%q must not carry user info", s)
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%q: an origin has no path (not even a trailing slash), query or fragment", s)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", fmt.Errorf("%q: bad port", s)
		}
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// secretMatches compares a presented client secret with the registered one in constant time
// (hashing first so the length does not leak either).
func secretMatches(registered, presented string) bool {
	a := sha256.Sum256([]byte(registered))
	b := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// opClient is a Client as op sees it.
type opClient struct {
	c               *Client
	loginURL        string
	idTokenLifetime time.Duration
}

var _ op.Client = (*opClient)(nil)

func (c *opClient) GetID() string                    { return c.c.ID }
func (c *opClient) RedirectURIs() []string           { return slices.Clone(c.c.RedirectURIs) }
func (c *opClient) PostLogoutRedirectURIs() []string { return slices.Clone(c.c.PostLogoutRedirectURIs) }
func (c *opClient) LoginURL(id string) string {
	return c.loginURL + "?authRequestID=" + url.QueryEscape(id)
}
func (c *opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *opClient) IDTokenLifetime() time.Duration      { return c.idTokenLifetime }
func (c *opClient) ClockSkew() time.Duration            { return 0 }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool {
	return c.c.IDTokenUserinfoClaims
}

// public reports whether the client has no credentials (and so must use PKCE).
func (c *opClient) public() bool { return c.c.isPublic() }

func (c *opClient) ApplicationType() op.ApplicationType {
	if c.public() {
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

// AuthMethod is none for public clients and basic for every other: the interceptor in
// front of op's endpoints has authenticated a confidential client by its own method
// already and hands op the request with HTTP Basic naming it (see authenticateClient).
func (c *opClient) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes is code for clients with the authorization_code grant, nothing otherwise
// (op then refuses them at /authorize).
func (c *opClient) ResponseTypes() []oidc.ResponseType {
	if !c.c.hasGrant(GrantAuthorizationCode) {
		return nil
	}
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

// GrantTypes are the client's grants; op checks them at the token endpoint.
func (c *opClient) GrantTypes() []oidc.GrantType {
	var out []oidc.GrantType
	for _, g := range []string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials} {
		if c.c.hasGrant(g) {
			out = append(out, oidc.GrantType(g))
		}
	}
	return out
}

// DevMode only relaxes op's scheme policy for redirect URIs (plain http for public
// clients). Redirect URIs are still matched exactly against the ones an operator
// registered, and New already checked those.
func (c *opClient) DevMode() bool { return true }

func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed decides the non-standard scopes op lets through at /authorize: groups, and
// whatever else the client's Scopes list. CreateAuthRequest then narrows the standard ones.
func (c *opClient) IsScopeAllowed(scope string) bool { return c.c.userScopeAllowed(scope) }

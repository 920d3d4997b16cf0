package idp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/store"
)

// Client authentication happens here, in front of op's token, revocation and introspection
// endpoints, for every method: op checks neither that a client uses the method it
// registered, nor an assertion's audience beyond the issuer, nor its jti, and offers
// private_key_jwt on some endpoints only. Once a confidential client is authenticated the
// request reaches op with the credentials removed and an HTTP Basic header naming the client
// with an empty secret; the storage accepts that only for the client this request context
// marks as authenticated (authenticatedClient), so nothing reaches op's endpoints
// authenticated any other way.

// kindClientAssertion records the jti of every accepted client assertion until it expires
// (keyed by the SHA-256 of client id and jti), so each assertion is used once.
const kindClientAssertion store.Kind = "clientassertion"

const (
	// assertionLeeway is the clock difference tolerated on an assertion's exp, nbf and iat.
	assertionLeeway = 30 * time.Second
	// maxAssertionLifetime bounds how far in the future an assertion's exp may be (and so
	// how long its jti is remembered).
	maxAssertionLifetime = time.Hour
)

// assertionAlgs are the signature algorithms accepted in client assertions: asymmetric
// only (client_secret_jwt is not offered), never "none".
var assertionAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// errClientAuthDescription is what a client that failed to authenticate is told; the log
// says why.
const errClientAuthDescription = "client authentication failed"

type clientAuthKey struct{}

// withAuthenticatedClient marks ctx as carrying a request whose client id was authenticated.
func withAuthenticatedClient(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, clientAuthKey{}, id)
}

// authenticatedClient is the client id withAuthenticatedClient recorded, or "".
func authenticatedClient(ctx context.Context) string {
	id, _ := ctx.Value(clientAuthKey{}).(string)
	return id
}

// checkClientAuth checks a client's AuthMethod, Secret, JWKS and JWKSURL together and
// prepares its private_key_jwt keys.
func checkClientAuth(c *Client) error {
	c.keys = nil
	switch c.AuthMethod {
	case "", AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone:
	default:
		return fmt.Errorf("auth method %q is not one of %s, %s, %s, %s",
			c.AuthMethod, AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthNone)
	}
	m := c.authMethod()
	switch m {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if c.Secret == "" {
			return fmt.Errorf("auth method %s needs a client secret", m)
		}
	case AuthPrivateKeyJWT, AuthNone:
		if c.Secret != "" {
			return fmt.Errorf("auth method %s takes no client secret", m)
		}
	}
	if m != AuthPrivateKeyJWT {
		if c.JWKS != "" || c.JWKSURL != "" {
			return fmt.Errorf("a JWKS or JWKS URL needs auth method %s", AuthPrivateKeyJWT)
		}
		return nil
	}
	switch {
	case c.JWKS != "" && c.JWKSURL != "":
		return errors.New("set either a JWKS or a JWKS URL, not both")
	case c.JWKS != "":
		set, err := parseClientJWKS([]byte(c.JWKS), true)
		if err != nil {
			return fmt.Errorf("JWKS: %w", err)
		}
		c.keys = &clientKeys{static: set}
	case c.JWKSURL != "":
		if err := validateServerURL(c.JWKSURL); err != nil {
			return fmt.Errorf("JWKS URL: %w", err)
		}
		c.keys = &clientKeys{url: c.JWKSURL}
	default:
		return fmt.Errorf("auth method %s needs a JWKS or a JWKS URL", AuthPrivateKeyJWT)
	}
	return nil
}

// intercept wraps op's endpoints (inside op's CORS handling): it serves discovery and
// authenticates clients at the token, revocation and introspection endpoints.
func (p *IdP) intercept(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == oidc.DiscoveryEndpoint && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			p.serveDiscovery(w, r)
			return
		case p.clientAuthPaths[r.URL.Path] && r.Method != http.MethodOptions:
			var ok bool
			if r, ok = p.authenticateClient(w, r); !ok {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveDiscovery is op's discovery document with the client authentication methods and
// assertion algorithms this package offers on each endpoint.
func (p *IdP) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	cfg := op.CreateDiscoveryConfig(r.Context(), p.op, p.storage)
	algs := make([]string, len(assertionAlgs))
	for i, a := range assertionAlgs {
		algs[i] = string(a)
	}
	all := []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
	cfg.TokenEndpointAuthMethodsSupported = all
	cfg.TokenEndpointAuthSigningAlgValuesSupported = algs
	cfg.RevocationEndpointAuthMethodsSupported = all
	cfg.RevocationEndpointAuthSigningAlgValuesSupported = algs
	cfg.IntrospectionEndpointAuthMethodsSupported = all[1:] // public clients may not introspect
	cfg.IntrospectionEndpointAuthSigningAlgValuesSupported = algs
	cfg.BackChannelLogoutSupported = true
	cfg.BackChannelLogoutSessionSupported = true
	cfg.ACRValuesSupported = acrValuesSupported
	cfg.ClaimsSupported = append(cfg.ClaimsSupported, "acr")
	op.Discover(w, cfg)
}

// presentedAuth is the client authentication a request carries.
type presentedAuth struct {
	method    string // one of the Auth* constants
	clientID  string
	secret    string // client_secret_basic and client_secret_post
	assertion string // private_key_jwt
	basic     bool   // an HTTP Basic header was sent (possibly with an empty secret)
}

// clientAuthError carries why a client failed to authenticate (for the log) and what the
// client is told.
type clientAuthError struct {
	reason string      // for the log; never a secret or an assertion
	oerr   *oidc.Error // for the client
}

func (e *clientAuthError) Error() string { return e.reason }

func invalidClient(format string, a ...any) *clientAuthError {
	return &clientAuthError{reason: fmt.Sprintf(format, a...), oerr: oidc.ErrInvalidClient().WithDescription(errClientAuthDescription)}
}

func invalidRequest(desc string) *clientAuthError {
	return &clientAuthError{reason: desc, oerr: oidc.ErrInvalidRequest().WithDescription("%s", desc)}
}

// singleParams are the parameters that may appear at most once (RFC 6749 section 3.2).
var singleParams = []string{"client_id", "client_secret", "client_assertion", "client_assertion_type"}

// readClientAuth finds the client authentication in r (whose form is parsed). Sending more
// than one method, a parameter twice, or credentials in the URL is a bad request.
func readClientAuth(r *http.Request) (presentedAuth, *clientAuthError) {
	var pa presentedAuth
	q := r.URL.Query()
	if q.Has("client_secret") || q.Has("client_assertion") {
		return pa, invalidRequest("client credentials must not be sent in the URL")
	}
	for _, k := range singleParams {
		if len(r.Form[k]) > 1 {
			return pa, invalidRequest(k + " must not be sent more than once")
		}
	}
	formID := r.Form.Get("client_id")
	formSecret := r.PostForm.Get("client_secret")
	assertion := r.PostForm.Get("client_assertion")
	assertionType := r.PostForm.Get("client_assertion_type")
	hasAssertion := r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type")
	hasSecret := formSecret != "" // an empty secret, like Basic's, is no credential

	if r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return pa, invalidClient("Authorization header is not HTTP Basic")
		}
		// RFC 6749 section 2.3.1: both are form-encoded before Basic encoding.
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return pa, invalidClient("malformed HTTP Basic credentials")
		}
		pa.basic, pa.clientID, pa.secret = true, id, secret
	}
	n := 0
	for _, b := range []bool{pa.basic, hasSecret, hasAssertion} {
		if b {
			n++
		}
	}
	if n > 1 {
		return pa, invalidRequest("client authentication must use one method only")
	}
	switch {
	case hasAssertion:
		if assertionType != oidc.ClientAssertionTypeJWTAssertion {
			return pa, invalidClient("client_assertion_type %q is not %s", assertionType, oidc.ClientAssertionTypeJWTAssertion)
		}
		if assertion == "" {
			return pa, invalidClient("empty client_assertion")
		}
		iss, err := assertionIssuer(assertion)
		if err != nil {
			return pa, invalidClient("client assertion: %v", err)
		}
		pa.method, pa.clientID, pa.assertion = AuthPrivateKeyJWT, iss, assertion
	case hasSecret:
		pa.method, pa.clientID, pa.secret = AuthClientSecretPost, formID, formSecret
	case pa.basic && pa.secret != "":
		pa.method = AuthClientSecretBasic
	default:
		// A Basic header with an empty secret only names the client (x/oauth2 sends one for a
		// public client).
		pa.method = AuthNone
		if !pa.basic {
			pa.clientID = formID
		}
	}
	if formID != "" && formID != pa.clientID {
		return pa, invalidClient("client_id %q does not match the authenticated client %q", formID, pa.clientID)
	}
	if pa.clientID == "" {
		return pa, invalidClient("no client id")
	}
	return pa, nil
}

// authenticateClient authenticates the client of a request to the token, revocation or
// introspection endpoint by the one method it registered, answering the request itself
// when that fails. On success it returns the request op should see: for a confidential
// client with the credentials replaced by HTTP Basic with an empty secret, and the
// context marked (withAuthenticatedClient); for a public client with only client_id.
func (p *IdP) authenticateClient(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.clientAuthFailed(w, r, "", "", invalidRequest("the request form could not be read"))
		return nil, false
	}
	pa, cerr := readClientAuth(r)
	if cerr != nil {
		p.clientAuthFailed(w, r, pa.clientID, pa.method, cerr)
		return nil, false
	}
	c, ok := p.clients.get(pa.clientID)
	if !ok {
		secretMatches("", pa.secret) // the same work as for a known client
		p.clientAuthFailed(w, r, pa.clientID, pa.method, invalidClient("unknown client"))
		return nil, false
	}
	if !c.acceptsAuth(pa.method) {
		secretMatches("", pa.secret)
		p.clientAuthFailed(w, r, pa.clientID, pa.method, invalidClient("client authenticated with %s, registered for %s", pa.method, c.authMethod()))
		return nil, false
	}
	switch pa.method {
	case AuthClientSecretBasic, AuthClientSecretPost:
		if !secretMatches(c.Secret, pa.secret) {
			p.clientAuthFailed(w, r, pa.clientID, pa.method, invalidClient("wrong client secret"))
			return nil, false
		}
	case AuthPrivateKeyJWT:
		if err := p.verifyClientAssertion(ctx, c, pa.assertion, r.URL.Path); err != nil {
			var ce *clientAuthError
			if !errors.As(err, &ce) {
				ce = invalidClient("%v", err)
			}
			p.clientAuthFailed(w, r, pa.clientID, pa.method, ce)
			return nil, false
		}
	case AuthNone:
		// Nothing to check: op holds public clients to PKCE and to their own tokens.
		out := r.Clone(ctx)
		out.Header.Del("Authorization")
		out.Form.Set("client_id", c.ID)
		out.PostForm.Set("client_id", c.ID)
		return out, true
	}
	out := r.Clone(withAuthenticatedClient(ctx, c.ID))
	for _, k := range singleParams {
		out.Form.Del(k)
		out.PostForm.Del(k)
	}
	out.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.ID)+":")))
	return out, true
}

// clientAuthFailed logs a failed client authentication (never the credentials) and answers
// it as RFC 6749 section 5.2 says.
func (p *IdP) clientAuthFailed(w http.ResponseWriter, r *http.Request, clientID, method string, e *clientAuthError) {
	p.log.InfoContext(r.Context(), "idp: client authentication failed",
		slog.String("client_id", clientID), slog.String("method", method), slog.String("reason", e.reason),
		slog.String("endpoint", r.URL.Path), slog.String("remote", r.RemoteAddr))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	status := http.StatusBadRequest
	switch e.oerr.ErrorType {
	case oidc.InvalidClient:
		status = http.StatusUnauthorized
		if r.Header.Get("Authorization") != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+p.issuer+`"`)
		}
	case oidc.ServerError:
		status = http.StatusInternalServerError
	}
	httphelper.MarshalJSONWithStatus(w, e.oerr, status)
}

// assertionIssuer reads the iss of a client assertion before it is verified, to find the
// client whose keys verify it.
func assertionIssuer(assertion string) (string, error) {
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil {
		return "", fmt.Errorf("not a signed JWT with an accepted algorithm: %w", err)
	}
	var cl jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&cl); err != nil {
		return "", fmt.Errorf("reading claims: %w", err)
	}
	if cl.Issuer == "" {
		return "", errors.New("no iss")
	}
	return cl.Issuer, nil
}

// verifyClientAssertion checks a private_key_jwt client assertion (RFC 7523 section 3):
// signed by one of the client's keys, iss = sub = client id, aud naming the issuer, the
// token endpoint or the endpoint called (endpointPath), unexpired (exp required, at most
// maxAssertionLifetime ahead), nbf and iat not in the future, and a jti not seen before.
func (p *IdP) verifyClientAssertion(ctx context.Context, c *Client, assertion, endpointPath string) error {
	if c.keys == nil {
		return invalidClient("client has no keys")
	}
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return invalidClient("client assertion is not a signed JWT with an accepted algorithm")
	}
	h := tok.Headers[0]
	var cl jwt.Claims
	verified := false
	for refreshed := false; ; refreshed = true {
		keys, err := c.keys.get(ctx, p, refreshed)
		if err != nil {
			return invalidClient("client keys: %v", err)
		}
		fits := false
		for _, k := range keys {
			if !keyFits(k, h) {
				continue
			}
			fits = true
			if err := tok.Claims(k.Key, &cl); err == nil {
				verified = true
				break
			}
		}
		// Only a key the set lacks is worth fetching the set again for (the client rotated).
		if verified || fits || refreshed || !c.keys.refreshable() {
			break
		}
	}
	if !verified {
		return invalidClient("client assertion signature does not verify with the client's keys (kid %q, alg %s)", h.KeyID, h.Algorithm)
	}

	now := p.now()
	switch {
	case cl.Issuer != c.ID || cl.Subject != c.ID:
		return invalidClient("client assertion iss %q and sub %q must both be the client id", cl.Issuer, cl.Subject)
	case cl.Expiry == nil:
		return invalidClient("client assertion has no exp")
	case !now.Before(cl.Expiry.Time().Add(assertionLeeway)):
		return invalidClient("client assertion expired at %s", cl.Expiry.Time().UTC().Format(time.RFC3339))
	case cl.Expiry.Time().After(now.Add(maxAssertionLifetime + assertionLeeway)):
		return invalidClient("client assertion exp is more than %v ahead", maxAssertionLifetime)
	case cl.NotBefore != nil && now.Add(assertionLeeway).Before(cl.NotBefore.Time()):
		return invalidClient("client assertion is not valid yet (nbf)")
	case cl.IssuedAt != nil && now.Add(assertionLeeway).Before(cl.IssuedAt.Time()):
		return invalidClient("client assertion issued in the future (iat)")
	case cl.ID == "":
		return invalidClient("client assertion has no jti")
	}
	if !p.assertionAudienceOK(cl.Audience, endpointPath) {
		return invalidClient("client assertion aud %q names neither the issuer nor the token endpoint", []string(cl.Audience))
	}
	// Single use: remember the jti until the assertion expires.
	sum := sha256.Sum256([]byte(c.ID + "\x00" + cl.ID))
	rec := store.Record{Kind: kindClientAssertion, ID: hex.EncodeToString(sum[:]), Value: []byte("{}"),
		ExpiresAt: cl.Expiry.Time().Add(assertionLeeway)}
	switch err := p.store.Create(ctx, rec); {
	case errors.Is(err, store.ErrAlreadyExists):
		return invalidClient("client assertion jti was already used")
	case err != nil:
		return &clientAuthError{reason: fmt.Sprintf("recording the client assertion jti: %v", err), oerr: oidc.ErrServerError()}
	}
	return nil
}

// assertionAudienceOK reports whether aud names this authorization server: the issuer, the
// token endpoint, or the endpoint the assertion was sent to.
func (p *IdP) assertionAudienceOK(aud jwt.Audience, endpointPath string) bool {
	want := []string{p.issuer, p.issuer + p.tokenPath, p.issuer + endpointPath}
	for _, a := range aud {
		if slices.Contains(want, a) {
			return true
		}
	}
	return false
}

// keyFits reports whether k may verify a signature with header h: the key id matches when
// the header names one, and a key that states its algorithm states this one.
func keyFits(k jose.JSONWebKey, h jose.Header) bool {
	if h.KeyID != "" && k.KeyID != h.KeyID {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != h.Algorithm {
		return false
	}
	return true
}

// AuthorizeClientIDSecret lets op's endpoints through for the client the interceptor
// authenticated in this request (authenticateClient); every other call is refused.
func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, _ string) error {
	if id == "" || authenticatedClient(ctx) != id {
		return errors.New("client not authenticated")
	}
	return nil
}

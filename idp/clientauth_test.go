package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Clients of the client authentication tests.
const (
	basicClientID     = "basic-app"
	basicClientSecret = "basic-secret-0123456789abcdef"
	basicRedirect     = "https://basic.example.com/cb"
	postClientID      = "post-app"
	postClientSecret  = "post-secret-0123456789abcdef"
	postRedirect      = "https://post.example.com/cb"
	jwtClientID       = "jwt-app"
	jwtRedirect       = "https://jwt.example.com/cb"
	jwksURLClientID   = "jwks-url-app"
	jwksURLRedirect   = "https://jwks.example.com/cb"
	jwtSvcClientID    = "jwt-svc"
	assertionTypeJWT  = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// testKey is a client's signing key for private_key_jwt.
type testKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func newECTestKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: k, alg: jose.ES256, kid: kid}
}

func newRSATestKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: k, alg: jose.PS256, kid: kid}
}

// jwksOf is the public JWKS of keys.
func jwksOf(t testing.TB, keys ...testKey) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign signs claims with k.
func (k testKey) sign(t testing.TB, claims ...any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(sig)
	for _, c := range claims {
		b = b.Claims(c)
	}
	s, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertion is a valid client assertion for clientID at the token endpoint, changed by mods.
func (e *env) assertion(k testKey, clientID string, mods ...func(*jwt.Claims)) string {
	e.t.Helper()
	now := e.clock.Now()
	c := jwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: jwt.Audience{e.issuer + "/oauth/token"},
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(time.Minute)),
		ID:       randomString(),
	}
	for _, m := range mods {
		m(&c)
	}
	return k.sign(e.t, c)
}

func assertionOpts(a string) []oauth2.AuthCodeOption {
	return []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("client_assertion_type", assertionTypeJWT),
		oauth2.SetAuthURLParam("client_assertion", a),
	}
}

// authEnv has a client for each authentication method: jwtKey signs for jwt-app (inline
// JWKS) and jwt-svc; urlKey for jwks-url-app, whose JWKS the returned server serves.
type authEnv struct {
	*env
	jwtKey, urlKey testKey
	jwks           *jwksServer
}

// jwksServer serves a key set that tests can change, and counts fetches.
type jwksServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	body    string
	fetches atomic.Int64
	fail    atomic.Bool // answer 500
}

func newJWKSServer(t testing.TB, body string) *jwksServer {
	s := &jwksServer{body: body}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.fail.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write([]byte(s.body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func newAuthEnv(t *testing.T, opts ...envOption) *authEnv {
	t.Helper()
	ae := &authEnv{jwtKey: newECTestKey(t, "jwt-1"), urlKey: newRSATestKey(t, "url-1")}
	ae.jwks = newJWKSServer(t, jwksOf(t, ae.urlKey))
	opts = append([]envOption{withClients(
		Client{ID: basicClientID, Secret: basicClientSecret, AuthMethod: AuthClientSecretBasic, RedirectURIs: []string{basicRedirect},
			GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials}},
		Client{ID: postClientID, Secret: postClientSecret, AuthMethod: AuthClientSecretPost, RedirectURIs: []string{postRedirect},
			GrantTypes: []string{GrantAuthorizationCode, GrantClientCredentials}},
		Client{ID: jwtClientID, AuthMethod: AuthPrivateKeyJWT, JWKS: jwksOf(t, ae.jwtKey), RedirectURIs: []string{jwtRedirect},
			GrantTypes: refreshGrants},
		Client{ID: jwksURLClientID, AuthMethod: AuthPrivateKeyJWT, JWKSURL: ae.jwks.srv.URL + "/jwks.json", RedirectURIs: []string{jwksURLRedirect}},
		Client{ID: jwtSvcClientID, AuthMethod: AuthPrivateKeyJWT, JWKS: jwksOf(t, ae.jwtKey), GrantTypes: []string{GrantClientCredentials},
			Scopes: []string{"api:read"}},
	)}, opts...)
	ae.env = newEnv(t, opts...)
	return ae
}

// rpFor is a relying party for one of the test clients, sending credentials the way its
// method says (secret empty for private_key_jwt and none).
func (e *env) rpFor(clientID, secret, redirect string, style oauth2.AuthStyle) *rp {
	r := newRP(e.t, context.Background(), e.issuer, clientID, secret, redirect)
	r.oauth.Endpoint.AuthStyle = style
	return r
}

// Each method works with real clients through the whole code flow.
func TestClientAuthMethodsCodeFlow(t *testing.T) {
	ae := newAuthEnv(t)
	tests := []struct {
		name     string
		id       string
		secret   string
		redirect string
		style    oauth2.AuthStyle
		key      *testKey
	}{
		{"client_secret_basic", basicClientID, basicClientSecret, basicRedirect, oauth2.AuthStyleInHeader, nil},
		{"client_secret_post", postClientID, postClientSecret, postRedirect, oauth2.AuthStyleInParams, nil},
		{"private_key_jwt inline JWKS", jwtClientID, "", jwtRedirect, oauth2.AuthStyleInParams, &ae.jwtKey},
		{"private_key_jwt JWKS URL", jwksURLClientID, "", jwksURLRedirect, oauth2.AuthStyleInParams, &ae.urlKey},
		{"none (public, PKCE)", spaClientID, "", spaRedirect, oauth2.AuthStyleInParams, nil},
		{"default with a secret: basic", webClientID, webClientSecret, webRedirect, oauth2.AuthStyleInHeader, nil},
		{"default with a secret: post still accepted", webClientID, webClientSecret, webRedirect, oauth2.AuthStyleInParams, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ae.rpFor(tc.id, tc.secret, tc.redirect, tc.style)
			f := r.start()
			code := ae.browser().signIn(r, f, "alice", "alice-password")
			var opts []oauth2.AuthCodeOption
			if tc.key != nil {
				opts = assertionOpts(ae.assertion(*tc.key, tc.id))
			}
			tok, idt := r.exchange(code, f, opts...)
			if idt.Subject != "u-alice" || !slices.Contains(idt.Audience, tc.id) {
				t.Errorf("ID token sub %q aud %v", idt.Subject, idt.Audience)
			}
			if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok)); err != nil {
				t.Errorf("userinfo: %v", err)
			}
		})
	}
	if s := ae.logs.String(); strings.Contains(s, basicClientSecret) || strings.Contains(s, postClientSecret) {
		t.Error("a client secret reached the log")
	}
}

// private_key_jwt and client_secret_post clients get service tokens, introspect and revoke.
func TestClientAuthServiceAndIntrospection(t *testing.T) {
	ae := newAuthEnv(t)
	ctx := context.Background()
	cc := &clientcredentials.Config{
		ClientID: jwtSvcClientID, TokenURL: ae.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {ae.assertion(ae.jwtKey, jwtSvcClientID)}},
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials with private_key_jwt: %v", err)
	}
	if got, _ := tok.Extra("scope").(string); got != "api:read" {
		t.Errorf("scope %q", got)
	}

	form := func(token string, extra url.Values) url.Values {
		v := url.Values{"token": {token}}
		for k, vs := range extra {
			v[k] = vs
		}
		return v
	}
	// Introspection and revocation accept an assertion whose aud is the endpoint itself.
	jwtAuth := func(endpoint string) url.Values {
		return url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {ae.assertion(ae.jwtKey, jwtSvcClientID,
			func(c *jwt.Claims) { c.Audience = jwt.Audience{ae.issuer + endpoint} })}}
	}
	status, body := ae.post("/oauth/introspect", "", "", form(tok.AccessToken, jwtAuth("/oauth/introspect")))
	if status != http.StatusOK || !strings.Contains(body, `"active":true`) || !strings.Contains(body, `"client_id":"`+jwtSvcClientID+`"`) {
		t.Errorf("introspection with private_key_jwt: %d %s", status, body)
	}
	if status, body := ae.post("/revoke", "", "", form(tok.AccessToken, jwtAuth("/revoke"))); status != http.StatusOK {
		t.Errorf("revocation with private_key_jwt: %d %s", status, body)
	}
	if status, body := ae.post("/oauth/introspect", "", "", form(tok.AccessToken, jwtAuth("/oauth/introspect"))); status != http.StatusOK || strings.Contains(body, `"active":true`) {
		t.Errorf("introspection after revocation: %d %s", status, body)
	}

	// client_secret_post at every endpoint.
	pc := &clientcredentials.Config{ClientID: postClientID, ClientSecret: postClientSecret, TokenURL: ae.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}
	ptok, err := pc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials with client_secret_post: %v", err)
	}
	postAuth := url.Values{"client_id": {postClientID}, "client_secret": {postClientSecret}}
	if status, body := ae.post("/oauth/introspect", "", "", form(ptok.AccessToken, postAuth)); status != http.StatusOK || !strings.Contains(body, `"active":true`) {
		t.Errorf("introspection with client_secret_post: %d %s", status, body)
	}
	if status, body := ae.post("/revoke", "", "", form(ptok.AccessToken, postAuth)); status != http.StatusOK {
		t.Errorf("revocation with client_secret_post: %d %s", status, body)
	}
}

// tokenRequest posts a code exchange with a made-up code, so that only client
// authentication can pass or fail: a client that authenticates gets invalid_grant.
func (e *env) tokenRequest(basicID, basicSecret string, form url.Values) (int, string, http.Header) {
	e.t.Helper()
	if form.Get("grant_type") == "" {
		form.Set("grant_type", "authorization_code")
		form.Set("code", "not-a-code")
		form.Set("redirect_uri", basicRedirect)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, readAll(e.t, resp), resp.Header
}

func TestClientAuthRefused(t *testing.T) {
	ae := newAuthEnv(t)
	otherKey := newECTestKey(t, "jwt-1") // same kid, another key
	a := func(mods ...func(*jwt.Claims)) string { return ae.assertion(ae.jwtKey, jwtClientID, mods...) }
	jwtForm := func(assertion string) url.Values {
		return url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion}}
	}
	replayed := a()
	if status, body, _ := ae.tokenRequest("", "", jwtForm(replayed)); !strings.Contains(body, "invalid_grant") {
		t.Fatalf("first use of an assertion: %d %s, want invalid_grant (authenticated, bad code)", status, body)
	}

	tests := []struct {
		name          string
		basicID       string
		basicSecret   string
		form          url.Values
		wantErr       string // OAuth error code
		wantLogReason string
	}{
		{"basic: wrong secret", basicClientID, "wrong", url.Values{}, "invalid_client", "wrong client secret"},
		{"basic: secret in the body", "", "", url.Values{"client_id": {basicClientID}, "client_secret": {basicClientSecret}}, "invalid_client",
			"client authenticated with client_secret_post, registered for client_secret_basic"},
		{"basic: no secret", basicClientID, "", url.Values{}, "invalid_client", "client authenticated with none, registered for client_secret_basic"},
		{"post: wrong secret", "", "", url.Values{"client_id": {postClientID}, "client_secret": {"wrong"}}, "invalid_client", "wrong client secret"},
		{"post: secret in the header", postClientID, postClientSecret, url.Values{}, "invalid_client",
			"client authenticated with client_secret_basic, registered for client_secret_post"},
		{"unknown client", "nobody", "x", url.Values{}, "invalid_client", "unknown client"},
		{"basic and post at once", basicClientID, basicClientSecret, url.Values{"client_id": {basicClientID}, "client_secret": {basicClientSecret}},
			"invalid_request", "one method only"},
		{"secret and assertion at once", "", "", func() url.Values {
			v := jwtForm(a())
			v.Set("client_secret", "x")
			return v
		}(), "invalid_request", "one method only"},
		{"secret for a private_key_jwt client", jwtClientID, "anything", url.Values{}, "invalid_client",
			"client authenticated with client_secret_basic, registered for private_key_jwt"},
		{"assertion for a secret client", "", "", jwtForm(ae.assertion(ae.jwtKey, basicClientID)), "invalid_client",
			"client authenticated with private_key_jwt, registered for client_secret_basic"},
		{"jwt: signed by another key", "", "", jwtForm(ae.assertion(otherKey, jwtClientID)), "invalid_client", "signature does not verify"},
		{"jwt: expired", "", "", jwtForm(a(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(ae.clock.Now().Add(-5 * time.Minute)) })),
			"invalid_client", "client assertion expired"},
		{"jwt: no exp", "", "", jwtForm(a(func(c *jwt.Claims) { c.Expiry = nil })), "invalid_client", "no exp"},
		{"jwt: exp too far ahead", "", "", jwtForm(a(func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(ae.clock.Now().Add(2 * time.Hour)) })),
			"invalid_client", "more than 1h0m0s ahead"},
		{"jwt: replayed jti", "", "", jwtForm(replayed), "invalid_client", "jti was already used"},
		{"jwt: no jti", "", "", jwtForm(a(func(c *jwt.Claims) { c.ID = "" })), "invalid_client", "no jti"},
		{"jwt: wrong audience", "", "", jwtForm(a(func(c *jwt.Claims) { c.Audience = jwt.Audience{"https://other.example.com/oauth/token"} })),
			"invalid_client", "names neither the issuer nor the token endpoint"},
		{"jwt: sub differs from iss", "", "", jwtForm(a(func(c *jwt.Claims) { c.Subject = "someone" })), "invalid_client", "must both be the client id"},
		{"jwt: not valid yet", "", "", jwtForm(a(func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(ae.clock.Now().Add(10 * time.Minute)) })),
			"invalid_client", "not valid yet"},
		{"jwt: client_id differs from iss", "", "", func() url.Values {
			v := jwtForm(a())
			v.Set("client_id", basicClientID)
			return v
		}(), "invalid_client", "does not match the authenticated client"},
		{"jwt: wrong assertion type", "", "", url.Values{"client_assertion_type": {"urn:x"}, "client_assertion": {a()}}, "invalid_client",
			"client_assertion_type"},
		{"jwt: HS256", "", "", jwtForm(hs256Assertion(t, jwtClientID)), "invalid_client", "not a signed JWT with an accepted algorithm"},
		{"jwt: garbage", "", "", jwtForm("a.b.c"), "invalid_client", "not a signed JWT"},
		{"nothing", "", "", url.Values{}, "invalid_client", "no client id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := ae.tokenRequest(tc.basicID, tc.basicSecret, tc.form)
			var resp struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal([]byte(body), &resp)
			if resp.Error != tc.wantErr {
				t.Fatalf("status %d body %s, want error %s", status, body, tc.wantErr)
			}
			wantStatus := http.StatusBadRequest
			if tc.wantErr == "invalid_client" {
				wantStatus = http.StatusUnauthorized
			}
			if status != wantStatus {
				t.Errorf("status %d, want %d", status, wantStatus)
			}
			if tc.basicID != "" && tc.wantErr == "invalid_client" && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("WWW-Authenticate %q after HTTP Basic", h.Get("WWW-Authenticate"))
			}
			if !strings.Contains(ae.logs.String(), tc.wantLogReason) {
				t.Errorf("log lacks reason %q", tc.wantLogReason)
			}
		})
	}
	logs := ae.logs.String()
	for _, secret := range []string{basicClientSecret, postClientSecret, replayed} {
		if strings.Contains(logs, secret) {
			t.Error("a client credential reached the log")
		}
	}
}

// hs256Assertion is an assertion signed with a shared secret, which is never accepted.
func hs256Assertion(t testing.TB, clientID string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(sig).Claims(jwt.Claims{Issuer: clientID, Subject: clientID, ID: "x",
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A refused client authentication leaves the code usable: the check comes before op
// redeems it.
func TestClientAuthRefusedKeepsCode(t *testing.T) {
	ae := newAuthEnv(t)
	r := ae.rpFor(basicClientID, basicClientSecret, basicRedirect, oauth2.AuthStyleInParams)
	f := r.start()
	code := ae.browser().signIn(r, f, "alice", "alice-password")
	_, err := r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f.verifier))
	if got := retrieveErrorCode(t, err); got != "invalid_client" {
		t.Fatalf("secret in the body for a basic client: %q", got)
	}
	r.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	r.exchange(code, f)
}

// A JWKS URL is fetched once and cached; an unknown key id fetches it again, but not more
// than once every 10 seconds.
func TestJWKSURLCache(t *testing.T) {
	ae := newAuthEnv(t)
	try := func(k testKey) string {
		t.Helper()
		_, body, _ := ae.tokenRequest("", "", url.Values{"client_assertion_type": {assertionTypeJWT},
			"client_assertion": {ae.assertion(k, jwksURLClientID)}})
		var resp struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &resp)
		return resp.Error
	}
	for range 3 {
		if got := try(ae.urlKey); got != "invalid_grant" {
			t.Fatalf("known key: %s, want invalid_grant (authenticated)", got)
		}
	}
	if n := ae.jwks.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}

	// The client rotates to a new key and publishes it.
	newKey := newRSATestKey(t, "url-2")
	ae.jwks.set(jwksOf(t, ae.urlKey, newKey))
	if got := try(newKey); got != "invalid_client" {
		t.Errorf("new key within 10s of the last fetch: %s, want invalid_client", got)
	}
	ae.clock.Advance(11 * time.Second)
	if got := try(newKey); got != "invalid_grant" {
		t.Errorf("new key after 10s: %s, want invalid_grant", got)
	}
	if n := ae.jwks.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}

	// After the cache time the set is fetched again; when that fails the old keys still work.
	ae.jwks.fail.Store(true)
	ae.clock.Advance(6 * time.Minute)
	if got := try(newKey); got != "invalid_grant" {
		t.Errorf("JWKS endpoint down, cached keys: %s, want invalid_grant", got)
	}
	if n := ae.jwks.fetches.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
	if !strings.Contains(ae.logs.String(), "using the keys fetched before") {
		t.Error("failed refetch not logged")
	}
}

// A JWKS URL that cannot be fetched refuses the client.
func TestJWKSURLUnavailable(t *testing.T) {
	key := newECTestKey(t, "k")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, withClients(Client{ID: "c", AuthMethod: AuthPrivateKeyJWT, JWKSURL: srv.URL, RedirectURIs: []string{basicRedirect}}))
	status, body, _ := e.tokenRequest("", "", url.Values{"client_assertion_type": {assertionTypeJWT}, "client_assertion": {e.assertion(key, "c")}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") || !strings.Contains(e.logs.String(), "status 404") {
		t.Errorf("%d %s", status, body)
	}
}

func TestCheckClientAuth(t *testing.T) {
	key := newECTestKey(t, "k")
	priv := func() string {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.priv, KeyID: "k"}}})
		return string(b)
	}()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallJWKS, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: small.Public(), KeyID: "s"}}})
	tests := []struct {
		name    string
		c       Client
		want    string // effective method, when valid
		wantErr string
	}{
		{"public default", Client{}, AuthNone, ""},
		{"secret default", Client{Secret: "s"}, AuthClientSecretBasic, ""},
		{"basic", Client{Secret: "s", AuthMethod: "client_secret_basic"}, AuthClientSecretBasic, ""},
		{"post", Client{Secret: "s", AuthMethod: "client_secret_post"}, AuthClientSecretPost, ""},
		{"none", Client{AuthMethod: "none"}, AuthNone, ""},
		{"jwt inline", Client{AuthMethod: "private_key_jwt", JWKS: jwksOf(t, key)}, AuthPrivateKeyJWT, ""},
		{"jwt url", Client{AuthMethod: "private_key_jwt", JWKSURL: "https://rp.example.com/jwks"}, AuthPrivateKeyJWT, ""},
		{"jwt localhost url", Client{AuthMethod: "private_key_jwt", JWKSURL: "http://127.0.0.1:8080/jwks"}, AuthPrivateKeyJWT, ""},
		{"jwt service", Client{AuthMethod: "private_key_jwt", JWKS: jwksOf(t, key), GrantTypes: []string{"client_credentials"}}, AuthPrivateKeyJWT, ""},
		{"unknown method", Client{Secret: "s", AuthMethod: "client_secret_jwt"}, "", `auth method "client_secret_jwt" is not one of`},
		{"basic without secret", Client{AuthMethod: "client_secret_basic"}, "", "auth method client_secret_basic needs a client secret"},
		{"post without secret", Client{AuthMethod: "client_secret_post"}, "", "needs a client secret"},
		{"none with secret", Client{Secret: "s", AuthMethod: "none"}, "", "auth method none takes no client secret"},
		{"jwt with secret", Client{Secret: "s", AuthMethod: "private_key_jwt", JWKS: jwksOf(t, key)}, "", "takes no client secret"},
		{"jwt without keys", Client{AuthMethod: "private_key_jwt"}, "", "needs a JWKS or a JWKS URL"},
		{"jwt with both", Client{AuthMethod: "private_key_jwt", JWKS: jwksOf(t, key), JWKSURL: "https://rp.example.com/jwks"}, "", "not both"},
		{"keys without jwt", Client{Secret: "s", JWKS: jwksOf(t, key)}, "", "a JWKS or JWKS URL needs auth method private_key_jwt"},
		{"http JWKS URL", Client{AuthMethod: "private_key_jwt", JWKSURL: "http://rp.example.com/jwks"}, "", "plain http only for localhost"},
		{"relative JWKS URL", Client{AuthMethod: "private_key_jwt", JWKSURL: "/jwks"}, "", "JWKS URL"},
		{"private key in JWKS", Client{AuthMethod: "private_key_jwt", JWKS: priv}, "", "key 1 (kid \"k\"): a private or symmetric key"},
		{"small RSA key", Client{AuthMethod: "private_key_jwt", JWKS: string(smallJWKS)}, "", "RSA key of 1024 bits"},
		{"bad JWKS", Client{AuthMethod: "private_key_jwt", JWKS: "{"}, "", "not a JSON Web Key Set"},
		{"empty JWKS", Client{AuthMethod: "private_key_jwt", JWKS: `{"keys":[]}`}, "", "no usable public signing key"},
		{"public service account", Client{AuthMethod: "none", GrantTypes: []string{"client_credentials"}}, "", "client_credentials grant needs a client secret or private_key_jwt"},
		{"back-channel https", Client{BackChannelLogoutURI: "https://rp.example.com/bcl?x=1"}, AuthNone, ""},
		{"back-channel localhost", Client{BackChannelLogoutURI: "http://localhost:9000/bcl"}, AuthNone, ""},
		{"back-channel http", Client{BackChannelLogoutURI: "http://rp.example.com/bcl"}, "", "back-channel logout URI"},
		{"back-channel fragment", Client{BackChannelLogoutURI: "https://rp.example.com/bcl#x"}, "", "must not have a fragment"},
		{"back-channel relative", Client{BackChannelLogoutURI: "bcl"}, "", "not an absolute https URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.ID = "c"
			c, err := checkClient(tc.c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("checkClient: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("checkClient succeeded, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			case tc.wantErr == "" && c.authMethod() != tc.want:
				t.Errorf("method %s, want %s", c.authMethod(), tc.want)
			}
		})
	}
}

func TestDiscoveryAuthMethods(t *testing.T) {
	e := newEnv(t)
	var d struct {
		TokenMethods      []string `json:"token_endpoint_auth_methods_supported"`
		TokenAlgs         []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		IntrospectMethods []string `json:"introspection_endpoint_auth_methods_supported"`
		RevokeMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
		BCL               bool     `json:"backchannel_logout_supported"`
		BCLSession        bool     `json:"backchannel_logout_session_supported"`
	}
	p, err := gooidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Claims(&d); err != nil {
		t.Fatal(err)
	}
	want := []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
	if !slices.Equal(d.TokenMethods, want) || !slices.Equal(d.RevokeMethods, want) || !slices.Equal(d.IntrospectMethods, want[1:]) {
		t.Errorf("auth methods: token %v revocation %v introspection %v", d.TokenMethods, d.RevokeMethods, d.IntrospectMethods)
	}
	if !slices.Contains(d.TokenAlgs, "ES256") || !slices.Contains(d.TokenAlgs, "RS256") || slices.Contains(d.TokenAlgs, "HS256") {
		t.Errorf("token_endpoint_auth_signing_alg_values_supported %v", d.TokenAlgs)
	}
	if !d.BCL || !d.BCLSession {
		t.Errorf("backchannel_logout_supported %v, backchannel_logout_session_supported %v", d.BCL, d.BCLSession)
	}
}

// readClientAuthCases seed FuzzReadClientAuth.
var readClientAuthCases = []struct {
	name, auth, body, query string
	wantMethod, wantID      string
	wantErr                 string
}{
	{"basic", "Basic " + b64("a:s"), "grant_type=x", "", AuthClientSecretBasic, "a", ""},
	{"basic escaped", "Basic " + b64("a%3Ab:s%25"), "", "", AuthClientSecretBasic, "a:b", ""},
	{"basic empty secret", "Basic " + b64("spa:"), "", "", AuthNone, "spa", ""},
	{"post", "", "client_id=a&client_secret=s", "", AuthClientSecretPost, "a", ""},
	{"none", "", "client_id=a", "", AuthNone, "a", ""},
	{"none in query", "", "", "client_id=a", AuthNone, "a", ""},
	{"jwt", "", "client_assertion_type=" + url.QueryEscape(assertionTypeJWT) + "&client_assertion=" + unsignedIss("a"), "", AuthPrivateKeyJWT, "a", ""},
	{"bearer header", "Bearer x", "", "", "", "", "not HTTP Basic"},
	{"bad basic escape", "Basic " + b64("a%zz:s"), "", "", "", "", "malformed"},
	{"two methods", "Basic " + b64("a:s"), "client_secret=s", "", "", "", "one method only"},
	{"secret in query", "", "client_id=a", "client_secret=s", "", "", "URL"},
	{"duplicate id", "", "client_id=a&client_id=b", "", "", "", "more than once"},
	{"id mismatch", "Basic " + b64("a:s"), "client_id=b", "", "", "", "does not match"},
	{"no id", "", "grant_type=x", "", "", "", "no client id"},
	{"assertion without type", "", "client_assertion=x", "", "", "", "client_assertion_type"},
}

// b64 encodes an HTTP Basic header's credentials.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// unsignedIss is an assertion-shaped JWT with iss, whose signature readClientAuth does not
// check.
func unsignedIss(iss string) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	s, _ := jwt.Signed(sig).Claims(jwt.Claims{Issuer: iss}).Serialize()
	return s
}

func clientAuthRequest(auth, body, query string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://id.example.com/oauth/token?"+query, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func TestReadClientAuth(t *testing.T) {
	for _, tc := range readClientAuthCases {
		t.Run(tc.name, func(t *testing.T) {
			r := clientAuthRequest(tc.auth, tc.body, tc.query)
			if err := r.ParseForm(); err != nil {
				t.Fatal(err)
			}
			pa, err := readClientAuth(r)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("readClientAuth: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("readClientAuth succeeded (%+v), want an error containing %q", pa, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.reason, tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err.reason, tc.wantErr)
			case tc.wantErr == "" && (pa.method != tc.wantMethod || pa.clientID != tc.wantID):
				t.Errorf("method %q id %q, want %q %q", pa.method, pa.clientID, tc.wantMethod, tc.wantID)
			}
		})
	}
}

func FuzzReadClientAuth(f *testing.F) {
	for _, tc := range readClientAuthCases {
		f.Add(tc.auth, tc.body, tc.query)
	}
	f.Fuzz(func(t *testing.T, auth, body, query string) {
		r := httptest.NewRequest(http.MethodPost, "https://id.example.com/oauth/token", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header["Authorization"] = []string{auth}
		if r.ParseForm() != nil {
			return
		}
		pa, err := readClientAuth(r)
		if err != nil {
			if err.oerr == nil || err.reason == "" {
				t.Fatalf("error without an OAuth error or reason: %+v", err)
			}
			return
		}
		if pa.clientID == "" {
			t.Fatal("accepted without a client id")
		}
		switch pa.method {
		case AuthClientSecretBasic, AuthClientSecretPost:
			if pa.secret == "" {
				t.Fatalf("%s without a secret", pa.method)
			}
		case AuthPrivateKeyJWT:
			if pa.assertion == "" {
				t.Fatal("private_key_jwt without an assertion")
			}
		case AuthNone:
		default:
			t.Fatalf("method %q", pa.method)
		}
	})
}

func FuzzParseClientJWKS(f *testing.F) {
	ec := newECTestKey(f, "e")
	f.Add(jwksOf(f, ec), true)
	f.Add(`{"keys":[]}`, false)
	f.Add(`{"keys":[{"kty":"oct","k":"AAAA"}]}`, true)
	f.Add(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`, true)
	f.Add("{", false)
	f.Fuzz(func(t *testing.T, s string, strict bool) {
		keys, err := parseClientJWKS([]byte(s), strict)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if !k.IsPublic() || checkClientKey(k) != nil {
				t.Fatalf("unusable key accepted: %+v", k)
			}
		}
	})
}

func FuzzValidateServerURL(f *testing.F) {
	for _, s := range []string{"https://rp.example.com/bcl", "http://localhost:1/x", "http://127.0.0.1/x", "http://[::1]:2/",
		"http://rp.example.com/", "https://rp.example.com/#x", "https://u@rp.example.com", "/rel", "", "https:opaque", "ftp://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validateServerURL(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
			t.Fatalf("accepted %q", s)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			t.Fatalf("accepted %q with scheme %q", s, u.Scheme)
		}
	})
}

func BenchmarkClientAssertion(b *testing.B) {
	key := newECTestKey(b, "k")
	e2 := newEnv(b, withClients(Client{ID: "c", AuthMethod: AuthPrivateKeyJWT, JWKS: jwksOf(b, key), RedirectURIs: []string{basicRedirect}}))
	c, _ := e2.idp.clients.get("c")
	assertions := make([]string, b.N)
	for i := range assertions {
		assertions[i] = e2.assertion(key, "c")
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := e2.idp.verifyClientAssertion(ctx, c, assertions[i], "/oauth/token"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClientSecretBasic(b *testing.B) {
	e := newEnv(b)
	auth := "Basic " + b64(webClientID+":"+webClientSecret)
	b.ReportAllocs()
	for b.Loop() {
		r := clientAuthRequest(auth, "grant_type=authorization_code&code=x", "")
		out, ok := e.idp.authenticateClient(httptest.NewRecorder(), r)
		if !ok || authenticatedClient(out.Context()) != webClientID {
			b.Fatal("not authenticated")
		}
	}
}

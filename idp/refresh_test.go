package idp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Clients with refresh tokens.
const (
	appClientID     = "app"
	appClientSecret = "app-secret-0123456789abcdef"
	appRedirect     = "https://app.example.com/oauth2/callback"
	mobileClientID  = "mobile"
	mobileRedirect  = "https://mobile.example.com/callback"
)

var refreshGrants = []string{GrantAuthorizationCode, GrantRefreshToken}

// withClients adds clients to the test configuration.
func withClients(cs ...Client) envOption {
	return func(c *Config) { c.Clients = append(c.Clients, cs...) }
}

// withRefreshClients adds a confidential and a public client with the refresh_token grant.
func withRefreshClients(mod ...func(*Client)) envOption {
	app := Client{ID: appClientID, Secret: appClientSecret, RedirectURIs: []string{appRedirect}, GrantTypes: refreshGrants}
	mobile := Client{ID: mobileClientID, RedirectURIs: []string{mobileRedirect}, GrantTypes: refreshGrants}
	for _, m := range mod {
		m(&app)
	}
	return withClients(app, mobile)
}

func (e *env) appRP(scopes ...string) *rp {
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "profile", "email", gooidc.ScopeOfflineAccess}
	}
	return newRP(e.t, context.Background(), e.issuer, appClientID, appClientSecret, appRedirect, scopes...)
}

// offlineSignIn signs alice in through r in a new browser and returns the tokens.
func (e *env) offlineSignIn(r *rp, username, password string) (*oauth2.Token, *gooidc.IDToken) {
	e.t.Helper()
	f := r.start()
	tok, idt := r.exchange(e.browser().signIn(r, f, username, password), f)
	if tok.RefreshToken == "" {
		e.t.Fatal("no refresh token issued")
	}
	return tok, idt
}

// refresh uses the refresh_token grant through x/oauth2.
func (r *rp) refresh(refreshToken string) (*oauth2.Token, error) {
	return r.oauth.TokenSource(r.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// post sends a form to the issuer with HTTP basic client authentication (none when id is
// empty) and returns the status and body.
func (e *env) post(path, id, secret string, form url.Values) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, readAll(e.t, resp)
}

// introspect returns the introspection answer for token, asked by client id.
func (e *env) introspect(id, secret, token string) map[string]any {
	e.t.Helper()
	status, body := e.post("/oauth/introspect", id, secret, url.Values{"token": {token}})
	if status != http.StatusOK {
		e.t.Fatalf("introspection: %d %s", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatalf("introspection: %v: %s", err, body)
	}
	return m
}

// userinfoStatus calls the userinfo endpoint with a bearer token.
func (e *env) userinfoStatus(accessToken string) (int, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	readAll(e.t, resp)
	return resp.StatusCode, resp.Header
}

// wantDead checks that an access token no longer works anywhere.
func (e *env) wantDead(what, id, secret, accessToken string) {
	e.t.Helper()
	if m := e.introspect(id, secret, accessToken); m["active"] != false {
		e.t.Errorf("%s: introspection %v, want inactive", what, m)
	}
	if status, h := e.userinfoStatus(accessToken); status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		e.t.Errorf("%s: userinfo %d %q, want 401 invalid_token", what, status, h.Get("WWW-Authenticate"))
	}
}

// wantAlive checks that an access token works.
func (e *env) wantAlive(what, id, secret, accessToken string) {
	e.t.Helper()
	if m := e.introspect(id, secret, accessToken); m["active"] != true {
		e.t.Errorf("%s: introspection %v, want active", what, m)
	}
	if status, _ := e.userinfoStatus(accessToken); status != http.StatusOK {
		e.t.Errorf("%s: userinfo %d, want 200", what, status)
	}
}

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok1, idt1 := e.offlineSignIn(r, "alice", "alice-password")
	var c1 idClaims
	_ = idt1.Claims(&c1)

	tok2, err := r.refresh(tok1.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok1.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if tok2.AccessToken == "" || tok2.AccessToken == tok1.AccessToken {
		t.Fatal("refresh did not issue a new access token")
	}
	e.wantAlive("refreshed access token", appClientID, appClientSecret, tok2.AccessToken)

	// The refreshed ID token: same user and session, verified like the first one.
	raw, _ := tok2.Extra("id_token").(string)
	idt2, err := r.verifier.Verify(r.ctx, raw)
	if err != nil {
		t.Fatalf("refreshed id_token: %v", err)
	}
	var c2 idClaims
	_ = idt2.Claims(&c2)
	if c2.Sub != "u-alice" || c2.SID != c1.SID || c2.AuthTime != c1.AuthTime || !slices.Equal(c2.AMR, []string{"pwd"}) {
		t.Errorf("refreshed ID token claims %+v, first %+v", c2, c1)
	}

	// The next rotation works from the new token ...
	tok3, err := r.refresh(tok2.RefreshToken)
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	// ... and the old one is refused.
	_, err = r.refresh(tok1.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("rotated refresh token: error %q, want invalid_grant", got)
	}
	_ = tok3

	// Store hygiene: no record holds a refresh token in the clear.
	for _, tok := range []string{tok1.RefreshToken, tok2.RefreshToken, tok3.RefreshToken} {
		if _, err := e.store.Get(context.Background(), kindRefreshToken, tok); err == nil {
			t.Error("a refresh token is stored under its own value")
		}
		if strings.Contains(e.logs.String(), tok) {
			t.Error("a refresh token reached the log")
		}
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok1, _ := e.offlineSignIn(r, "alice", "alice-password")
	other, _ := e.offlineSignIn(r, "alice", "alice-password") // another sign-in: another family
	tok2, err := r.refresh(tok1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	e.wantAlive("before reuse", appClientID, appClientSecret, tok2.AccessToken)

	// tok1's refresh token was rotated: presenting it again is reuse.
	_, err = r.refresh(tok1.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Fatalf("reused refresh token: error %q, want invalid_grant", got)
	}
	// The whole family is gone: the newest refresh token and every access token of it.
	_, err = r.refresh(tok2.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("newest refresh token after reuse: error %q, want invalid_grant", got)
	}
	e.wantDead("newest access token", appClientID, appClientSecret, tok2.AccessToken)
	e.wantDead("first access token", appClientID, appClientSecret, tok1.AccessToken)

	// The other sign-in is untouched.
	if _, err := r.refresh(other.RefreshToken); err != nil {
		t.Errorf("other family after reuse: %v", err)
	}

	logs := e.logs.String()
	var warn string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "refresh token reuse detected") {
			warn = l
		}
	}
	if !strings.Contains(warn, "level=WARN") || !strings.Contains(warn, "user=alice") || !strings.Contains(warn, "client_id=app") || !strings.Contains(warn, "family=") {
		t.Errorf("reuse log line %q", warn)
	}
	for _, tok := range []string{tok1.RefreshToken, tok2.RefreshToken, tok1.AccessToken, tok2.AccessToken} {
		if strings.Contains(logs, tok) {
			t.Error("a token reached the log")
		}
	}
}

// Two refreshes racing with one token: one wins, the other counts as reuse, and the family
// ends (the winner's tokens too).
func TestRefreshConcurrentUse(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")
	const n = 4
	var wg sync.WaitGroup
	results := make([]*oauth2.Token, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = r.refresh(tok.RefreshToken)
		}()
	}
	wg.Wait()
	var won []*oauth2.Token
	for i := range n {
		if errs[i] == nil {
			won = append(won, results[i])
		} else if got := retrieveErrorCode(t, errs[i]); got != "invalid_grant" {
			t.Errorf("losing refresh: error %q", got)
		}
	}
	if len(won) > 1 {
		t.Fatalf("%d refreshes with one token succeeded", len(won))
	}
	for _, w := range won {
		if _, err := r.refresh(w.RefreshToken); err == nil {
			t.Error("the winner's refresh token still works after the race")
		}
		e.wantDead("the winner's access token", appClientID, appClientSecret, w.AccessToken)
	}
}

func TestRefreshRevocation(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	for _, hint := range []string{"", "refresh_token", "access_token"} {
		t.Run("hint="+hint, func(t *testing.T) {
			tok1, _ := e.offlineSignIn(r, "alice", "alice-password")
			tok2, err := r.refresh(tok1.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"token": {tok2.RefreshToken}}
			if hint != "" {
				form.Set("token_type_hint", hint)
			}
			// Another client may not revoke it.
			if status, body := e.post("/revoke", webClientID, webClientSecret, form); status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
				t.Errorf("revocation by another client: %d %s", status, body)
			}
			e.wantAlive("after a refused revocation", appClientID, appClientSecret, tok2.AccessToken)

			if status, body := e.post("/revoke", appClientID, appClientSecret, form); status != http.StatusOK {
				t.Fatalf("revocation: %d %s", status, body)
			}
			_, err = r.refresh(tok2.RefreshToken)
			if got := retrieveErrorCode(t, err); got != "invalid_grant" {
				t.Errorf("revoked refresh token: error %q, want invalid_grant", got)
			}
			e.wantDead("access token of the revoked family", appClientID, appClientSecret, tok2.AccessToken)
			// Revoking again, or revoking a rotated token of the family, is fine (RFC 7009 2.2).
			for _, again := range []string{tok2.RefreshToken, tok1.RefreshToken} {
				if status, body := e.post("/revoke", appClientID, appClientSecret, url.Values{"token": {again}}); status != http.StatusOK {
					t.Errorf("revoking a revoked token: %d %s", status, body)
				}
			}
		})
	}

	// Revoking a rotated (old) token of a live family ends the family too.
	tok1, _ := e.offlineSignIn(r, "alice", "alice-password")
	tok2, err := r.refresh(tok1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := e.post("/revoke", appClientID, appClientSecret, url.Values{"token": {tok1.RefreshToken}}); status != http.StatusOK {
		t.Fatalf("revocation of a rotated token: %d %s", status, body)
	}
	if _, err := r.refresh(tok2.RefreshToken); err == nil {
		t.Error("family survives the revocation of one of its rotated tokens")
	}
}

func TestRefreshExpiry(t *testing.T) {
	e := newEnv(t, withRefreshClients(func(c *Client) {
		c.RefreshTokenLifetime = 2 * time.Hour
		c.AccessTokenLifetime = 90 * time.Minute
	}))
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")

	// The lifetime is absolute: using the token does not extend it.
	e.clock.Advance(time.Hour)
	tok2, err := r.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh within the lifetime: %v", err)
	}
	// The access token (90 minutes) ends with its family (2 hours).
	if m := e.introspect(appClientID, appClientSecret, tok2.AccessToken); m["exp"] != float64(e.clock.Now().Add(time.Hour).Unix()) {
		t.Errorf("access token exp %v, want the family's end %d", m["exp"], e.clock.Now().Add(time.Hour).Unix())
	}
	e.clock.Advance(time.Hour)
	_, err = r.refresh(tok2.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("expired refresh token: error %q, want invalid_grant", got)
	}
	e.wantDead("access token of an expired family", appClientID, appClientSecret, tok2.AccessToken)

	// The default is 30 days.
	e2 := newEnv(t, withRefreshClients())
	r2 := e2.appRP()
	tok, _ = e2.offlineSignIn(r2, "alice", "alice-password")
	e2.clock.Advance(DefaultRefreshTokenLifetime - time.Minute)
	if tok, err = r2.refresh(tok.RefreshToken); err != nil {
		t.Fatalf("refresh a minute before 30 days: %v", err)
	}
	e2.clock.Advance(time.Minute)
	if _, err = r2.refresh(tok.RefreshToken); err == nil {
		t.Error("refresh after 30 days succeeded")
	}
}

func TestRefreshInactiveUser(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")

	e.dir.setDisabled("alice", true)
	_, err := r.refresh(tok.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("refresh of a disabled user: error %q, want invalid_grant", got)
	}
	e.dir.setDisabled("alice", false)
	tok, err = r.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after re-enabling: %v", err)
	}

	e.dir.mu.Lock()
	delete(e.dir.users, "alice")
	e.dir.mu.Unlock()
	_, err = r.refresh(tok.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("refresh of a removed user: error %q, want invalid_grant", got)
	}
}

// Refresh tokens go only to clients with the grant that ask for offline_access and may
// have it.
func TestRefreshTokenIssuance(t *testing.T) {
	e := newEnv(t, withRefreshClients(), withClients(Client{
		ID: "narrow", Secret: "narrow-secret", RedirectURIs: []string{"https://narrow.example.com/cb"},
		GrantTypes: refreshGrants, Scopes: []string{"openid", "profile"},
	}))
	tests := []struct {
		name   string
		rp     *rp
		want   bool
		scopes string // granted scopes in the token response
	}{
		{"grant and offline_access", e.appRP(), true, "openid profile email offline_access"},
		{"grant without offline_access", e.appRP("openid", "profile"), false, "openid profile"},
		{"offline_access without grant", newRP(t, context.Background(), e.issuer, webClientID, webClientSecret, webRedirect, "openid", "offline_access"), false, "openid"},
		{"offline_access not in the client's scopes", newRP(t, context.Background(), e.issuer, "narrow", "narrow-secret", "https://narrow.example.com/cb", "openid", "profile", "email", "offline_access"), false, "openid profile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.rp.start()
			tok, _ := tc.rp.exchange(e.browser().signIn(tc.rp, f, "alice", "alice-password"), f)
			if got := tok.RefreshToken != ""; got != tc.want {
				t.Errorf("refresh token issued: %v, want %v", got, tc.want)
			}
			if got, _ := tok.Extra("scope").(string); got != tc.scopes {
				t.Errorf("granted scopes %q, want %q", got, tc.scopes)
			}
		})
	}
}

// A public client (PKCE) gets rotating refresh tokens too.
func TestRefreshPublicClient(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := newRP(t, context.Background(), e.issuer, mobileClientID, "", mobileRedirect, "openid", "offline_access")
	r.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	tok, _ := e.offlineSignIn(r, "bob", "bob-password")
	tok2, err := r.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := r.refresh(tok.RefreshToken); err == nil {
		t.Error("rotated token of a public client still works")
	}
	if _, err := r.refresh(tok2.RefreshToken); err == nil {
		t.Error("family of a public client survives reuse")
	}
}

// A refresh may narrow the scopes for one access token, never widen them.
func TestRefreshScopes(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")

	status, body := e.post("/oauth/token", appClientID, appClientSecret, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"openid profile"},
	})
	var resp struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	if err := json.Unmarshal([]byte(body), &resp); status != http.StatusOK || err != nil {
		t.Fatalf("narrowed refresh: %d %s", status, body)
	}
	if resp.Scope != "openid profile" {
		t.Errorf("narrowed scope %q", resp.Scope)
	}
	if m := e.introspect(appClientID, appClientSecret, resp.AccessToken); m["scope"] != "openid profile" || m["email"] != nil {
		t.Errorf("narrowed access token: %v", m)
	}
	// The next refresh without scope gets the whole original grant back.
	tok3, err := r.refresh(resp.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok3.Extra("scope").(string); got != "openid profile email offline_access" {
		t.Errorf("scope after a narrowed refresh %q", got)
	}
	// Asking for more than the grant is refused.
	status, body = e.post("/oauth/token", appClientID, appClientSecret, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok3.RefreshToken}, "scope": {"openid groups"},
	})
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_scope") {
		t.Errorf("widened refresh: %d %s", status, body)
	}
}

// A refresh token works only for the client it was issued to.
func TestRefreshOtherClient(t *testing.T) {
	e := newEnv(t, withRefreshClients(), withClients(Client{
		ID: "app2", Secret: "app2-secret", RedirectURIs: []string{"https://app2.example.com/cb"}, GrantTypes: refreshGrants,
	}))
	tok, _ := e.offlineSignIn(e.appRP(), "alice", "alice-password")
	status, body := e.post("/oauth/token", "app2", "app2-secret", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Errorf("refresh by another client: %d %s", status, body)
	}
	status, body = e.post("/oauth/token", appClientID, "wrong", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
		t.Errorf("refresh with a wrong secret: %d %s", status, body)
	}
}

// Ending the sign-in session ends the refresh token families started from it.
func TestEndSessionRevokesRefreshTokens(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok, idt := e.offlineSignIn(r, "alice", "alice-password")
	var c idClaims
	_ = idt.Claims(&c)
	tok, err := r.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.idp.EndSession(context.Background(), c.SID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.refresh(tok.RefreshToken); err == nil {
		t.Error("refresh token survives the end of its session")
	}
	e.wantDead("access token of an ended session", appClientID, appClientSecret, tok.AccessToken)
}

// The family record alone decides: once it is gone (another node revoked it, and removing
// the token records failed halfway), its access and refresh tokens stop working.
func TestRefreshFamilyRecordDecides(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")
	fams, err := e.idp.storage.families().ListByOwner(context.Background(), "u-alice")
	if err != nil || len(fams) != 1 {
		t.Fatalf("families %v %v", fams, err)
	}
	if err := e.store.Delete(context.Background(), kindRefreshFamily, fams[0].ID); err != nil {
		t.Fatal(err)
	}
	e.wantDead("access token of a deleted family", appClientID, appClientSecret, tok.AccessToken)
	_, err = r.refresh(tok.RefreshToken)
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("refresh token of a deleted family: %q", got)
	}
}

func TestRefreshGarbage(t *testing.T) {
	e := newEnv(t, withRefreshClients())
	for _, rt := range []string{"x", strings.Repeat("a", 5000), "refresh." + codeKey("x")} {
		status, body := e.post("/oauth/token", appClientID, appClientSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
			t.Errorf("refresh token %.20q: %d %s", rt, status, body)
		}
	}
	status, body := e.post("/oauth/token", appClientID, appClientSecret, url.Values{"grant_type": {"refresh_token"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_request") {
		t.Errorf("no refresh token: %d %s", status, body)
	}
}

// op decrypts whatever reaches the revocation endpoint, with an unauthenticated AES-CFB
// fallback: a refresh token must never decrypt into a "token id:subject" (or revoking it
// with token_type_hint=access_token would miss it now and then).
func TestRefreshTokenNeverDecrypts(t *testing.T) {
	e := newEnv(t)
	for range 2000 {
		rt := newRefreshToken()
		if !strings.HasPrefix(rt, "zgrt.") || len(rt) != len("zgrt.")+43 {
			t.Fatalf("refresh token format %q", rt)
		}
		if plain, err := e.idp.op.Crypto().Decrypt(rt); err == nil {
			t.Fatalf("a refresh token decrypts to %q", plain)
		}
	}
}

// BenchmarkRefresh measures one refresh_token grant (rotation: three store writes, one
// access token) served in memory.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b, withRefreshClients())
	r := e.appRP()
	tok, _ := e.offlineSignIn(r, "alice", "alice-password")
	rt := tok.RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		req := httptestPost(e.issuer+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		req.SetBasicAuth(appClientID, appClientSecret)
		rec := newRecorder()
		e.idp.ServeHTTP(rec, req)
		var resp struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); rec.Code != http.StatusOK || err != nil || resp.RefreshToken == "" {
			b.Fatalf("refresh: %d %s", rec.Code, rec.Body)
		}
		rt = resp.RefreshToken
	}
}

func httptestPost(target string, form url.Values) *http.Request {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		panic(errors.New("bad test request"))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

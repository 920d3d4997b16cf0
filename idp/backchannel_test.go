package idp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// Clients of the back-channel logout tests.
const (
	bclClientID    = "bcl-app"
	bclSecret      = "bcl-secret-0123456789abcdef"
	bclRedirect    = "https://bcl.example.com/cb"
	bclRSAClientID = "bcl-rsa"
	bclRSARedirect = "https://bcl-rsa.example.com/cb"
	bclIdleID      = "bcl-idle"
)

// receiver is a client's back-channel logout endpoint. answer decides the status of the
// n-th request (from 1); nil answers 200.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	answer func(n int, r *http.Request) int

	mu       sync.Mutex
	attempts int
	tokens   []string // logout tokens of the requests answered 2xx
	arrived  chan struct{}
}

func newReceiver(t testing.TB, answer func(n int, r *http.Request) int) *receiver {
	rc := &receiver{t: t, answer: answer, arrived: make(chan struct{}, 100)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("back-channel request %s with content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		tok := r.PostFormValue("logout_token")
		rc.mu.Lock()
		rc.attempts++
		n := rc.attempts
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.answer != nil {
			status = rc.answer(n, r)
		}
		if status < 300 {
			rc.mu.Lock()
			rc.tokens = append(rc.tokens, tok)
			rc.mu.Unlock()
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		rc.arrived <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// wait waits for n more requests.
func (rc *receiver) wait(n int) {
	rc.t.Helper()
	for range n {
		select {
		case <-rc.arrived:
		case <-time.After(20 * time.Second):
			rc.t.Fatal("no back-channel logout request arrived")
		}
	}
}

func (rc *receiver) state() (attempts int, tokens []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.attempts, slices.Clone(rc.tokens)
}

// withBackchannelClients adds an ES256 and an RS256 client that log out through rc, and one
// with a URI that never signs anybody in.
func withBackchannelClients(rc *receiver) envOption {
	return withClients(
		Client{ID: bclClientID, Secret: bclSecret, RedirectURIs: []string{bclRedirect}, GrantTypes: refreshGrants,
			BackChannelLogoutURI: rc.srv.URL + "/bcl?app=1", BackChannelLogoutSessionRequired: true},
		Client{ID: bclRSAClientID, Secret: bclSecret, RedirectURIs: []string{bclRSARedirect}, SigningAlgorithm: AlgRS256,
			BackChannelLogoutURI: rc.srv.URL + "/bcl?app=2"},
		Client{ID: bclIdleID, Secret: bclSecret, RedirectURIs: []string{"https://idle.example.com/cb"}, BackChannelLogoutURI: rc.srv.URL + "/bcl?app=3"},
	)
}

// fastRetries makes the retry backoff short.
func (e *env) fastRetries() { e.idp.backchannel.backoff = time.Millisecond }

// logoutTokenClaims are the claims of a logout token.
type logoutTokenClaims struct {
	Iss    string                     `json:"iss"`
	Aud    json.RawMessage            `json:"aud"`
	Sub    string                     `json:"sub"`
	Sid    string                     `json:"sid"`
	Iat    int64                      `json:"iat"`
	Exp    int64                      `json:"exp"`
	Jti    string                     `json:"jti"`
	Nonce  *string                    `json:"nonce"`
	Events map[string]json.RawMessage `json:"events"`
}

// verifyLogoutToken checks a logout token against the IdP's JWKS and returns its claims
// and header.
func (e *env) verifyLogoutToken(raw string) (logoutTokenClaims, jose.Header) {
	e.t.Helper()
	ctx := context.Background()
	payload, err := gooidc.NewRemoteKeySet(ctx, e.issuer+"/keys").VerifySignature(ctx, raw)
	if err != nil {
		e.t.Fatalf("logout token does not verify with the JWKS: %v", err)
	}
	var c logoutTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		e.t.Fatal(err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		e.t.Fatal(err)
	}
	return c, jws.Signatures[0].Header
}

func sidOf(t testing.TB, idt *gooidc.IDToken) string {
	t.Helper()
	var c idClaims
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("no sid in the ID token: %v", err)
	}
	return c.SID
}

func TestBackchannelLogout(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, withBackchannelClients(rc))
	b := e.browser()

	// alice signs in to both back-channel clients and one without a URI, in one session.
	app := newRP(t, context.Background(), e.issuer, bclClientID, bclSecret, bclRedirect, gooidc.ScopeOpenID, gooidc.ScopeOfflineAccess)
	f := app.start()
	appTok, idt := app.exchange(b.signIn(app, f, "alice", "alice-password"), f)
	sid := sidOf(t, idt)
	// A refresh under the same session adds nothing.
	if _, err := app.refresh(appTok.RefreshToken); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	rsa := newRP(t, context.Background(), e.issuer, bclRSAClientID, bclSecret, bclRSARedirect)
	f = rsa.start()
	rsa.exchange(rsa.code(b.get(f.url), f), f)
	web := e.webRP()
	f = web.start()
	webTok, _ := web.exchange(web.code(b.get(f.url), f), f)

	rec, err := e.idp.sessionClients().Get(context.Background(), sid)
	want := []sessionClient{{bclClientID, sid}, {bclRSAClientID, sid}}
	if err != nil || !slices.Equal(rec.Entries, want) || rec.Subject != "u-alice" {
		t.Fatalf("session clients %+v, %v", rec, err)
	}

	// Sign out at the end_session endpoint.
	u := e.issuer + "/end_session?" + url.Values{"id_token_hint": {webTok.Extra("id_token").(string)}, "post_logout_redirect_uri": {postLogout}}.Encode()
	redirectedTo(t, b.get(u), postLogout)
	rc.wait(2)
	e.idp.backchannel.running.Wait()

	attempts, tokens := rc.state()
	if attempts != 2 || len(tokens) != 2 {
		t.Fatalf("%d requests, %d tokens; want 2 (one per client with a URI that got tokens)", attempts, len(tokens))
	}
	seen := map[string]string{}
	for _, raw := range tokens {
		c, h := e.verifyLogoutToken(raw)
		var aud string
		if err := json.Unmarshal(c.Aud, &aud); err != nil {
			t.Errorf("aud %s is not a single client id", c.Aud)
		}
		seen[aud] = h.Algorithm
		if h.ExtraHeaders["typ"] != "logout+jwt" {
			t.Errorf("typ %v", h.ExtraHeaders["typ"])
		}
		if c.Iss != e.issuer || c.Sub != "u-alice" || c.Sid != sid || c.Jti == "" || c.Nonce != nil {
			t.Errorf("claims %+v", c)
		}
		if c.Exp-c.Iat != 120 || c.Iat != e.clock.Now().Unix() {
			t.Errorf("iat %d exp %d, want now and now + 2 minutes", c.Iat, c.Exp)
		}
		if len(c.Events) != 1 || string(c.Events["http://schemas.openid.net/event/backchannel-logout"]) != "{}" {
			t.Errorf("events %v", c.Events)
		}
	}
	if seen[bclClientID] != "ES256" || seen[bclRSAClientID] != "RS256" {
		t.Errorf("audiences and algorithms %v", seen)
	}
	if _, err := e.idp.sessionClients().Get(context.Background(), sid); err == nil {
		t.Error("session clients record kept after the logout")
	}
	// Ending it again sends nothing more.
	if err := e.idp.EndSession(context.Background(), sid); err != nil {
		t.Fatal(err)
	}
	e.idp.backchannel.running.Wait()
	if n, _ := rc.state(); n != 2 {
		t.Errorf("%d requests after ending the session twice", n)
	}
	logs := e.logs.String()
	for _, raw := range tokens {
		if strings.Contains(logs, raw) {
			t.Error("a logout token reached the log")
		}
	}
	if !strings.Contains(logs, `msg="idp: back-channel logout delivered" client_id=bcl-app sid=`+sid) {
		t.Error("delivery not logged")
	}
}

// A session that gave no tokens to a client with a URI sends nothing.
func TestBackchannelNoTokensNoLogout(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, withBackchannelClients(rc))
	r := e.webRP()
	f := r.start()
	_, idt := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	if err := e.idp.EndSession(context.Background(), sidOf(t, idt)); err != nil {
		t.Fatal(err)
	}
	e.idp.backchannel.running.Wait()
	if n, _ := rc.state(); n != 0 {
		t.Errorf("%d back-channel requests for a session without such a client", n)
	}
}

func TestBackchannelRetries(t *testing.T) {
	tests := []struct {
		name         string
		answer       func(n int, r *http.Request) int
		wantAttempts int
		wantTokens   int
		wantLog      string
	}{
		{"fails twice, then succeeds", func(n int, _ *http.Request) int {
			if n <= 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, 3, 1, `msg="idp: back-channel logout delivered" client_id=bcl-app`},
		{"always fails", func(int, *http.Request) int { return http.StatusInternalServerError }, 3, 0, `msg="idp: back-channel logout not delivered"`},
		{"refused: no retry", func(int, *http.Request) int { return http.StatusBadRequest }, 1, 0, "status 400"},
		{"204 is success", func(int, *http.Request) int { return http.StatusNoContent }, 1, 1, "attempt=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.answer)
			e := newEnv(t, withBackchannelClients(rc))
			e.fastRetries()
			r := newRP(t, context.Background(), e.issuer, bclClientID, bclSecret, bclRedirect)
			f := r.start()
			_, idt := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
			if err := e.idp.EndSession(context.Background(), sidOf(t, idt)); err != nil {
				t.Fatal(err)
			}
			rc.wait(tc.wantAttempts)
			e.idp.backchannel.running.Wait()
			attempts, tokens := rc.state()
			if attempts != tc.wantAttempts || len(tokens) != tc.wantTokens {
				t.Errorf("%d attempts, %d accepted; want %d, %d", attempts, len(tokens), tc.wantAttempts, tc.wantTokens)
			}
			if len(tokens) == 1 {
				e.verifyLogoutToken(tokens[0])
			}
			if !strings.Contains(e.logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, e.logs.String())
			}
			if tc.wantAttempts == 3 && tc.wantTokens == 1 && !strings.Contains(e.logs.String(), "attempt=3") {
				t.Error("delivery on the third attempt not logged")
			}
		})
	}
}

// EndSession returns before a slow receiver answers: the receiver holds its answer until
// EndSession has returned, and still gets the token on the first attempt. (Were the
// delivery on the request path, the first attempt would time out first.)
func TestBackchannelDoesNotDelayLogout(t *testing.T) {
	ended := make(chan struct{})
	rc := newReceiver(t, func(int, *http.Request) int {
		<-ended
		return http.StatusOK
	})
	e := newEnv(t, withBackchannelClients(rc))
	r := newRP(t, context.Background(), e.issuer, bclClientID, bclSecret, bclRedirect)
	f := r.start()
	_, idt := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	err := e.idp.EndSession(context.Background(), sidOf(t, idt))
	close(ended)
	if err != nil {
		t.Fatal(err)
	}
	rc.wait(1)
	e.idp.backchannel.running.Wait()
	if attempts, tokens := rc.state(); attempts != 1 || len(tokens) != 1 {
		t.Errorf("%d attempts, %d accepted; want the first attempt to succeed", attempts, len(tokens))
	}
}

// A sign-in as another user in the same browser ends the previous user's session, and its
// clients hear of it. The same user signing in again ends nothing, and the clients of the
// replaced session hear of it with its own sid when the new one ends.
func TestBackchannelSessionReplaced(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, withBackchannelClients(rc))
	b := e.browser()
	r := newRP(t, context.Background(), e.issuer, bclClientID, bclSecret, bclRedirect)
	f := r.start()
	_, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	first := sidOf(t, idt)

	f = r.start(oauth2.SetAuthURLParam("prompt", "login"))
	_, idt = r.exchange(r.code(b.submitLogin(b.get(f.url), "alice", "alice-password"), f), f)
	second := sidOf(t, idt)
	e.idp.backchannel.running.Wait()
	if n, _ := rc.state(); n != 0 || first == second {
		t.Fatalf("%d logout requests after alice signed in again (sids %s, %s)", n, first, second)
	}

	f = r.start(oauth2.SetAuthURLParam("prompt", "login"))
	r.exchange(r.code(b.submitLogin(b.get(f.url), "bob", "bob-password"), f), f)
	rc.wait(2)
	e.idp.backchannel.running.Wait()
	_, tokens := rc.state()
	if len(tokens) != 2 {
		t.Fatalf("%d logout tokens after bob took over, want 2", len(tokens))
	}
	var sids []string
	for _, raw := range tokens {
		c, _ := e.verifyLogoutToken(raw)
		if c.Sub != "u-alice" {
			t.Errorf("logout token for sub %q, want alice", c.Sub)
		}
		sids = append(sids, c.Sid)
	}
	slices.Sort(sids)
	want := []string{first, second}
	slices.Sort(want)
	if !slices.Equal(sids, want) {
		t.Errorf("logout tokens for sids %v, want alice's two sessions %v", sids, want)
	}
}

// The queue is bounded: jobs beyond it are dropped and logged, never block.
func TestBackchannelQueueBound(t *testing.T) {
	e := newEnv(t)
	bc := e.idp.backchannel
	bc.mu.Lock()
	bc.queue = make([]logoutJob, backchannelQueueSize)
	bc.mu.Unlock()
	bc.enqueue(context.Background(), logoutJob{clientID: "late", sid: "s"})
	bc.mu.Lock()
	n := len(bc.queue)
	bc.queue = nil
	bc.mu.Unlock()
	if n != backchannelQueueSize || !strings.Contains(e.logs.String(), `queue full; logout not sent" client_id=late`) {
		t.Errorf("queue length %d after overflow", n)
	}
}

// An unreachable receiver is tried three times; the log names its URI without the query.
func TestBackchannelUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	e := newEnv(t, withClients(Client{ID: bclClientID, Secret: bclSecret, RedirectURIs: []string{bclRedirect},
		BackChannelLogoutURI: gone.URL + "/bcl?key=query-secret"}))
	e.fastRetries()
	r := newRP(t, context.Background(), e.issuer, bclClientID, bclSecret, bclRedirect)
	f := r.start()
	_, idt := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	if err := e.idp.EndSession(context.Background(), sidOf(t, idt)); err != nil {
		t.Fatal(err)
	}
	e.idp.backchannel.running.Wait()
	logs := e.logs.String()
	if strings.Count(logs, "back-channel logout attempt failed") != 3 || !strings.Contains(logs, "back-channel logout not delivered") {
		t.Errorf("want three failed attempts logged:\n%s", logs)
	}
	if strings.Contains(logs, "query-secret") {
		t.Error("the URI's query reached the log")
	}
}

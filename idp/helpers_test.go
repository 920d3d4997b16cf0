package idp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/websession"

	"github.com/zonegate/zonegate/internal/syncbuf"
)

// Test clients.
const (
	webClientID     = "web"
	webClientSecret = "web-secret-0123456789abcdef"
	webRedirect     = "http://localhost:8080/oauth2/callback"
	spaClientID     = "spa"
	spaRedirect     = "https://app.example.com/callback"
	postLogout      = "https://app.example.com/bye"
	sessionCookie   = "zonegate_idp"
)

// fakeDir is an in-memory Directory whose users can be changed while a test runs.
type fakeDir struct {
	mu    sync.Mutex
	users map[string]fakeUser
	calls atomic.Int64 // Authenticate calls
}

type fakeUser struct {
	u        directory.User
	password string
}

func newFakeDir() *fakeDir {
	d := &fakeDir{users: map[string]fakeUser{}}
	d.put(directory.User{ID: "u-alice", Username: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins", "staff"}}, "alice-password")
	d.put(directory.User{ID: "u-bob", Username: "bob", Name: "Bob", Email: "bob@example.com", Groups: []string{"staff"}}, "bob-password")
	d.put(directory.User{ID: "u-carol", Username: "carol", Name: "Carol", Disabled: true}, "carol-password")
	return d
}

func (d *fakeDir) put(u directory.User, pw string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[u.Username] = fakeUser{u: u, password: pw}
}

func (d *fakeDir) setDisabled(username string, disabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fu := d.users[username]
	fu.u.Disabled = disabled
	d.users[username] = fu
}

func (d *fakeDir) Authenticate(_ context.Context, username, password string) (directory.User, error) {
	d.calls.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	fu, ok := d.users[username]
	switch {
	case !ok:
		return directory.User{}, &directory.AuthError{Reason: directory.ReasonUnknownUser}
	case fu.password != password:
		return directory.User{}, &directory.AuthError{Reason: directory.ReasonWrongPassword}
	case fu.u.Disabled:
		return directory.User{}, &directory.AuthError{Reason: directory.ReasonDisabled}
	}
	return fu.u, nil
}

func (d *fakeDir) Lookup(username string) (directory.User, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fu, ok := d.users[username]
	return fu.u, ok
}

func (d *fakeDir) LookupID(id string) (directory.User, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, fu := range d.users {
		if fu.u.ID == id {
			return fu.u, true
		}
	}
	return directory.User{}, false
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer = syncbuf.Buffer

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one IdP served by an httptest server whose URL is the issuer.
type env struct {
	t      testing.TB
	store  store.Store
	dir    *fakeDir
	idp    *IdP
	srv    *httptest.Server
	issuer string
	logs   *syncBuffer
	clock  *clock
}

type envOption func(*Config)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "zonegate.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("opening bolt store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func testClients() []Client {
	return []Client{
		{ID: webClientID, Secret: webClientSecret, RedirectURIs: []string{webRedirect}, PostLogoutRedirectURIs: []string{postLogout}, IDTokenUserinfoClaims: true},
		{ID: spaClientID, RedirectURIs: []string{spaRedirect}, PostLogoutRedirectURIs: []string{postLogout}},
	}
}

// baseConfig returns a complete Config for issuer on st (sessions and CSRF included).
func baseConfig(t testing.TB, issuer string, st store.Store, dir Directory, logs io.Writer, now func() time.Time) Config {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	sessions, err := websession.New(websession.Config{Store: st, CookieName: sessionCookie, Keys: [][]byte{key}, Now: now})
	if err != nil {
		t.Fatalf("websession.New: %v", err)
	}
	cp, err := csrf.New(bytes.Repeat([]byte{9}, 32), "zonegate_csrf")
	if err != nil {
		t.Fatalf("csrf.New: %v", err)
	}
	var ck [32]byte
	copy(ck[:], bytes.Repeat([]byte{3}, 32))
	return Config{
		Issuer:    issuer,
		Store:     st,
		Users:     dir,
		Sessions:  sessions,
		CSRF:      cp,
		CryptoKey: ck,
		Clients:   testClients(),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       now,
	}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, store: openStore(t), dir: newFakeDir(), logs: &syncBuffer{}, clock: &clock{t: time.Now()}}
	var handler atomic.Pointer[IdP]
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL
	cfg := baseConfig(t, e.issuer, e.store, e.dir, e.logs, e.clock.Now)
	for _, o := range opts {
		o(&cfg)
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.idp = p
	handler.Store(p)
	// Back-channel deliveries finish before the receivers of the test close.
	t.Cleanup(p.backchannel.running.Wait)
	return e
}

// browser is a user agent with a cookie jar that follows redirects on the issuer's host
// and stops at the first redirect elsewhere (the client's redirect URI).
type browser struct {
	t      testing.TB
	c      *http.Client
	issuer *url.URL
}

func newBrowser(t testing.TB, issuer string, transport http.RoundTripper) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	iu, _ := url.Parse(issuer)
	b := &browser{t: t, issuer: iu}
	b.c = &http.Client{
		Jar:       jar,
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != iu.Host {
				return http.ErrUseLastResponse
			}
			if len(via) > 10 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	return b
}

func (e *env) browser() *browser { return newBrowser(e.t, e.issuer, nil) }

// page is a fetched response with its body read.
type page struct {
	status int
	header http.Header
	url    *url.URL
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, url: resp.Request.URL, body: string(body)}
}

func (b *browser) get(u string) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) hasCookie(name string) bool {
	for _, c := range b.c.Jar.Cookies(b.issuer) {
		if c.Name == name && c.Value != "" {
			return true
		}
	}
	return false
}

var inputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hiddenFields returns the hidden inputs of a page.
func hiddenFields(t testing.TB, body string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], htmlUnescape(m[2]))
	}
	return v
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// isLoginForm reports whether p is the sign-in form.
func isLoginForm(p page) bool {
	return strings.Contains(p.body, `name="password"`) && strings.Contains(p.body, `name="authRequestID"`)
}

// submitLogin fills in and posts the sign-in form on p.
func (b *browser) submitLogin(p page, username, password string) page {
	b.t.Helper()
	if !isLoginForm(p) {
		b.t.Fatalf("not a login form (status %d, url %s):\n%s", p.status, p.url, p.body)
	}
	form := hiddenFields(b.t, p.body)
	form.Set("username", username)
	form.Set("password", password)
	return b.post(b.issuer.String()+"/login", form)
}

// redirectedTo returns the query of a redirect to prefix (the client's redirect URI), or
// fails the test.
func redirectedTo(t testing.TB, p page, prefix string) url.Values {
	t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("want a redirect to %s, got status %d at %s:\n%s", prefix, p.status, p.url, p.body)
	}
	loc := p.header.Get("Location")
	if loc != prefix && !strings.HasPrefix(loc, prefix+"?") {
		t.Fatalf("redirect to %q, want %s?...", loc, prefix)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// rp is a relying party: go-oidc discovery plus an x/oauth2 config for one client.
type rp struct {
	t        testing.TB
	ctx      context.Context
	provider *gooidc.Provider
	oauth    oauth2.Config
	verifier *gooidc.IDTokenVerifier
}

func newRP(t testing.TB, ctx context.Context, issuer, clientID, secret, redirect string, scopes ...string) *rp {
	t.Helper()
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "profile", "email", "groups"}
	}
	ep := provider.Endpoint()
	// One attempt per exchange: auto-detection would retry a refused exchange with the
	// credentials in the body, and the retry always meets a consumed code.
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &rp{
		t:        t,
		ctx:      ctx,
		provider: provider,
		oauth: oauth2.Config{
			ClientID:     clientID,
			ClientSecret: secret,
			Endpoint:     ep,
			RedirectURL:  redirect,
			Scopes:       scopes,
		},
		verifier: provider.Verifier(&gooidc.Config{ClientID: clientID}),
	}
}

func (e *env) webRP() *rp {
	return newRP(e.t, context.Background(), e.issuer, webClientID, webClientSecret, webRedirect)
}

func (e *env) spaRP() *rp {
	return newRP(e.t, context.Background(), e.issuer, spaClientID, "", spaRedirect)
}

// flow is one authorization attempt's secrets.
type flow struct {
	state, nonce, verifier string
	url                    string
}

func (r *rp) start(extra ...oauth2.AuthCodeOption) flow {
	f := flow{state: randomString(), nonce: randomString(), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), gooidc.Nonce(f.nonce)}, extra...)
	f.url = r.oauth.AuthCodeURL(f.state, opts...)
	return f
}

func randomString() string { return newID()[:16] }

// code checks the redirect to the client and returns its code.
func (r *rp) code(p page, f flow) string {
	r.t.Helper()
	q := redirectedTo(r.t, p, r.oauth.RedirectURL)
	if q.Get("error") != "" {
		r.t.Fatalf("authorization error %q: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != f.state {
		r.t.Fatalf("state %q, want %q", q.Get("state"), f.state)
	}
	if q.Get("code") == "" {
		r.t.Fatal("no code in redirect")
	}
	return q.Get("code")
}

// exchange redeems a code and verifies the ID token (signature, audience, nonce).
func (r *rp) exchange(code string, f flow, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *gooidc.IDToken) {
	r.t.Helper()
	tok, err := r.oauth.Exchange(r.ctx, code, append([]oauth2.AuthCodeOption{oauth2.VerifierOption(f.verifier)}, opts...)...)
	if err != nil {
		r.t.Fatalf("code exchange: %v", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		r.t.Fatal("no id_token in token response")
	}
	idt, err := r.verifier.Verify(r.ctx, raw)
	if err != nil {
		r.t.Fatalf("verifying id_token: %v", err)
	}
	if idt.Nonce != f.nonce {
		r.t.Fatalf("nonce %q, want %q", idt.Nonce, f.nonce)
	}
	return tok, idt
}

// retrieveErrorCode returns the OAuth error code of a failed exchange.
func retrieveErrorCode(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("exchange succeeded, want an error")
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not an oauth2.RetrieveError", err)
	}
	return re.ErrorCode
}

// signIn runs authorize + login for rp in b and returns the code.
func (b *browser) signIn(r *rp, f flow, username, password string) string {
	b.t.Helper()
	form := b.get(f.url)
	return r.code(b.submitLogin(form, username, password), f)
}

// idClaims are the ID token claims the tests look at.
type idClaims struct {
	Sub               string   `json:"sub"`
	Email             string   `json:"email"`
	EmailVerified     *bool    `json:"email_verified"`
	Groups            []string `json:"groups"`
	AMR               []string `json:"amr"`
	AuthTime          int64    `json:"auth_time"`
	SID               string   `json:"sid"`
	PreferredUsername string   `json:"preferred_username"`
	Name              string   `json:"name"`
	Nonce             string   `json:"nonce"`
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func httptestRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

// requestWithCookies is a request to issuer carrying b's cookies for it.
func requestWithCookies(b *browser, issuer string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, issuer+"/", nil)
	for _, c := range b.c.Jar.Cookies(b.issuer) {
		r.AddCookie(c)
	}
	return r
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sickStore reports unhealthy on demand.
type sickStore struct {
	store.Store
	sick atomic.Bool
}

func (s *sickStore) Health(ctx context.Context) error {
	if s.sick.Load() {
		return store.ErrUnavailable
	}
	return s.Store.Health(ctx)
}

package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/idp"
)

const (
	issuerURL    = "http://127.0.0.1:9091"
	issuerHost   = "127.0.0.1:9091"
	testPassword = "correct horse battery staple"
)

// usersYAML is a users file with alice (admins) and bob, hashed once per test binary.
var usersYAML = sync.OnceValues(func() (string, error) {
	hash, err := directory.HashPassword(testPassword)
	if err != nil {
		return "", err
	}
	return "users:\n" +
		"  alice:\n    displayname: \"Alice Admin\"\n    email: alice@example.com\n    password: \"" + hash + "\"\n    groups: [admins, staff]\n" +
		"  bob:\n    displayname: \"Bob\"\n    email: bob@example.com\n    password: \"" + hash + "\"\n    groups: [staff]\n", nil
})

// withIdP runs the real embedded IdP on the harness's store and clock and makes it the gate's
// issuer, reached in process, as the Caddy app wires it. idTokenClaims puts the profile claims
// in the ID token; without it the gate has to ask userinfo.
func withIdP(p **idp.IdP, idTokenClaims bool) harnessOption {
	return func(h *harness, c *Config) {
		t := h.t
		y, err := usersYAML()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "users.yml")
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		users, err := directory.OpenFile(path, directory.Options{ReloadInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { users.Close() })
		idpCSRF, err := csrf.New(bytes.Repeat([]byte("i"), 32), "zg_idp_csrf")
		if err != nil {
			t.Fatal(err)
		}
		var key [32]byte
		_, _ = rand.Read(key[:])
		ip, err := idp.New(context.Background(), idp.Config{
			Issuer:    issuerURL,
			Store:     h.store,
			Users:     users,
			Sessions:  newSessions(t, h.store, h.clock, "zg_idp", bytes.Repeat([]byte("s"), 32)),
			CSRF:      idpCSRF,
			CryptoKey: key,
			Clients: []idp.Client{{
				ID: "gate", Secret: "gate-secret",
				RedirectURIs:          []string{siteURL + callbackPath},
				IDTokenUserinfoClaims: idTokenClaims,
			}},
			Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Now:    h.clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		c.OIDC = OIDC{Issuer: issuerURL, ClientID: "gate", ClientSecret: "gate-secret", HTTPClient: ip.InProcessClient()}
		c.Signer = ip
		c.EndIdPSession = ip.EndSession
		*p = ip
	}
}

// browser is a cookie-keeping client whose requests are served in memory: the issuer's host by
// the IdP, the site's host by the gate in front of a backend that records what it got.
type browser struct {
	t       *testing.T
	h       *harness
	idp     *idp.IdP
	client  *http.Client
	backend http.Header // headers of the last request the backend saw
	ip      netip.Addr
}

func newBrowser(t *testing.T, h *harness, ip *idp.IdP) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, h: h, idp: ip, ip: ipHome}
	b.client = &http.Client{
		Jar:           jar,
		Transport:     roundTripFunc(b.serve),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b
}

func (b *browser) serve(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = netip.AddrPortFrom(b.ip, 50000).String()
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	switch req.URL.Host {
	case issuerHost:
		b.idp.ServeHTTP(rec, in)
	case siteHost:
		if b.h.gate.Check(rec, in, b.ip) {
			b.backend = in.Header.Clone()
			rec.WriteHeader(http.StatusOK)
			_, _ = rec.WriteString("backend: " + in.URL.RequestURI())
		}
	default:
		return nil, errors.New("browser: no such host " + req.URL.Host)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// get navigates to u like a browser does.
func (b *browser) get(u string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return resp
}

func (b *browser) postForm(u string, form url.Values) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	return buf.String()
}

// location resolves a response's Location against its request.
func location(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if loc == "" {
		t.Fatalf("%s %s: status %d without Location", resp.Request.Method, resp.Request.URL, resp.StatusCode)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// startLogin requests target unauthenticated and returns the authorization URL it was sent to.
func (b *browser) startLogin(target string) *url.URL {
	b.t.Helper()
	resp := b.get(siteURL + target)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("GET %s: status %d, want 302; body %s", target, resp.StatusCode, body(b.t, resp))
	}
	u, err := url.Parse(location(b.t, resp))
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// signInAtIdP follows the authorization URL through the IdP's login form and returns the
// gate callback URL the IdP sends the browser to.
func (b *browser) signInAtIdP(authURL *url.URL, username string) string {
	t := b.t
	t.Helper()
	next := authURL.String()
	for range 5 {
		resp := b.get(next)
		switch {
		case resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Request.URL.Path, "/login"):
			page := body(t, resp)
			form := url.Values{
				"username":      {username},
				"password":      {testPassword},
				"csrf_token":    {between(page, `name="csrf_token" value="`, `"`)},
				"authRequestID": {between(page, `name="authRequestID" value="`, `"`)},
			}
			if form.Get("csrf_token") == "" || form.Get("authRequestID") == "" {
				t.Fatalf("IdP login form without csrf_token or authRequestID: %s", page)
			}
			resp = b.postForm(issuerURL+"/login", form)
			if resp.StatusCode/100 != 3 {
				t.Fatalf("IdP login POST: %d %s", resp.StatusCode, body(t, resp))
			}
			next = location(t, resp)
		case resp.StatusCode/100 == 3:
			next = location(t, resp)
		default:
			t.Fatalf("GET %s: status %d: %s", next, resp.StatusCode, body(t, resp))
		}
		if strings.HasPrefix(next, siteURL+callbackPath) {
			return next
		}
	}
	t.Fatalf("IdP never sent the browser back to the gate (last %s)", next)
	return ""
}

func TestLoginRedirect(t *testing.T) {
	var ip *idp.IdP
	h := newHarness(t, withIdP(&ip, true))
	for _, hdr := range []map[string]string{
		browserHeaders(),
		{"Sec-Fetch-Mode": "navigate"},
		{"Accept": "text/html"},
	} {
		res := h.check(request("GET", "/app/page?x=1", nil, hdr), ipHome)
		if res.rec.Code != http.StatusFound {
			t.Fatalf("status %d, want 302: %s", res.rec.Code, res.rec.Body)
		}
		loc, err := url.Parse(res.rec.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if loc.Scheme+"://"+loc.Host != issuerURL || loc.Path != "/authorize" {
			t.Fatalf("Location %s, want the issuer's authorization endpoint", loc)
		}
		q := loc.Query()
		for k, want := range map[string]string{
			"client_id": "gate", "redirect_uri": siteURL + "/.zonegate/callback", "response_type": "code",
			"scope": "openid profile email groups", "code_challenge_method": "S256",
		} {
			if q.Get(k) != want {
				t.Errorf("%s=%q, want %q", k, q.Get(k), want)
			}
		}
		state := q.Get("state")
		if len(state) < 40 || len(q.Get("nonce")) < 40 {
			t.Fatalf("state %q nonce %q: too short", state, q.Get("nonce"))
		}
		pl, err := h.gate.logins.Get(context.Background(), state)
		if err != nil {
			t.Fatalf("no pending login for the state: %v", err)
		}
		if pl.Return != "/app/page?x=1" || pl.Nonce != q.Get("nonce") || oauth2.S256ChallengeFromVerifier(pl.Verifier) != q.Get("code_challenge") {
			t.Errorf("pending login %+v does not match the request %v", pl, q)
		}
		var sc *http.Cookie
		for _, c := range res.rec.Result().Cookies() {
			if c.Name == loginCookieName(state) {
				sc = c
			}
		}
		if sc == nil || sc.Value != state || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != callbackPath || sc.MaxAge <= 0 || sc.MaxAge > 600 {
			t.Errorf("state cookie %+v", sc)
		}
		if res.rec.Header().Get("Cache-Control") != "no-store" {
			t.Error("redirect is cacheable")
		}
	}
	// The pending login expires with the sign-in.
	res := h.check(request("GET", "/", nil, browserHeaders()), ipHome)
	state := mustQuery(t, res.rec.Header().Get("Location")).Get("state")
	h.clock.Advance(loginTTL + time.Second)
	if _, err := h.gate.logins.Get(context.Background(), state); err == nil {
		t.Error("pending login outlives its 10 minutes")
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestCallbackWithEmbeddedIdP signs in through the real embedded IdP, end to end: gate
// redirect, IdP login form, code exchange in process, ID token verification, gate session,
// identity headers and assertion, replay refusal, sign-out of both sessions.
func TestCallbackWithEmbeddedIdP(t *testing.T) {
	for _, tc := range []struct {
		name          string
		idTokenClaims bool
	}{
		{"claims in ID token", true},
		{"claims from userinfo", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ip *idp.IdP
			h := newHarness(t, withIdP(&ip, tc.idTokenClaims))
			b := newBrowser(t, h, ip)
			ctx := context.Background()

			callback := b.signInAtIdP(b.startLogin("/app/page?x=1"), "alice")
			resp := b.get(callback)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/page?x=1" {
				t.Fatalf("callback: %d Location %q; %s\nlogs:\n%s", resp.StatusCode, resp.Header.Get("Location"), body(t, resp), h.logs)
			}
			var gateCookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "zg_gate" {
					gateCookie = c
				}
			}
			if gateCookie == nil || !gateCookie.HttpOnly {
				t.Fatalf("no gate session cookie: %v", resp.Cookies())
			}

			// The backend sees alice.
			resp = b.get(siteURL + "/app/page?x=1")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("after sign-in: %d %s", resp.StatusCode, body(t, resp))
			}
			for k, want := range map[string]string{
				"X-Remote-User": "alice", "X-Remote-Email": "alice@example.com",
				"X-Remote-Name": "Alice Admin", "X-Remote-Groups": "admins,staff",
			} {
				if got := b.backend.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			kid, key, err := ip.SigningKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := jwt.ParseSigned(b.backend.Get(DefaultAssertionHeader), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			var c assertionClaims
			if err := tok.Claims(&key.PublicKey, &c); err != nil {
				t.Fatalf("assertion does not verify with the IdP's key: %v", err)
			}
			if err := c.ValidateWithLeeway(jwt.Expected{Issuer: issuerURL, AnyAudience: jwt.Audience{siteURL}, Subject: "alice", Time: h.clock.Now()}, 0); err != nil {
				t.Errorf("assertion claims: %v", err)
			}
			if tok.Headers[0].KeyID != kid || c.PreferredUsername != "alice" || !slices.Equal(c.Groups, []string{"admins", "staff"}) || c.SID == "" {
				t.Errorf("assertion kid %q claims %+v", tok.Headers[0].KeyID, c)
			}

			// The session is a gate session for this host, child of the IdP session.
			signedIn := h.logs.entries(t, "signed in")
			if len(signedIn) != 1 || signedIn[0]["user"] != "alice" {
				t.Fatalf("signed in logs %v", signedIn)
			}

			// Replaying the callback fails: the state cookie is gone and the login was taken.
			resp = b.get(callback)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("replayed callback: %d", resp.StatusCode)
			}
			if page := body(t, resp); !strings.Contains(page, "Sign-in failed") {
				t.Errorf("replay page: %s", page)
			}

			// A tampered return path never becomes an absolute Location (another browser).
			b2 := newBrowser(t, h, ip)
			authURL := b2.startLogin("/elsewhere")
			state := authURL.Query().Get("state")
			if _, err := h.gate.logins.Update(ctx, state, func(pl pendingLogin) (pendingLogin, time.Time, error) {
				pl.Return = "https://evil.example/"
				return pl, time.Time{}, nil
			}); err != nil {
				t.Fatal(err)
			}
			resp = b2.get(b2.signInAtIdP(authURL, "bob"))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
				t.Fatalf("tampered return path: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}

			// Sign-out ends the gate session and the IdP session behind it.
			resp = b.get(siteURL + logoutPath)
			page := body(t, resp)
			resp = b.postForm(siteURL+logoutPath, url.Values{"csrf_token": {between(page, `name="csrf_token" value="`, `"`)}})
			if resp.StatusCode != http.StatusOK || !strings.Contains(body(t, resp), "You are signed out") {
				t.Fatalf("sign-out: %d", resp.StatusCode)
			}
			if resp := b.get(siteURL + "/app"); resp.StatusCode != http.StatusFound {
				t.Fatalf("after sign-out: %d, want 302 to sign in", resp.StatusCode)
			}
			// The IdP session is gone too: the IdP asks for the password again.
			resp = b.get(b.startLogin("/app").String())
			for resp.StatusCode/100 == 3 {
				resp = b.get(location(t, resp))
			}
			if page := body(t, resp); !strings.Contains(page, `name="password"`) {
				t.Fatalf("IdP did not ask for a password after sign-out: %d %s", resp.StatusCode, page)
			}
		})
	}
}

// TestCallbackIssuerRefusesCode: a made-up code with a valid state is refused by the issuer.
func TestCallbackIssuerRefusesCode(t *testing.T) {
	var ip *idp.IdP
	h := newHarness(t, withIdP(&ip, true))
	state, cookie := h.seedLogin("/app")
	res := h.check(callbackRequest(url.Values{"code": {"made-up"}, "state": {state}}, cookie), ipHome)
	if res.rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.rec.Code)
	}
	if e := h.logs.entries(t, "sign-in failed"); len(e) != 1 || e[0]["reason"] != "exchange_refused" {
		t.Fatalf("logs %v", e)
	}
}

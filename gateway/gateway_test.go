package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
)

// spoofHeaders are identity headers a client might send, in every spelling a backend could
// read as one of ours: all three presets, odd case, underscores, the assertion header.
var spoofHeaders = map[string]string{
	"X-Remote-User":                     "mallory",
	"x-remote-email":                    "mallory@evil.example",
	"X_Remote_Name":                     "Mallory",
	"x_rEmOtE_gRoUpS":                   "admins",
	"Remote-User":                       "mallory",
	"REMOTE_EMAIL":                      "mallory@evil.example",
	"remote-name":                       "Mallory",
	"Remote_Groups":                     "admins",
	"X-Auth-Request-User":               "mallory",
	"X_AUTH_REQUEST_EMAIL":              "mallory@evil.example",
	"x-auth-request-preferred-username": "mallory",
	"X-Auth-Request_Groups":             "admins",
	"X-Zonegate-Assertion":              "eyJhbGciOiJub25lIn0.e30.",
	"x_zonegate_assertion":              "eyJhbGciOiJub25lIn0.e30.",
	"X-Custom-Who":                      "mallory",
	"X-Custom_Who":                      "mallory",
}

// identityHeader reports whether a backend of a gate configured with hs would read a header
// name as identity: any preset's or hs's names, in any case, with '_' for '-'.
func identityHeader(hs Headers, name string) bool {
	_, ok := mustStripSet(hs).names[normalizeHeaderName(name)]
	return ok
}

func mustStripSet(hs Headers) stripSet {
	s, err := buildStripSet(hs)
	if err != nil {
		panic(err)
	}
	return s
}

func TestSpoofedIdentityHeadersNeverPass(t *testing.T) {
	presets := map[string]Headers{
		"default":      DefaultHeaders,
		"authelia":     AutheliaHeaders,
		"oauth2-proxy": OAuth2ProxyHeaders,
		"custom":       {User: "X-Custom-Who", Assertion: "X-Zonegate-Assertion"},
	}
	for pname, preset := range presets {
		t.Run(pname, func(t *testing.T) {
			h := newHarness(t, func(_ *harness, c *Config) { c.Headers = preset })
			alice := h.signIn("alice", "staff")
			bob := h.signIn("bob", "staff")
			cases := []struct {
				name       string
				method     string
				target     string
				user       *user
				ip         netip.Addr
				accept     map[string]string
				wantPass   bool
				wantStatus int
				wantUser   string // the user header the backend must see ("" none)
			}{
				{"unauthenticated api", "GET", "/app", nil, ipHome, apiHeaders(), false, 401, ""},
				{"unauthenticated browser", "POST", "/app", nil, ipHome, browserHeaders(), false, 401, ""},
				{"blocklisted", "GET", "/app", &alice, ipBlocked, apiHeaders(), false, 403, ""},
				{"denied", "GET", "/admin/x", &bob, ipHome, apiHeaders(), false, 403, ""},
				{"reserved path", "GET", "/.zonegate/nothing", &alice, ipHome, apiHeaders(), false, 404, ""},
				{"allowed anonymous", "GET", "/public/x", nil, ipHome, apiHeaders(), true, 200, ""},
				{"allowed user", "GET", "/app", &alice, ipHome, apiHeaders(), true, 200, "alice"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					hdr := map[string]string{}
					for k, v := range spoofHeaders {
						hdr[k] = v
					}
					for k, v := range tc.accept {
						hdr[k] = v
					}
					r := request(tc.method, tc.target, tc.user, hdr)
					res := h.check(r, tc.ip)
					if res.passed != tc.wantPass || res.rec.Code != tc.wantStatus {
						t.Fatalf("passed=%v status=%d, want %v %d; body %s", res.passed, res.rec.Code, tc.wantPass, tc.wantStatus, res.rec.Body)
					}
					// Whatever the outcome, no spoofed value is left on the request.
					for k, vs := range r.Header {
						if !identityHeader(preset, k) {
							continue
						}
						for _, v := range vs {
							if v == spoofHeaders[k] || strings.Contains(v, "mallory") || v == "admins" {
								t.Errorf("spoofed header %s: %q survived", k, v)
							}
						}
					}
					if !tc.wantPass {
						return
					}
					var got []string
					for k := range res.backend {
						if identityHeader(preset, k) {
							got = append(got, k)
						}
					}
					slices.Sort(got)
					var want []string
					if tc.wantUser != "" {
						for _, n := range []string{preset.User, preset.Email, preset.Name, preset.Groups, preset.AuthMethods, preset.Assertion} {
							if n != "" {
								want = append(want, http.CanonicalHeaderKey(n))
							}
						}
					}
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Fatalf("backend identity headers %v, want exactly %v", got, want)
					}
					if tc.wantUser != "" {
						if v := res.backend.Values(preset.User); len(v) != 1 || v[0] != tc.wantUser {
							t.Errorf("user header %v, want [%s]", v, tc.wantUser)
						}
					}
				})
			}
		})
	}
}

func TestBlocklistedClient(t *testing.T) {
	h := newHarness(t)
	alice := h.signIn("alice", "admins")
	for _, target := range []string{"/public/x", "/app", "/.zonegate/logout", "/.zonegate/callback?state=x"} {
		for _, accept := range []map[string]string{browserHeaders(), apiHeaders()} {
			res := h.check(request("GET", target, &alice, accept), ipBlocked)
			if res.passed || res.rec.Code != http.StatusForbidden {
				t.Fatalf("%s: passed=%v status %d, want 403", target, res.passed, res.rec.Code)
			}
		}
	}
	e := h.logs.entries(t, "access denied")
	if len(e) == 0 || e[0]["reason"] != "blocklist_zone" || e[0]["zone"] != "tor" || e[0]["ip"] != ipBlocked.String() {
		t.Fatalf("log %v, want reason blocklist_zone, zone tor", e)
	}
}

func TestPolicyOutcomes(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn("alice", "admins")
	contractor := h.signIn("carol", "contractors")
	cases := []struct {
		name       string
		target     string
		user       *user
		ip         netip.Addr
		wantStatus int
		wantReason string // logged reason for denials
		wantRule   string
	}{
		{"admin in the office", "/admin/panel", &admin, ipOffice, 200, "", ""},
		{"admin outside the office", "/admin/panel", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"anonymous admin path outside", "/admin/panel", nil, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"anonymous admin path in office", "/admin/panel", nil, ipOffice, 401, "", ""},
		{"contractor secret", "/secret/plans", &contractor, ipOffice, 403, "rule_deny", "no contractors"},
		{"contractor app", "/app", &contractor, ipOffice, 200, "", ""},
		{"dot-dot into admin", "/public/../admin/panel", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index", "/admin/", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index, dot", "/admin/.", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index, dot-dot", "/admin/x/..", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index, double slash", "//admin//", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index, encoded slash", "/public/..%2Fadmin%2F", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin index, upper case", "/ADMIN/", &admin, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"anonymous admin index", "/admin/", nil, ipHome, 403, "rule_deny", "admin elsewhere"},
		{"admin without slash is not under /admin/*", "/admin", &admin, ipHome, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.logs.entries(t, "access denied"))
			res := h.check(request("GET", tc.target, tc.user, apiHeaders()), tc.ip)
			if res.rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", res.rec.Code, tc.wantStatus, res.rec.Body)
			}
			if tc.wantStatus != 403 {
				return
			}
			var body struct{ Error, RequestID string }
			if err := json.Unmarshal(res.rec.Body.Bytes(), &struct {
				Error     *string `json:"error"`
				RequestID *string `json:"request_id"`
			}{&body.Error, &body.RequestID}); err != nil {
				t.Fatal(err)
			}
			if body.Error != "access_denied" || body.RequestID == "" {
				t.Fatalf("body %s", res.rec.Body)
			}
			if strings.Contains(res.rec.Body.String(), tc.wantRule) || strings.Contains(res.rec.Body.String(), tc.wantReason) {
				t.Errorf("response reveals the rule or reason: %s", res.rec.Body)
			}
			e := h.logs.entries(t, "access denied")
			if len(e) != before+1 {
				t.Fatalf("%d denial logs, want %d", len(e), before+1)
			}
			last := e[len(e)-1]
			if last["reason"] != tc.wantReason || last["rule_name"] != tc.wantRule || last["request_id"] != body.RequestID {
				t.Errorf("log %v, want reason %s rule %q request id %s", last, tc.wantReason, tc.wantRule, body.RequestID)
			}
			if tc.user != nil && last["user"] != tc.user.session.Username {
				t.Errorf("log user %v, want %s", last["user"], tc.user.session.Username)
			}
		})
	}
}

func TestDeniedPageHTML(t *testing.T) {
	h := newHarness(t)
	admin := h.signIn("alice", "admins")
	res := h.check(request("GET", "/admin/x", &admin, browserHeaders()), ipHome)
	if res.rec.Code != 403 {
		t.Fatalf("status %d", res.rec.Code)
	}
	body := res.rec.Body.String()
	e := h.logs.entries(t, "access denied")
	rid, _ := e[len(e)-1]["request_id"].(string)
	if !strings.Contains(body, "Access denied") || rid == "" || !strings.Contains(body, rid) {
		t.Fatalf("page does not say access denied with request id %q: %s", rid, body)
	}
	if strings.Contains(body, "admin elsewhere") || strings.Contains(body, "rule_deny") {
		t.Fatalf("page reveals the rule: %s", body)
	}
	checkPageHeaders(t, res.rec)
}

func checkPageHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Type":    "text/html; charset=utf-8",
		"Cache-Control":   "no-store",
		"X-Frame-Options": "DENY",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if strings.Contains(rec.Body.String(), "http://") || strings.Contains(rec.Body.String(), "https://") {
		t.Errorf("page refers to external resources: %s", rec.Body)
	}
}

func TestUnauthenticatedAPI(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name   string
		method string
		hdr    map[string]string
	}{
		{"json", "GET", apiHeaders()},
		{"no accept", "GET", nil},
		{"fetch with html accept", "GET", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}},
		{"post navigation", "POST", browserHeaders()},
		{"delete", "DELETE", map[string]string{"Accept": "text/html"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.check(request(tc.method, "/app/data", nil, tc.hdr), ipHome)
			if res.passed || res.rec.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.rec.Code)
			}
			var body map[string]string
			if err := json.Unmarshal(res.rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body["error"] != "authentication_required" || body["login_url"] != siteURL+"/" {
				t.Errorf("body %v", body)
			}
			if got := res.rec.Header().Get("WWW-Authenticate"); got != `Zonegate realm="`+siteURL+`"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if got := res.rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := res.rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
		})
	}
}

// TestIssuerDownAtLogin: the gate starts without its issuer, and a browser that needs to sign
// in while the issuer is down gets 503, not a broken redirect.
func TestIssuerDownAtLogin(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) {
		c.OIDC.HTTPClient = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, errors.New("connection refused")
		})}
	})
	res := h.check(request("GET", "/app", nil, browserHeaders()), ipHome)
	if res.rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.rec.Code)
	}
	if e := h.logs.entries(t, "cannot start sign-in: issuer unavailable"); len(e) != 1 {
		t.Fatalf("log: %s", h.logs)
	}
	checkPageHeaders(t, res.rec)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRefusedSessions(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(h *harness, u *user)
	}{
		{"forged signature", func(h *harness, u *user) {
			c := *u.cookies[0]
			b := []byte(c.Value)
			b[len(b)/2] ^= 1
			c.Value = string(b)
			u.cookies = []*http.Cookie{&c}
		}},
		{"signed with another key", func(h *harness, u *user) {
			other := newSessions(h.t, h.store, h.clock, "zg_gate", bytes.Repeat([]byte("x"), 32))
			*u = h.signInWith(other, *u.session)
		}},
		{"idle timeout", func(h *harness, u *user) { h.clock.Advance(31 * time.Minute) }},
		{"absolute timeout", func(h *harness, u *user) {
			// Keep it busy so idle never strikes, until the absolute timeout does.
			for range 4 {
				h.clock.Advance(25 * time.Minute)
				if res := h.check(request("GET", "/app", u, apiHeaders()), ipHome); !res.passed {
					h.t.Fatalf("session refused early: %d", res.rec.Code)
				}
			}
			h.clock.Advance(25 * time.Minute)
		}},
		{"revoked", func(h *harness, u *user) {
			if err := h.sessions.Revoke(context.Background(), u.session.ID); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"revoked by user", func(h *harness, u *user) {
			h.clock.Advance(3 * time.Second) // past the session cache
			if _, err := h.sessions.RevokeUser(context.Background(), u.session.UserID); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"idp session, not a gate session", func(h *harness, u *user) {
			s := *u.session
			s.Kind = "idp"
			*u = h.signInWith(h.sessions, s)
		}},
		{"gate session of another host", func(h *harness, u *user) {
			s := *u.session
			s.Host = "other.example"
			*u = h.signInWith(h.sessions, s)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			u := h.signIn("alice", "staff")
			if res := h.check(request("GET", "/app", &u, apiHeaders()), ipHome); !res.passed {
				t.Fatalf("fresh session refused: %d", res.rec.Code)
			}
			tc.spoil(h, &u)
			res := h.check(request("GET", "/app", &u, apiHeaders()), ipHome)
			if res.passed || res.rec.Code != http.StatusUnauthorized {
				t.Fatalf("passed=%v status %d, want 401", res.passed, res.rec.Code)
			}
		})
	}
}

func TestStoreUnavailable(t *testing.T) {
	h := newHarness(t)
	u := h.signIn("alice", "staff")
	h.clock.Advance(3 * time.Second) // past the session cache: Load must read the store
	h.store.Close()
	for _, hdr := range []map[string]string{apiHeaders(), browserHeaders()} {
		res := h.check(request("GET", "/app", &u, hdr), ipHome)
		if res.passed || res.rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("passed=%v status %d, want 503", res.passed, res.rec.Code)
		}
	}
	e := h.logs.entries(t, "loading session failed; refusing the request")
	if len(e) != 2 || !strings.Contains(e[0]["error"].(string), "unavailable") {
		t.Fatalf("log %v", e)
	}
}

func TestReservedPaths(t *testing.T) {
	h := newHarness(t)
	u := h.signIn("alice", "staff")
	cases := []struct {
		method, target string
		want           int
	}{
		{"GET", "/.zonegate/", 404},
		{"GET", "/.zonegate", 404},
		{"GET", "/.zonegate/admin", 404},
		{"GET", "/public/../.zonegate/secret", 404},
		{"POST", "/.zonegate/callback", 405},
		{"DELETE", "/.zonegate/logout", 405},
		{"GET", "/.zonegate/callback", 400},
	}
	for _, tc := range cases {
		res := h.check(request(tc.method, tc.target, &u, browserHeaders()), ipHome)
		if res.passed || res.rec.Code != tc.want {
			t.Errorf("%s %s: passed=%v status %d, want %d", tc.method, tc.target, res.passed, res.rec.Code, tc.want)
		}
	}
}

func TestLoginRedirectStateCookie(t *testing.T) {
	// Unit part, without an issuer: the return path and the state cookie's name.
	if a, b := loginCookieName("abcdefghijklmnopqrst"), loginCookieName("abcdefghijklZZZ"); a != b || a != "zonegate_login_abcdefghijkl" {
		t.Fatalf("cookie names %q %q", a, b)
	}
}

// seedLogin stores a pending login as the redirect would, and returns its state and the
// browser's state cookie.
func (h *harness) seedLogin(ret string) (string, *http.Cookie) {
	h.t.Helper()
	state := randomToken()
	pl := pendingLogin{Nonce: randomToken(), Verifier: randomToken(), Return: ret, Created: h.clock.Now()}
	if err := h.gate.logins.Create(context.Background(), state, "", h.clock.Now().Add(loginTTL), pl); err != nil {
		h.t.Fatal(err)
	}
	return state, &http.Cookie{Name: loginCookieName(state), Value: state}
}

func callbackRequest(query url.Values, cookies ...*http.Cookie) *http.Request {
	r := request("GET", "/.zonegate/callback?"+query.Encode(), nil, browserHeaders())
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return r
}

func TestCallbackRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	type step struct {
		query      url.Values
		cookies    []*http.Cookie
		wantStatus int
		wantReason string
	}
	state, cookie := h.seedLogin("/app")
	other, _ := h.seedLogin("/app")
	replayState, replayCookie := h.seedLogin("/app")
	cases := []struct {
		name  string
		steps []step
	}{
		{"no state", []step{{url.Values{"code": {"c"}}, nil, 400, "no_state"}}},
		{"no cookie", []step{{url.Values{"code": {"c"}, "state": {state}}, nil, 400, "state_mismatch"}}},
		{"cookie for another state", []step{{
			url.Values{"code": {"c"}, "state": {state}},
			[]*http.Cookie{{Name: loginCookieName(state), Value: other}}, 400, "state_mismatch",
		}}},
		{"cookie of another login", []step{{
			url.Values{"code": {"c"}, "state": {other}}, []*http.Cookie{cookie}, 400, "state_mismatch",
		}}},
		{"unknown state", []step{{
			url.Values{"code": {"c"}, "state": {"nope-nope-nope-nope"}},
			[]*http.Cookie{{Name: loginCookieName("nope-nope-nope-nope"), Value: "nope-nope-nope-nope"}}, 400, "unknown_state",
		}}},
		{"issuer error, then replay", []step{
			{url.Values{"error": {"access_denied"}, "error_description": {"user cancelled"}, "state": {replayState}}, []*http.Cookie{replayCookie}, 400, "issuer_error"},
			{url.Values{"code": {"c"}, "state": {replayState}}, []*http.Cookie{replayCookie}, 400, "unknown_state"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, st := range tc.steps {
				before := len(h.logs.entries(t, "sign-in failed"))
				res := h.check(callbackRequest(st.query, st.cookies...), ipHome)
				if res.passed || res.rec.Code != st.wantStatus {
					t.Fatalf("step %d: status %d, want %d", i, res.rec.Code, st.wantStatus)
				}
				body := res.rec.Body.String()
				if !strings.Contains(body, "Sign-in failed") || !strings.Contains(body, `href="/"`) || !strings.Contains(body, "Start again") {
					t.Errorf("step %d: page: %s", i, body)
				}
				checkPageHeaders(t, res.rec)
				e := h.logs.entries(t, "sign-in failed")
				if len(e) != before+1 || e[len(e)-1]["reason"] != st.wantReason {
					t.Fatalf("step %d: logs %v, want reason %s", i, e[before:], st.wantReason)
				}
				if rid, _ := e[len(e)-1]["request_id"].(string); rid == "" || !strings.Contains(body, rid) {
					t.Errorf("step %d: page lacks the request id %q", i, rid)
				}
				if res.rec.Header().Get("Location") != "" {
					t.Errorf("step %d: redirected to %q", i, res.rec.Header().Get("Location"))
				}
			}
		})
	}
	// A refused state check leaves the pending login in place for its rightful browser.
	if _, err := h.gate.logins.Get(ctx, state); err != nil {
		t.Errorf("pending login consumed by a mismatched callback: %v", err)
	}
}

func TestCallbackStoreUnavailable(t *testing.T) {
	h := newHarness(t)
	state, cookie := h.seedLogin("/app")
	h.store.Close()
	res := h.check(callbackRequest(url.Values{"code": {"c"}, "state": {state}}, cookie), ipHome)
	if res.rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.rec.Code)
	}
	if e := h.logs.entries(t, "sign-in failed"); len(e) != 1 || e[0]["reason"] != "store_unavailable" {
		t.Fatalf("logs %v", e)
	}
}

func TestSafeReturnPath(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"/", "/"},
		{"/app/page?x=1&y=%2F", "/app/page?x=1&y=%2F"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"},
		{"/%5Cevil.example", "/%5Cevil.example"},
		{"//evil.example", "/"},
		{"//evil.example/path", "/"},
		{"///evil.example", "/"},
		{`/\evil.example`, "/"},
		{`/a\b`, "/"},
		{`\\evil.example`, "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"%2F%2Fevil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\r\n/evil.example", "/"},
		{" //evil.example", "/"},
		{"/ /evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/é", "/"},
		{"", "/"},
		{"/" + strings.Repeat("a", maxReturnPath), "/"},
	}
	for _, tc := range cases {
		got := safeReturnPath(tc.in)
		if got != tc.want {
			t.Errorf("safeReturnPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
		checkRelative(t, got)
	}
}

// checkRelative fails unless loc, as a browser would read it (tabs and newlines dropped,
// backslashes as slashes), is a path on the same site.
func checkRelative(t *testing.T, loc string) {
	t.Helper()
	b := strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(loc)
	u, err := url.Parse(b)
	if err != nil {
		return // a browser would not follow it either way; isSafeReturnPath never lets it out
	}
	if u.Scheme != "" || u.Host != "" || u.Opaque != "" || strings.HasPrefix(b, "//") || !strings.HasPrefix(b, "/") {
		t.Errorf("Location %q leaves the site", loc)
	}
}

func TestOpenRedirectRequestPaths(t *testing.T) {
	// What a browser asks for is what it comes back to, unless that is not a local path.
	cases := []struct {
		requestURI string
		wantReturn string
	}{
		{"/app/page?x=1", "/app/page?x=1"},
		{"//evil.example/x", "/"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"},
		{"/%5Cevil.example", "/%5Cevil.example"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", tc.requestURI, nil)
		if got := safeReturnPath(r.URL.RequestURI()); got != tc.wantReturn {
			t.Errorf("%s: return path %q, want %q", tc.requestURI, got, tc.wantReturn)
		}
	}
	// An absolute-form request target keeps only its path.
	r := httptest.NewRequest("GET", "https://evil.example/x", nil)
	if got := safeReturnPath(r.URL.RequestURI()); got != "/x" {
		t.Errorf("absolute-form target: return path %q, want /x", got)
	}
}

func TestLogout(t *testing.T) {
	var ended []string
	h := newHarness(t, func(_ *harness, c *Config) {
		c.EndIdPSession = func(_ context.Context, sid string) error {
			ended = append(ended, sid)
			return nil
		}
	})
	ctx := context.Background()
	alice := h.signIn("alice", "staff")
	// Another gate session of alice from the same IdP session (another protected host), and
	// one from another IdP session.
	sibling := h.signInWith(h.sessions, websession.Session{Kind: SessionKind, Host: "other:1", UserID: alice.session.UserID, Username: "alice", ParentID: alice.session.ParentID})
	unrelated := h.signInWith(h.sessions, websession.Session{Kind: SessionKind, Host: "other:1", UserID: alice.session.UserID, Username: "alice", ParentID: "another-idp-session"})

	// GET shows a form with a CSRF token.
	res := h.check(request("GET", "/.zonegate/logout", &alice, browserHeaders()), ipHome)
	if res.rec.Code != 200 {
		t.Fatalf("GET logout: %d", res.rec.Code)
	}
	checkPageHeaders(t, res.rec)
	body := res.rec.Body.String()
	if !strings.Contains(body, `<form method="post" action="/.zonegate/logout">`) || !strings.Contains(body, `name="csrf_token"`) {
		t.Fatalf("GET logout page: %s", body)
	}
	token := between(body, `name="csrf_token" value="`, `"`)
	csrfCookies := res.rec.Result().Cookies()
	if token == "" || len(csrfCookies) == 0 {
		t.Fatalf("no CSRF token (%q) or cookie", token)
	}

	post := func(form url.Values, withCSRFCookie bool) result {
		r := httptest.NewRequest("POST", siteURL+"/.zonegate/logout", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "text/html")
		for _, c := range alice.cookies {
			r.AddCookie(c)
		}
		if withCSRFCookie {
			for _, c := range csrfCookies {
				r.AddCookie(c)
			}
		}
		return h.check(r, ipHome)
	}

	// POST without a valid token is refused and the session lives on.
	for name, tc := range map[string]struct {
		form   url.Values
		cookie bool
	}{
		"no token":       {url.Values{}, true},
		"wrong token":    {url.Values{"csrf_token": {"AAAA"}}, true},
		"no csrf cookie": {url.Values{"csrf_token": {token}}, false},
	} {
		res := post(tc.form, tc.cookie)
		if res.rec.Code != http.StatusForbidden {
			t.Fatalf("%s: POST logout status %d, want 403", name, res.rec.Code)
		}
		if _, err := h.sessions.Get(ctx, alice.session.ID); err != nil {
			t.Fatalf("%s: session ended by a refused sign-out: %v", name, err)
		}
	}
	if e := h.logs.entries(t, "sign-out refused"); len(e) != 3 || e[0]["reason"] != "csrf_invalid" {
		t.Fatalf("logs %v", e)
	}

	// With the token it signs out.
	res = post(url.Values{"csrf_token": {token}}, true)
	if res.rec.Code != 200 || !strings.Contains(res.rec.Body.String(), "You are signed out") || !strings.Contains(res.rec.Body.String(), `href="/"`) {
		t.Fatalf("POST logout: %d %s", res.rec.Code, res.rec.Body)
	}
	cleared := false
	for _, c := range res.rec.Result().Cookies() {
		if c.Name == "zg_gate" && c.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Errorf("session cookie not cleared")
	}
	for name, id := range map[string]string{"own": alice.session.ID, "sibling": sibling.session.ID} {
		if _, err := h.sessions.Get(ctx, id); !errors.Is(err, websession.ErrNoSession) {
			t.Errorf("%s session still live: %v", name, err)
		}
	}
	if _, err := h.sessions.Get(ctx, unrelated.session.ID); err != nil {
		t.Errorf("session of another IdP session ended: %v", err)
	}
	if !slices.Equal(ended, []string{alice.session.ParentID}) {
		t.Errorf("EndIdPSession calls %v, want [%s]", ended, alice.session.ParentID)
	}
	// And the old cookie no longer works.
	if res := h.check(request("GET", "/app", &alice, apiHeaders()), ipHome); res.passed {
		t.Fatal("signed-out cookie still passes")
	}
}

func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

// assertionOf verifies the assertion header with the signer's public key.
func assertionOf(t *testing.T, h *harness, hdr http.Header) (assertionClaims, *jwt.JSONWebToken) {
	t.Helper()
	raw := hdr.Get(DefaultAssertionHeader)
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parsing assertion %q: %v", raw, err)
	}
	var c assertionClaims
	if err := tok.Claims(&h.signer.key.PublicKey, &c); err != nil {
		t.Fatalf("verifying assertion: %v", err)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      h.cfg.OIDC.Issuer,
		AnyAudience: jwt.Audience{siteURL},
		Time:        h.clock.Now(),
	}, 0); err != nil {
		t.Fatalf("validating assertion: %v", err)
	}
	return c, tok
}

func TestAssertion(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	alice := h.signIn("alice", "staff", "admins")
	res := h.check(request("GET", "/app", &alice, apiHeaders()), ipHome)
	if !res.passed {
		t.Fatalf("status %d", res.rec.Code)
	}
	c, tok := assertionOf(t, h, res.backend)
	if kid := tok.Headers[0].KeyID; kid != h.signer.kid {
		t.Errorf("kid %q, want %q", kid, h.signer.kid)
	}
	if c.Subject != alice.session.UserID || c.PreferredUsername != "alice" || c.Email != "alice@example.com" ||
		c.Name != "Alice" || !slices.Equal(c.Groups, []string{"staff", "admins"}) || c.SID != alice.session.ParentID {
		t.Errorf("claims %+v", c)
	}
	if exp := c.Expiry.Time(); !exp.Equal(h.clock.Now().Add(DefaultAssertionTTL)) {
		t.Errorf("exp %v, want now+%v", exp, DefaultAssertionTTL)
	}
	if got := res.backend.Get("X-Remote-Groups"); got != "staff,admins" {
		t.Errorf("groups header %q", got)
	}
	// A wrong key does not verify it.
	var dummy assertionClaims
	if err := tok.Claims(&newSigner(t).key.PublicKey, &dummy); err == nil {
		t.Error("assertion verifies with another key")
	}

	first := res.backend.Get(DefaultAssertionHeader)
	// Reused while it has more than a minute left...
	h.clock.Advance(3 * time.Minute)
	res = h.check(request("GET", "/app", &alice, apiHeaders()), ipHome)
	if got := res.backend.Get(DefaultAssertionHeader); got != first {
		t.Error("assertion re-signed with plenty of time left")
	}
	// ...re-signed when it has less.
	h.clock.Advance(90 * time.Second)
	res = h.check(request("GET", "/app", &alice, apiHeaders()), ipHome)
	if got := res.backend.Get(DefaultAssertionHeader); got == first {
		t.Error("assertion not re-signed near its expiry")
	}
	assertionOf(t, h, res.backend)

	// A changed session (groups edited in the store) changes the headers once the session
	// cache reloads it.
	sessions := store.Collection[websession.Session]{Store: h.store, Kind: store.KindSession}
	if _, err := sessions.Update(ctx, alice.session.ID, func(s websession.Session) (websession.Session, time.Time, error) {
		s.Groups = []string{"staff"}
		return s, time.Time{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(3 * time.Second)
	res = h.check(request("GET", "/app", &alice, apiHeaders()), ipHome)
	if got := res.backend.Get("X-Remote-Groups"); got != "staff" {
		t.Errorf("groups header %q after the session changed, want staff", got)
	}
	if c, _ := assertionOf(t, h, res.backend); !slices.Equal(c.Groups, []string{"staff"}) {
		t.Errorf("assertion groups %v after the session changed", c.Groups)
	}
}

func TestNoSignerNoAssertion(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) { c.Signer = nil })
	alice := h.signIn("alice")
	res := h.check(request("GET", "/app", &alice, map[string]string{"X-Zonegate-Assertion": "forged"}), ipHome)
	if !res.passed {
		t.Fatal(res.rec.Code)
	}
	if v, ok := res.backend[DefaultAssertionHeader]; ok {
		t.Errorf("assertion header %v without a signer", v)
	}
	if _, ok := res.backend["X-Remote-Groups"]; ok {
		t.Errorf("groups header sent for a user without groups")
	}
}

type failingSigner struct{}

func (failingSigner) SigningKey(context.Context) (string, *ecdsa.PrivateKey, error) {
	return "", nil, store.ErrUnavailable
}

func TestSignerFailureFailsClosed(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) { c.Signer = failingSigner{} })
	alice := h.signIn("alice")
	res := h.check(request("GET", "/app", &alice, apiHeaders()), ipHome)
	if res.passed || res.rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("passed=%v status %d, want 503", res.passed, res.rec.Code)
	}
}

func TestAllowDebugLog(t *testing.T) {
	h := newHarness(t)
	alice := h.signIn("alice")
	h.check(request("GET", "/app", &alice, apiHeaders()), ipOffice)
	e := h.logs.entries(t, "access allowed")
	if len(e) != 1 || e[0]["reason"] != "rule_allow" || e[0]["rule_name"] != "staff" || e[0]["user"] != "alice" {
		t.Fatalf("logs %v", e)
	}
	if z, _ := e[0]["zones"].([]any); len(z) != 1 || z[0] != "office" {
		t.Errorf("zones %v", e[0]["zones"])
	}
}

func TestNewValidates(t *testing.T) {
	base := func(h *harness) Config { return h.cfg }
	h := newHarness(t)
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no url", func(c *Config) { c.URL = "" }, "no site URL"},
		{"url with path", func(c *Config) { c.URL = "http://x/app" }, "scheme and host only"},
		{"url scheme", func(c *Config) { c.URL = "ftp://x" }, "scheme must be"},
		{"no policy", func(c *Config) { c.Policy = nil }, "no policy"},
		{"no sessions", func(c *Config) { c.Sessions = nil }, "no session manager"},
		{"no store", func(c *Config) { c.Store = nil }, "no store"},
		{"no csrf", func(c *Config) { c.CSRF = nil }, "no CSRF"},
		{"no client", func(c *Config) { c.OIDC.ClientID = "" }, "no client id"},
		{"no issuer", func(c *Config) { c.OIDC.Issuer = "" }, "no issuer"},
		{"relative issuer", func(c *Config) { c.OIDC.Issuer = "/idp" }, "absolute"},
		{"bad header", func(c *Config) { c.Headers.User = "X Remote" }, "not a valid header name"},
		{"cookie header", func(c *Config) { c.Headers = Headers{User: "Cookie"} }, "cannot be used"},
		{"duplicate header", func(c *Config) { c.Headers = Headers{User: "X-Who", Name: "x_who"} }, "same header"},
		{"negative ttl", func(c *Config) { c.AssertionTTL = -1 }, "positive"},
	}
	for _, tc := range cases {
		cfg := base(h)
		tc.change(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	g, err := New(base(h))
	if err != nil {
		t.Fatal(err)
	}
	if g.CallbackURL() != siteURL+"/.zonegate/callback" {
		t.Errorf("CallbackURL %q", g.CallbackURL())
	}
}

func TestCleanPath(t *testing.T) {
	cases := map[string]string{
		"": "/", "/": "/", "//": "/", "/.": "/", "/..": "/", "/a": "/a", "/a/": "/a/", "/a//": "/a/",
		"/a/.": "/a/", "/a/..": "/", "/a/b/..": "/a/", "/a/b/../": "/a/", "/a/./b": "/a/b",
		"/../a": "/a", "a/b": "/a/b", "/a/b.": "/a/b.", "/a/..b": "/a/..b", "//a//b//": "/a/b/",
	}
	for in, want := range cases {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	for _, p := range []string{"/app/page", "/admin/"} {
		if n := testing.AllocsPerRun(100, func() { cleanPath(p) }); n != 0 {
			t.Errorf("cleanPath(%q) allocates %v times", p, n)
		}
	}
}

func TestHeaderPreset(t *testing.T) {
	for name, want := range map[string]Headers{"default": DefaultHeaders, "authelia": AutheliaHeaders, "oauth2-proxy": OAuth2ProxyHeaders} {
		if got, ok := HeaderPreset(name); !ok || got != want {
			t.Errorf("HeaderPreset(%q) = %v, %v", name, got, ok)
		}
	}
	if _, ok := HeaderPreset("pomerium"); ok {
		t.Error("unknown preset found")
	}
}

func TestStripNoAllocs(t *testing.T) {
	s := mustStripSet(DefaultHeaders)
	hdr := http.Header{"Accept": {"*/*"}, "User-Agent": {"x"}, "Cookie": {"a=b"}, "X-Request-Id": {"1"}}
	if n := testing.AllocsPerRun(100, func() { s.strip(hdr) }); n != 0 {
		t.Errorf("strip allocates %v times per call when nothing matches", n)
	}
	if len(hdr) != 4 {
		t.Errorf("strip removed unrelated headers: %v", hdr)
	}
}

func TestPagesAreSelfContained(t *testing.T) {
	h := newHarness(t)
	rec := httptest.NewRecorder()
	h.gate.writePage(rec, httptest.NewRequest("GET", "/", nil), 200, page{Title: "<script>", Heading: "x", Messages: []string{"<b>"}})
	body, _ := io.ReadAll(rec.Body)
	if bytes.Contains(body, []byte("<script>")) || bytes.Contains(body, []byte("<b>")) {
		t.Errorf("page does not escape: %s", body)
	}
	checkPageHeaders(t, rec)
}

// TestConcurrentChecks runs allowed, denied and anonymous requests at once while the clock
// moves, for the race detector (identity cache, re-signing, discovery state).
func TestConcurrentChecks(t *testing.T) {
	h := newHarness(t)
	users := []user{h.signIn("alice", "admins"), h.signIn("bob", "staff"), h.signIn("carol", "contractors")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			h.clock.Advance(20 * time.Second)
			time.Sleep(time.Millisecond)
		}
	}()
	errs := make(chan string, 64)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 40 {
				u := users[(i+j)%len(users)]
				res := h.check(request("GET", "/app", &u, apiHeaders()), ipOffice)
				if !res.passed || res.backend.Get("X-Remote-User") != u.session.Username {
					errs <- fmt.Sprintf("%s: passed=%v status %d user %q", u.session.Username, res.passed, res.rec.Code, res.backend.Get("X-Remote-User"))
					return
				}
				if res := h.check(request("GET", "/admin/x", &u, apiHeaders()), ipHome); res.passed {
					errs <- "admin path allowed from home"
					return
				}
			}
		}()
	}
	wg.Wait()
	<-done
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

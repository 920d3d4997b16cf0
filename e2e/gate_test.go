package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// env is one running gateway with the standard test config.
type env struct {
	gw              *gateway
	idp, gate, raw  string // base URLs: the IdP, the gate that trusts loopback proxies, a gate that trusts none
	echo, admin, rp string
}

const testConfig = `{
	admin 127.0.0.1:{ADMIN}
	servers :{GATE} {
		trusted_proxies static 127.0.0.0/8
	}
	servers :{IDP} {
		trusted_proxies static 127.0.0.0/8
	}
	zonegate {
		issuer http://localhost:{IDP}
		users {DIR}/users.yaml
		storage bolt {DIR}/zonegate.db
		totp {
			show_secret
		}
		zone office 10.0.0.0/8
		zone lab 127.0.0.0/8 ::1
		zone blocked {
			blocklist
			203.0.113.0/24
		}
		policy app {
			rule public {
				allow anyone
				path /public/*
			}
			rule esign {
				allow otp within 5m
				path /esign/*
			}
			rule admin-area {
				allow
				group admins
				path /admin/*
			}
			rule no-admin {
				deny
				path /admin/*
			}
			rule office-staff {
				allow
				zone office lab
				group staff admins
			}
			default deny
		}
		client test-app {
			secret test-app-secret
			redirect_uri {RP}/callback
		}
		client test-spa {
			redirect_uri {RP}/spa
		}
	}
}

http://localhost:{IDP} {
	zonegate_idp
}

http://localhost:{GATE} {
	zonegate_gate app {
		url http://localhost:{GATE}
	}
	reverse_proxy 127.0.0.1:{ECHO}
}

http://localhost:{RAW} {
	zonegate_gate app {
		url http://localhost:{RAW}
		headers authelia
	}
	reverse_proxy 127.0.0.1:{ECHO}
}

http://:{ECHO} {
	bind 127.0.0.1
	zonegate_echo
}
`

// startEnv runs a gateway on the test config with the demo users. extra is added to the
// zonegate global block.
func startEnv(t *testing.T, extra ...string) *env {
	t.Helper()
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{}
	for _, k := range []string{"ADMIN", "IDP", "GATE", "RAW", "ECHO", "RPPORT"} {
		ports[k] = freePort(t)
	}
	e := &env{
		idp:   "http://localhost:" + strconv.Itoa(ports["IDP"]),
		gate:  "http://localhost:" + strconv.Itoa(ports["GATE"]),
		raw:   "http://localhost:" + strconv.Itoa(ports["RAW"]),
		echo:  "http://127.0.0.1:" + strconv.Itoa(ports["ECHO"]),
		admin: "127.0.0.1:" + strconv.Itoa(ports["ADMIN"]),
		rp:    "http://127.0.0.1:" + strconv.Itoa(ports["RPPORT"]),
	}
	cfg := testConfig
	for k, v := range ports {
		cfg = strings.ReplaceAll(cfg, "{"+k+"}", strconv.Itoa(v))
	}
	cfg = strings.ReplaceAll(cfg, "{DIR}", dir)
	cfg = strings.ReplaceAll(cfg, "{RP}", e.rp)
	if len(extra) > 0 {
		cfg = strings.Replace(cfg, "\t\tzone office ", strings.Join(extra, "\n")+"\n\t\tzone office ", 1)
	}
	e.gw = startGateway(t, dir, cfg, e.idp+"/.well-known/openid-configuration")
	e.waitForGate(t)
	return e
}

// waitForGate waits until the gate's server answers too: Caddy starts its servers one after
// another, so the IdP answering does not mean the gate already does.
func (e *env) waitForGate(t *testing.T) {
	t.Helper()
	eventually(t, "the gate's server", func() bool {
		resp, err := http.Get(e.gate + "/.zonegate/logout")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// signIn signs username in at the gate, starting from path, and returns the final response.
func (e *env) signIn(c *client, path, username, password string, headers ...string) response {
	c.t.Helper()
	page := c.follow(e.gate+path, headers...)
	if !strings.HasPrefix(page.url.String(), e.idp+"/") {
		c.t.Fatalf("sign-in did not reach the IdP: ended at %s (%d)\n%s", page.url, page.status, page.body)
	}
	r := c.submitForm(page, url.Values{"username": {username}, "password": {password}})
	for i := 0; i < 10 && r.status >= 300 && r.status < 400; i++ {
		next, err := r.url.Parse(r.location())
		if err != nil {
			c.t.Fatal(err)
		}
		r = c.do("GET", next.String(), nil, headers...)
	}
	return r
}

func headersJSON(t *testing.T, r response) map[string]string {
	t.Helper()
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("want JSON with 200 from the backend, got %d %s at %s:\n%s", r.status, r.header.Get("Content-Type"), r.url, r.body)
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("backend answer is not JSON: %v\n%s", err, r.body)
	}
	return m
}

// spoofed are identity headers a client sends to impersonate someone.
var spoofed = []string{
	"X-Remote-Auth-Methods: hwk,mfa",
	"X-Remote-User: mallory", "X-Remote-Groups: admins", "X-Remote-Email: mallory@evil.example",
	"X_Remote_User: mallory", "x-remote-name: Mallory", "Remote-User: mallory", "Remote-Groups: admins",
	"X-Auth-Request-User: mallory", "X-Zonegate-Assertion: forged",
}

func assertNoSpoof(t *testing.T, got map[string]string) {
	t.Helper()
	for k, v := range got {
		if strings.Contains(strings.ToLower(v), "mallory") || v == "forged" {
			t.Errorf("spoofed header reached the backend: %s: %s", k, v)
		}
	}
}

func TestSignInHeadersAndSpoofing(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)

	// An unauthenticated request that a rule lets through still loses spoofed headers.
	pub := headersJSON(t, c.do("GET", e.gate+"/public/headers", nil, spoofed...))
	assertNoSpoof(t, pub)
	if _, ok := pub["X-Remote-User"]; ok {
		t.Error("anonymous request got an X-Remote-User header")
	}

	// Sign in from a deep link with a query; land back exactly there.
	final := e.signIn(c, "/headers?from=login&x=1", "alice", "alice-demo-pass")
	if final.url.Path != "/headers" || final.url.RawQuery != "from=login&x=1" || !strings.HasPrefix(final.url.String(), e.gate) {
		t.Fatalf("landed on %s, want %s/headers?from=login&x=1", final.url, e.gate)
	}
	got := headersJSON(t, final)
	want := map[string]string{
		"X-Remote-User": "alice", "X-Remote-Email": "alice@example.com",
		"X-Remote-Name": "Alice Admin", "X-Remote-Groups": "admins", "X-Remote-Auth-Methods": "pwd",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	// Signed in, a client still cannot add or replace identity headers.
	got = headersJSON(t, c.do("GET", e.gate+"/headers", nil, append(spoofed, "Cookie: app_theme=dark")...))
	assertNoSpoof(t, got)
	// The app gets its own cookies, never zonegate's session token.
	if strings.Contains(got["Cookie"], "zonegate_") || !strings.Contains(got["Cookie"], "app_theme=dark") {
		t.Errorf("backend Cookie header %q: want app_theme and no zonegate_ cookie", got["Cookie"])
	}
	if got["X-Remote-User"] != "alice" {
		t.Errorf("X-Remote-User = %q after spoofing, want alice", got["X-Remote-User"])
	}

	// The assertion header verifies against the IdP's published keys, for this host only.
	assertion := got["X-Zonegate-Assertion"]
	if assertion == "" {
		t.Fatal("no assertion header")
	}
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, e.idp)
	if err != nil {
		t.Fatal(err)
	}
	ver := provider.VerifierContext(ctx, &oidc.Config{ClientID: e.gate})
	tok, err := ver.Verify(ctx, assertion)
	if err != nil {
		t.Fatalf("assertion does not verify against the IdP's JWKS: %v", err)
	}
	var claims struct {
		Username string   `json:"preferred_username"`
		Groups   []string `json:"groups"`
	}
	if err := tok.Claims(&claims); err != nil || claims.Username != "alice" || len(claims.Groups) != 1 {
		t.Errorf("assertion claims %+v, %v", claims, err)
	}
	wrongAud := provider.VerifierContext(ctx, &oidc.Config{ClientID: e.raw})
	if _, err := wrongAud.Verify(ctx, assertion); err == nil {
		t.Error("assertion for one host verified for another")
	}

	// An anonymous spoof on a rule that needs a user is sent to sign in, never through.
	anon := newClient(t)
	r := anon.do("GET", e.gate+"/headers", nil, spoofed...)
	if r.status != http.StatusFound || !strings.HasPrefix(r.location(), e.idp+"/") {
		t.Fatalf("anonymous spoofed request: %d Location %q, want 302 to the IdP", r.status, r.location())
	}

	// Every decision is counted in Caddy's metrics, by site, outcome and reason.
	mresp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	m := response{status: mresp.StatusCode, body: string(mbody)}
	for _, want := range []string{
		`zonegate_gate_decisions_total{outcome="allow",reason="rule_allow",site="` + e.gate + `"}`,
		`zonegate_gate_decisions_total{outcome="authenticate",reason="authentication_required",site="` + e.gate + `"}`,
		`zonegate_gate_check_duration_seconds_count{outcome="allow",site="` + e.gate + `"}`,
		`zonegate_idp_signins_total{method="pwd",outcome="success"}`,
	} {
		if !strings.Contains(m.body, want) {
			var ours []string
			for _, line := range strings.Split(m.body, "\n") {
				if strings.HasPrefix(line, "zonegate_") {
					ours = append(ours, line)
				}
			}
			t.Errorf("metrics (%d) lack %s; zonegate lines:\n%s", m.status, want, strings.Join(ours, "\n"))
		}
	}
}

func TestUnauthenticatedAPIGets401(t *testing.T) {
	e := startEnv(t)
	req, _ := http.NewRequest("GET", e.gate+"/headers", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusUnauthorized || body.Error != "authentication_required" ||
		resp.Header.Get("WWW-Authenticate") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %q WWW-Authenticate=%q Content-Type=%q", resp.StatusCode, body.Error,
			resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"))
	}
}

func TestBlocklistOnBothSitesOnlyThroughTrustedProxies(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	xff := "X-Forwarded-For: 203.0.113.9"
	for _, u := range []string{e.gate + "/public/headers", e.gate + "/", e.idp + "/.well-known/openid-configuration", e.idp + "/login"} {
		if r := c.do("GET", u, nil, xff); r.status != http.StatusForbidden {
			t.Errorf("blocklisted client at %s: %d, want 403", u, r.status)
		}
	}
	// The same header to a server that trusts no proxy is ignored: the client is loopback.
	if r := c.do("GET", e.raw+"/public/headers", nil, xff); r.status != http.StatusOK {
		t.Errorf("X-Forwarded-For believed from an untrusted peer: %d", r.status)
	}
	if !strings.Contains(e.gw.logs(), "blocklist") {
		t.Error("no log line names the blocklist")
	}
}

func TestUserOutsideZoneDenied(t *testing.T) {
	e := startEnv(t)
	outside := "X-Forwarded-For: 192.0.2.10"
	c := newClient(t)
	// From outside every zone, no rule can allow: denied before any sign-in.
	if r := c.do("GET", e.gate+"/headers", nil, outside); r.status != http.StatusForbidden {
		t.Fatalf("anonymous from outside: %d, want 403", r.status)
	}
	// Bob signs in from the lab (loopback) and is allowed there.
	if got := headersJSON(t, e.signIn(c, "/headers", "bob", "bob-demo-pass")); got["X-Remote-User"] != "bob" {
		t.Fatalf("bob in the lab: X-Remote-User = %q", got["X-Remote-User"])
	}
	// The same signed-in bob from outside the office zones is denied, with the reason logged.
	r := c.do("GET", e.gate+"/headers", nil, outside)
	if r.status != http.StatusForbidden {
		t.Fatalf("bob outside the office: %d at %s, want 403\n%s", r.status, r.url, r.body)
	}
	if !strings.Contains(strings.ToLower(r.body), "request id") || strings.Contains(r.body, "office-staff") || strings.Contains(r.body, "default_deny") {
		t.Errorf("deny page should show a request id and no rule internals:\n%s", r.body)
	}
	eventually(t, "the deny reason in the log", func() bool {
		for _, line := range strings.Split(e.gw.logs(), "\n") {
			if strings.Contains(line, "access denied") && strings.Contains(line, "default_deny") && strings.Contains(line, "bob") && strings.Contains(line, "192.0.2.10") {
				return true
			}
		}
		return false
	})
	// /admin/ is denied to bob by its own rule, from anywhere.
	if r := c.do("GET", e.gate+"/admin/headers", nil); r.status != http.StatusForbidden {
		t.Errorf("bob on /admin/: %d, want 403", r.status)
	}
	eventually(t, "the deciding rule in the log", func() bool { return strings.Contains(e.gw.logs(), "no-admin") })
}

func TestNoOpenRedirect(t *testing.T) {
	e := startEnv(t)
	for _, start := range []string{"//evil.example/x", "/%2F%2Fevil.example/x", "/\\evil.example/x", "/.zonegate/../..//evil.example"} {
		t.Run(start, func(t *testing.T) {
			c := newClient(t)
			page := c.follow(e.gate + start)
			if !strings.HasPrefix(page.url.String(), e.idp+"/") {
				t.Skipf("%s did not start a sign-in (status %d at %s)", start, page.status, page.url)
			}
			r := c.submitForm(page, url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
			gate, _ := url.Parse(e.gate)
			idp, _ := url.Parse(e.idp)
			for i := 0; i < 10 && r.status >= 300 && r.status < 400; i++ {
				loc := r.location()
				if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") || strings.HasPrefix(loc, "\\") {
					t.Fatalf("scheme-relative redirect: %q", loc)
				}
				next, err := r.url.Parse(loc)
				if err != nil || (next.Host != gate.Host && next.Host != idp.Host) {
					t.Fatalf("redirected to another host: %q (%v)", loc, err)
				}
				r = c.do("GET", next.String(), nil)
			}
			if r.url.Host != gate.Host {
				t.Fatalf("sign-in ended on %s", r.url)
			}
		})
	}
	// The callback ignores anything the client adds about where to go.
	c := newClient(t)
	r := c.do("GET", e.gate+"/.zonegate/callback?state=x&code=y&redirect=https://evil.example&return_to=https://evil.example", nil)
	if loc := r.location(); strings.Contains(loc, "evil") {
		t.Fatalf("callback redirected to %q", loc)
	}
	// The IdP never sends a code to a redirect URI it does not know, even one character off.
	for _, ru := range []string{"https://evil.example/callback", e.rp + "/callbacK", e.rp + "/callback/", e.rp + "/callback?x=1"} {
		q := url.Values{"client_id": {"test-app"}, "redirect_uri": {ru}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
		r := c.do("GET", e.idp+"/authorize?"+q.Encode(), nil)
		if loc := r.location(); loc != "" && strings.HasPrefix(loc, ru) {
			t.Errorf("IdP redirected to unregistered %q: %d %q", ru, r.status, loc)
		}
	}
}

func TestSessionRefusedWhenForgedOrRevoked(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	e.signIn(c, "/headers", "alice", "alice-demo-pass")
	sess := c.cookie(e.gate, "zonegate_session")
	if sess == nil {
		t.Fatal("no zonegate_session cookie after sign-in")
	}
	if sess.Value == "" || strings.Contains(sess.Value, "alice") {
		t.Fatalf("odd session cookie %q", sess.Value)
	}
	fresh := func(value string) response {
		raw := newClient(t)
		return raw.do("GET", e.gate+"/headers", nil, "Cookie: zonegate_session="+value)
	}
	if r := fresh(sess.Value); r.status != http.StatusOK {
		t.Fatalf("the real cookie: %d", r.status)
	}
	b := []byte(sess.Value)
	b[len(b)/2] ^= 0x01
	forged := []string{string(b), sess.Value[:len(sess.Value)-4], base64.RawURLEncoding.EncodeToString([]byte("alice")), ""}
	for _, v := range forged {
		if r := fresh(v); r.status == http.StatusOK {
			t.Errorf("forged cookie %q let through", v)
		}
	}
	// Sign out (a CSRF-protected form), then the old cookie is worthless.
	form := c.do("GET", e.gate+"/.zonegate/logout", nil)
	if form.status != http.StatusOK {
		t.Fatalf("logout page: %d", form.status)
	}
	if r := c.do("POST", e.gate+"/.zonegate/logout", url.Values{}); r.status < 400 {
		t.Fatalf("logout without a CSRF token accepted: %d", r.status)
	}
	if r := fresh(sess.Value); r.status != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", r.status)
	}
	out := c.submitForm(form, nil)
	if out.status >= 400 {
		t.Fatalf("logout: %d\n%s", out.status, out.body)
	}
	if r := fresh(sess.Value); r.status == http.StatusOK {
		t.Fatal("the cookie still works after sign-out")
	}
	// Signing out ended the IdP session too: the next visit asks for the password again.
	page := c.follow(e.gate + "/headers")
	if !strings.Contains(page.body, `name="password"`) {
		t.Fatalf("after sign-out the IdP signed the user in silently: %d at %s", page.status, page.url)
	}
}

func TestSessionSurvivesRestartAndReload(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	e.signIn(c, "/headers", "alice", "alice-demo-pass")
	e.gw.restart(e.idp + "/.well-known/openid-configuration")
	e.waitForGate(t)
	if got := headersJSON(t, c.do("GET", e.gate+"/headers", nil)); got["X-Remote-User"] != "alice" {
		t.Fatalf("after restart: X-Remote-User = %q", got["X-Remote-User"])
	}
	cmd := exec.Command(binary, "reload", "--config", e.gw.config, "--adapter", "caddyfile", "--address", e.admin, "--force")
	cmd.Dir = e.gw.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if got := headersJSON(t, c.do("GET", e.gate+"/headers", nil)); got["X-Remote-User"] != "alice" {
		t.Fatalf("after reload: X-Remote-User = %q", got["X-Remote-User"])
	}
	// A new sign-in still works after the reload (the new config's gate is registered).
	c2 := newClient(t)
	if got := headersJSON(t, e.signIn(c2, "/headers", "bob", "bob-demo-pass")); got["X-Remote-User"] != "bob" {
		t.Fatalf("sign-in after reload: %q", got["X-Remote-User"])
	}
}

func TestLoginRefusedWithoutCSRF(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	page := c.follow(e.gate + "/headers")
	for name, token := range map[string][]string{"missing": nil, "wrong": {"AAAA"}} {
		v := url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}}
		form := formInputs(page.body)
		for k, val := range v {
			form[k] = val
		}
		if token == nil {
			form.Del("csrf_token")
		} else {
			form["csrf_token"] = token
		}
		m := actionRe.FindStringSubmatch(page.body)
		target, _ := page.url.Parse(unescape(m[1]))
		r := c.do("POST", target.String(), form)
		if r.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, r.status)
		}
		if c.cookie(e.idp, "zonegate_idp") != nil {
			t.Errorf("%s CSRF token: a session was started", name)
		}
	}
	// Wrong password and unknown user look the same.
	a := c.submitForm(page, url.Values{"username": {"alice"}, "password": {"wrong"}})
	page2 := c.follow(e.gate + "/headers")
	b := c.submitForm(page2, url.Values{"username": {"nobody"}, "password": {"wrong"}})
	if a.status != b.status || !strings.Contains(a.body, "Invalid username or password") || !strings.Contains(b.body, "Invalid username or password") {
		t.Errorf("wrong password %d and unknown user %d differ", a.status, b.status)
	}
}

func TestOIDCClientCodeAndPKCE(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, e.idp)
	if err != nil {
		t.Fatal(err)
	}
	conf := oauth2.Config{
		ClientID: "test-app", ClientSecret: "test-app-secret", Endpoint: provider.Endpoint(),
		RedirectURL: e.rp + "/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "email", "groups"},
	}
	verifier := oauth2.GenerateVerifier()
	state, nonce := randomString(), randomString()
	c := newClient(t)
	page := c.followUntil(conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), e.rp)
	r := c.submitForm(page, url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
	for i := 0; i < 10 && r.status >= 300 && r.status < 400 && !strings.HasPrefix(r.location(), e.rp); i++ {
		next, _ := r.url.Parse(r.location())
		r = c.do("GET", next.String(), nil)
	}
	cb, err := url.Parse(r.location())
	if err != nil || !strings.HasPrefix(r.location(), e.rp+"/callback") {
		t.Fatalf("not redirected to the client: %d %q", r.status, r.location())
	}
	if cb.Query().Get("state") != state {
		t.Fatalf("state %q, want %q", cb.Query().Get("state"), state)
	}
	code := cb.Query().Get("code")
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption("wrong-verifier-wrong-verifier-wrong-verifier")); err == nil {
		t.Fatal("exchange with a wrong PKCE verifier succeeded")
	}
	// The failed attempt used the code up; start again for the real exchange.
	page = c.followUntil(conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), e.rp)
	cb, _ = url.Parse(page.location())
	code = cb.Query().Get("code")
	if code == "" {
		t.Fatalf("single sign-on did not return a code: %d %q\n%s", page.status, page.location(), page.body)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := provider.VerifierContext(ctx, &oidc.Config{ClientID: "test-app"}).Verify(ctx, rawID)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		Nonce string   `json:"nonce"`
		AMR   []string `json:"amr"`
		SID   string   `json:"sid"`
	}
	idt.Claims(&claims)
	if claims.Nonce != nonce || idt.Subject != "alice" || len(claims.AMR) == 0 || claims.AMR[0] != "pwd" || claims.SID == "" {
		t.Errorf("ID token sub=%q claims=%+v", idt.Subject, claims)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != "alice@example.com" {
		t.Errorf("userinfo: %+v, %v", ui, err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
		t.Error("a replayed code was exchanged twice")
	}
	// A public client must use PKCE.
	spa := oauth2.Config{ClientID: "test-spa", Endpoint: provider.Endpoint(), RedirectURL: e.rp + "/spa", Scopes: []string{"openid"}}
	r = c.do("GET", spa.AuthCodeURL("s"), nil)
	if loc := r.location(); strings.Contains(loc, "code=") {
		t.Errorf("public client without PKCE got a code: %q", loc)
	}
}

func randomString() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestExampleCaddyfileValidates(t *testing.T) {
	root := repoRoot(t)
	for _, sub := range []string{"adapt", "validate"} {
		cmd := exec.Command(binary, sub, "--config", "Caddyfile.example", "--adapter", "caddyfile")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zonegate %s Caddyfile.example: %v\n%s", sub, err, out)
		}
	}
	// The compose files' configs adapt too, so they cannot rot unnoticed.
	for _, f := range []string{"docker/Caddyfile", "docker/backend.Caddyfile"} {
		cmd := exec.Command(binary, "adapt", "--config", f, "--adapter", "caddyfile")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PUBLIC_IDP=http://localhost:9091", "PUBLIC_GATE=http://localhost:9090")
		if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), `"level":"error"`) {
			t.Fatalf("zonegate adapt %s: %v\n%s", f, err, out)
		}
	}
	out, err := exec.Command(binary, "hash-password", "--plaintext", "s3cret-pass").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "$argon2id$") {
		t.Fatalf("hash-password: %v %s", err, out)
	}
}

// TestDisablingAUserEndsTheirSessions: when the users file disables bob, his open session is
// refused within a few seconds, without a restart or a reload of the config.
func TestDisablingAUserEndsTheirSessions(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	if got := headersJSON(t, e.signIn(c, "/headers", "bob", "bob-demo-pass")); got["X-Remote-User"] != "bob" {
		t.Fatalf("bob signed in: %v", got)
	}
	path := filepath.Join(e.gw.dir, "users.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "  bob:\n")
	j := strings.Index(string(b)[i:], "disabled: false")
	if i < 0 || j < 0 {
		t.Fatal("could not find bob's disabled field in the users file")
	}
	disabled := string(b)[:i+j] + "disabled: true" + string(b)[i+j+len("disabled: false"):]
	if err := os.WriteFile(path+".new", []byte(disabled), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := c.do("GET", e.gate+"/headers", nil, "Accept: application/json")
		if r.status != http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's session still works 15s after the users file disabled him")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(e.gw.logs(), "ended the sessions of a disabled or removed user") {
		t.Error("ending bob's sessions was not logged")
	}
}

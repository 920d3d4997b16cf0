package idp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/passkey"
)

func withPasskeys(t testing.TB) envOption {
	return func(c *Config) {
		m, err := passkey.New(c.Store, passkey.Settings{RPID: "localhost", Origins: []string{"http://localhost:9091"}}, c.Now)
		if err != nil {
			t.Fatalf("passkey.New: %v", err)
		}
		c.Passkeys = m
	}
}

// TestPasskeyFormsRefuse: the login page offers the passkey prompt (with its script allowed
// by the CSP and nothing else); the security key forms refuse a missing CSRF token, an answer
// that is not a valid assertion, and a pending sign-in that does not exist. None of them
// starts a session.
func TestPasskeyFormsRefuse(t *testing.T) {
	e := newEnv(t, withPasskeys(t))
	r := e.webRP()
	b := e.browser()
	login := b.get(r.start().url)
	if !strings.Contains(login.body, `id="zg-webauthn"`) || !strings.Contains(login.body, `autocomplete="username webauthn"`) {
		t.Fatalf("login page without the passkey prompt:\n%s", login.body)
	}
	if csp := login.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("login page CSP %q", csp)
	}
	fields := hiddenFields(t, login.body)
	if fields.Get("ceremony") == "" {
		t.Fatal("no ceremony on the login page")
	}

	tests := []struct {
		name   string
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"passkey without CSRF", pathLoginPasskey, url.Values{"authRequestID": {fields.Get("authRequestID")}, "ceremony": {fields.Get("ceremony")}, "credential": {"{}"}},
			http.StatusForbidden, msgFormExpired},
		{"passkey with a forged answer", pathLoginPasskey, func() url.Values {
			v := url.Values{}
			for k := range fields {
				v.Set(k, fields.Get(k))
			}
			v.Set("credential", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AAAA","signature":"AAAA"}}`)
			return v
		}(), http.StatusUnauthorized, msgKeyFailed},
		{"key step without CSRF", pathLoginWebAuthn, url.Values{"mfa": {"whatever"}, "credential": {"{}"}}, http.StatusForbidden, msgFormExpired},
		{"enroll without CSRF", pathLoginEnrollKey, url.Values{"mfa": {"whatever"}, "credential": {"{}"}}, http.StatusForbidden, msgFormExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := b.post(e.issuer+tt.path, tt.form)
			if p.status != tt.status || !strings.Contains(p.body, tt.want) {
				t.Fatalf("status %d, want %d with %q:\n%s", p.status, tt.status, tt.want, p.body)
			}
		})
	}
	if b.hasCookie(sessionCookie) {
		t.Fatal("a refused security key form started a session")
	}
	if !strings.Contains(e.logs.String(), "passkey sign-in refused") {
		t.Error("the forged passkey answer is not in the log")
	}
}

// TestEnrollmentLinkRefusals: a link is for an active user only, needs its token, gives
// itself back when the key is refused, refuses a form without CSRF, and expires.
func TestEnrollmentLinkRefusals(t *testing.T) {
	e := newEnv(t, withPasskeys(t))
	ctx := t.Context()
	if _, _, err := e.idp.CreateEnrollmentLink(ctx, "carol", "test", 0); err == nil {
		t.Error("a link for a disabled user was made")
	}
	link, _, err := e.idp.CreateEnrollmentLink(ctx, "bob", "test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	if p := b.get(e.issuer + pathEnroll + "?token=forged"); p.status != http.StatusBadRequest {
		t.Errorf("forged token: %d", p.status)
	}
	page := b.get(link)
	if page.status != http.StatusOK || !strings.Contains(page.body, `name="token"`) {
		t.Fatalf("the link's page: %d\n%s", page.status, page.body)
	}
	form := hiddenFields(t, page.body)
	form.Set("credential", `{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"AAAA"}}`)
	noCSRF := url.Values{"token": {form.Get("token")}, "credential": {"{}"}}
	if p := b.post(e.issuer+pathEnroll, noCSRF); p.status != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", p.status)
	}
	if p := b.post(e.issuer+pathEnroll, form); p.status != http.StatusBadRequest || !strings.Contains(p.body, msgKeyFailed) {
		t.Fatalf("a forged key: %d\n%s", p.status, p.body)
	}
	if p := b.get(link); p.status != http.StatusOK {
		t.Fatalf("after a refused key the link no longer works: %d", p.status)
	}
	e.clock.Advance(2 * time.Hour)
	if p := b.get(link); p.status != http.StatusBadRequest {
		t.Errorf("an expired link: %d", p.status)
	}
}

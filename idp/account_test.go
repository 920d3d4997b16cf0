package idp

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var accountCSRFRE = regexp.MustCompile(`name="` + csrfFieldName + `" value="([^"]+)"`)

// TestAccountPage: without a session /account starts a sign-in; with one it lists the
// authenticator app; its changes need the CSRF token and a recent sign-in, and removing the
// last authenticator asks to confirm first.
func TestAccountPage(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	secret := e.enroll("Phone")

	anon := e.browser()
	if p := anon.get(e.issuer + pathAccount); p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
		t.Fatalf("/account without a session: %d, want the sign-in form\n%s", p.status, p.body)
	}

	b := e.browser()
	r := e.webRP()
	f := r.start()
	r.exchange(r.code(b.submitOTP(passwordStep(t, b, f), e.totpCode(secret)), f), f)
	page := b.get(e.issuer + pathAccount)
	if page.status != http.StatusOK || !strings.Contains(page.body, "Phone") || !strings.Contains(page.body, "This browser") {
		t.Fatalf("/account: %d\n%s", page.status, page.body)
	}
	m := accountCSRFRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on /account:\n%s", page.body)
	}
	ids := regexp.MustCompile(`name="kind" value="totp"><input type="hidden" name="id" value="([^"]+)"`).FindStringSubmatch(page.body)
	if ids == nil {
		t.Fatalf("no authenticator id on /account:\n%s", page.body)
	}
	remove := url.Values{"action": {"remove"}, "kind": {"totp"}, "id": {ids[1]}}

	// No CSRF token: refused, nothing removed.
	if p := b.post(e.issuer+pathAccountAction, remove); p.status != http.StatusForbidden {
		t.Fatalf("remove without CSRF: %d", p.status)
	}
	remove.Set(csrfFieldName, m[1])
	// The last one: a confirmation first.
	p := b.post(e.issuer+pathAccountAction, remove)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Remove it anyway") {
		t.Fatalf("removing the last authenticator did not ask to confirm: %d\n%s", p.status, p.body)
	}
	// Eleven minutes later the sign-in is too old to change authenticators.
	e.clock.Advance(11 * time.Minute)
	remove.Set("confirm", "yes")
	if p := b.post(e.issuer+pathAccountAction, remove); p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgAccountNeedsFresh) {
		t.Fatalf("remove with an old sign-in: %d\n%s", p.status, p.body)
	}
	if devs, err := e.idp.totp.List(t.Context(), "u-alice"); err != nil || len(devs) != 1 {
		t.Fatalf("after the refusals alice has %v (%v), want her one authenticator", devs, err)
	}
}

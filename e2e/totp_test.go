package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var secretRe = regexp.MustCompile(`id="secret" value="([A-Z2-7=]+)"`)

// TestTOTPEnrollAndSignIn: alice adds an authenticator at the IdP, and from then on signing in
// to the gate asks for a code after the password; a wrong code is refused with the generic
// message, the right one lets her through.
func TestTOTPEnrollAndSignIn(t *testing.T) {
	e := startEnv(t)
	c := newClient(t)
	e.signIn(c, "/headers", "alice", "alice-demo-pass")

	page := c.do("GET", e.idp+"/account/totp", nil)
	m := secretRe.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("enrollment page: %d\n%s", page.status, page.body)
	}
	secret := m[1]
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	added := c.submitForm(page, url.Values{"otp": {code}, "name": {"alice's phone"}})
	if added.status != http.StatusOK || !strings.Contains(added.body, "Authenticator added") {
		t.Fatalf("confirming the authenticator: %d\n%s", added.status, added.body)
	}

	// A new browser: password, then the code form.
	c2 := newClient(t)
	login := c2.follow(e.gate + "/headers")
	step := c2.submitForm(login, url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
	if step.status != http.StatusOK || !strings.Contains(step.body, `name="otp"`) {
		t.Fatalf("after the password: %d, want the code form\n%s", step.status, step.body)
	}
	if c2.cookie(e.idp, "zonegate_idp") != nil {
		t.Fatal("a session was started before the second factor")
	}
	wrong := c2.submitForm(step, url.Values{"otp": {"000000"}})
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, "That code is not valid") {
		t.Fatalf("wrong code: %d\n%s", wrong.status, wrong.body)
	}
	// The next period's code (within the allowed skew): the current one was used to enroll.
	next, _ := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	final := c2.followFrom(c2.submitForm(wrong, url.Values{"otp": {next}}))
	if got := headersJSON(t, final); got["X-Remote-User"] != "alice" || got["X-Remote-Auth-Methods"] != "pwd,otp,mfa" {
		t.Fatalf("after the code: %v", got)
	}
	// The same code again, in another browser: refused.
	c3 := newClient(t)
	login = c3.follow(e.gate + "/headers")
	step = c3.submitForm(login, url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
	if r := c3.submitForm(step, url.Values{"otp": {next}}); r.status != http.StatusUnauthorized {
		t.Fatalf("a replayed code: %d, want 401", r.status)
	}
}

// TestStepUpForESignature: /esign/ needs a code from an authenticator, no older than five
// minutes. A user without an authenticator sets one up during that sign-in, right after the
// password, and goes on to the page; a user with a password-only session is stepped up (the
// password again, then the set-up); a user with an authenticator is asked for a code.
func TestStepUpForESignature(t *testing.T) {
	e := startEnv(t)

	// alice goes straight to an e-signature: password, then an authenticator set up in the
	// same sign-in, then the page.
	c := newClient(t)
	login := c.follow(e.gate + "/esign/batch-7/headers")
	enroll := c.submitForm(login, url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
	m := secretRe.FindStringSubmatch(enroll.body)
	if enroll.status != http.StatusOK || m == nil || !strings.Contains(enroll.body, `name="mfa"`) {
		t.Fatalf("after the password: %d, want the authenticator set-up in the sign-in\n%s", enroll.status, enroll.body)
	}
	if c.cookie(e.idp, "zonegate_idp") != nil {
		t.Fatal("a session was started before the authenticator was set up")
	}
	wrong := c.submitForm(enroll, url.Values{"otp": {"000000"}})
	if wrong.status != http.StatusBadRequest || !strings.Contains(wrong.body, "That code is not valid") {
		t.Fatalf("a wrong first code: %d\n%s", wrong.status, wrong.body)
	}
	code, _ := totp.GenerateCode(m[1], time.Now())
	final := c.followFrom(c.submitForm(wrong, url.Values{"otp": {code}}))
	got := headersJSON(t, final)
	if got["X-Remote-User"] != "alice" || got["X-Remote-Auth-Methods"] != "pwd,otp,mfa" || final.url.Path != "/esign/batch-7/headers" {
		t.Fatalf("after setting up the authenticator: %v at %s", got, final.url)
	}

	// bob signs in to an ordinary page with his password, then opens an e-signature: the gate
	// sends him to sign in again, and he sets up an authenticator on the way.
	b := newClient(t)
	if got := headersJSON(t, e.signIn(b, "/headers", "bob", "bob-demo-pass")); got["X-Remote-Auth-Methods"] != "pwd" {
		t.Fatalf("bob's ordinary page: %v", got)
	}
	again := b.follow(e.gate + "/esign/batch-8/headers")
	if !strings.Contains(again.body, `name="password"`) {
		t.Fatalf("step-up did not ask for the password again: %d at %s", again.status, again.url)
	}
	enroll = b.submitForm(again, url.Values{"username": {"bob"}, "password": {"bob-demo-pass"}})
	mb := secretRe.FindStringSubmatch(enroll.body)
	if mb == nil {
		t.Fatalf("bob's step-up did not set up an authenticator: %d\n%s", enroll.status, enroll.body)
	}
	code, _ = totp.GenerateCode(mb[1], time.Now())
	final = b.followFrom(b.submitForm(enroll, url.Values{"otp": {code}}))
	if got := headersJSON(t, final); got["X-Remote-Auth-Methods"] != "pwd,otp,mfa" || final.url.Path != "/esign/batch-8/headers" {
		t.Fatalf("bob after the step-up: %v at %s", got, final.url)
	}

	// alice in a new browser: password, then the code form (no second set-up).
	c2 := newClient(t)
	step := c2.submitForm(c2.follow(e.gate+"/esign/batch-9/headers"), url.Values{"username": {"alice"}, "password": {"alice-demo-pass"}})
	if !strings.Contains(step.body, `name="otp"`) || secretRe.MatchString(step.body) {
		t.Fatalf("alice's next sign-in: %d, want the code form\n%s", step.status, step.body)
	}
	next, _ := totp.GenerateCode(m[1], time.Now().Add(30*time.Second))
	final = c2.followFrom(c2.submitForm(step, url.Values{"otp": {next}}))
	if got := headersJSON(t, final); got["X-Remote-User"] != "alice" || final.url.Path != "/esign/batch-9/headers" {
		t.Fatalf("alice with her code: %v at %s", got, final.url)
	}
}

package idp

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/zonegate/zonegate/totp"
)

// withTOTP turns the second factor on, showing the secret so tests can compute codes.
func withTOTP(t testing.TB) envOption {
	return func(c *Config) {
		m, err := totp.New(c.Store, totp.Settings{ShowSecret: true}, c.Now)
		if err != nil {
			t.Fatalf("totp.New: %v", err)
		}
		c.TOTP = m
	}
}

// totpCode is the code of secret at the test clock's time.
func (e *env) totpCode(secret string) string {
	e.t.Helper()
	c, err := pqtotp.GenerateCodeCustom(secret, e.clock.Now(), pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatalf("generating a code: %v", err)
	}
	return c
}

var secretRE = regexp.MustCompile(`id="secret" value="([A-Z2-7]+)"`)

func isOTPForm(p page) bool {
	return strings.Contains(p.body, `name="otp"`) && strings.Contains(p.body, `name="mfa"`)
}

// enroll signs alice in with her password (in a fresh browser) and adds an authenticator
// named name at /account/totp; it returns the device's secret. The clock then moves to the
// next time step, so the confirming code is not the next sign-in's.
func (e *env) enroll(name string) string {
	e.t.Helper()
	b := e.browser()
	r := e.webRP()
	f := r.start()
	r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	p := b.get(e.issuer + pathAccountTOTP)
	if p.status != http.StatusOK {
		e.t.Fatalf("GET /account/totp: status %d:\n%s", p.status, p.body)
	}
	m := secretRE.FindStringSubmatch(p.body)
	if m == nil {
		e.t.Fatalf("no secret on the enrollment page:\n%s", p.body)
	}
	if !strings.Contains(p.body, `src="data:image/png;base64,`) {
		e.t.Error("no inline QR code on the enrollment page")
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data:") {
		e.t.Errorf("enrollment page CSP %q does not allow the data: QR image", csp)
	}
	form := hiddenFields(e.t, p.body)
	form.Set("name", name)
	form.Set("otp", e.totpCode(m[1]))
	done := b.post(e.issuer+pathAccountTOTP, form)
	if done.status != http.StatusOK || !strings.Contains(done.body, "Authenticator added") {
		e.t.Fatalf("confirming the enrollment: status %d:\n%s", done.status, done.body)
	}
	e.clock.Advance(30 * time.Second)
	return m[1]
}

// passwordStep runs authorize and the password form for alice in b and returns the code form.
func passwordStep(t *testing.T, b *browser, f flow) page {
	t.Helper()
	p := b.submitLogin(b.get(f.url), "alice", "alice-password")
	if p.status != http.StatusOK || !isOTPForm(p) {
		t.Fatalf("after the password: want the code form, got %d at %s:\n%s", p.status, p.url, p.body)
	}
	return p
}

func (b *browser) submitOTP(p page, code string) page {
	b.t.Helper()
	form := hiddenFields(b.t, p.body)
	form.Set("otp", code)
	return b.post(b.issuer.String()+pathLoginOTP, form)
}

func amrOf(t *testing.T, r *rp, code string, f flow) []string {
	t.Helper()
	_, idt := r.exchange(code, f)
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c.AMR
}

// TestTOTPNoDevicesPasswordOnly: with the feature on, a user without a device signs in
// with the password alone.
func TestTOTPNoDevicesPasswordOnly(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	r := e.webRP()
	b := e.browser()
	f := r.start()
	if got := amrOf(t, r, b.signIn(r, f, "alice", "alice-password"), f); !slices.Equal(got, []string{"pwd"}) {
		t.Errorf("amr = %q, want [pwd]", got)
	}
}

func TestTOTPSignIn(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	secret := e.enroll("Phone")
	devs, err := e.idp.totp.List(t.Context(), "u-alice")
	if err != nil || len(devs) != 1 || devs[0].Name != "Phone" {
		t.Fatalf("devices after enrollment: %+v, %v", devs, err)
	}

	r := e.webRP()
	b := e.browser()
	f := r.start()
	otpForm := passwordStep(t, b, f)
	if b.hasCookie(sessionCookie) {
		t.Error("SSO session started before the code")
	}
	if !strings.Contains(otpForm.body, "Enter the code from your authenticator app") {
		t.Error("code form lacks its prompt")
	}

	// A wrong code: the same form, the generic error, a new pending record.
	wrong := b.submitOTP(otpForm, "000000")
	if wrong.status != http.StatusUnauthorized || !isOTPForm(wrong) || !strings.Contains(wrong.body, msgInvalidCode) {
		t.Fatalf("wrong code: status %d:\n%s", wrong.status, wrong.body)
	}
	if !strings.Contains(e.logs.String(), "reason=invalid_code") {
		t.Error("wrong code not logged with reason invalid_code")
	}
	oldID, newID := hiddenFields(t, otpForm.body).Get("mfa"), hiddenFields(t, wrong.body).Get("mfa")
	if oldID == newID {
		t.Error("wrong code kept the same pending id")
	}

	// The first form's record is used up, even with the right code.
	if p := b.submitOTP(otpForm, e.totpCode(secret)); p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired or was already used") {
		t.Fatalf("reused pending record: status %d:\n%s", p.status, p.body)
	}

	code := e.totpCode(secret)
	amr := amrOf(t, r, r.code(b.submitOTP(wrong, code), f), f)
	for _, m := range []string{"pwd", "otp", "mfa"} {
		if !slices.Contains(amr, m) {
			t.Errorf("amr = %q, missing %q", amr, m)
		}
	}
	if !b.hasCookie(sessionCookie) {
		t.Error("no SSO session after the code")
	}

	// The same code again, in another sign-in: refused as replayed, with the same answer.
	b2 := e.browser()
	f2 := r.start()
	replay := b2.submitOTP(passwordStep(t, b2, f2), code)
	if replay.status != http.StatusUnauthorized || !isOTPForm(replay) || !strings.Contains(replay.body, msgInvalidCode) {
		t.Fatalf("replayed code: status %d:\n%s", replay.status, replay.body)
	}
	if !strings.Contains(e.logs.String(), "reason=replayed") {
		t.Error("replayed code not logged with reason replayed")
	}
	// SSO from the MFA session keeps its amr.
	s := e.spaRP()
	f3 := s.start()
	if got := amrOf(t, s, s.code(b.get(f3.url), f3), f3); !slices.Equal(got, []string{"pwd", "otp", "mfa"}) {
		t.Errorf("SSO amr = %q", got)
	}
}

func TestTOTPCodeFormCSRF(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	secret := e.enroll("Phone")
	r := e.webRP()
	b := e.browser()
	f := r.start()
	otpForm := passwordStep(t, b, f)

	tests := []struct {
		name  string
		token string
	}{
		{"missing", ""},
		{"forged", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := hiddenFields(t, otpForm.body)
			form.Set(csrfFieldName, tc.token)
			form.Set("otp", e.totpCode(secret))
			p := b.post(e.issuer+pathLoginOTP, form)
			if p.status != http.StatusForbidden || !isOTPForm(p) || !strings.Contains(p.body, msgFormExpired) {
				t.Fatalf("status %d:\n%s", p.status, p.body)
			}
		})
	}
	if b.hasCookie(sessionCookie) {
		t.Fatal("session started without a CSRF token")
	}
	// The refused posts tried no code: the record still works.
	if amr := amrOf(t, r, r.code(b.submitOTP(otpForm, e.totpCode(secret)), f), f); !slices.Contains(amr, "otp") {
		t.Errorf("amr = %q", amr)
	}
}

func TestTOTPTooManyWrongCodes(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	e.enroll("Phone")
	r := e.webRP()
	b := e.browser()
	p := passwordStep(t, b, r.start())
	for i := 1; i < maxOTPFailures; i++ {
		p = b.submitOTP(p, "000000")
		if !isOTPForm(p) || !strings.Contains(p.body, msgInvalidCode) {
			t.Fatalf("wrong code %d: status %d:\n%s", i, p.status, p.body)
		}
	}
	p = b.submitOTP(p, "000000")
	if p.status != http.StatusUnauthorized || !isLoginForm(p) || !strings.Contains(p.body, msgTooManyCodes) {
		t.Fatalf("wrong code %d: want the password form, got %d:\n%s", maxOTPFailures, p.status, p.body)
	}
}

// TestTOTPWrongCodesLockAccount: wrong codes count toward the username's lockout, and a
// locked account's right code is answered as a wrong one.
func TestTOTPWrongCodesLockAccount(t *testing.T) {
	e := newEnv(t, withTOTP(t), func(c *Config) { c.BruteForce.UserMaxFailures = 3 })
	secret := e.enroll("Phone")
	r := e.webRP()
	b := e.browser()
	p := passwordStep(t, b, r.start())
	for range 3 {
		p = b.submitOTP(p, "000000")
	}
	p = b.submitOTP(p, e.totpCode(secret))
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgInvalidCode) {
		t.Fatalf("right code on a locked account: status %d:\n%s", p.status, p.body)
	}
	if !strings.Contains(e.logs.String(), "reason="+reasonLockedOut) {
		t.Error("locked-out code not logged as locked_out")
	}
	if b.hasCookie(sessionCookie) {
		t.Error("locked account got a session")
	}
}

func TestTOTPEnrollNeedsFreshSession(t *testing.T) {
	e := newEnv(t, withTOTP(t))

	anon := e.browser()
	if p := anon.get(e.issuer + pathAccountTOTP); p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgSignInFirst) {
		t.Errorf("no session: status %d:\n%s", p.status, p.body)
	}

	b := e.browser()
	r := e.webRP()
	f := r.start()
	r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	page := b.get(e.issuer + pathAccountTOTP)
	if page.status != http.StatusOK {
		t.Fatalf("fresh session: status %d", page.status)
	}
	form := hiddenFields(t, page.body)
	secret := secretRE.FindStringSubmatch(page.body)[1]

	// No CSRF token.
	noCSRF := url.Values{"pending": {form.Get("pending")}, "otp": {e.totpCode(secret)}}
	if p := b.post(e.issuer+pathAccountTOTP, noCSRF); p.status != http.StatusForbidden {
		t.Errorf("enrollment without CSRF: status %d", p.status)
	}
	// A wrong code keeps the enrollment pending.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("otp", "000000")
	if p := b.post(e.issuer+pathAccountTOTP, bad); p.status != http.StatusBadRequest || !strings.Contains(p.body, msgEnrollBadCode) {
		t.Errorf("wrong enrollment code: status %d:\n%s", p.status, p.body)
	}

	// Eleven minutes later the password is too old.
	e.clock.Advance(enrollFreshness + time.Minute)
	if p := b.get(e.issuer + pathAccountTOTP); p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgSignInAgain) {
		t.Errorf("stale session GET: status %d:\n%s", p.status, p.body)
	}
	form.Set("otp", e.totpCode(secret))
	if p := b.post(e.issuer+pathAccountTOTP, form); p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgSignInAgain) {
		t.Errorf("stale session POST: status %d:\n%s", p.status, p.body)
	}
	if devs, err := e.idp.totp.List(t.Context(), "u-alice"); err != nil || len(devs) != 0 {
		t.Errorf("devices = %+v, %v; want none", devs, err)
	}
}

// TestTOTPOff: without Config.TOTP there is no enrollment page or code step.
func TestTOTPOff(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := e.webRP()
	f := r.start()
	if got := amrOf(t, r, b.signIn(r, f, "alice", "alice-password"), f); !slices.Equal(got, []string{"pwd"}) {
		t.Errorf("amr = %q, want [pwd]", got)
	}
	if p := b.get(e.issuer + pathAccountTOTP); p.status != http.StatusNotFound {
		t.Errorf("GET /account/totp: status %d, want 404", p.status)
	}
	if p := b.post(e.issuer+pathLoginOTP, url.Values{"mfa": {"x"}, "otp": {"123456"}}); p.status == http.StatusOK || p.status/100 == 3 {
		t.Errorf("POST /login/otp: status %d", p.status)
	}
}

// TestLoginPageCSPNoDataImages: only the enrollment page may show data: images.
func TestLoginPageCSPNoDataImages(t *testing.T) {
	e := newEnv(t, withTOTP(t))
	r := e.webRP()
	p := e.browser().get(r.start().url)
	if csp := p.header.Get("Content-Security-Policy"); strings.Contains(csp, "img-src") {
		t.Errorf("login page CSP %q allows images", csp)
	}
}

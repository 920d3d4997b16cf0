package idp

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/store"
)

// Paths of the security key pages.
const (
	pathLoginPasskey      = "/login/passkey"         // a sign-in that starts with a passkey (no username)
	pathLoginWebAuthn     = "/login/webauthn"        // the security key step after the password
	pathLoginEnrollKey    = "/login/webauthn/enroll" // a first security key set up during a sign-in
	pathAssetsWebAuthnJS  = "/assets/webauthn.js"
	csrfPurposeWebAuthn   = "webauthn"
	defaultKeyName        = "Security key"
	msgKeyFailed          = "That security key did not work. Try again, or use another key."
	msgKeyCancelled       = "The security key prompt was closed. Try again."
	msgPasskeyUnavailable = "Signing in with a passkey is not available for this account. Sign in with your username and password."
	msgKeyNotAllowed      = "This kind of security key is not allowed here. Use a key your organisation issued."
	msgTooManyKeys        = "You already have the most security keys allowed. Remove one before adding another."
	msgKeyExpired         = "The security key prompt expired. Try again."
)

// step is what a sign-in needs next after the factors it has proven.
type step int

const (
	stepDone      step = iota
	stepOTP            // a code from an authenticator app
	stepKey            // a security key or passkey the user has
	stepEnrollKey      // setting up a first security key, then on
	stepEnrollOTP      // setting up a first authenticator app, then on
)

// webauthnPage is the content of the security key pages.
type webauthnPage struct {
	// Mode is "get" (use a key), "create" (set one up) or "passkey" (the login page's
	// username-less button and autofill).
	Mode string
	// Options is the JSON the browser's WebAuthn API takes, from the passkey package.
	Options template.JS
	// Ceremony names the server-side state of this prompt.
	Ceremony string
	// Action is where the form posts.
	Action string
	// MFAID is the pending sign-in (get and create modes).
	MFAID string
	// OTPFallback offers the authenticator app instead of the key.
	OTPFallback bool
	// KeyName is the proposed name of a key being set up.
	KeyName string
	// Token is the one-time enrollment link's token (POST /enroll).
	Token string
}

// nextStep decides what the sign-in in m needs next: a user's enrolled second factor is
// always asked for (a security key first, a code when the request asks for one), then
// whatever the request's acr_values still lack, setting up a first security key when that is
// what is missing. Each step adds a factor, so a sign-in takes at most a few.
func (p *IdP) nextStep(ctx context.Context, a *authRequest, m mfaPending) (step, error) {
	have := amrSet(m.methods())
	need := acrSet(a.ACRValues).missing(have)
	var keys, codes int
	if p.passkeys != nil {
		creds, err := p.passkeys.List(ctx, m.UserID)
		if err != nil {
			return stepDone, fmt.Errorf("listing security keys: %w", err)
		}
		keys = len(creds)
	}
	if p.totp != nil {
		devs, err := p.totp.List(ctx, m.UserID)
		if err != nil {
			return stepDone, fmt.Errorf("listing authenticators: %w", err)
		}
		codes = len(devs)
	}
	if !have.twoFactors() {
		switch {
		case keys > 0 && !have.webauthn && (need.webauthn || !need.otp || codes == 0):
			return stepKey, nil
		case codes > 0 && !have.otp:
			return stepOTP, nil
		}
	}
	switch {
	case (need.webauthn || need.uv) && keys > 0:
		return stepKey, nil
	case need.webauthn && p.passkeys != nil:
		return stepEnrollKey, nil
	case need.otp && codes > 0:
		return stepOTP, nil
	case need.otp && p.totp != nil && have.password:
		return stepEnrollOTP, nil
	case need.mfa && keys == 0 && p.passkeys != nil:
		return stepEnrollKey, nil
	case need.mfa && codes == 0 && p.totp != nil && have.password:
		return stepEnrollOTP, nil
	}
	return stepDone, nil
}

// proceed takes a sign-in whose latest factor was just proven to its next step, or finishes
// it. at is the sign-in attempt of the password form when its failures are still counted
// (nil once they were cleared).
func (p *IdP) proceed(w http.ResponseWriter, r *http.Request, a *authRequest, u directory.User, at *loginAttempt, m mfaPending) {
	ctx := r.Context()
	next, err := p.nextStep(ctx, a, m)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: planning the sign-in", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	if next == stepDone {
		if at != nil && !p.loginSucceeded(w, r, a, at) {
			return
		}
		amr := withMFA(m.methods())
		p.log.InfoContext(ctx, "idp: signed in", slog.String("username", u.Username), slog.String("amr", strings.Join(amr, " ")),
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr))
		p.signedIn(w, r, a, u, amr, m.PasswordTime)
		return
	}
	m.ExpiresAt = p.now().Add(mfaPendingLifetime)
	m.Failures = 0
	m, err = p.savePending(ctx, m)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: continuing the sign-in", slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	switch next {
	case stepOTP:
		p.log.InfoContext(ctx, "idp: code required", slog.String("username", u.Username),
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr))
		p.showOTP(w, r, http.StatusOK, a, m.ID, "")
	case stepKey:
		p.log.InfoContext(ctx, "idp: security key required", slog.String("username", u.Username),
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr))
		p.showKeyStep(w, r, http.StatusOK, a, u, m, "")
	case stepEnrollKey:
		p.log.InfoContext(ctx, "idp: security key enrollment required by the request", slog.String("username", u.Username),
			slog.String("client_id", a.ClientID), slog.Any("acr_values", a.ACRValues))
		p.showEnrollKey(w, r, http.StatusOK, a, u, m, "")
	case stepEnrollOTP:
		p.log.InfoContext(ctx, "idp: authenticator app enrollment required by the request", slog.String("username", u.Username),
			slog.String("client_id", a.ClientID), slog.Any("acr_values", a.ACRValues))
		p.startEnrollOTP(w, r, a, u, m)
	}
}

// passkeyUser is u as the passkey package sees it.
func passkeyUser(u directory.User) passkey.User {
	return passkey.User{ID: u.ID, Name: u.Username, DisplayName: u.Name}
}

// showKeyStep renders the page that asks for one of the user's security keys.
func (p *IdP) showKeyStep(w http.ResponseWriter, r *http.Request, status int, a *authRequest, u directory.User, m mfaPending, errMsg string) {
	ctx := r.Context()
	begin := p.passkeys.BeginLogin
	if acrSet(a.ACRValues).uv {
		begin = p.passkeys.BeginVerifiedLogin // the request asks for a key that verifies its user
	}
	ceremony, opts, err := begin(ctx, u.ID)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting a security key prompt", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	codes := false
	if p.totp != nil && !amrSet(m.methods()).otp && !acrSet(a.ACRValues).webauthn {
		devs, err := p.totp.List(ctx, u.ID)
		codes = err == nil && len(devs) > 0
	}
	p.renderKeyPage(w, r, status, "webauthn", a, "Use your security key", errMsg, &webauthnPage{
		Mode: "get", Options: template.JS(opts), Ceremony: ceremony, Action: pathLoginWebAuthn,
		MFAID: m.ID, OTPFallback: codes,
	})
}

// showEnrollKey renders the page that sets up a first security key during a sign-in.
func (p *IdP) showEnrollKey(w http.ResponseWriter, r *http.Request, status int, a *authRequest, u directory.User, m mfaPending, errMsg string) {
	ctx := r.Context()
	ceremony, opts, err := p.passkeys.BeginRegistration(ctx, passkeyUser(u))
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting a security key setup", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	p.renderKeyPage(w, r, status, "webauthn_enroll", a, "Set up a security key", errMsg, &webauthnPage{
		Mode: "create", Options: template.JS(opts), Ceremony: ceremony, Action: pathLoginEnrollKey,
		MFAID: m.ID, KeyName: defaultKeyName,
	})
}

func (p *IdP) renderKeyPage(w http.ResponseWriter, r *http.Request, status int, tmpl string, a *authRequest, title, errMsg string, wp *webauthnPage) {
	d := pageData{
		Title:     title,
		Error:     errMsg,
		CSRFToken: p.csrf.Token(w, r, csrfPurposeWebAuthn),
		WebAuthn:  wp,
		scripts:   true,
	}
	if a != nil {
		d.ClientID = destination(a)
		p.render(w, r, status, tmpl, d, a.RedirectURI)
		return
	}
	p.render(w, r, status, tmpl, d)
}

// keyForm reads a security key form: CSRF, the pending sign-in (taken: single use), its
// auth request and user. When it cannot, it has answered.
func (p *IdP) keyForm(w http.ResponseWriter, r *http.Request) (*authRequest, directory.User, mfaPending, bool) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Sign in", "The sign-in form could not be read.", "")
		return nil, directory.User{}, mfaPending{}, false
	}
	if err := p.csrf.Check(r, csrfPurposeWebAuthn); err != nil {
		p.log.InfoContext(ctx, "idp: security key form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusForbidden, "Sign in", msgFormExpired, "")
		return nil, directory.User{}, mfaPending{}, false
	}
	m, err := p.mfaPendings().Take(ctx, r.PostFormValue("mfa"))
	if errors.Is(err, store.ErrNotFound) || r.PostFormValue("mfa") == "" {
		p.mfaGone(w, r)
		return nil, directory.User{}, mfaPending{}, false
	}
	if err != nil {
		p.log.ErrorContext(ctx, "idp: loading the pending sign-in", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return nil, directory.User{}, mfaPending{}, false
	}
	a, ok := p.loadAuthRequest(w, r, m.AuthRequestID)
	if !ok {
		return nil, directory.User{}, mfaPending{}, false
	}
	u, err := p.storage.activeUser(m.Username, m.UserID)
	if err != nil {
		p.log.InfoContext(ctx, "idp: sign-in failed: user gone or disabled during the sign-in",
			slog.String("username", m.Username), slog.String("client_id", a.ClientID))
		p.showLogin(w, r, http.StatusUnauthorized, a, m.Username, msgInvalidCredentials)
		return nil, directory.User{}, mfaPending{}, false
	}
	return a, u, m, true
}

// handleKeySubmit serves POST /login/webauthn: the assertion of one of the user's keys.
func (p *IdP) handleKeySubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, u, m, ok := p.keyForm(w, r)
	if !ok {
		return
	}
	if r.PostFormValue("use") == "otp" {
		// The person chose the authenticator app instead; nothing was proven.
		m2, err := p.savePending(ctx, m)
		if err != nil {
			p.log.ErrorContext(ctx, "idp: continuing the sign-in", slog.Any("error", err))
			p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
			return
		}
		p.showOTP(w, r, http.StatusOK, a, m2.ID, "")
		return
	}
	at, ok := p.admitLogin(w, r, a, u.Username)
	if !ok {
		return
	}
	as, err := p.passkeys.FinishLogin(ctx, r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")))
	if err == nil && as.UserID != u.ID {
		err = fmt.Errorf("the key belongs to another user: %w", passkey.ErrWrongUser)
	}
	if err == nil && at.locked {
		err = errLockedOut
	}
	if err != nil {
		p.keyFailed(w, r, a, u, at, m, err)
		return
	}
	p.log.InfoContext(ctx, "idp: security key accepted", slog.String("username", u.Username),
		slog.String("credential", as.Credential.Name), slog.Bool("user_verified", as.UserVerified))
	p.observeSignIn(amrHardwareKey, "success")
	m.AMR = append(m.methods(), as.AMR()...)
	p.proceed(w, r, a, u, at, m)
}

// errLockedOut stands for a right key presented while the account is locked out: refused
// like a wrong one.
var errLockedOut = errors.New("account locked out")

// keyReason is the reason of a refused key for logs and metrics.
func keyReason(err error) string {
	if errors.Is(err, errLockedOut) {
		return reasonLockedOut
	}
	return passkey.Reason(err)
}

// keyFailed logs a refused key, counts it against the username (the password form's
// lockout) and shows the prompt again under a new pending record, or the password form
// after maxOTPFailures.
func (p *IdP) keyFailed(w http.ResponseWriter, r *http.Request, a *authRequest, u directory.User, at *loginAttempt, m mfaPending, err error) {
	ctx := r.Context()
	reason := keyReason(err)
	if reason == "error" {
		p.log.ErrorContext(ctx, "idp: checking a security key", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	m.Failures++
	level := slog.LevelInfo
	if reason == "clone_warning" {
		level = slog.LevelWarn
	}
	p.log.Log(ctx, level, "idp: security key refused", slog.String("username", u.Username), slog.String("reason", reason),
		slog.Int("failures", m.Failures), slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr),
		slog.String("error", err.Error()))
	p.observeSignIn(amrHardwareKey, reason)
	p.emit(ctx, r, Event{Type: "user.authentication.auth_via_mfa", Outcome: "FAILURE", Reason: reason, UserID: u.ID, Username: u.Username, ClientID: a.ClientID, Details: map[string]string{"factor": "webauthn"}})
	if !p.loginFailed(w, r, a, at) {
		return
	}
	if m.Failures >= maxOTPFailures {
		p.showLogin(w, r, http.StatusUnauthorized, a, u.Username, "Too many failed security key attempts. Sign in again.")
		return
	}
	next, serr := p.savePending(ctx, m)
	if serr != nil {
		p.log.ErrorContext(ctx, "idp: continuing the sign-in", slog.Any("error", serr))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	p.showKeyStep(w, r, http.StatusUnauthorized, a, u, next, keyMessage(err))
}

// keyMessage is what a person is told about a refused key.
func keyMessage(err error) string {
	switch {
	case errors.Is(err, passkey.ErrAAGUIDNotAllowed):
		return msgKeyNotAllowed
	case errors.Is(err, passkey.ErrCeremonyExpired):
		return msgKeyExpired
	case errors.Is(err, passkey.ErrTooManyCredentials):
		return msgTooManyKeys
	}
	return msgKeyFailed
}

// handleEnrollKeySubmit serves POST /login/webauthn/enroll: a first key set up during a
// sign-in the request needs it for. The password was checked moments ago (the pending
// record lives five minutes), which is the fresh sign-in enrollment asks for.
func (p *IdP) handleEnrollKeySubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, u, m, ok := p.keyForm(w, r)
	if !ok {
		return
	}
	if !amrSet(m.methods()).password {
		p.log.WarnContext(ctx, "idp: security key setup refused: no password in this sign-in", slog.String("username", u.Username))
		p.showLogin(w, r, http.StatusUnauthorized, a, u.Username, msgSignInAgain)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = defaultKeyName
	}
	cred, err := p.passkeys.FinishRegistration(ctx, passkeyUser(u), r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")), name)
	if err != nil {
		reason := passkey.Reason(err)
		if reason == "error" {
			p.log.ErrorContext(ctx, "idp: saving a security key", slog.String("username", u.Username), slog.Any("error", err))
			p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
			return
		}
		p.log.InfoContext(ctx, "idp: security key setup refused", slog.String("username", u.Username),
			slog.String("reason", reason), slog.String("error", err.Error()))
		next, serr := p.savePending(ctx, m)
		if serr != nil {
			p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
			return
		}
		p.showEnrollKey(w, r, http.StatusBadRequest, a, u, next, keyMessage(err))
		return
	}
	p.log.InfoContext(ctx, "idp: security key added", slog.String("event", "user.mfa.factor.activate"),
		slog.String("username", u.Username), slog.String("credential", cred.Name), slog.String("aaguid", cred.AAGUID))
	p.emit(ctx, r, Event{Type: "user.mfa.factor.activate", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username,
		Details: map[string]string{"factor": "webauthn", "name": cred.Name, "aaguid": cred.AAGUID}})
	// The person holds the key they just made: it counts as the factor of this sign-in.
	m.AMR = append(m.methods(), credentialAMR(cred)...)
	p.proceed(w, r, a, u, nil, m)
}

// credentialAMR is what setting up cred proves: possession of a device-bound (hwk) or synced
// (swk) key.
func credentialAMR(c passkey.Credential) []string {
	if c.BackupEligible {
		return []string{amrSoftwareKey}
	}
	return []string{amrHardwareKey}
}

// passkeyLogin returns the login page's username-less sign-in prompt, or nil when passkeys
// are off or the prompt could not be prepared (the password form still works).
func (p *IdP) passkeyLogin(ctx context.Context) *webauthnPage {
	if p.passkeys == nil {
		return nil
	}
	ceremony, opts, err := p.passkeys.BeginLogin(ctx, "")
	if err != nil {
		p.log.WarnContext(ctx, "idp: preparing the passkey prompt", slog.Any("error", err))
		return nil
	}
	return &webauthnPage{Mode: "passkey", Options: template.JS(opts), Ceremony: ceremony, Action: pathLoginPasskey}
}

// handlePasskeySubmit serves POST /login/passkey: a sign-in with a passkey alone. The key
// must have verified its user (PIN or biometric), which makes it two factors by itself.
func (p *IdP) handlePasskeySubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p.loginHeaders(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Sign in", "The sign-in form could not be read.", "")
		return
	}
	a, ok := p.loadAuthRequest(w, r, r.PostFormValue("authRequestID"))
	if !ok {
		return
	}
	if err := p.csrf.Check(r, csrfPurposeLogin); err != nil {
		p.log.InfoContext(ctx, "idp: passkey form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		p.showLogin(w, r, http.StatusForbidden, a, "", msgFormExpired)
		return
	}
	at, ok := p.admitLogin(w, r, a, "")
	if !ok {
		return
	}
	as, err := p.passkeys.FinishLogin(ctx, r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")))
	if err == nil && !as.UserVerified {
		err = fmt.Errorf("a passkey sign-in needs user verification: %w", passkey.ErrUserVerificationRequired)
	}
	var u directory.User
	if err == nil {
		var found bool
		u, found = p.users.LookupID(as.UserID)
		if !found || u.Disabled {
			p.log.InfoContext(ctx, "idp: passkey sign-in failed: user gone or disabled", slog.String("user_id", as.UserID))
			p.observeSignIn(amrHardwareKey, "disabled")
			p.showLogin(w, r, http.StatusUnauthorized, a, "", msgPasskeyUnavailable)
			return
		}
	}
	if err != nil {
		reason := passkey.Reason(err)
		if reason == "error" {
			p.log.ErrorContext(ctx, "idp: checking a passkey", slog.Any("error", err))
			p.showLogin(w, r, http.StatusServiceUnavailable, a, "", msgUnavailable)
			return
		}
		level := slog.LevelInfo
		if reason == "clone_warning" {
			level = slog.LevelWarn
		}
		p.log.Log(ctx, level, "idp: passkey sign-in refused", slog.String("reason", reason),
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr), slog.String("error", err.Error()))
		p.emit(ctx, r, Event{Type: "user.session.start", Outcome: "FAILURE", Reason: reason, ClientID: a.ClientID, Details: map[string]string{"factor": "passkey"}})
		p.observeSignIn(amrHardwareKey, reason)
		if !p.loginFailed(w, r, a, at) {
			return
		}
		msg := keyMessage(err)
		if errors.Is(err, passkey.ErrUnknownCredential) || errors.Is(err, passkey.ErrUserVerificationRequired) {
			msg = msgPasskeyUnavailable
		}
		p.showLogin(w, r, http.StatusUnauthorized, a, "", msg)
		return
	}
	p.observeSignIn(amrHardwareKey, "success")
	p.log.InfoContext(ctx, "idp: passkey accepted", slog.String("username", u.Username), slog.String("credential", as.Credential.Name))
	p.proceed(w, r, a, u, at, mfaPending{
		UserID: u.ID, Username: u.Username, AuthRequestID: a.ID,
		PasswordTime: p.now().UTC(), AMR: as.AMR(),
	})
}

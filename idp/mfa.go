package idp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/websession"
)

// Paths of the second-factor pages.
const (
	pathLoginOTP    = "/login/otp"
	pathAccountTOTP = "/account/totp"
	pathLoginEnroll = "/login/otp/enroll" // a first authenticator app set up during a sign-in
)

const (
	csrfPurposeMFA        = "mfa"
	csrfPurposeTOTPEnroll = "totp-enroll"

	amrOTP = "otp"
	amrMFA = "mfa"

	// kindMFAPending holds a sign-in whose password was right and whose code is awaited.
	kindMFAPending store.Kind = "mfapending"
	// mfaPendingLifetime is how long the code form stays usable after the password, for the
	// whole chain of retries.
	mfaPendingLifetime = 5 * time.Minute
	// maxOTPFailures is how many wrong codes one password entry allows; then the password
	// must be entered again.
	maxOTPFailures = 5
	// enrollFreshness is how recent the password must be to add an authenticator.
	enrollFreshness = 10 * time.Minute
	// defaultDeviceName names a device whose owner gave it no name.
	defaultDeviceName = "Authenticator app"
)

// Messages of the second-factor pages.
const (
	msgInvalidCode    = "That code is not valid. Try the next one."
	msgTooManyCodes   = "Too many wrong codes. Sign in again."
	msgSignInFirst    = "Sign in first, then come back to this page."
	msgSignInAgain    = "For your security, sign in again with your password before adding an authenticator."
	msgEnrollExpired  = "This setup has expired. Reload the page to start again."
	msgEnrollBadCode  = "That code is not valid. Enter the current code from the app you just set up."
	msgTooManyDevices = "You already have the most authenticators allowed. Remove one before adding another."
)

// mfaPending is a sign-in waiting for its second factor (kindMFAPending, single use: each
// submitted code takes it, and a wrong code leaves a new one with Failures one higher).
type mfaPending struct {
	ID            string `json:"id"`
	UserID        string `json:"user_id"`
	Username      string `json:"username"`
	AuthRequestID string `json:"auth_request"`
	// PasswordTime is when the sign-in's first factor was proven (its auth_time).
	PasswordTime time.Time `json:"password_time"`
	// AMR are the factors proven so far; empty means the password alone (records written
	// before security keys).
	AMR       []string  `json:"amr,omitempty"`
	Failures  int       `json:"failures"`
	ExpiresAt time.Time `json:"expires"`
}

// enrollForm is the content of the enrollment page.
type enrollForm struct {
	// QRCode is a data: URL of the PNG, built here from Begin's image; empty when the code
	// form is shown again after a wrong code.
	QRCode     template.URL
	Secret     string // only when the Manager's ShowSecret
	PendingID  string
	DeviceName string
	// Action is where the form posts: /account/totp, or /login/otp/enroll during a sign-in
	// (with MFAID naming the pending sign-in).
	Action string
	MFAID  string
}

func (p *IdP) mfaPendings() store.Collection[mfaPending] {
	return store.Collection[mfaPending]{Store: p.store, Kind: kindMFAPending}
}

// methods returns the factors the pending sign-in has proven.
func (m mfaPending) methods() []string {
	if len(m.AMR) == 0 {
		return []string{amrPassword}
	}
	return slices.Clone(m.AMR)
}

// savePending stores m under a new id and returns it.
func (p *IdP) savePending(ctx context.Context, m mfaPending) (mfaPending, error) {
	m.ID = newID()
	if err := p.mfaPendings().Create(ctx, m.ID, m.UserID, m.ExpiresAt, m); err != nil {
		return mfaPending{}, fmt.Errorf("storing the pending second step: %w", err)
	}
	return m, nil
}

// showOTP renders the code form with a fresh CSRF token.
func (p *IdP) showOTP(w http.ResponseWriter, r *http.Request, status int, a *authRequest, mfaID, errMsg string) {
	token := p.csrf.Token(w, r, csrfPurposeMFA)
	p.render(w, r, status, "otp", pageData{
		Title:     "Two-step verification",
		Error:     errMsg,
		ClientID:  destination(a),
		MFAID:     mfaID,
		CSRFToken: token,
	}, a.RedirectURI)
}

// mfaGone answers a code form whose pending record is used up, expired or unknown.
func (p *IdP) mfaGone(w http.ResponseWriter, r *http.Request) {
	p.renderMessage(w, r, http.StatusBadRequest, "Sign-in expired", "",
		"This sign-in step has expired or was already used. Go back to the application and sign in again.")
}

// handleOTPSubmit serves POST /login/otp: CSRF check, the pending record taken (single use),
// the brute-force limits of the password form, the code checked; a right code starts the
// session with amr pwd, otp, mfa.
func (p *IdP) handleOTPSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p.loginHeaders(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Sign in", "The sign-in form could not be read.", "")
		return
	}
	id := r.PostFormValue("mfa")
	if id == "" {
		p.mfaGone(w, r)
		return
	}
	if err := p.csrf.Check(r, csrfPurposeMFA); err != nil {
		p.log.InfoContext(ctx, "idp: code form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		// The record is left alone: no code was tried.
		m, err := p.mfaPendings().Get(ctx, id)
		if err != nil {
			p.mfaGone(w, r)
			return
		}
		a, ok := p.loadAuthRequest(w, r, m.AuthRequestID)
		if !ok {
			return
		}
		p.showOTP(w, r, http.StatusForbidden, a, m.ID, msgFormExpired)
		return
	}
	m, err := p.mfaPendings().Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		p.log.InfoContext(ctx, "idp: code form refused: second step expired or already used", slog.String("remote", r.RemoteAddr))
		p.mfaGone(w, r)
		return
	}
	if err != nil {
		p.log.ErrorContext(ctx, "idp: loading the pending second step", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	a, ok := p.loadAuthRequest(w, r, m.AuthRequestID)
	if !ok {
		return
	}
	at, ok := p.admitLogin(w, r, a, m.Username)
	if !ok {
		return
	}
	reason := reasonLockedOut
	if !at.locked {
		_, err = p.totp.Verify(ctx, m.UserID, r.PostFormValue("otp"))
		switch {
		case err == nil:
			reason = ""
		case errors.Is(err, totp.ErrReplayed):
			reason = "replayed"
		case errors.Is(err, totp.ErrInvalidCode), errors.Is(err, totp.ErrNoDevices):
			reason = "invalid_code"
		default:
			p.log.ErrorContext(ctx, "idp: checking a code", slog.String("username", m.Username), slog.Any("error", err))
			p.showLogin(w, r, http.StatusServiceUnavailable, a, m.Username, msgUnavailable)
			return
		}
	}
	if reason != "" {
		p.otpFailed(w, r, a, at, m, reason)
		return
	}
	u, err := p.storage.activeUser(m.Username, m.UserID)
	if err != nil {
		p.log.InfoContext(ctx, "idp: sign-in failed: user gone or disabled during the second step",
			slog.String("username", m.Username), slog.String("client_id", a.ClientID))
		p.observeSignIn(amrOTP, "disabled")
		p.showLogin(w, r, http.StatusUnauthorized, a, m.Username, msgInvalidCredentials)
		return
	}
	p.observeSignIn(amrOTP, "success")
	m.AMR = append(m.methods(), amrOTP)
	p.proceed(w, r, a, u, at, m)
}

// otpFailed counts a wrong, replayed or locked-out code against the username (the password
// form's lockout) and shows the code form again under a new pending record, or the password
// form once the chain has had maxOTPFailures wrong codes.
func (p *IdP) otpFailed(w http.ResponseWriter, r *http.Request, a *authRequest, at *loginAttempt, m mfaPending, reason string) {
	ctx := r.Context()
	m.Failures++
	p.log.InfoContext(ctx, "idp: second step failed", slog.String("username", m.Username),
		slog.String("reason", reason), slog.Int("failures", m.Failures), slog.String("client_id", a.ClientID),
		slog.String("remote", r.RemoteAddr), slog.String("address", at.addr.String()))
	p.observeSignIn(amrOTP, reason)
	if !p.loginFailed(w, r, a, at) {
		return
	}
	if m.Failures >= maxOTPFailures {
		p.showLogin(w, r, http.StatusUnauthorized, a, m.Username, msgTooManyCodes)
		return
	}
	next, err := p.savePending(ctx, m)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: continuing the second step", slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, m.Username, msgUnavailable)
		return
	}
	p.showOTP(w, r, http.StatusUnauthorized, a, next.ID, msgInvalidCode)
}

// enrollSession returns the signed-in user allowed to enroll: a live SSO session of an
// active user whose password is at most enrollFreshness old. Otherwise it has answered.
func (p *IdP) enrollSession(w http.ResponseWriter, r *http.Request) (directory.User, bool) {
	ctx := r.Context()
	sess, err := p.sessions.Load(r)
	if err != nil && !errors.Is(err, websession.ErrNoSession) {
		p.log.ErrorContext(ctx, "idp: loading the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Add an authenticator", msgUnavailable, "")
		return directory.User{}, false
	}
	if sess == nil || sess.Kind != sessionKind {
		p.renderMessage(w, r, http.StatusUnauthorized, "Add an authenticator", "", msgSignInFirst)
		return directory.User{}, false
	}
	u, err := p.storage.activeUser(sess.Username, sess.UserID)
	if err != nil {
		p.renderMessage(w, r, http.StatusUnauthorized, "Add an authenticator", "", msgSignInFirst)
		return directory.User{}, false
	}
	if age := p.now().Sub(sess.AuthTime); age > enrollFreshness || age < -time.Minute {
		p.log.InfoContext(ctx, "idp: authenticator enrollment refused: sign-in not fresh",
			slog.String("username", u.Username), slog.Duration("age", age))
		p.renderMessage(w, r, http.StatusUnauthorized, "Add an authenticator", "", msgSignInAgain)
		return directory.User{}, false
	}
	return u, true
}

// handleEnrollForm serves GET /account/totp: a new pending enrollment, its QR code and the
// confirmation form.
func (p *IdP) handleEnrollForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	u, ok := p.enrollSession(w, r)
	if !ok {
		return
	}
	pend, err := p.totp.Begin(ctx, u.ID, u.Username, defaultDeviceName)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting an authenticator enrollment", slog.String("username", u.Username), slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Add an authenticator", msgUnavailable, "")
		return
	}
	p.showEnroll(w, r, http.StatusOK, u, &enrollForm{
		QRCode:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(pend.QRCode)),
		Secret:     pend.Secret,
		PendingID:  pend.ID,
		DeviceName: pend.DeviceName,
		Action:     pathAccountTOTP,
	}, "")
}

func (p *IdP) showEnroll(w http.ResponseWriter, r *http.Request, status int, u directory.User, f *enrollForm, errMsg string) {
	token := p.csrf.Token(w, r, csrfPurposeTOTPEnroll)
	p.render(w, r, status, "totp_enroll", pageData{
		Title:      "Add an authenticator",
		Error:      errMsg,
		Username:   u.Username,
		CSRFToken:  token,
		Enroll:     f,
		dataImages: f.QRCode != "",
	})
}

// handleEnrollSubmit serves POST /account/totp: CSRF check, fresh session, Confirm with the
// app's first code, then the device's name.
func (p *IdP) handleEnrollSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Add an authenticator", "The form could not be read.", "")
		return
	}
	if err := p.csrf.Check(r, csrfPurposeTOTPEnroll); err != nil {
		p.log.InfoContext(ctx, "idp: enrollment form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusForbidden, "Add an authenticator", "This form expired. Reload the page to start again.", "")
		return
	}
	u, ok := p.enrollSession(w, r)
	if !ok {
		return
	}
	pendingID := r.PostFormValue("pending")
	name := strings.TrimSpace(r.PostFormValue("name"))
	dev, err := p.totp.Confirm(ctx, u.ID, pendingID, r.PostFormValue("otp"))
	switch {
	case errors.Is(err, totp.ErrInvalidCode):
		p.log.InfoContext(ctx, "idp: authenticator enrollment: wrong code", slog.String("username", u.Username))
		p.showEnroll(w, r, http.StatusBadRequest, u, &enrollForm{PendingID: pendingID, DeviceName: name, Action: pathAccountTOTP}, msgEnrollBadCode)
		return
	case errors.Is(err, totp.ErrPendingExpired):
		p.renderMessage(w, r, http.StatusBadRequest, "Add an authenticator", msgEnrollExpired, "")
		return
	case errors.Is(err, totp.ErrTooManyDevices):
		p.renderMessage(w, r, http.StatusConflict, "Add an authenticator", msgTooManyDevices, "")
		return
	case err != nil:
		p.log.ErrorContext(ctx, "idp: confirming an authenticator enrollment", slog.String("username", u.Username), slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Add an authenticator", msgUnavailable, "")
		return
	}
	if name != "" && name != dev.Name {
		if err := p.totp.Rename(ctx, u.ID, dev.ID, name); err != nil {
			// The device works; only its label stays the default.
			p.log.WarnContext(ctx, "idp: naming a new authenticator", slog.String("username", u.Username), slog.Any("error", err))
		} else {
			dev.Name = name
		}
	}
	p.log.InfoContext(ctx, "idp: authenticator added", slog.String("event", "user.mfa.factor.activate"),
		slog.String("username", u.Username), slog.String("device_id", dev.ID))
	p.renderMessage(w, r, http.StatusOK, "Authenticator added", "",
		"Authenticator \u201c"+dev.Name+"\u201d added. From now on you will be asked for a code from it when you sign in.")
}

// startEnrollOTP shows, during a sign-in whose request needs a code, the set-up of a first
// authenticator app (the password was checked moments ago: the pending record m lives five
// minutes).
func (p *IdP) startEnrollOTP(w http.ResponseWriter, r *http.Request, a *authRequest, u directory.User, m mfaPending) {
	ctx := r.Context()
	pend, err := p.totp.Begin(ctx, u.ID, u.Username, defaultDeviceName)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting an authenticator enrollment", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	p.showEnrollInFlow(w, r, http.StatusOK, a, u, &enrollForm{
		QRCode:     template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(pend.QRCode)),
		Secret:     pend.Secret,
		PendingID:  pend.ID,
		DeviceName: pend.DeviceName,
		Action:     pathLoginEnroll,
		MFAID:      m.ID,
	}, "")
}

func (p *IdP) showEnrollInFlow(w http.ResponseWriter, r *http.Request, status int, a *authRequest, u directory.User, f *enrollForm, errMsg string) {
	token := p.csrf.Token(w, r, csrfPurposeTOTPEnroll)
	p.render(w, r, status, "totp_enroll", pageData{
		Title:      "Add an authenticator",
		Error:      errMsg,
		Username:   u.Username,
		ClientID:   destination(a),
		CSRFToken:  token,
		Enroll:     f,
		dataImages: f.QRCode != "",
	}, a.RedirectURI)
}

// handleEnrollInFlowSubmit serves POST /login/otp/enroll: the first code from the app just
// set up during a sign-in; right, it counts as the sign-in's code and the sign-in goes on.
func (p *IdP) handleEnrollInFlowSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Add an authenticator", "The form could not be read.", "")
		return
	}
	if err := p.csrf.Check(r, csrfPurposeTOTPEnroll); err != nil {
		p.log.InfoContext(ctx, "idp: enrollment form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusForbidden, "Add an authenticator", msgFormExpired, "")
		return
	}
	id := r.PostFormValue("mfa")
	m, err := p.mfaPendings().Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) || id == "" {
		p.mfaGone(w, r)
		return
	}
	if err != nil {
		p.log.ErrorContext(ctx, "idp: loading the pending sign-in", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	a, ok := p.loadAuthRequest(w, r, m.AuthRequestID)
	if !ok {
		return
	}
	u, err := p.storage.activeUser(m.Username, m.UserID)
	if err != nil || !amrSet(m.methods()).password {
		p.log.InfoContext(ctx, "idp: authenticator enrollment refused during a sign-in", slog.String("username", m.Username))
		p.showLogin(w, r, http.StatusUnauthorized, a, m.Username, msgInvalidCredentials)
		return
	}
	pendingID := r.PostFormValue("pending")
	name := strings.TrimSpace(r.PostFormValue("name"))
	dev, err := p.totp.Confirm(ctx, u.ID, pendingID, r.PostFormValue("otp"))
	switch {
	case errors.Is(err, totp.ErrInvalidCode):
		m.Failures++
		if m.Failures >= maxOTPFailures {
			p.showLogin(w, r, http.StatusUnauthorized, a, u.Username, msgTooManyCodes)
			return
		}
		next, serr := p.savePending(ctx, m)
		if serr != nil {
			p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
			return
		}
		p.showEnrollInFlow(w, r, http.StatusBadRequest, a, u, &enrollForm{PendingID: pendingID, DeviceName: name, Action: pathLoginEnroll, MFAID: next.ID}, msgEnrollBadCode)
		return
	case errors.Is(err, totp.ErrPendingExpired):
		p.showLogin(w, r, http.StatusBadRequest, a, u.Username, msgEnrollExpired)
		return
	case errors.Is(err, totp.ErrTooManyDevices):
		p.showLogin(w, r, http.StatusConflict, a, u.Username, msgTooManyDevices)
		return
	case err != nil:
		p.log.ErrorContext(ctx, "idp: confirming an authenticator enrollment", slog.String("username", u.Username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, u.Username, msgUnavailable)
		return
	}
	if name != "" && name != dev.Name {
		if err := p.totp.Rename(ctx, u.ID, dev.ID, name); err == nil {
			dev.Name = name
		}
	}
	p.log.InfoContext(ctx, "idp: authenticator added", slog.String("event", "user.mfa.factor.activate"),
		slog.String("username", u.Username), slog.String("device_id", dev.ID))
	p.emit(ctx, r, Event{Type: "user.mfa.factor.activate", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username,
		Details: map[string]string{"factor": "totp", "name": dev.Name}})
	// The first code was checked: it is this sign-in's code.
	m.AMR = append(m.methods(), amrOTP)
	p.proceed(w, r, a, u, nil, m)
}

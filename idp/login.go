package idp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
)

const (
	csrfFieldName = csrf.FieldName

	csrfPurposeLogin  = "login"
	csrfPurposeLogout = "logout"

	// maxFormBytes bounds the body of our form posts.
	maxFormBytes = 64 << 10

	amrPassword = "pwd"
)

// handleLoginForm serves GET /login?authRequestID=...: with a usable single-sign-on session
// the request completes at once; otherwise the form is shown.
func (p *IdP) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, ok := p.loadAuthRequest(w, r, r.URL.Query().Get("authRequestID"))
	if !ok {
		return
	}
	sess, err := p.sessions.Load(r)
	if err != nil && !errors.Is(err, websession.ErrNoSession) {
		p.log.ErrorContext(ctx, "idp: loading the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	if sess != nil && sess.Kind != sessionKind {
		sess = nil
	}
	if sess != nil && p.sessionSatisfies(a, sess) {
		if _, err := p.storage.activeUser(sess.Username, sess.UserID); err == nil {
			p.log.DebugContext(ctx, "idp: reusing the single-sign-on session",
				slog.String("user", sess.Username), slog.String("client_id", a.ClientID))
			p.complete(w, r, a, sess)
			return
		}
		p.log.InfoContext(ctx, "idp: single-sign-on session of an inactive user ignored", slog.String("user", sess.Username))
	}
	if a.hasPrompt(oidc.PromptNone) {
		op.AuthRequestError(w, r, a, oidc.ErrLoginRequired(), p.op)
		return
	}
	username := a.LoginHint
	if sess != nil {
		username = sess.Username
	}
	p.showLogin(w, r, http.StatusOK, a, username, "")
}

// sessionSatisfies reports whether an existing session may complete the request without a
// new login.
func (p *IdP) sessionSatisfies(a *authRequest, s *websession.Session) bool {
	if a.needsFreshLogin(s.AuthTime, p.now()) {
		return false
	}
	return a.HintSubject == "" || a.HintSubject == s.UserID
}

// handleLoginSubmit serves POST /login: CSRF check, brute-force limits (BruteForce),
// password check, new SSO session, completed request, 303 to op's callback.
func (p *IdP) handleLoginSubmit(w http.ResponseWriter, r *http.Request) {
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
	username := strings.TrimSpace(r.PostFormValue("username"))
	if err := p.csrf.Check(r, csrfPurposeLogin); err != nil {
		p.log.InfoContext(ctx, "idp: sign-in form refused: CSRF token missing or invalid",
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr))
		p.showLogin(w, r, http.StatusForbidden, a, username, msgFormExpired)
		return
	}
	at, ok := p.admitLogin(w, r, a, username)
	if !ok {
		return
	}
	// The password is checked even for a locked-out account, so a lockout costs an
	// attacker the same time and tells nothing about the password.
	u, err := p.users.Authenticate(ctx, username, r.PostFormValue("password"))
	if err != nil && !errors.Is(err, directory.ErrInvalidCredentials) {
		p.log.ErrorContext(ctx, "idp: checking a password", slog.String("username", username), slog.Any("error", err))
		p.showLogin(w, r, http.StatusServiceUnavailable, a, username, msgUnavailable)
		return
	}
	if err != nil || at.locked {
		reason := "invalid_credentials"
		var ae *directory.AuthError
		switch {
		case at.locked:
			reason = reasonLockedOut
		case errors.As(err, &ae):
			reason = ae.Reason
		}
		p.log.InfoContext(ctx, "idp: sign-in failed", slog.String("username", username),
			slog.String("reason", reason), slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr),
			slog.String("address", at.addr.String()))
		p.observeSignIn(amrPassword, reason)
		p.emit(ctx, r, Event{Type: "user.session.start", Outcome: "FAILURE", Reason: reason, Username: username, ClientID: a.ClientID})
		if !p.loginFailed(w, r, a, at) {
			return
		}
		// A locked-out account gets exactly the answer of a wrong password.
		p.showLogin(w, r, http.StatusUnauthorized, a, username, msgInvalidCredentials)
		return
	}
	// The username's failures are cleared only once every step of the sign-in is done, so a
	// known password does not buy fresh guesses at the code.
	p.observeSignIn(amrPassword, "success")
	p.proceed(w, r, a, u, at, mfaPending{
		UserID: u.ID, Username: u.Username, AuthRequestID: a.ID,
		PasswordTime: p.now().UTC(), AMR: []string{amrPassword},
	})
}

// signedIn starts the SSO session of u, authenticated by amr at authTime (replacing the
// browser's previous session), and completes the auth request.
func (p *IdP) signedIn(w http.ResponseWriter, r *http.Request, a *authRequest, u directory.User, amr []string, authTime time.Time) {
	ctx := r.Context()
	if !p.accountActive(w, r, a, u.ID, u.Username) {
		return
	}
	replaced, err := p.replaceSession(ctx, r, u)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: ending the previous session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	var deviceID string
	if p.deviceID != nil {
		deviceID, _ = p.deviceID(r)
	}
	sess, err := p.sessions.Start(w, r, websession.Session{
		DeviceID:     deviceID,
		Kind:         sessionKind,
		UserID:       u.ID,
		Username:     u.Username,
		Name:         u.Name,
		Email:        u.Email,
		Groups:       slices.Clone(u.Groups),
		AMR:          amr,
		AuthTime:     authTime,
		Predecessors: lineage(replaced),
	})
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	if replaced != nil {
		if err := p.carrySessionClients(ctx, replaced.ID, sess); err != nil {
			p.log.ErrorContext(ctx, "idp: signing in again", slog.Any("error", err))
		}
	}
	details := map[string]string{"amr": strings.Join(amr, " "), "session": sess.ID[:min(8, len(sess.ID))]}
	p.emit(ctx, r, Event{Type: "user.session.start", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username, ClientID: a.ClientID, Details: details})
	if amrSet(amr).twoFactors() {
		p.emit(ctx, r, Event{Type: "user.authentication.auth_via_mfa", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username, ClientID: a.ClientID, Details: details})
	}
	p.complete(w, r, a, sess)
}

// observeSignIn tells the configured SignInObserver about one sign-in attempt.
func (p *IdP) observeSignIn(method, outcome string) {
	if p.signIns != nil {
		p.signIns.SignIn(method, outcome)
	}
}

// replaceSession ends the browser's current SSO session before a new sign-in: just the
// session record when the same user signs in again (it returns that session's id, whose
// back-channel logout list the new session takes over), everything under it (gate
// sessions, access tokens, back-channel logout) when another user takes over the browser.
func (p *IdP) replaceSession(ctx context.Context, r *http.Request, u directory.User) (*websession.Session, error) {
	old, err := p.sessions.Load(r)
	if errors.Is(err, websession.ErrNoSession) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if old.UserID == u.ID {
		return old, p.sessions.Revoke(ctx, old.ID)
	}
	return nil, p.EndSession(ctx, old.ID)
}

// maxPredecessors bounds how many replaced sessions a session remembers; a user who signs in
// again more often than this within one session's life leaves the oldest behind.
const maxPredecessors = 16

// lineage is what a new session of the same user inherits from the one it replaces: the old
// session and its own predecessors, so ending the new one ends everything started under them.
func lineage(old *websession.Session) []string {
	if old == nil {
		return nil
	}
	l := append(slices.Clone(old.Predecessors), old.ID)
	if len(l) > maxPredecessors {
		l = l[len(l)-maxPredecessors:]
	}
	return l
}

// accountActive checks the account state before a sign-in completes. A suspended, locked-out
// or deprovisioned user is told no more than a wrong password tells, and whatever they still
// hold ends; when the state cannot be read the sign-in fails closed (503). It reports
// whether the sign-in may go on, having answered when not.
func (p *IdP) accountActive(w http.ResponseWriter, r *http.Request, a *authRequest, userID, username string) bool {
	ctx := r.Context()
	err := p.lifecycleAllows(ctx, userID)
	if err == nil {
		return true
	}
	if !errors.Is(err, errNotActive) {
		p.log.ErrorContext(ctx, "idp: checking the account state", slog.String("username", username), slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return false
	}
	p.log.InfoContext(ctx, "idp: sign-in refused: account not active", slog.String("username", username),
		slog.String("client_id", a.ClientID), slog.Any("error", err))
	p.observeSignIn(amrPassword, "not_active")
	p.emit(ctx, r, Event{Type: "user.session.start", Outcome: "FAILURE", Reason: "account_not_active", UserID: userID, Username: username, ClientID: a.ClientID})
	if _, rerr := p.RevokeUser(ctx, userID); rerr != nil {
		p.log.ErrorContext(ctx, "idp: ending the sessions of an inactive account", slog.Any("error", rerr))
	}
	p.showLogin(w, r, http.StatusUnauthorized, a, username, msgInvalidCredentials)
	return false
}

// complete marks the auth request as authenticated by the session and sends the browser to
// op's callback, which issues the code. A client's sign-on policy decides first: a user it
// does not allow goes back to the client with error=access_denied.
func (p *IdP) complete(w http.ResponseWriter, r *http.Request, a *authRequest, s *websession.Session) {
	ctx := r.Context()
	if !p.accountActive(w, r, a, s.UserID, s.Username) {
		return
	}
	if !p.signOnAllowed(r, a, s) {
		if err := p.storage.DeleteAuthRequest(ctx, a.ID); err != nil {
			p.log.WarnContext(ctx, "idp: removing a denied auth request", slog.Any("error", err))
		}
		op.AuthRequestError(w, r, a, oidc.ErrAccessDenied(), p.op)
		return
	}
	_, err := p.storage.authRequests().Update(ctx, a.ID, func(a authRequest) (authRequest, time.Time, error) {
		a.Completed = true
		a.UserID = s.UserID
		a.Username = s.Username
		a.AuthTime = s.AuthTime
		a.AMR = slices.Clone(s.AMR)
		a.SessionID = s.ID
		a.SessionExpiresAt = s.ExpiresAt
		a.DeviceID = s.DeviceID
		return a, time.Time{}, nil
	})
	if err != nil {
		p.authRequestFailed(w, r, err)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(ctx, a.ID), http.StatusSeeOther)
}

// loadAuthRequest loads the request a page works on, answering the browser itself when it
// cannot.
func (p *IdP) loadAuthRequest(w http.ResponseWriter, r *http.Request, id string) (*authRequest, bool) {
	a, err := p.storage.authRequest(r.Context(), id)
	if err != nil {
		p.authRequestFailed(w, r, err)
		return nil, false
	}
	return a, true
}

func (p *IdP) authRequestFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errAuthRequestGone) || errors.Is(err, store.ErrNotFound) {
		p.renderMessage(w, r, http.StatusBadRequest, "Sign-in expired", "",
			"This sign-in request has expired or is unknown. Go back to the application and sign in again.")
		return
	}
	p.log.ErrorContext(r.Context(), "idp: loading the auth request", slog.Any("error", err))
	p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
}

// destination names where the person is signing in to: the host their browser returns to
// (what they can check against the address bar), or the client id when that is unclear.
func destination(a *authRequest) string {
	if u, err := url.Parse(a.RedirectURI); err == nil && u.Host != "" {
		return u.Host
	}
	return a.ClientID
}

// showLogin renders the sign-in form with a fresh CSRF token.
func (p *IdP) showLogin(w http.ResponseWriter, r *http.Request, status int, a *authRequest, username, errMsg string) {
	token := p.csrf.Token(w, r, csrfPurposeLogin)
	p.render(w, r, status, "login", pageData{
		Title:         "Sign in",
		Error:         errMsg,
		ClientID:      destination(a),
		AuthRequestID: a.ID,
		Username:      username,
		CSRFToken:     token,
		WebAuthn:      p.passkeyLogin(r.Context()),
	}, a.RedirectURI)
}

// handleAuthCallback guards op's /authorize/callback: only the browser holding the session
// that completed the request may turn it into a code. Without this, anyone who learned an
// auth request id (say, by sending a victim to /login?authRequestID=... while the victim has
// a session) could collect a code for the victim's identity.
func (p *IdP) handleAuthCallback(w http.ResponseWriter, r *http.Request) {
	// op reads the id from the whole form; with GET only and exactly one id in the query,
	// the request checked here is the one op completes.
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ids := r.URL.Query()["id"]
	if len(ids) != 1 {
		p.authRequestFailed(w, r, errAuthRequestGone)
		return
	}
	a, ok := p.loadAuthRequest(w, r, ids[0])
	if !ok {
		return
	}
	sess, err := p.sessions.Load(r)
	if err != nil && !errors.Is(err, websession.ErrNoSession) {
		p.log.ErrorContext(r.Context(), "idp: loading the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign in", msgUnavailable, "")
		return
	}
	if !a.Completed || sess == nil || a.SessionID == "" || sess.ID != a.SessionID {
		p.log.InfoContext(r.Context(), "idp: authorization callback refused: not completed by this browser's session",
			slog.String("client_id", a.ClientID), slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusForbidden, "Sign-in not completed", "",
			"This sign-in was not completed in this browser. Go back to the application and sign in again.")
		return
	}
	p.op.ServeHTTP(w, r)
}

package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/websession"
)

// Paths of the self-service pages.
const (
	pathAccount          = "/account"
	pathAccountSignIn    = "/account/signin"   // starts a fresh sign-in that returns to /account
	pathAccountCallback  = "/account/callback" // where that sign-in returns
	pathAccountWebAuthn  = "/account/webauthn" // add a security key
	pathAccountAction    = "/account/action"   // rename, remove, sign out other browsers
	csrfPurposeAccount   = "account"
	accountClientID      = "zonegate-account"
	msgAccountNeedsFresh = "For your security, sign in again before changing your authenticators."
)

// accountPage is the content of the self-service page.
type accountPage struct {
	Fresh      bool // the sign-in is recent enough to change authenticators
	SignInURL  string
	Keys       []accountFactor
	Codes      []accountFactor
	Sessions   []accountSession
	CanAddKey  bool
	CanAddCode bool
	// Confirm asks to confirm removing the last authenticator of its kind.
	Confirm *accountFactor
}

type accountFactor struct {
	Kind     string // "key" or "totp"
	ID       string
	Name     string
	Created  string
	LastUsed string
	Detail   string
}

type accountSession struct {
	ID       string
	Current  bool
	Created  string
	LastSeen string
	Methods  string
}

// accountRoutes adds the self-service pages.
func (p *IdP) accountRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+pathAccount, p.handleAccount)
	mux.HandleFunc("GET "+pathAccountSignIn, p.handleAccountSignIn)
	mux.HandleFunc("GET "+pathAccountCallback, p.handleAccountCallback)
	mux.HandleFunc("POST "+pathAccountAction, p.handleAccountAction)
	if p.passkeys != nil {
		mux.HandleFunc("GET "+pathAccountWebAuthn, p.handleAccountKeyForm)
		mux.HandleFunc("POST "+pathAccountWebAuthn, p.handleAccountKeySubmit)
	}
}

// accountClient is the IdP's own client for the self-service sign-in: public, PKCE, its
// only redirect URI the account callback.
func (p *IdP) accountClient() Client {
	return Client{ID: accountClientID, RedirectURIs: []string{p.issuer + pathAccountCallback}}
}

// handleAccountSignIn starts a sign-in (prompt=login) whose end returns to /account. The
// code it produces is never redeemed: what the page needs is the fresh sign-in session.
func (p *IdP) handleAccountSignIn(w http.ResponseWriter, r *http.Request) {
	verifier := newID()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"client_id":             {accountClientID},
		"redirect_uri":          {p.issuer + pathAccountCallback},
		"response_type":         {"code"},
		"scope":                 {"openid"},
		"prompt":                {"login"},
		"state":                 {newID()},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	http.Redirect(w, r, p.op.AuthorizationEndpoint().Relative()+"?"+q.Encode(), http.StatusFound)
}

// handleAccountCallback ends the self-service sign-in: back to the account page.
func (p *IdP) handleAccountCallback(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, pathAccount, http.StatusSeeOther)
}

// accountSession returns the browser's IdP session and its user, or answers with a page that
// offers to sign in.
func (p *IdP) accountUser(w http.ResponseWriter, r *http.Request) (*websession.Session, directory.User, bool) {
	ctx := r.Context()
	sess, err := p.sessions.Load(r)
	if err != nil && !errors.Is(err, websession.ErrNoSession) {
		p.log.ErrorContext(ctx, "idp: loading the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Your account", msgUnavailable, "")
		return nil, directory.User{}, false
	}
	if sess != nil && sess.Kind == sessionKind {
		if u, err := p.storage.activeUser(sess.Username, sess.UserID); err == nil {
			return sess, u, true
		}
	}
	http.Redirect(w, r, pathAccountSignIn, http.StatusFound)
	return nil, directory.User{}, false
}

func (p *IdP) fresh(s *websession.Session) bool {
	age := p.now().Sub(s.AuthTime)
	return age <= enrollFreshness && age >= -time.Minute
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// handleAccount serves GET /account: the user's security keys, authenticator apps and
// signed-in browsers.
func (p *IdP) handleAccount(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := p.accountUser(w, r)
	if !ok {
		return
	}
	p.showAccount(w, r, http.StatusOK, sess, u, "", "", nil)
}

func (p *IdP) showAccount(w http.ResponseWriter, r *http.Request, status int, sess *websession.Session, u directory.User, errMsg, msg string, confirm *accountFactor) {
	ctx := r.Context()
	page := &accountPage{Fresh: p.fresh(sess), SignInURL: pathAccountSignIn, Confirm: confirm,
		CanAddKey: p.passkeys != nil, CanAddCode: p.totp != nil}
	if p.passkeys != nil {
		creds, err := p.passkeys.List(ctx, u.ID)
		if err != nil {
			p.log.ErrorContext(ctx, "idp: listing security keys", slog.Any("error", err))
			p.renderMessage(w, r, http.StatusServiceUnavailable, "Your account", msgUnavailable, "")
			return
		}
		for _, c := range creds {
			detail := "security key"
			if c.BackupEligible {
				detail = "synced passkey"
			}
			page.Keys = append(page.Keys, accountFactor{Kind: "key", ID: c.ID, Name: c.Name, Created: when(c.Created), LastUsed: when(c.LastUsed), Detail: detail})
		}
	}
	if p.totp != nil {
		devs, err := p.totp.List(ctx, u.ID)
		if err != nil {
			p.log.ErrorContext(ctx, "idp: listing authenticators", slog.Any("error", err))
			p.renderMessage(w, r, http.StatusServiceUnavailable, "Your account", msgUnavailable, "")
			return
		}
		for _, d := range devs {
			page.Codes = append(page.Codes, accountFactor{Kind: "totp", ID: d.ID, Name: d.Name, Created: when(d.Created), LastUsed: when(d.LastUsed), Detail: "authenticator app"})
		}
	}
	list, err := p.sessions.List(ctx, u.ID)
	if err != nil {
		p.log.ErrorContext(ctx, "idp: listing sessions", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Your account", msgUnavailable, "")
		return
	}
	for _, s := range list {
		if s.Kind != sessionKind {
			continue
		}
		page.Sessions = append(page.Sessions, accountSession{ID: s.ID, Current: s.ID == sess.ID,
			Created: when(s.CreatedAt), LastSeen: when(s.LastSeenAt), Methods: strings.Join(s.AMR, ", ")})
	}
	slices.SortFunc(page.Sessions, func(a, b accountSession) int { return strings.Compare(b.Created, a.Created) })
	p.render(w, r, status, "account", pageData{
		Title:     "Your account",
		Error:     errMsg,
		Message:   msg,
		Username:  u.Username,
		CSRFToken: p.csrf.Token(w, r, csrfPurposeAccount),
		Account:   page,
	})
}

// handleAccountAction serves POST /account/action: rename or remove a key or an
// authenticator app (fresh sign-in needed; removing the last of a kind asks to confirm), or
// sign out the user's other browsers.
func (p *IdP) handleAccountAction(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Your account", "The form could not be read.", "")
		return
	}
	if err := p.csrf.Check(r, csrfPurposeAccount); err != nil {
		p.log.InfoContext(ctx, "idp: account form refused: CSRF token missing or invalid", slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusForbidden, "Your account", "This form expired. Reload the page and try again.", "")
		return
	}
	sess, u, ok := p.accountUser(w, r)
	if !ok {
		return
	}
	action, kind, id := r.PostFormValue("action"), r.PostFormValue("kind"), r.PostFormValue("id")
	if action == "signout_others" {
		n := 0
		for _, sid := range p.otherSessions(r, sess) {
			if err := p.EndSession(ctx, sid); err != nil {
				p.log.ErrorContext(ctx, "idp: signing out another browser", slog.Any("error", err))
				p.showAccount(w, r, http.StatusServiceUnavailable, sess, u, msgUnavailable, "", nil)
				return
			}
			n++
		}
		p.log.InfoContext(ctx, "idp: other browsers signed out", slog.String("event", "user.session.clear"),
			slog.String("username", u.Username), slog.Int("sessions", n))
		p.showAccount(w, r, http.StatusOK, sess, u, "", "Your other browsers are signed out.", nil)
		return
	}
	if !p.fresh(sess) {
		p.showAccount(w, r, http.StatusUnauthorized, sess, u, msgAccountNeedsFresh, "", nil)
		return
	}
	var err error
	switch {
	case action == "rename" && kind == "key" && p.passkeys != nil:
		err = p.passkeys.Rename(ctx, u.ID, id, r.PostFormValue("name"))
	case action == "rename" && kind == "totp" && p.totp != nil:
		err = p.totp.Rename(ctx, u.ID, id, r.PostFormValue("name"))
	case action == "remove" && (kind == "key" && p.passkeys != nil || kind == "totp" && p.totp != nil):
		last, lerr := p.lastOfKind(r, u, kind)
		if lerr != nil {
			err = lerr
			break
		}
		if last && r.PostFormValue("confirm") != "yes" {
			p.showAccount(w, r, http.StatusOK, sess, u, "", "", &accountFactor{Kind: kind, ID: id, Name: r.PostFormValue("name")})
			return
		}
		if kind == "key" {
			err = p.passkeys.Remove(ctx, u.ID, id)
		} else {
			err = p.totp.Remove(ctx, u.ID, id)
		}
	default:
		p.showAccount(w, r, http.StatusBadRequest, sess, u, "That action is not available.", "", nil)
		return
	}
	switch {
	case errors.Is(err, passkey.ErrUnknownCredential), errors.Is(err, totp.ErrUnknownDevice):
		p.showAccount(w, r, http.StatusNotFound, sess, u, "That authenticator no longer exists.", "", nil)
		return
	case err != nil && strings.Contains(err.Error(), "name"):
		p.showAccount(w, r, http.StatusBadRequest, sess, u, "That name cannot be used: use up to 64 letters, digits and spaces.", "", nil)
		return
	case err != nil:
		p.log.ErrorContext(ctx, "idp: changing an authenticator", slog.String("username", u.Username), slog.Any("error", err))
		p.showAccount(w, r, http.StatusServiceUnavailable, sess, u, msgUnavailable, "", nil)
		return
	}
	event := "user.mfa.factor.update"
	msg := "Saved."
	if action == "remove" {
		event, msg = "user.mfa.factor.deactivate", "Removed."
	}
	p.log.InfoContext(ctx, "idp: authenticator changed", slog.String("event", event), slog.String("username", u.Username),
		slog.String("kind", kind), slog.String("action", action))
	p.emit(ctx, r, Event{Type: event, Outcome: "SUCCESS", UserID: u.ID, Username: u.Username, Details: map[string]string{"factor": kind, "action": action}})
	p.showAccount(w, r, http.StatusOK, sess, u, "", msg, nil)
}

// otherSessions are the user's IdP sessions other than sess.
func (p *IdP) otherSessions(r *http.Request, sess *websession.Session) []string {
	list, err := p.sessions.List(r.Context(), sess.UserID)
	if err != nil {
		return nil
	}
	var ids []string
	for _, s := range list {
		if s.Kind == sessionKind && s.ID != sess.ID {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// lastOfKind reports whether the user has exactly one authenticator of kind.
func (p *IdP) lastOfKind(r *http.Request, u directory.User, kind string) (bool, error) {
	if kind == "key" {
		creds, err := p.passkeys.List(r.Context(), u.ID)
		return len(creds) == 1, err
	}
	devs, err := p.totp.List(r.Context(), u.ID)
	return len(devs) == 1, err
}

// handleAccountKeyForm serves GET /account/webauthn: the prompt to add a security key.
func (p *IdP) handleAccountKeyForm(w http.ResponseWriter, r *http.Request) {
	sess, u, ok := p.accountUser(w, r)
	if !ok {
		return
	}
	if !p.fresh(sess) {
		p.showAccount(w, r, http.StatusUnauthorized, sess, u, msgAccountNeedsFresh, "", nil)
		return
	}
	p.showAccountKey(w, r, http.StatusOK, u, "")
}

func (p *IdP) showAccountKey(w http.ResponseWriter, r *http.Request, status int, u directory.User, errMsg string) {
	ctx := r.Context()
	ceremony, opts, err := p.passkeys.BeginRegistration(ctx, passkeyUser(u))
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting a security key setup", slog.String("username", u.Username), slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Add a security key", msgUnavailable, "")
		return
	}
	p.renderKeyPage(w, r, status, "webauthn_enroll", nil, "Add a security key", errMsg, &webauthnPage{
		Mode: "create", Options: template.JS(opts), Ceremony: ceremony, Action: pathAccountWebAuthn, KeyName: defaultKeyName,
	})
}

// handleAccountKeySubmit serves POST /account/webauthn: the new key's registration.
func (p *IdP) handleAccountKeySubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Add a security key", "The form could not be read.", "")
		return
	}
	if err := p.csrf.Check(r, csrfPurposeWebAuthn); err != nil {
		p.renderMessage(w, r, http.StatusForbidden, "Add a security key", "This form expired. Reload the page to start again.", "")
		return
	}
	sess, u, ok := p.accountUser(w, r)
	if !ok {
		return
	}
	if !p.fresh(sess) {
		p.showAccount(w, r, http.StatusUnauthorized, sess, u, msgAccountNeedsFresh, "", nil)
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
			p.renderMessage(w, r, http.StatusServiceUnavailable, "Add a security key", msgUnavailable, "")
			return
		}
		p.log.InfoContext(ctx, "idp: security key setup refused", slog.String("username", u.Username), slog.String("reason", reason),
			slog.String("error", err.Error()))
		p.showAccountKey(w, r, http.StatusBadRequest, u, keyMessage(err))
		return
	}
	p.log.InfoContext(ctx, "idp: security key added", slog.String("event", "user.mfa.factor.activate"),
		slog.String("username", u.Username), slog.String("credential", cred.Name), slog.String("aaguid", cred.AAGUID))
	p.emit(ctx, r, Event{Type: "user.mfa.factor.activate", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username,
		Details: map[string]string{"factor": "webauthn", "name": cred.Name, "aaguid": cred.AAGUID}})
	p.showAccount(w, r, http.StatusOK, sess, u, "", "Security key \u201c"+cred.Name+"\u201d added.", nil)
}

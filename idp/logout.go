package idp

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/websession"
)

// handleEndSession serves RP-initiated logout (GET or POST /end_session). op validates the
// request (id_token_hint, client_id, post_logout_redirect_uri); this ends the SSO session.
// Without an id_token_hint for the signed-in user the browser is asked to confirm (a POST
// with a CSRF token), so a cross-site link cannot sign anybody out.
func (p *IdP) handleEndSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	req, err := op.ParseEndSessionRequest(r, p.op.Decoder())
	if err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Sign out", "The sign-out request could not be read.", "")
		return
	}
	es, err := op.ValidateEndSessionRequest(ctx, req, p.op)
	if err != nil {
		p.log.InfoContext(ctx, "idp: sign-out request refused", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusBadRequest, "Sign out", "The sign-out request is not valid.", "")
		return
	}
	sess, err := p.sessions.Load(r)
	if err != nil && !errors.Is(err, websession.ErrNoSession) {
		p.log.ErrorContext(ctx, "idp: loading the sign-in session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign out", msgUnavailable, "")
		return
	}
	if sess == nil {
		// Nothing to end here; still clear a stale cookie.
		_ = p.sessions.End(w, r)
		http.Redirect(w, r, es.RedirectURI, http.StatusSeeOther)
		return
	}

	confirmed := false
	if h := es.IDTokenHintClaims; h != nil && h.Subject == sess.UserID && (h.SessionID == "" || h.SessionID == sess.ID) {
		confirmed = true
	}
	errMsg, status := "", http.StatusOK
	if !confirmed && r.Method == http.MethodPost {
		if err := p.csrf.Check(r, csrfPurposeLogout); err == nil {
			confirmed = true
		} else {
			errMsg, status = "Your sign-out form expired, please try again.", http.StatusForbidden
		}
	}
	if !confirmed {
		lf := &logoutForm{State: req.State}
		if es.ClientID != "" {
			lf.ClientID = es.ClientID
			lf.PostLogoutRedirectURI = req.PostLogoutRedirectURI
		}
		p.render(w, r, status, "logout", pageData{
			Title:     "Sign out",
			Error:     errMsg,
			Username:  sess.Username,
			CSRFToken: p.csrf.Token(w, r, csrfPurposeLogout),
			Logout:    lf,
		}, es.RedirectURI)
		return
	}

	if err := p.EndSession(ctx, sess.ID); err != nil {
		p.log.ErrorContext(ctx, "idp: ending the session", slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Sign out", msgUnavailable, "")
		return
	}
	if err := p.sessions.End(w, r); err != nil {
		p.log.WarnContext(ctx, "idp: clearing the session cookie", slog.Any("error", err))
	}
	p.log.InfoContext(ctx, "idp: signed out", slog.String("username", sess.Username), slog.String("client_id", es.ClientID))
	http.Redirect(w, r, es.RedirectURI, http.StatusSeeOther)
}

func (p *IdP) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	p.renderMessage(w, r, http.StatusOK, "Signed out", "", "You have been signed out. You can close this window.")
}

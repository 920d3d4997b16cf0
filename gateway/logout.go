package gateway

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/websession"
)

// csrfLogout is the CSRF purpose of the sign-out form.
const csrfLogout = "logout"

// maxFormBody bounds the sign-out form body.
const maxFormBody = 16 << 10

// logoutForm shows the sign-out confirmation: signing out takes a POST with a CSRF token, so
// no other site can sign a user out with a link or an image.
func (g *Gate) logoutForm(w http.ResponseWriter, r *http.Request) {
	tok := g.csrf.Token(w, r, csrfLogout)
	g.writePage(w, r, http.StatusOK, page{
		Title:    "Sign out",
		Heading:  "Sign out?",
		Messages: []string{"You will be signed out of " + g.host + "."},
		Form:     &pageForm{Action: logoutPath, Field: csrf.FieldName, Token: tok, Button: "Sign out"},
	})
}

// logout ends the gate session (and, when configured, the IdP session it came from).
func (g *Gate) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := g.csrf.Check(r, csrfLogout); err != nil {
		rid := newRequestID()
		g.log.LogAttrs(ctx, slog.LevelWarn, "sign-out refused",
			slog.String("reason", "csrf_invalid"), slog.String("error", err.Error()), slog.String("request_id", rid))
		g.writePage(w, r, http.StatusForbidden, page{
			Title:     "Sign-out not confirmed",
			Heading:   "Sign-out not confirmed",
			Messages:  []string{"This sign-out request could not be verified. Please use the sign-out button again."},
			Link:      logoutPath,
			LinkText:  "Sign out",
			RequestID: rid,
		})
		return
	}

	s, loadErr := g.sessions.Load(r)
	if errors.Is(loadErr, websession.ErrNoSession) {
		loadErr = nil
	}
	// End clears the cookie whatever else fails.
	failed := false
	if err := g.sessions.End(w, r); err != nil {
		failed = true
		g.log.ErrorContext(ctx, "sign-out: ending the gate session failed", "error", err)
	}
	if loadErr != nil {
		failed = true
		g.log.ErrorContext(ctx, "sign-out: loading the gate session failed", "error", loadErr)
	}
	if s != nil {
		g.identities.remove(s.ID)
		if g.cfg.EndIdPSession != nil && s.ParentID != "" {
			if err := g.cfg.EndIdPSession(ctx, s.ParentID); err != nil {
				failed = true
				g.log.ErrorContext(ctx, "sign-out: ending the IdP session failed", "error", err, "user", s.Username)
			}
			if _, err := g.sessions.RevokeChildren(ctx, s.UserID, s.ParentID); err != nil {
				failed = true
				g.log.ErrorContext(ctx, "sign-out: revoking the user's other gate sessions failed", "error", err, "user", s.Username)
			}
		}
		g.log.LogAttrs(ctx, slog.LevelInfo, "signed out", slog.String("user", s.Username), slog.Bool("complete", !failed))
	}
	if failed {
		rid := newRequestID()
		g.log.LogAttrs(ctx, slog.LevelError, "sign-out incomplete", slog.String("request_id", rid))
		g.writePage(w, r, http.StatusServiceUnavailable, page{
			Title:     "Sign-out incomplete",
			Heading:   "Sign-out incomplete",
			Messages:  []string{"Your browser's sign-in here was removed, but the sign-in service could not be reached to finish signing you out everywhere. Please try again in a moment."},
			Link:      logoutPath,
			LinkText:  "Try again",
			RequestID: rid,
		})
		return
	}
	g.writePage(w, r, http.StatusOK, page{
		Title:    "Signed out",
		Heading:  "You are signed out",
		Messages: []string{"You have been signed out of " + g.host + "."},
		Link:     "/",
		LinkText: "Go to the start page",
	})
}

package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
)

// callbackError is a failed callback: the status to answer with and why, for the log.
type callbackError struct {
	status int
	reason string // short, stable: "state_mismatch", "exchange_failed", ...
	err    error
}

func (e *callbackError) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}

func (e *callbackError) Unwrap() error { return e.err }

func badCallback(reason string, err error) *callbackError {
	return &callbackError{status: http.StatusBadRequest, reason: reason, err: err}
}

func unavailableCallback(reason string, err error) *callbackError {
	return &callbackError{status: http.StatusServiceUnavailable, reason: reason, err: err}
}

// idClaims are the ID token (or userinfo) claims the gate uses.
type idClaims struct {
	Subject           string   `json:"sub"`
	PreferredUsername string   `json:"preferred_username"`
	Name              string   `json:"name"`
	Email             string   `json:"email"`
	Groups            []string `json:"groups"`
	AMR               []string `json:"amr"`
	AuthTime          float64  `json:"auth_time"`
	SID               string   `json:"sid"`
}

// callback finishes a sign-in: it checks the state, exchanges the code, verifies the ID token
// and starts a gate session.
func (g *Gate) callback(w http.ResponseWriter, r *http.Request, clientIP netip.Addr) {
	pl, s, err := g.finishLogin(w, r, clientIP)
	if err != nil {
		rid := newRequestID()
		var ce *callbackError
		if !errors.As(err, &ce) {
			ce = badCallback("internal", err)
		}
		level := slog.LevelWarn
		if ce.status >= 500 {
			level = slog.LevelError
		}
		g.log.LogAttrs(r.Context(), level, "sign-in failed",
			slog.String("reason", ce.reason), slog.String("error", ce.Error()),
			slog.String("request_id", rid))
		g.signInFailed(w, r, ce.status, rid)
		return
	}
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "signed in",
		slog.String("user", s.Username), slog.String("sub", s.UserID),
		slog.Any("groups", s.Groups), slog.Any("amr", s.AMR), slog.Any("behavior", s.Behavior))
	ret := safeReturnPath(pl.Return)
	if pl.NeedsFactors && g.stillNeedsFactors(w, r, s, ret, clientIP) {
		return
	}
	h := w.Header()
	securityHeaders(h)
	// Checked when stored and again here: only a path on this site, never an absolute URL.
	h.Set("Location", ret)
	w.WriteHeader(http.StatusSeeOther)
}

// finishLogin does the work of callback and returns where to send the browser.
func (g *Gate) finishLogin(w http.ResponseWriter, r *http.Request, clientIP netip.Addr) (pendingLogin, *websession.Session, error) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return pendingLogin{}, nil, badCallback("no_state", nil)
	}

	// Only the browser that started the sign-in holds the state in its cookie.
	name := loginCookieName(state)
	c, err := r.Cookie(name)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		return pendingLogin{}, nil, badCallback("state_mismatch", errors.New("the state does not match the browser's login cookie"))
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: callbackPath, MaxAge: -1,
		HttpOnly: true, Secure: g.secure || r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})

	// Single use: a replayed callback finds nothing.
	pl, err := g.logins.Take(ctx, state)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return pendingLogin{}, nil, badCallback("unknown_state", errors.New("no pending sign-in for this state (expired or already used)"))
	case err != nil:
		return pendingLogin{}, nil, unavailableCallback("store_unavailable", fmt.Errorf("taking the pending sign-in: %w", err))
	}

	if e := q.Get("error"); e != "" {
		return pendingLogin{}, nil, badCallback("issuer_error", fmt.Errorf("issuer returned error %q: %q", truncate(e, 64), truncate(q.Get("error_description"), 256)))
	}
	code := q.Get("code")
	if code == "" {
		return pendingLogin{}, nil, badCallback("no_code", nil)
	}

	rp, err := g.relyingParty(ctx)
	if err != nil {
		return pendingLogin{}, nil, unavailableCallback("issuer_unavailable", err)
	}
	xctx, cancel := context.WithTimeout(g.clientContext(ctx), exchangeTimeout)
	defer cancel()
	tok, err := rp.oauth.Exchange(xctx, code, oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return pendingLogin{}, nil, badCallback("exchange_refused", fmt.Errorf("exchanging the code: %w", err))
		}
		return pendingLogin{}, nil, unavailableCallback("exchange_failed", fmt.Errorf("exchanging the code: %w", err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return pendingLogin{}, nil, badCallback("no_id_token", errors.New("the token response has no id_token"))
	}
	idt, err := rp.verifier.Verify(xctx, raw)
	if err != nil {
		if isNetworkError(err) {
			return pendingLogin{}, nil, unavailableCallback("id_token_keys_unavailable", fmt.Errorf("verifying the ID token: %w", err))
		}
		return pendingLogin{}, nil, badCallback("id_token_invalid", fmt.Errorf("verifying the ID token: %w", err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.Nonce)) != 1 {
		return pendingLogin{}, nil, badCallback("nonce_mismatch", errors.New("the ID token's nonce is not the one sent"))
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return pendingLogin{}, nil, badCallback("id_token_claims", fmt.Errorf("reading the ID token's claims: %w", err))
	}
	if err := g.readGroups(idt.Claims, &cl); err != nil {
		return pendingLogin{}, nil, badCallback("id_token_claims", err)
	}
	if cl.Subject == "" {
		return pendingLogin{}, nil, badCallback("id_token_claims", errors.New("the ID token has no sub"))
	}
	if err := g.fillFromUserinfo(xctx, rp, tok, &cl); err != nil {
		return pendingLogin{}, nil, err
	}
	if err := checkClaims(&cl); err != nil {
		return pendingLogin{}, nil, badCallback("id_token_claims", err)
	}

	sess := websession.Session{
		Kind:     SessionKind,
		Host:     g.host,
		UserID:   cl.Subject,
		Username: cl.PreferredUsername,
		Name:     cl.Name,
		Email:    cl.Email,
		Groups:   cl.Groups,
		AMR:      cl.AMR,
		ParentID: cl.SID,
	}
	if g.cfg.DeviceID != nil {
		sess.DeviceID, _ = g.cfg.DeviceID(r, sess.UserID)
	}
	if sess.Username == "" {
		sess.Username = cl.Subject
	}
	if cl.AuthTime > 0 {
		sess.AuthTime = time.Unix(int64(cl.AuthTime), 0).UTC()
	} else {
		sess.AuthTime = g.now().UTC()
	}

	if g.cfg.Behavior != nil {
		sess.Behavior, err = g.cfg.Behavior.Check(ctx, sess.UserID, clientIP, sess.DeviceID, twoFactors(sess.AMR))
		if err != nil {
			return pendingLogin{}, nil, unavailableCallback("behavior_unavailable", fmt.Errorf("judging the sign-in: %w", err))
		}
	}

	// A gate session the browser already had is replaced, not kept alongside.
	if old, err := g.sessions.Load(r); err == nil && old.Kind == SessionKind && old.Host == g.host {
		if err := g.sessions.Revoke(ctx, old.ID); err != nil {
			g.log.WarnContext(ctx, "revoking the previous gate session failed", "error", err)
		}
	}
	started, err := g.sessions.Start(w, r, sess)
	if err != nil {
		return pendingLogin{}, nil, unavailableCallback("session_start_failed", err)
	}
	return pl, started, nil
}

// fillFromUserinfo asks the userinfo endpoint for the profile claims an ID token left out
// (many issuers keep ID tokens small). A failure fails the sign-in: a user without their
// groups could pass a rule that excludes a group.
func (g *Gate) fillFromUserinfo(ctx context.Context, rp *relyingParty, tok *oauth2.Token, cl *idClaims) error {
	if cl.PreferredUsername != "" && cl.Groups != nil && (cl.Email != "" || cl.Name != "") {
		return nil
	}
	if rp.provider.UserInfoEndpoint() == "" {
		return nil
	}
	ui, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		if isNetworkError(err) {
			return unavailableCallback("userinfo_unavailable", fmt.Errorf("reading userinfo: %w", err))
		}
		return badCallback("userinfo_failed", fmt.Errorf("reading userinfo: %w", err))
	}
	var u idClaims
	if err := ui.Claims(&u); err != nil {
		return badCallback("userinfo_failed", fmt.Errorf("reading userinfo claims: %w", err))
	}
	if err := g.readGroups(ui.Claims, &u); err != nil {
		return badCallback("userinfo_failed", err)
	}
	if subtle.ConstantTimeCompare([]byte(u.Subject), []byte(cl.Subject)) != 1 {
		return badCallback("userinfo_subject_mismatch", errors.New("userinfo is about another subject than the ID token"))
	}
	if cl.PreferredUsername == "" {
		cl.PreferredUsername = u.PreferredUsername
	}
	if cl.Name == "" {
		cl.Name = u.Name
	}
	if cl.Email == "" {
		cl.Email = u.Email
	}
	if cl.Groups == nil {
		cl.Groups = u.Groups
	}
	return nil
}

// readGroups fills cl.Groups from the configured groups claim when it is not "groups". A
// claim that is present but not a list of strings fails the sign-in rather than dropping the
// user's groups.
func (g *Gate) readGroups(claims func(any) error, cl *idClaims) error {
	name := g.cfg.OIDC.GroupsClaim
	if name == "" || name == "groups" {
		return nil
	}
	var all map[string]json.RawMessage
	if err := claims(&all); err != nil {
		return fmt.Errorf("reading claims: %w", err)
	}
	raw, ok := all[name]
	if !ok {
		cl.Groups = nil
		return nil
	}
	var groups []string
	if err := json.Unmarshal(raw, &groups); err != nil {
		return fmt.Errorf("claim %q is not a list of strings", name)
	}
	cl.Groups = groups
	return nil
}

// checkClaims refuses values that cannot travel in a header as they are: control characters
// anywhere, and commas in group names (the groups header is comma-separated).
func checkClaims(cl *idClaims) error {
	for _, f := range []struct{ name, v string }{
		{"sub", cl.Subject}, {"preferred_username", cl.PreferredUsername}, {"name", cl.Name}, {"email", cl.Email}, {"sid", cl.SID},
	} {
		if !validHeaderValue(f.v) {
			return fmt.Errorf("claim %s has characters not allowed in a header", f.name)
		}
	}
	for i, grp := range cl.Groups {
		if grp == "" || !validHeaderValue(grp) || strings.ContainsRune(grp, ',') {
			return fmt.Errorf("group %d: empty, or has a comma or a character not allowed in a header", i+1)
		}
	}
	return nil
}

// validHeaderValue reports whether s has no control characters (RFC 9110 field-value, without
// the obs-text exception for tabs).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// isNetworkError reports whether err comes from not reaching a server.
func isNetworkError(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// twoFactors reports whether a sign-in with these amr values had two factors: "mfa", or two
// of a password, a code and a key.
func twoFactors(amr []string) bool {
	var pwd, otp, key bool
	for _, v := range amr {
		switch v {
		case "mfa":
			return true
		case "pwd":
			pwd = true
		case "otp":
			otp = true
		case "hwk", "swk":
			key = true
		}
	}
	n := 0
	for _, b := range []bool{pwd, otp, key} {
		if b {
			n++
		}
	}
	return n >= 2
}

package idp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/store"
)

const (
	pathEnroll = "/enroll" // a security key set up from an administrator's one-time link
	// kindEnrollLink holds one-time enrollment links, keyed by the SHA-256 of the token.
	kindEnrollLink store.Kind = "enroll_link"
	// DefaultEnrollmentLinkTTL is how long an enrollment link works.
	DefaultEnrollmentLinkTTL = 24 * time.Hour
)

// enrollLink is a stored one-time enrollment link.
type enrollLink struct {
	UserID    string    `json:"user_id"`
	Username  string    `json:"username"`
	CreatedBy string    `json:"created_by"`
	ExpiresAt time.Time `json:"expires"`
}

func (p *IdP) enrollLinks() store.Collection[enrollLink] {
	return store.Collection[enrollLink]{Store: p.store, Kind: kindEnrollLink}
}

func linkKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CreateEnrollmentLink returns a one-time link with which username sets up a security key
// without signing in: for someone without a password, or who lost every key. It works once,
// for ttl (DefaultEnrollmentLinkTTL when 0). Only the token's SHA-256 is stored.
func (p *IdP) CreateEnrollmentLink(ctx context.Context, username, createdBy string, ttl time.Duration) (string, time.Time, error) {
	if p.passkeys == nil {
		return "", time.Time{}, errors.New("idp: enrollment links need webauthn")
	}
	u, ok := p.users.Lookup(username)
	if !ok || u.Disabled {
		return "", time.Time{}, fmt.Errorf("idp: enrollment link: no active user %q", username)
	}
	if ttl <= 0 {
		ttl = DefaultEnrollmentLinkTTL
	}
	token := newID()
	exp := p.now().Add(ttl)
	if err := p.enrollLinks().Create(ctx, linkKey(token), u.ID, exp, enrollLink{UserID: u.ID, Username: u.Username, CreatedBy: createdBy, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, fmt.Errorf("idp: storing an enrollment link: %w", err)
	}
	p.log.InfoContext(ctx, "idp: enrollment link created", slog.String("event", "user.mfa.enrollment_link.create"),
		slog.String("username", u.Username), slog.String("by", createdBy), slog.Time("expires", exp))
	p.emit(ctx, nil, Event{Type: "user.mfa.enrollment_link.create", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username,
		Details: map[string]string{"by": createdBy, "expires": exp.UTC().Format(time.RFC3339)}})
	return p.issuer + pathEnroll + "?" + url.Values{"token": {token}}.Encode(), exp, nil
}

// linkUser loads the link's user; it has answered when not ok.
func (p *IdP) linkUser(w http.ResponseWriter, r *http.Request, l enrollLink) (directory.User, bool) {
	u, err := p.storage.activeUser(l.Username, l.UserID)
	if err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Set up a security key", "", "This link is no longer valid. Ask your administrator for a new one.")
		return directory.User{}, false
	}
	return u, true
}

// handleEnrollLinkForm serves GET /enroll?token=...: the security key set-up for the link's user.
func (p *IdP) handleEnrollLinkForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := r.URL.Query().Get("token")
	l, err := p.enrollLinks().Get(ctx, linkKey(token))
	if err == nil && !p.now().Before(l.ExpiresAt) {
		err = store.ErrNotFound // the store's clock may be behind ours
	}
	if errors.Is(err, store.ErrNotFound) || token == "" {
		p.renderMessage(w, r, http.StatusBadRequest, "Set up a security key", "", "This link is expired, already used, or not valid. Ask your administrator for a new one.")
		return
	}
	if err != nil {
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Set up a security key", msgUnavailable, "")
		return
	}
	u, ok := p.linkUser(w, r, l)
	if !ok {
		return
	}
	p.showLinkEnroll(w, r, http.StatusOK, u, token, "")
}

func (p *IdP) showLinkEnroll(w http.ResponseWriter, r *http.Request, status int, u directory.User, token, errMsg string) {
	ctx := r.Context()
	ceremony, opts, err := p.passkeys.BeginRegistration(ctx, passkeyUser(u))
	if err != nil {
		p.log.ErrorContext(ctx, "idp: starting a security key setup", slog.String("username", u.Username), slog.Any("error", err))
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Set up a security key", msgUnavailable, "")
		return
	}
	w.Header().Set("Referrer-Policy", "no-referrer")
	p.renderKeyPage(w, r, status, "webauthn_enroll", nil, "Set up a security key", errMsg, &webauthnPage{
		Mode: "create", Options: template.JS(opts), Ceremony: ceremony, Action: pathEnroll, KeyName: defaultKeyName, Token: token,
	})
}

// handleEnrollLinkSubmit serves POST /enroll: the link is taken (single use) and the key
// registered; a refused key gives the link back for another try.
func (p *IdP) handleEnrollLinkSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.renderMessage(w, r, http.StatusBadRequest, "Set up a security key", "The form could not be read.", "")
		return
	}
	if err := p.csrf.Check(r, csrfPurposeWebAuthn); err != nil {
		p.renderMessage(w, r, http.StatusForbidden, "Set up a security key", msgFormExpired, "")
		return
	}
	token := r.PostFormValue("token")
	key := linkKey(token)
	l, err := p.enrollLinks().Take(ctx, key)
	if err == nil && !p.now().Before(l.ExpiresAt) {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) || token == "" {
		p.log.InfoContext(ctx, "idp: enrollment link refused: expired, used or unknown", slog.String("remote", r.RemoteAddr))
		p.renderMessage(w, r, http.StatusBadRequest, "Set up a security key", "", "This link is expired, already used, or not valid. Ask your administrator for a new one.")
		return
	}
	if err != nil {
		p.renderMessage(w, r, http.StatusServiceUnavailable, "Set up a security key", msgUnavailable, "")
		return
	}
	u, ok := p.linkUser(w, r, l)
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = defaultKeyName
	}
	cred, err := p.passkeys.FinishRegistration(ctx, passkeyUser(u), r.PostFormValue("ceremony"), []byte(r.PostFormValue("credential")), name)
	if err != nil {
		reason := passkey.Reason(err)
		p.log.InfoContext(ctx, "idp: security key setup from a link refused", slog.String("username", u.Username), slog.String("reason", reason),
			slog.String("error", err.Error()))
		// Give the link back so the person can try again with the same link.
		if cerr := p.enrollLinks().Create(ctx, key, l.UserID, l.ExpiresAt, l); cerr != nil {
			p.log.WarnContext(ctx, "idp: restoring an enrollment link", slog.Any("error", cerr))
		}
		if reason == "error" {
			p.renderMessage(w, r, http.StatusServiceUnavailable, "Set up a security key", msgUnavailable, "")
			return
		}
		p.showLinkEnroll(w, r, http.StatusBadRequest, u, token, keyMessage(err))
		return
	}
	p.log.InfoContext(ctx, "idp: security key added from an enrollment link", slog.String("event", "user.mfa.factor.activate"),
		slog.String("username", u.Username), slog.String("credential", cred.Name), slog.String("link_by", l.CreatedBy))
	p.emit(ctx, r, Event{Type: "user.mfa.factor.activate", Outcome: "SUCCESS", UserID: u.ID, Username: u.Username,
		Details: map[string]string{"factor": "webauthn", "name": cred.Name, "via": "enrollment_link"}})
	p.renderMessage(w, r, http.StatusOK, "Security key added", "",
		"Security key \u201c"+cred.Name+"\u201d is set up. Sign in to your apps with it.")
}

package idp

import (
	"bytes"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/webauthn.js
var webauthnJS []byte

// serveWebAuthnJS serves the security key prompt's script.
func serveWebAuthnJS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "webauthn.js", time.Time{}, bytes.NewReader(webauthnJS))
}

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// pageData is what the templates see.
type pageData struct {
	Title         string
	Error         string
	Message       string
	ClientID      string
	AuthRequestID string
	Username      string
	CSRFField     string
	CSRFToken     string
	Logout        *logoutForm
	// MFAID names the pending second step on the code form.
	MFAID string
	// Enroll is the authenticator enrollment page's content.
	Enroll *enrollForm
	// WebAuthn is the security key prompt of the page, if any.
	WebAuthn *webauthnPage
	// Account is the self-service page's content.
	Account *accountPage

	// dataImages lets the page show data: images (the enrollment QR code).
	dataImages bool
	// scripts lets the page load this site's own scripts (the WebAuthn prompt).
	scripts bool
}

// logoutForm carries the end_session parameters through the confirmation form.
type logoutForm struct {
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
}

// Messages shown to users.
const (
	msgInvalidCredentials = "Invalid username or password."
	msgFormExpired        = "Your sign-in form expired, please try again."
	msgUnavailable        = "Sign-in is temporarily unavailable. Please try again in a moment."
)

// setPageHeaders sets the security headers of our HTML pages. formTargets are origins a form
// on the page may end up at after redirects (browsers apply form-action to the redirect
// chain, and a sign-in ends at the client's redirect URI).
func setPageHeaders(w http.ResponseWriter, formTargets ...string) {
	h := w.Header()
	formAction := "'self'"
	for _, t := range formTargets {
		if o := cspOrigin(t); o != "" {
			formAction += " " + o
		}
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// cspOrigin returns the scheme://host[:port] of an absolute http(s) URL, or "" when it is not
// one or holds characters that could change the meaning of a CSP header.
func cspOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	for _, c := range u.Host {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune(".-:[]", c)
		if !ok {
			return ""
		}
	}
	return u.Scheme + "://" + u.Host
}

// render writes a page. Rendering goes to a buffer first so a template error becomes a
// clean 500.
func (p *IdP) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData, formTargets ...string) {
	d.CSRFField = csrfFieldName
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, d); err != nil {
		p.log.ErrorContext(r.Context(), "idp: rendering page", slog.String("page", name), slog.Any("error", err))
		setPageHeaders(w)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w, formTargets...)
	if d.dataImages {
		w.Header().Set("Content-Security-Policy", w.Header().Get("Content-Security-Policy")+"; img-src data:")
	}
	if d.scripts || d.WebAuthn != nil {
		w.Header().Set("Content-Security-Policy", w.Header().Get("Content-Security-Policy")+"; script-src 'self'")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderMessage shows a simple page with a title and a message.
func (p *IdP) renderMessage(w http.ResponseWriter, r *http.Request, status int, title, errMsg, msg string) {
	p.render(w, r, status, "message", pageData{Title: title, Error: errMsg, Message: msg})
}

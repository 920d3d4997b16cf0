package gateway

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

//go:embed templates/page.html
var templateFS embed.FS

var pageTemplate = template.Must(template.ParseFS(templateFS, "templates/page.html"))

// page is what the one page template shows.
type page struct {
	Title     string
	Heading   string
	Messages  []string
	Form      *pageForm
	Link      string
	LinkText  string
	RequestID string
}

// pageForm is a one-button POST form with a CSRF token.
type pageForm struct {
	Action string
	Field  string
	Token  string
	Button string
}

// securityHeaders sets the headers every response of the gate's own carries.
func securityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// contentSecurityPolicy allows the page's inline style and its form posting back here, and
// nothing else.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// writePage renders p with status. Rendering happens into a buffer first so a template error
// cannot leave a half-written page.
func (g *Gate) writePage(w http.ResponseWriter, r *http.Request, status int, p page) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		g.log.ErrorContext(r.Context(), "rendering gate page", "error", err)
		buf.Reset()
		buf.WriteString("<!doctype html><title>Error</title><p>Something went wrong.</p>")
		status = http.StatusInternalServerError
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":"internal_error"}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// wantsHTML reports whether the client is a browser that should see a page rather than JSON.
func wantsHTML(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return acceptsHTML(r)
}

// acceptsHTML reports whether the Accept header names text/html.
func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// isNavigation reports whether an unauthenticated request is a browser navigation that should
// be sent to sign in (rather than answered 401): GET or HEAD, and Sec-Fetch-Mode navigate, or
// no Sec-Fetch-Mode and an Accept header naming text/html.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return wantsHTML(r)
}

// newRequestID returns a random id that ties a page the user sees to the log line.
func newRequestID() string { return rand.Text() }

// Pages and error bodies.

func (g *Gate) deny(w http.ResponseWriter, r *http.Request, rid string) {
	if !wantsHTML(r) {
		writeJSON(w, http.StatusForbidden, struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}{"access_denied", rid})
		return
	}
	g.writePage(w, r, http.StatusForbidden, page{
		Title:     "Access denied",
		Heading:   "Access denied",
		Messages:  []string{"You do not have access to this page from here. If you think you should, contact your administrator and give them the request ID below."},
		RequestID: rid,
	})
}

func (g *Gate) unavailable(w http.ResponseWriter, r *http.Request, rid string) {
	if !wantsHTML(r) {
		writeJSON(w, http.StatusServiceUnavailable, struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}{"service_unavailable", rid})
		return
	}
	g.writePage(w, r, http.StatusServiceUnavailable, page{
		Title:     "Temporarily unavailable",
		Heading:   "Temporarily unavailable",
		Messages:  []string{"The sign-in service cannot be reached right now. Please try again in a moment."},
		Link:      "/",
		LinkText:  "Try again",
		RequestID: rid,
	})
}

func (g *Gate) notFound(w http.ResponseWriter, r *http.Request) {
	g.writePage(w, r, http.StatusNotFound, page{Title: "Not found", Heading: "Not found", Messages: []string{"There is nothing here."}, Link: "/", LinkText: "Go to the start page"})
}

func (g *Gate) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	g.writePage(w, r, http.StatusMethodNotAllowed, page{Title: "Method not allowed", Heading: "Method not allowed", Messages: []string{"This address does not accept that kind of request."}, Link: "/", LinkText: "Go to the start page"})
}

// signInFailed shows the page for a callback that did not end in a session.
func (g *Gate) signInFailed(w http.ResponseWriter, r *http.Request, status int, rid string) {
	msg := "Something went wrong while signing you in. Please start again."
	if status == http.StatusServiceUnavailable {
		msg = "The sign-in service cannot be reached right now. Please try again in a moment."
	}
	g.writePage(w, r, status, page{
		Title:     "Sign-in failed",
		Heading:   "Sign-in failed",
		Messages:  []string{msg},
		Link:      "/",
		LinkText:  "Start again",
		RequestID: rid,
	})
}

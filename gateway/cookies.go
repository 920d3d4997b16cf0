package gateway

import (
	"net/http"
	"strings"
)

// ownCookiePrefix starts the name of every cookie zonegate sets (session, sign-in, CSRF).
const ownCookiePrefix = "zonegate_"

// stripOwnCookies removes zonegate's cookies from a request on its way to the backend, so the
// app never sees a session token it could log or leak. Other cookies pass unchanged. A request
// without such a cookie costs a scan and no allocation.
func stripOwnCookies(h http.Header) {
	vals := h["Cookie"]
	found := false
	for _, v := range vals {
		if strings.Contains(v, ownCookiePrefix) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var b strings.Builder
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || strings.HasPrefix(strings.TrimSpace(name), ownCookiePrefix) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{b.String()}
}

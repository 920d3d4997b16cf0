package gateway

import (
	"fmt"
	"golang.org/x/net/http/httpguts"
	"net/http"
)

// Headers names the identity headers the gate sends to the backend. An empty name means that
// header is not sent.
type Headers struct {
	// User carries the username (the preferred_username claim).
	User string
	// Email carries the user's email address.
	Email string
	// Name carries the user's display name.
	Name string
	// Groups carries the user's groups, comma-separated.
	Groups string
	// Assertion carries a signed JWT (ES256) stating who the user is, for backends that verify
	// it. Default "X-Zonegate-Assertion".
	Assertion string
	// AuthMethods carries how the user signed in: the amr values (pwd, otp, mfa, ...),
	// comma-separated.
	AuthMethods string
	// DeviceTrust carries the device's trust level (TRUSTED, NOT_TRUSTED, UNKNOWN) when the
	// gate identifies devices. Default "X-Device-Trust".
	DeviceTrust string
}

// DefaultAssertionHeader is the assertion header's name unless Headers.Assertion says otherwise.
const DefaultAssertionHeader = "X-Zonegate-Assertion"

// DefaultDeviceTrustHeader is the device trust header's name unless Headers.DeviceTrust says
// otherwise.
const DefaultDeviceTrustHeader = "X-Device-Trust"

// Header presets, for backends written against other gateways.
var (
	// DefaultHeaders are zonegate's own names.
	DefaultHeaders = Headers{User: "X-Remote-User", Email: "X-Remote-Email", Name: "X-Remote-Name", Groups: "X-Remote-Groups", AuthMethods: "X-Remote-Auth-Methods", Assertion: DefaultAssertionHeader, DeviceTrust: DefaultDeviceTrustHeader}
	// AutheliaHeaders are the names Authelia sends.
	AutheliaHeaders = Headers{User: "Remote-User", Email: "Remote-Email", Name: "Remote-Name", Groups: "Remote-Groups", AuthMethods: "Remote-Auth-Methods", Assertion: DefaultAssertionHeader, DeviceTrust: DefaultDeviceTrustHeader}
	// OAuth2ProxyHeaders are the names oauth2-proxy sends (with --set-xauthrequest).
	OAuth2ProxyHeaders = Headers{User: "X-Auth-Request-User", Email: "X-Auth-Request-Email", Name: "X-Auth-Request-Preferred-Username", Groups: "X-Auth-Request-Groups", AuthMethods: "X-Auth-Request-Auth-Methods", Assertion: DefaultAssertionHeader, DeviceTrust: DefaultDeviceTrustHeader}
)

// HeaderPreset returns the preset called name: "default", "authelia" or "oauth2-proxy".
func HeaderPreset(name string) (Headers, bool) {
	switch name {
	case "default":
		return DefaultHeaders, true
	case "authelia":
		return AutheliaHeaders, true
	case "oauth2-proxy":
		return OAuth2ProxyHeaders, true
	}
	return Headers{}, false
}

// maxStripName is the longest header name the strip set may hold; longer inbound names
// cannot match and are skipped without looking.
const maxStripName = 128

// forbiddenHeaders may not be used as identity headers: the gate itself or HTTP framing
// depends on them, so stripping or setting them would break requests.
var forbiddenHeaders = []string{
	"host", "cookie", "set-cookie", "authorization", "content-length", "content-type",
	"transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
	"proxy-authorization", "proxy-connection", "forwarded", "x-forwarded-for",
	"x-forwarded-host", "x-forwarded-proto", "accept", "sec-fetch-mode",
}

// normalizeHeaderName folds a header name the way CGI does not distinguish it: lower case,
// '_' written as '-'.
func normalizeHeaderName(s string) string {
	b := []byte(s)
	n := normalizeInto(b, s)
	return string(b[:n])
}

// normalizeInto writes s normalized into dst (len(dst) >= len(s)) and returns the length.
func normalizeInto(dst []byte, s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		dst[i] = c
	}
	return len(s)
}

// stripSet is the set of normalized header names removed from every request.
type stripSet struct {
	names  map[string]struct{}
	maxLen int
	// lens has bit n set when some name is n bytes long, so most inbound names are passed
	// over without hashing.
	lens [maxStripName/64 + 1]uint64
}

// buildStripSet checks the configured names and returns them with every preset's names.
func buildStripSet(h Headers) (stripSet, error) {
	s := stripSet{names: make(map[string]struct{})}
	configured := make(map[string]string)
	for _, f := range []struct{ field, name string }{
		{"user", h.User}, {"email", h.Email}, {"name", h.Name}, {"groups", h.Groups}, {"assertion", h.Assertion},
		{"device trust", h.DeviceTrust}, {"auth methods", h.AuthMethods},
	} {
		if f.name == "" {
			continue
		}
		if !httpguts.ValidHeaderFieldName(f.name) {
			return s, fmt.Errorf("%s header %q: not a valid header name", f.field, f.name)
		}
		if len(f.name) > maxStripName {
			return s, fmt.Errorf("%s header %q: longer than %d bytes", f.field, f.name, maxStripName)
		}
		n := normalizeHeaderName(f.name)
		for _, bad := range forbiddenHeaders {
			if n == bad {
				return s, fmt.Errorf("%s header %q: cannot be used as an identity header", f.field, f.name)
			}
		}
		if other, dup := configured[n]; dup {
			return s, fmt.Errorf("%s header %q: same header as the %s header", f.field, f.name, other)
		}
		configured[n] = f.field
	}
	for _, p := range []Headers{h, DefaultHeaders, AutheliaHeaders, OAuth2ProxyHeaders} {
		for _, name := range []string{p.User, p.Email, p.Name, p.Groups, p.Assertion, p.DeviceTrust, p.AuthMethods} {
			if name == "" {
				continue
			}
			n := normalizeHeaderName(name)
			s.names[n] = struct{}{}
			s.maxLen = max(s.maxLen, len(n))
			s.lens[len(n)/64] |= 1 << (len(n) % 64)
		}
	}
	return s, nil
}

// strip deletes from hdr every header whose name is in the set, comparing case-insensitively
// with '_' and '-' alike. It walks the keys once and allocates nothing.
func (s *stripSet) strip(hdr http.Header) {
	var buf [maxStripName]byte
	for k := range hdr {
		if len(k) > s.maxLen || s.lens[len(k)/64]&(1<<(len(k)%64)) == 0 {
			continue
		}
		n := normalizeInto(buf[:], k)
		if _, ok := s.names[string(buf[:n])]; ok {
			delete(hdr, k) // deleting the current key while ranging is allowed
		}
	}
}

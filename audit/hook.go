package audit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/zonegate/zonegate/internal/hmacsig"
)

// Event hook protocol: header names and limits (see the package documentation).
const (
	// HeaderEventID carries the delivered event's id.
	HeaderEventID = "X-Zonegate-Event-Id"
	// HeaderTimestamp carries the request's unix time in seconds.
	HeaderTimestamp = "X-Zonegate-Timestamp"
	// HeaderSignature carries "v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>".
	HeaderSignature = "X-Zonegate-Signature"
	// HeaderChallenge carries the verification handshake's challenge.
	HeaderChallenge = "X-Zonegate-Verification-Challenge"
	// DefaultMaxAge is the timestamp window Verify uses when given none.
	DefaultMaxAge = 5 * time.Minute
	// MinSecretLen is the shortest hook secret Validate accepts, in bytes.
	MinSecretLen = 32
	// DefaultMaxAttempts is a hook's MaxAttempts when it sets none.
	DefaultMaxAttempts = 12
	// maxMaxAttempts bounds MaxAttempts (12 attempts already span about an hour and a half).
	maxMaxAttempts = 100
	// maxSignatures bounds the entries of a signature header.
	maxSignatures = 8
)

// Errors Verify returns (wrapped with details).
var (
	// ErrBadSignature means the signature header is missing, malformed, or made with another
	// secret or over other bytes.
	ErrBadSignature = errors.New("audit: bad event hook signature")
	// ErrStaleTimestamp means the timestamp is further than maxAge from now.
	ErrStaleTimestamp = errors.New("audit: event hook timestamp outside the allowed window")
)

// Hook is an event hook: a URL that receives the events of the types it chose.
type Hook struct {
	// Name identifies the hook: 1 to 64 of a-z, 0-9, '_' and '-'; unique in a Config.
	Name string `json:"name"`
	// URL receives the POSTs: https, or http only for localhost, 127.0.0.1 and ::1.
	URL string `json:"url"`
	// Secret is the HMAC-SHA256 key, at least 32 bytes. Never logged.
	Secret string `json:"secret"`
	// Types are the event types to send: exact, or a prefix when the entry ends in "." or "*"
	// ("user.session.*"; "*" alone is every type). Required: a hook must choose.
	Types []string `json:"types"`
	// MaxAttempts is how many times a delivery is tried before it is abandoned; default 12.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// Validate checks the hook's configuration. Errors name the hook but never show the secret.
func (h Hook) Validate() error {
	if err := checkHookName(h.Name); err != nil {
		return fmt.Errorf("event hook: %w", err)
	}
	if err := checkHookURL(h.URL); err != nil {
		return fmt.Errorf("event hook %q: %w", h.Name, err)
	}
	if len(h.Secret) < MinSecretLen {
		return fmt.Errorf("event hook %q: secret is %d bytes, want at least %d", h.Name, len(h.Secret), MinSecretLen)
	}
	if len(h.Types) == 0 {
		return fmt.Errorf("event hook %q: no event types: list the types to send (\"*\" for all)", h.Name)
	}
	for i, p := range h.Types {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("event hook %q: type %d: %w", h.Name, i+1, err)
		}
	}
	if h.MaxAttempts < 0 || h.MaxAttempts > maxMaxAttempts {
		return fmt.Errorf("event hook %q: max attempts %d: want 1 to %d (0 for the default %d)", h.Name, h.MaxAttempts, maxMaxAttempts, DefaultMaxAttempts)
	}
	return nil
}

// Matches reports whether the hook takes events of type typ.
func (h Hook) Matches(typ string) bool { return matchAny(h.Types, typ) }

func (h Hook) maxAttempts() int {
	if h.MaxAttempts > 0 {
		return h.MaxAttempts
	}
	return DefaultMaxAttempts
}

func checkHookName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 characters", clipQuote(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("name %q: only a-z, 0-9, '_' and '-'", name)
		}
	}
	return nil
}

func checkHookURL(raw string) error {
	if raw == "" {
		return errors.New("no URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("URL does not parse")
	}
	if u.User != nil {
		return errors.New("URL must not carry credentials (the signature authenticates the gateway)")
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("URL %q has no host", redactURL(u))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackName(u.Hostname()) {
			return fmt.Errorf("URL %q: http is allowed only for localhost, 127.0.0.1 and ::1; use https", redactURL(u))
		}
	default:
		return fmt.Errorf("URL %q: scheme must be https", redactURL(u))
	}
	if u.Fragment != "" {
		return fmt.Errorf("URL %q has a fragment", redactURL(u))
	}
	return nil
}

func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

// redactURL is u for logs and errors: scheme, host and path, without the query (which may hold
// a token).
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// redactRawURL is redactURL for a URL string.
func redactRawURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return redactURL(u)
}

// clipQuote cuts a user-supplied value for an error message.
func clipQuote(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Sign returns the X-Zonegate-Signature value for body sent at timestamp (unix seconds, as in
// X-Zonegate-Timestamp): "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret []byte, timestamp string, body []byte) string {
	return hmacsig.Header(hmacsig.MAC(secret, timestamp, body))
}

// Verify checks a delivery as a receiver would: signature is the X-Zonegate-Signature header
// (one or more comma-separated "v1=<hex>" entries; other schemes are ignored), timestamp the
// X-Zonegate-Timestamp header and body the raw request body. It returns nil if an entry is the
// MAC of timestamp and body under secret (compared in constant time) and the timestamp is within
// maxAge of now either way (DefaultMaxAge if maxAge <= 0). Errors wrap ErrBadSignature or
// ErrStaleTimestamp. An empty secret verifies nothing.
func Verify(secret []byte, timestamp string, body []byte, signature string, now time.Time, maxAge time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	ts, err := hmacsig.ParseTimestamp(timestamp)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	sigs, err := hmacsig.ParseHeader(signature)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if _, ok := hmacsig.Match([][]byte{secret}, timestamp, body, sigs); !ok {
		return fmt.Errorf("%w: no entry matches", ErrBadSignature)
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	// Compare in seconds so huge timestamps cannot overflow a Duration.
	d := now.Unix() - ts
	if lim := int64(maxAge / time.Second); d > lim || d < -lim {
		return fmt.Errorf("%w: timestamp is %d s from now, at most %s allowed", ErrStaleTimestamp, d, maxAge)
	}
	return nil
}

// HookPayload is the JSON body of a delivery, for receivers to decode.
type HookPayload struct {
	// EventType is the event's Type.
	EventType string `json:"eventType"`
	// EventID is the event's ID (also in X-Zonegate-Event-Id).
	EventID string `json:"eventId"`
	// EventTime is the event's Time, RFC 3339 with nanoseconds.
	EventTime string `json:"eventTime"`
	// Data holds the event.
	Data HookData `json:"data"`
}

// HookData is the data member of a HookPayload: one event per delivery.
type HookData struct {
	// Events is the delivered event (a list, as in Okta's event hooks).
	Events []Event `json:"events"`
}

// VerificationAnswer is the JSON body a receiver answers the handshake with.
type VerificationAnswer struct {
	// Verification is the challenge from the X-Zonegate-Verification-Challenge header.
	Verification string `json:"verification"`
}

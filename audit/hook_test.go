package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// signCases are Verify's table, also the fuzz seeds.
var signCases = func() []struct {
	name      string
	secret    string
	ts        string
	body      string
	sig       string
	now       time.Time
	maxAge    time.Duration
	wantErr   error
	wantInErr string
} {
	body := `{"eventType":"user.session.start"}`
	ts := strconv.FormatInt(t0.Unix(), 10)
	good := Sign([]byte(secret), ts, []byte(body))
	other := Sign([]byte("another secret, also 32 bytes ok"), ts, []byte(body))
	type c = struct {
		name      string
		secret    string
		ts        string
		body      string
		sig       string
		now       time.Time
		maxAge    time.Duration
		wantErr   error
		wantInErr string
	}
	return []c{
		{name: "good", secret: secret, ts: ts, body: body, sig: good, now: t0},
		{name: "good, 5 minutes later", secret: secret, ts: ts, body: body, sig: good, now: t0.Add(5 * time.Minute)},
		{name: "good, clock behind", secret: secret, ts: ts, body: body, sig: good, now: t0.Add(-5 * time.Minute)},
		{name: "one of several entries", secret: secret, ts: ts, body: body, sig: other + ", v0=zz," + good, now: t0},
		{name: "wrong secret", secret: "another secret, also 32 bytes ok!", ts: ts, body: body, sig: good, now: t0, wantErr: ErrBadSignature, wantInErr: "no entry matches"},
		{name: "other body", secret: secret, ts: ts, body: body + " ", sig: good, now: t0, wantErr: ErrBadSignature, wantInErr: "no entry matches"},
		{name: "other timestamp", secret: secret, ts: strconv.FormatInt(t0.Unix()+1, 10), body: body, sig: good, now: t0, wantErr: ErrBadSignature},
		{name: "stale", secret: secret, ts: ts, body: body, sig: good, now: t0.Add(5*time.Minute + time.Second), wantErr: ErrStaleTimestamp, wantInErr: "301 s from now"},
		{name: "from the future", secret: secret, ts: ts, body: body, sig: good, now: t0.Add(-6 * time.Minute), wantErr: ErrStaleTimestamp},
		{name: "short max age", secret: secret, ts: ts, body: body, sig: good, now: t0.Add(11 * time.Second), maxAge: 10 * time.Second, wantErr: ErrStaleTimestamp},
		{name: "empty secret", secret: "", ts: ts, body: body, sig: "v1=" + hex.EncodeToString(hmacOf(nil, ts, body)), now: t0, wantErr: ErrBadSignature, wantInErr: "no secret"},
		{name: "no signature", secret: secret, ts: ts, body: body, sig: "", now: t0, wantErr: ErrBadSignature, wantInErr: "empty"},
		{name: "no v1 entry", secret: secret, ts: ts, body: body, sig: "v2=" + good[3:], now: t0, wantErr: ErrBadSignature, wantInErr: "no v1 entry"},
		{name: "bare hex", secret: secret, ts: ts, body: body, sig: good[3:], now: t0, wantErr: ErrBadSignature, wantInErr: "want scheme=value"},
		{name: "short hex", secret: secret, ts: ts, body: body, sig: good[:20], now: t0, wantErr: ErrBadSignature, wantInErr: "hex digits"},
		{name: "not hex", secret: secret, ts: ts, body: body, sig: "v1=" + strings.Repeat("zz", 32), now: t0, wantErr: ErrBadSignature, wantInErr: "not hex"},
		{name: "too many entries", secret: secret, ts: ts, body: body, sig: strings.Repeat(good+",", 8) + good, now: t0, wantErr: ErrBadSignature, wantInErr: "more than 8"},
		{name: "timestamp not a number", secret: secret, ts: "12a", body: body, sig: good, now: t0, wantErr: ErrBadSignature, wantInErr: "timestamp"},
		{name: "timestamp empty", secret: secret, ts: "", body: body, sig: good, now: t0, wantErr: ErrBadSignature, wantInErr: "timestamp"},
		{name: "timestamp huge", secret: secret, ts: "999999999999", body: body, sig: Sign([]byte(secret), "999999999999", []byte(body)), now: t0, wantErr: ErrStaleTimestamp},
		{name: "timestamp signed", secret: secret, ts: "-1", body: body, sig: good, now: t0, wantErr: ErrBadSignature},
	}
}()

func hmacOf(key []byte, ts, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "." + body))
	return m.Sum(nil)
}

func TestSign(t *testing.T) {
	// The scheme, spelled out independently: "v1=" + hex(HMAC-SHA256(secret, ts + "." + body)).
	want := "v1=" + hex.EncodeToString(hmacOf([]byte(secret), "1700000000", `{"a":1}`))
	if got := Sign([]byte(secret), "1700000000", []byte(`{"a":1}`)); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	for _, tt := range signCases {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify([]byte(tt.secret), tt.ts, []byte(tt.body), tt.sig, tt.now, tt.maxAge)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("got %v, want %v containing %q", err, tt.wantErr, tt.wantInErr)
			}
		})
	}
}

func TestHookValidate(t *testing.T) {
	good := Hook{Name: "siem_1", URL: "https://siem.example.com/in?token=abc", Secret: secret, Types: []string{"user.*"}}
	for _, tt := range []struct {
		name string
		edit func(*Hook)
		want string // "" = valid
	}{
		{"good", func(*Hook) {}, ""},
		{"http localhost", func(h *Hook) { h.URL = "http://localhost:8080/hook" }, ""},
		{"http 127.0.0.1", func(h *Hook) { h.URL = "http://127.0.0.1/hook" }, ""},
		{"http ::1", func(h *Hook) { h.URL = "http://[::1]:9000/" }, ""},
		{"all types", func(h *Hook) { h.Types = []string{"*"} }, ""},
		{"max attempts set", func(h *Hook) { h.MaxAttempts = 3 }, ""},
		{"no name", func(h *Hook) { h.Name = "" }, `event hook: name "": want 1 to 64 characters`},
		{"long name", func(h *Hook) { h.Name = strings.Repeat("a", 65) }, "want 1 to 64 characters"},
		{"upper-case name", func(h *Hook) { h.Name = "SIEM" }, `name "SIEM": only a-z, 0-9, '_' and '-'`},
		{"name with slash", func(h *Hook) { h.Name = "a/b" }, "only a-z"},
		{"no URL", func(h *Hook) { h.URL = "" }, `event hook "siem_1": no URL`},
		{"http elsewhere", func(h *Hook) { h.URL = "http://siem.example.com/in?token=abc" }, `URL "http://siem.example.com/in": http is allowed only for localhost`},
		{"http on a lookalike", func(h *Hook) { h.URL = "http://localhost.example.com/" }, "http is allowed only for localhost"},
		{"http on another loopback", func(h *Hook) { h.URL = "http://127.0.0.2/" }, "http is allowed only for localhost"},
		{"ftp", func(h *Hook) { h.URL = "ftp://siem.example.com/" }, "scheme must be https"},
		{"relative", func(h *Hook) { h.URL = "/hook" }, "has no host"},
		{"credentials", func(h *Hook) { h.URL = "https://u:p@siem.example.com/" }, "must not carry credentials"},
		{"fragment", func(h *Hook) { h.URL = "https://siem.example.com/#x" }, "has a fragment"},
		{"unparsable", func(h *Hook) { h.URL = "https://[::1" }, "URL does not parse"},
		{"short secret", func(h *Hook) { h.Secret = secret[:31] }, "secret is 31 bytes, want at least 32"},
		{"no types", func(h *Hook) { h.Types = nil }, "no event types"},
		{"empty type", func(h *Hook) { h.Types = []string{"user.*", ""} }, "type 2: empty event type"},
		{"bad type", func(h *Hook) { h.Types = []string{"user.*.x"} }, `type 1: event type "user.*.x"`},
		{"negative attempts", func(h *Hook) { h.MaxAttempts = -1 }, "max attempts -1"},
		{"too many attempts", func(h *Hook) { h.MaxAttempts = 101 }, "max attempts 101"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			h.Types = append([]string(nil), good.Types...)
			tt.edit(&h)
			err := h.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), h.Secret) && h.Secret != "" {
				t.Errorf("error shows the secret: %v", err)
			}
			if strings.Contains(err.Error(), "token=abc") {
				t.Errorf("error shows the URL's query: %v", err)
			}
		})
	}
}

func TestTypeMatching(t *testing.T) {
	for _, tt := range []struct {
		pattern, typ string
		want         bool
	}{
		{"user.session.start", "user.session.start", true},
		{"user.session.start", "user.session.started", false},
		{"user.session.start", "user.session", false},
		{"user.session.*", "user.session.start", true},
		{"user.session.*", "user.session.end", true},
		{"user.session.*", "user.session", false},
		{"user.session.*", "user.sessions.start", false},
		{"user.session.", "user.session.start", true},
		{"user.session.", "user.session", false},
		{"user.*", "user.account.lock", true},
		{"user.*", "users.x", false},
		{"user*", "users.x", true},
		{"*", "anything.at.all", true},
		{"*", "", true},
		{"user.session", "user.session.start", false}, // no trailing . or *: exact
		{"", "", true},
		{"", "x", false},
		{"User.*", "user.x", false}, // case matters
	} {
		if got := matchType(tt.pattern, tt.typ); got != tt.want {
			t.Errorf("matchType(%q, %q) = %v, want %v", tt.pattern, tt.typ, got, tt.want)
		}
	}
	h := Hook{Types: []string{"user.session.*", "policy.evaluate_sign_on"}}
	for typ, want := range map[string]bool{"user.session.start": true, "policy.evaluate_sign_on": true, "policy.other": false, "": false} {
		if got := h.Matches(typ); got != want {
			t.Errorf("Matches(%q) = %v, want %v", typ, got, want)
		}
	}
	if (Hook{}).Matches("user.session.start") {
		t.Error("a hook without types matches")
	}
}

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		n        int
		r        float64
		min, max time.Duration
	}{
		{1, 0, 750 * time.Millisecond, 750 * time.Millisecond},
		{1, 0.5, time.Second, time.Second},
		{1, 0.999999, 1249 * time.Millisecond, 1250 * time.Millisecond},
		{2, 0.5, 2 * time.Second, 2 * time.Second},
		{3, 0.5, 4 * time.Second, 4 * time.Second},
		{10, 0.5, 512 * time.Second, 512 * time.Second},
		{10, 0.99, 600 * time.Second, 600 * time.Second}, // 1.24 * 512 s is past the cap
		{11, 0, 450 * time.Second, 450 * time.Second},
		{11, 0.5, 10 * time.Minute, 10 * time.Minute},
		{100, 0.999, 10 * time.Minute, 10 * time.Minute},
		{1000, 0, 450 * time.Second, 450 * time.Second},
		{0, 0.5, time.Second, time.Second}, // treated as the first failure
	} {
		if got := backoff(tt.n, tt.r); got < tt.min || got > tt.max {
			t.Errorf("backoff(%d, %v) = %s, want %s to %s", tt.n, tt.r, got, tt.min, tt.max)
		}
	}
}

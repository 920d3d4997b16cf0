package redis

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"
)

var urlCases = []struct {
	raw  string
	want string // Addr, or a piece of the error
	ok   bool
}{
	{"redis://127.0.0.1:6379", "127.0.0.1:6379", true},
	{"redis://redis.internal", "redis.internal:6379", true},
	{"redis://:pw@redis.internal:7000/2", "redis.internal:7000", true},
	{"redis://user:pw@[::1]:7000", "[::1]:7000", true},
	{"redis://h:1?dial_timeout=2s&max_retries=5", "h:1", true},
	{"rediss://user:p%40ss@h:6380/1", "h:6380", true},
	{"redis://:secretpass@[::1", "not a valid URL", false},
	{"http://:secretpass@h", "unsupported scheme", false},
	{"unix:///tmp/redis.sock", "unsupported scheme", false},
	{"redis:secretpass", "no host", false},
	{"redis://:secretpass@/0", "no host", false},
	{"redis://", "no host", false},
	{"redis://:secretpass@h/abc", "invalid database number", false},
	{"redis://:secretpass@h/1/2", "invalid URL path", false},
	{"redis://:secretpass@h?bogus=1", "unexpected option", false},
	{"redis://:secretpass@h?dial_timeout=soon", "invalid dial_timeout duration", false},
	{"redis://:1234/secretpass@h", "does not end the user info", false},
	{"redis://:12?secretpass@h", "does not end the user info", false},
	{"redis://:12#secretpass@h", "fragment", false},
	{"redis://h#frag", "fragment", false},
	{"redis://:secret@pass@h", "", true}, // url.Parse takes the last '@': password "secret@pass"
}

func TestParseURL(t *testing.T) {
	for _, tt := range urlCases {
		o, err := parseURL(tt.raw, nil)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%q: %v", tt.raw, err)
		case tt.ok && !strings.Contains(o.Addr, tt.want):
			t.Errorf("%q: Addr %q, want %q", tt.raw, o.Addr, tt.want)
		case !tt.ok && err == nil:
			t.Errorf("%q: parsed to %q, want an error saying %q", tt.raw, o.Addr, tt.want)
		case !tt.ok && !strings.Contains(err.Error(), tt.want):
			t.Errorf("%q: error %q, want it to say %q", tt.raw, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpass") {
			t.Errorf("%q: error %q shows the password", tt.raw, err)
		}
	}

	o, err := parseURL("redis://admin:p%40ss@h:1/3?dial_timeout=2s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Username != "admin" || o.Password != "p@ss" || o.DB != 3 || o.DialTimeout != 2*time.Second || o.TLSConfig != nil {
		t.Errorf("parsed options: user %q, password %q, db %d, dial timeout %v, TLS %v", o.Username, o.Password, o.DB, o.DialTimeout, o.TLSConfig)
	}
}

func TestParseURLTLS(t *testing.T) {
	o, err := parseURL("rediss://cache.example:6380", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" {
		t.Errorf("rediss://: TLS %+v, want ServerName cache.example", o.TLSConfig)
	}
	pool := x509.NewCertPool()
	mine := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	o, err = parseURL("rediss://cache.example:6380", mine)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLSConfig == mine || o.TLSConfig.RootCAs != pool || o.TLSConfig.MinVersion != tls.VersionTLS13 || o.TLSConfig.ServerName != "cache.example" {
		t.Errorf("rediss:// with a TLS option: got %+v, want a copy with its CAs and ServerName set", o.TLSConfig)
	}
	if mine.ServerName != "" {
		t.Error("parseURL changed the caller's TLS configuration")
	}
	if _, err := parseURL("redis://cache.example", mine); err == nil || !strings.Contains(err.Error(), "rediss://") {
		t.Errorf("redis:// with a TLS option: got %v, want an error pointing to rediss://", err)
	}
}

// passwords returns what a URL's password could be: the one url.Parse finds, and the text
// between "://", the first ':' and the last '@' (what a user may have meant).
func passwords(raw string) []string {
	var out []string
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, p, ok := strings.Cut(rest[:at], ":"); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// FuzzParseURL checks that parseURL never panics and never shows a password (unless the same
// text is elsewhere in the URL too) in its error or in the address it names.
func FuzzParseURL(f *testing.F) {
	for _, tt := range urlCases {
		f.Add(tt.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := parseURL(raw, nil)
		shown := ""
		if err != nil {
			shown = err.Error()
		} else {
			shown = o.Addr
		}
		for _, p := range passwords(raw) {
			if len(p) >= 4 && strings.Count(raw, p) == 1 && strings.Contains(shown, p) {
				t.Errorf("parseURL(%q) shows the password %q in %q", raw, p, shown)
			}
		}
	})
}

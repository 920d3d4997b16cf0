package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zonegate/zonegate/policy"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the gate.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkCheckAllowed is the hot path: a valid session (served from the session cache) on
// an allowed path, headers stripped and set, assertion reused.
func BenchmarkCheckAllowed(b *testing.B) {
	h := newHarness(b, func(_ *harness, c *Config) {
		c.Logger = nil // info level: the allow path's debug log is skipped
	})
	alice := h.signIn("alice", "staff", "admins")
	r := request("GET", "/app/page", &alice, map[string]string{
		"Accept":        "text/html",
		"User-Agent":    "Mozilla/5.0",
		"X-Remote-User": "mallory",
	})
	w := &discardWriter{h: make(http.Header)}
	cookie := r.Header["Cookie"]
	if !h.gate.Check(w, r, ipOffice) || r.Header.Get("X-Remote-User") != "alice" {
		b.Fatal("not allowed as alice")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Header["Cookie"] = cookie // the gate takes its own cookie off on the way to the backend
		if !h.gate.Check(w, r, ipOffice) {
			b.Fatal("not allowed")
		}
	}
	if r.Header.Get("X-Remote-User") != "alice" {
		b.Fatal("not signed in as alice")
	}
}

// BenchmarkCheckAllowedGateOnly is BenchmarkCheckAllowed without the session load (cookie
// parsing and signature check, which websession owns): what the gate itself costs.
func BenchmarkCheckAllowedGateOnly(b *testing.B) {
	h := newHarness(b, func(_ *harness, c *Config) { c.Logger = nil })
	alice := h.signIn("alice", "staff", "admins")
	r := request("GET", "/app/page", &alice, map[string]string{"Accept": "text/html", "User-Agent": "Mozilla/5.0"})
	w := &discardWriter{h: make(http.Header)}
	s, err := h.sessions.Load(r)
	if err != nil {
		b.Fatal(err)
	}
	g := h.gate
	run := func() bool {
		g.strip.strip(r.Header)
		zm := g.zones.Lookup(ipOffice)
		if _, blocked := g.zones.Blocked(zm); blocked {
			return false
		}
		return g.decide(w, r, ipOffice, zm, cleanPath(r.URL.Path), s, policy.Device{}).pass
	}
	if !run() {
		b.Fatal("not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		if !run() {
			b.Fatal("not allowed")
		}
	}
}

// BenchmarkStripHeaders strips a typical browser request's headers.
func BenchmarkStripHeaders(b *testing.B) {
	s := mustStripSet(DefaultHeaders)
	b.Run("nothing to strip", func(b *testing.B) {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range map[string]string{
			"Accept": "text/html", "Accept-Encoding": "gzip", "Accept-Language": "en", "Cookie": "a=b",
			"User-Agent": "Mozilla/5.0", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none",
			"X-Forwarded-For": "192.0.2.1", "X-Request-Id": "abc", "Upgrade-Insecure-Requests": "1",
		} {
			r.Header.Set(k, v)
		}
		b.ReportAllocs()
		for b.Loop() {
			s.strip(r.Header)
		}
	})
	b.Run("spoofed", func(b *testing.B) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", "text/html")
		r.Header.Set("User-Agent", "Mozilla/5.0")
		v := []string{"mallory"}
		b.ReportAllocs()
		for b.Loop() {
			r.Header["X-Remote-User"] = v
			r.Header["Remote_User"] = v
			s.strip(r.Header)
		}
	})
}

// TestAllowPathNoAllocs: once the session is loaded, letting a request through allocates
// nothing (strip, zones, policy, cached identity headers and assertion).
func TestAllowPathNoAllocs(t *testing.T) {
	h := newHarness(t, func(_ *harness, c *Config) { c.Logger = nil })
	alice := h.signIn("alice", "staff", "admins")
	r := request("GET", "/app/page", &alice, map[string]string{"Accept": "text/html"})
	w := &discardWriter{h: make(http.Header)}
	s, err := h.sessions.Load(r)
	if err != nil {
		t.Fatal(err)
	}
	g := h.gate
	run := func() {
		g.strip.strip(r.Header)
		zm := g.zones.Lookup(ipOffice)
		if !g.decide(w, r, ipOffice, zm, cleanPath(r.URL.Path), s, policy.Device{}).pass {
			t.Fatal("not allowed")
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("allow path allocates %v times per request", n)
	}
}

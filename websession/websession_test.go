package websession

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var key = []byte("0123456789abcdef0123456789abcdef")

func newManager(t *testing.T, mut func(*Config)) (*Manager, *clock, *bolt.Store) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	st, err := bolt.Open(t.TempDir()+"/s.db", bolt.Options{Now: clk.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{Store: st, CookieName: "sess", Keys: [][]byte{key}, Now: clk.Now,
		IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 8 * time.Hour}
	if mut != nil {
		mut(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, clk, st
}

// start signs alice in and returns the cookie the browser got.
func start(t *testing.T, m *Manager) (*Session, *http.Cookie) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://app.example/", nil)
	s, err := m.Start(w, r, Session{Kind: "gate", UserID: "u-alice", Username: "alice", Groups: []string{"admins"}})
	if err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("want one cookie, got %v", cs)
	}
	return s, cs[0]
}

func load(m *Manager, c *http.Cookie) (*Session, error) {
	r := httptest.NewRequest("GET", "http://app.example/x", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return m.Load(r)
}

func TestStartAndLoad(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s, c := start(t, m)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.MaxAge != 0 || c.Path != "/" {
		t.Errorf("cookie attributes: %+v", c)
	}
	if strings.Contains(c.Value, s.ID) {
		t.Error("cookie carries the raw id unsigned")
	}
	got, err := load(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != s.ID || got.Username != "alice" || got.Groups[0] != "admins" {
		t.Errorf("loaded %+v", got)
	}
}

func TestCookieSecureOnTLSAndPersistent(t *testing.T) {
	m, _, _ := newManager(t, func(c *Config) { c.Persistent = true })
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "https://app.example/", nil)
	if _, err := m.Start(w, r, Session{UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	c := w.Result().Cookies()[0]
	if !c.Secure || c.MaxAge != int((8*time.Hour)/time.Second) {
		t.Errorf("want Secure and Max-Age 8h, got %+v", c)
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name   string
		cookie func(t *testing.T, m *Manager, c *http.Cookie, clk *clock) *http.Cookie
	}{
		{"no cookie", func(*testing.T, *Manager, *http.Cookie, *clock) *http.Cookie { return nil }},
		{"garbage", func(_ *testing.T, _ *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			return &http.Cookie{Name: c.Name, Value: "not-a-cookie"}
		}},
		{"tampered", func(_ *testing.T, _ *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			v := []byte(c.Value)
			v[len(v)/2] ^= 1
			return &http.Cookie{Name: c.Name, Value: string(v)}
		}},
		{"signed with another key", func(t *testing.T, _ *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			other := securecookie.New([]byte("another-key-another-key-another!!"), nil)
			other.SetSerializer(securecookie.NopEncoder{})
			v, err := other.Encode(c.Name, []byte("some-session-id"))
			if err != nil {
				t.Fatal(err)
			}
			return &http.Cookie{Name: c.Name, Value: v}
		}},
		{"unknown id, validly signed", func(t *testing.T, m *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			v, err := securecookie.EncodeMulti(c.Name, []byte(NewID()), m.codecs...)
			if err != nil {
				t.Fatal(err)
			}
			return &http.Cookie{Name: c.Name, Value: v}
		}},
		{"idle expired", func(_ *testing.T, _ *Manager, c *http.Cookie, clk *clock) *http.Cookie {
			clk.Advance(31 * time.Minute)
			return c
		}},
		{"absolute expired though in use", func(t *testing.T, m *Manager, c *http.Cookie, clk *clock) *http.Cookie {
			for i := 0; i < 17; i++ { // used every 29 minutes: never idle, but past 8h
				clk.Advance(29 * time.Minute)
				if _, err := load(m, c); err != nil && i < 16 {
					t.Fatalf("session ended early at step %d: %v", i, err)
				}
			}
			return c
		}},
		{"revoked", func(t *testing.T, m *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			s, err := load(m, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Revoke(context.Background(), s.ID); err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"user revoked", func(t *testing.T, m *Manager, c *http.Cookie, _ *clock) *http.Cookie {
			if _, err := load(m, c); err != nil { // cached first
				t.Fatal(err)
			}
			if n, err := m.RevokeUser(context.Background(), "u-alice"); err != nil || n != 1 {
				t.Fatalf("RevokeUser = %d, %v", n, err)
			}
			return c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, clk, _ := newManager(t, nil)
			_, c := start(t, m)
			s, err := load(m, tc.cookie(t, m, c, clk))
			if !errors.Is(err, ErrNoSession) {
				t.Fatalf("got %v, %v; want ErrNoSession", s, err)
			}
		})
	}
}

func TestIdleTimeoutExtendsWithUse(t *testing.T) {
	m, clk, _ := newManager(t, nil)
	_, c := start(t, m)
	for i := 0; i < 6; i++ { // 6 x 20 minutes = 2h of use, idle timeout 30m
		clk.Advance(20 * time.Minute)
		if _, err := load(m, c); err != nil {
			t.Fatalf("after %d uses: %v", i+1, err)
		}
	}
}

func TestRevocationSeenThroughSharedCache(t *testing.T) {
	cache := NewCache()
	m1, _, st := newManager(t, func(c *Config) { c.Cache = cache; c.CacheTTL = time.Hour })
	m2, err := New(Config{Store: st, CookieName: "sess", Keys: [][]byte{key}, Cache: cache, CacheTTL: time.Hour, Now: m1.cfg.Now})
	if err != nil {
		t.Fatal(err)
	}
	s, c := start(t, m1)
	if _, err := load(m1, c); err != nil {
		t.Fatal(err)
	}
	if err := m2.Revoke(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := load(m1, c); !errors.Is(err, ErrNoSession) {
		t.Fatalf("revoked session still loads: %v", err)
	}
}

func TestEndClearsCookieAndSession(t *testing.T) {
	m, _, _ := newManager(t, nil)
	_, c := start(t, m)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "http://app.example/logout", nil)
	r.AddCookie(c)
	if err := m.End(w, r); err != nil {
		t.Fatal(err)
	}
	if got := w.Result().Cookies(); len(got) != 1 || got[0].MaxAge >= 0 {
		t.Errorf("cookie not cleared: %v", got)
	}
	if _, err := load(m, c); !errors.Is(err, ErrNoSession) {
		t.Fatalf("ended session still loads: %v", err)
	}
}

func TestRevokeChildren(t *testing.T) {
	m, _, _ := newManager(t, nil)
	r := httptest.NewRequest("GET", "http://app.example/", nil)
	var kids []*Session
	for _, parent := range []string{"idp-1", "idp-1", "idp-2"} {
		s, err := m.Start(httptest.NewRecorder(), r, Session{UserID: "u", ParentID: parent})
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, s)
	}
	n, err := m.RevokeChildren(context.Background(), "u", "idp-1")
	if err != nil || n != 2 {
		t.Fatalf("RevokeChildren = %d, %v; want 2", n, err)
	}
	if _, err := m.Get(context.Background(), kids[2].ID); err != nil {
		t.Errorf("other parent's session was revoked: %v", err)
	}
	if n, _ := m.RevokeChildren(context.Background(), "u", ""); n != 0 {
		t.Errorf("empty parent revoked %d sessions", n)
	}
}

func TestStoreOutageIsNotNoSession(t *testing.T) {
	m, _, st := newManager(t, func(c *Config) { c.CacheTTL = -1 })
	_, c := start(t, m)
	st.Close()
	_, err := load(m, c)
	if errors.Is(err, ErrNoSession) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("got %v; want an error wrapping store.ErrUnavailable", err)
	}
}

func TestGorillaAdapter(t *testing.T) {
	m, _, _ := newManager(t, nil)
	gs := m.Gorilla()
	r := httptest.NewRequest("GET", "http://app.example/", nil)
	sess, err := gs.New(r, "sess")
	if err != nil || !sess.IsNew {
		t.Fatalf("New without cookie: %v %v", sess, err)
	}
	sess.Values["session"] = &Session{UserID: "u-bob", Username: "bob"}
	w := httptest.NewRecorder()
	if err := gs.Save(r, w, sess); err != nil {
		t.Fatal(err)
	}
	r2 := httptest.NewRequest("GET", "http://app.example/", nil)
	r2.AddCookie(w.Result().Cookies()[0])
	got, err := gs.New(r2, "sess")
	if err != nil || got.IsNew {
		t.Fatalf("New with cookie: %v %v", got, err)
	}
	if s := got.Values["session"].(*Session); s.Username != "bob" {
		t.Errorf("got %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	st, err := bolt.Open(t.TempDir()+"/s.db", bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{CookieName: "c", Keys: [][]byte{key}}, "no store"},
		{Config{Store: st, Keys: [][]byte{key}}, "no cookie name"},
		{Config{Store: st, CookieName: "c"}, "no cookie signing key"},
		{Config{Store: st, CookieName: "c", Keys: [][]byte{[]byte("short")}}, "shorter than 32 bytes"},
	}
	for _, tc := range cases {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want %q", tc.cfg, err, tc.want)
		}
	}
}

func BenchmarkLoadCached(b *testing.B) {
	st, err := bolt.Open(b.TempDir()+"/s.db", bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m, err := New(Config{Store: st, CookieName: "sess", Keys: [][]byte{key}, CacheTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://app.example/", nil)
	if _, err := m.Start(w, r, Session{UserID: "u"}); err != nil {
		b.Fatal(err)
	}
	r.AddCookie(w.Result().Cookies()[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Load(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifiedCookieCache checks that remembering verified cookies trusts nothing else: after
// a good cookie was seen, a tampered copy, a revoked session and an expired session are all
// still refused, and the memory forgets after a minute.
func TestVerifiedCookieCache(t *testing.T) {
	m, clk, _ := newManager(t, func(c *Config) { c.CacheTTL = -1 })
	s, c := start(t, m)
	if _, err := load(m, c); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.verified.get(c.Value, clk.Now()); !ok {
		t.Fatal("a verified cookie was not remembered")
	}
	v := []byte(c.Value)
	v[len(v)-3] ^= 1
	if _, err := load(m, &http.Cookie{Name: c.Name, Value: string(v)}); !errors.Is(err, ErrNoSession) {
		t.Fatalf("tampered copy of a remembered cookie: %v", err)
	}
	clk.Advance(61 * time.Second)
	if _, ok := m.verified.get(c.Value, clk.Now()); ok {
		t.Error("a verified cookie was remembered past a minute")
	}
	if _, err := load(m, c); err != nil {
		t.Fatalf("re-verifying after the memory expired: %v", err)
	}
	if err := m.Revoke(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := load(m, c); !errors.Is(err, ErrNoSession) {
		t.Fatalf("revoked session with a remembered cookie: %v", err)
	}
}

package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/websession"
	"github.com/zonegate/zonegate/zones"
)

const (
	siteURL  = "http://localhost:9090"
	siteHost = "localhost:9090"
)

// Client addresses used by the tests.
var (
	ipOffice  = netip.MustParseAddr("10.1.2.3")
	ipHome    = netip.MustParseAddr("198.51.100.7")
	ipBlocked = netip.MustParseAddr("203.0.113.9")
)

// clock is a settable clock shared by the store, the session manager and the gate.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// entries returns the logged records whose msg is msg.
func (l *logBuffer) entries(t testing.TB, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// staticSigner signs assertions with one fixed key.
type staticSigner struct {
	kid string
	key *ecdsa.PrivateKey
}

func (s staticSigner) SigningKey(context.Context) (string, *ecdsa.PrivateKey, error) {
	return s.kid, s.key, nil
}

func newSigner(t testing.TB) staticSigner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return staticSigner{kid: "test-key-1", key: k}
}

// harness is a gate with everything real behind it: a bbolt store, zones, a policy, a session
// manager, CSRF protection.
type harness struct {
	t        testing.TB
	clock    *clock
	store    *bolt.Store
	zones    *zones.Table
	sessions *websession.Manager
	csrf     *csrf.Protector
	signer   staticSigner
	logs     *logBuffer
	gate     *Gate
	cfg      Config
}

// harnessOption changes the gate's Config before New.
type harnessOption func(*harness, *Config)

func testPolicy(t testing.TB, zt *zones.Table) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(policy.Def{
		Name: "app",
		Rules: []policy.RuleDef{
			{Name: "public", Action: policy.Allow, Auth: policy.AuthNone, Paths: []string{"/public/*"}},
			{Name: "admins in the office", Action: policy.Allow, Groups: []string{"admins"}, Zones: []string{"office"}, Paths: []string{"/admin/*"}},
			{Name: "admin elsewhere", Action: policy.Deny, Paths: []string{"/admin/*"}},
			{Name: "no contractors", Action: policy.Deny, Groups: []string{"contractors"}, Paths: []string{"/secret/*"}},
			{Name: "staff", Action: policy.Allow},
		},
		Default: policy.Deny,
	}, zt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), logs: &logBuffer{}}
	var err error
	h.store, err = bolt.Open(filepath.Join(t.TempDir(), "zonegate.db"), bolt.Options{Now: h.clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	h.zones, err = zones.Compile([]zones.Def{
		{Name: "office", Entries: []string{"10.0.0.0/8"}},
		{Name: "tor", Blocklist: true, Entries: []string{"203.0.113.0/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.sessions = newSessions(t, h.store, h.clock, "zg_gate", bytes.Repeat([]byte("k"), 32))
	h.csrf, err = csrf.New(bytes.Repeat([]byte("c"), 32), "zg_csrf")
	if err != nil {
		t.Fatal(err)
	}
	h.signer = newSigner(t)
	cfg := Config{
		URL:      siteURL,
		Policy:   testPolicy(t, h.zones),
		Zones:    h.zones,
		Sessions: h.sessions,
		Store:    h.store,
		CSRF:     h.csrf,
		OIDC:     OIDC{Issuer: "http://127.0.0.1:9091", ClientID: "gate", ClientSecret: "gate-secret"},
		Signer:   h.signer,
		Logger:   slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      h.clock.Now,
	}
	for _, o := range opts {
		o(h, &cfg)
	}
	h.cfg = cfg
	h.gate, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newSessions(t testing.TB, st store.Store, c *clock, cookie string, key []byte) *websession.Manager {
	t.Helper()
	m, err := websession.New(websession.Config{
		Store:           st,
		CookieName:      cookie,
		Keys:            [][]byte{key},
		IdleTimeout:     30 * time.Minute,
		AbsoluteTimeout: 2 * time.Hour,
		Now:             c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// user is a signed-in test user.
type user struct {
	session *websession.Session
	cookies []*http.Cookie
}

// signIn starts a gate session for username through websession.Start, as the callback would.
func (h *harness) signIn(username string, groups ...string) user {
	return h.signInWith(h.sessions, websession.Session{
		Kind: SessionKind, Host: siteHost,
		UserID: "id-" + username, Username: username,
		Name: strings.ToUpper(username[:1]) + username[1:], Email: username + "@example.com",
		Groups: groups, AMR: []string{"pwd"}, AuthTime: h.clock.Now(), ParentID: "idp-session-" + username,
	})
}

func (h *harness) signInWith(m *websession.Manager, s websession.Session) user {
	h.t.Helper()
	rec := httptest.NewRecorder()
	started, err := m.Start(rec, httptest.NewRequest(http.MethodGet, siteURL+"/", nil), s)
	if err != nil {
		h.t.Fatal(err)
	}
	return user{session: started, cookies: rec.Result().Cookies()}
}

// request builds a request from the given client.
func request(method, target string, u *user, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(method, siteURL+target, nil)
	if u != nil {
		for _, c := range u.cookies {
			r.AddCookie(c)
		}
	}
	for k, v := range hdr {
		r.Header[k] = []string{v} // raw keys: the test controls their spelling
	}
	return r
}

// result is what one Check did.
type result struct {
	passed  bool
	rec     *httptest.ResponseRecorder
	backend http.Header // the headers the backend saw, if it was called
}

// check runs the gate and, when it lets the request through, a backend that records the
// headers it got.
func (h *harness) check(r *http.Request, ip netip.Addr) result {
	rec := httptest.NewRecorder()
	res := result{rec: rec}
	if h.gate.Check(rec, r, ip) {
		res.passed = true
		res.backend = r.Header.Clone()
		rec.WriteHeader(http.StatusOK)
		_, _ = rec.WriteString("backend")
	}
	return res
}

func browserHeaders() map[string]string {
	return map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
}

func apiHeaders() map[string]string {
	return map[string]string{"Accept": "application/json"}
}

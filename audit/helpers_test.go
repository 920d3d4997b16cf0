package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store/bolt"
)

// t0 is the tests' starting time: 19:19:58 UTC, so a test that advances the clock crosses hours.
var t0 = time.Date(2026, 11, 22, 19, 19, 58, 0, time.UTC)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openStore opens a bolt store at path with the clock; the test closes it.
func openStore(t testing.TB, path string, clk *clock) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{Now: clk.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newTestLog makes a started Log with a fast dispatcher on cfg (Store defaults to a fresh bolt
// file, Now to a new clock). It is closed at the end of the test.
func newTestLog(t testing.TB, cfg Config) (*Log, *clock) {
	t.Helper()
	clk := newClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	if cfg.Store == nil {
		cfg.Store = openStore(t, filepath.Join(t.TempDir(), "audit.db"), clk)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.pollEvery = 2 * time.Millisecond
	l.scanCap = 0
	l.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Errorf("closing the log: %v", err)
		}
	})
	return l, clk
}

// flush flushes l or fails the test.
func flush(t testing.TB, l *Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// secret is a test hook secret (32 bytes).
const secret = "0123456789abcdef0123456789abcdef"

// receiver is an event hook endpoint: it answers the handshake (correctly unless told not to),
// checks every POST's signature with Verify and keeps the payloads.
type receiver struct {
	t      testing.TB
	secret []byte
	clk    *clock
	srv    *httptest.Server

	status      atomic.Int32 // POST answer; 0 means 200
	wrongAnswer atomic.Bool  // echo a wrong challenge
	challenges  atomic.Int32
	posts       atomic.Int32
	block       chan struct{} // if set, POSTs wait for it (or their context)
	started     chan struct{} // if set, receives when a POST arrives
	delay       time.Duration // if set, POSTs take this long

	mu       sync.Mutex
	payloads []HookPayload
	bodies   [][]byte
	headers  []http.Header
	badSigs  int
	counts   map[string]int // POSTs per event id, whatever the answer
}

func newReceiver(t testing.TB, clk *clock, opts ...func(*receiver)) *receiver {
	r := &receiver{t: t, secret: []byte(secret), clk: clk, counts: map[string]int{}}
	for _, o := range opts {
		o(r)
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
		r.challenges.Add(1)
		c := req.Header.Get(HeaderChallenge)
		if err := Verify(r.secret, req.Header.Get(HeaderTimestamp), []byte(c), req.Header.Get(HeaderSignature), r.clk.Now(), 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.wrongAnswer.Load() {
			c = "0000" + c[4:]
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(VerificationAnswer{Verification: c})
	case http.MethodPost:
		r.posts.Add(1)
		r.mu.Lock()
		r.counts[req.Header.Get(HeaderEventID)]++
		r.mu.Unlock()
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		if r.started != nil {
			r.started <- struct{}{}
		}
		body, _ := io.ReadAll(req.Body) // before blocking: the server notices a cancel only then
		if r.block != nil {
			select {
			case <-r.block:
			case <-req.Context().Done():
				return
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := Verify(r.secret, req.Header.Get(HeaderTimestamp), body, req.Header.Get(HeaderSignature), r.clk.Now(), 0); err != nil {
			r.badSigs++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if s := r.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		var p HookPayload
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			r.t.Errorf("receiver: decoding %s: %v", body, err)
		}
		r.payloads = append(r.payloads, p)
		r.bodies = append(r.bodies, body)
		r.headers = append(r.headers, req.Header.Clone())
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// got returns the payloads received so far.
func (r *receiver) got() []HookPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]HookPayload(nil), r.payloads...)
}

// hook is a Hook for this receiver.
func (r *receiver) hook(name string, types ...string) Hook {
	return Hook{Name: name, URL: r.srv.URL + "/hook", Secret: secret, Types: types}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package audit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
)

// getDelivery reads the queued delivery of eventID to hook name.
func getDelivery(t *testing.T, l *Log, name, eventID string) (delivery, error) {
	t.Helper()
	r, err := l.st.Get(context.Background(), KindDelivery, deliveryID(name, eventID))
	if err != nil {
		return delivery{}, err
	}
	var d delivery
	if err := json.Unmarshal(r.Value, &d); err != nil {
		t.Fatal(err)
	}
	return d, nil
}

// onlyEvent returns the id of the one event in the log.
func onlyEvent(t *testing.T, l *Log) Event {
	t.Helper()
	p, err := l.Query(context.Background(), Filter{})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("query: %+v, %v; want one event", p, err)
	}
	return p.Events[0]
}

func TestHookGetsSignedEvent(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	var logs lockedBuffer
	l, _ := newTestLog(t, Config{
		Now:    clk.Now,
		Store:  openStore(t, filepath.Join(t.TempDir(), "a.db"), clk),
		Hooks:  []Hook{rcv.hook("siem", "user.session.*")},
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "policy.evaluate_sign_on", Message: "not for the hook"})
	l.Record(ctx, Event{Type: "user.session.start", Actor: Actor{ID: "u1", Type: "user", Name: "alice"}, Outcome: "SUCCESS",
		Targets: []Target{{ID: "app1", Type: "app", Name: "wiki"}}, Details: map[string]string{"factor": "webauthn"}})
	flush(t, l)
	waitFor(t, "the delivery", func() bool { return len(rcv.got()) == 1 })
	waitFor(t, "an empty backlog", func() bool {
		bl, err := l.Backlog(ctx)
		return err == nil && bl["siem"] == 0
	})

	rcv.mu.Lock()
	body, hdr, p := rcv.bodies[0], rcv.headers[0], rcv.payloads[0]
	rcv.mu.Unlock()
	e := p.Data.Events[0]
	if p.EventType != "user.session.start" || p.EventID != e.ID || len(p.Data.Events) != 1 ||
		p.EventTime != e.Time.Format(time.RFC3339Nano) || e.Actor.Name != "alice" || e.Details["factor"] != "webauthn" {
		t.Errorf("payload %+v", p)
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("User-Agent") != "zonegate" || hdr.Get(HeaderEventID) != e.ID {
		t.Errorf("headers %v", hdr)
	}
	ts, sig := hdr.Get(HeaderTimestamp), hdr.Get(HeaderSignature)
	if ts != strconv.FormatInt(t0.Unix(), 10) {
		t.Errorf("timestamp %q, want the clock's unix seconds", ts)
	}
	if err := Verify([]byte(secret), ts, body, sig, clk.Now(), time.Minute); err != nil {
		t.Errorf("the receiver's check: %v", err)
	}
	if err := Verify([]byte(strings.ToUpper(secret)), ts, body, sig, clk.Now(), time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("verify with the wrong secret: %v", err)
	}
	if err := Verify([]byte(secret), ts, body, sig, clk.Now().Add(6*time.Minute), 5*time.Minute); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("verify 6 minutes later: %v", err)
	}
	if rcv.challenges.Load() != 1 {
		t.Errorf("%d handshakes, want 1", rcv.challenges.Load())
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the log shows the hook secret")
	}
	if !strings.Contains(logs.String(), "event hook verified") {
		t.Errorf("the handshake's outcome was not logged:\n%s", logs.String())
	}
}

func TestHandshakeRequired(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	rcv.wrongAnswer.Store(true)
	path := filepath.Join(t.TempDir(), "a.db")
	st := openStore(t, path, clk)
	var logs lockedBuffer
	l, _ := newTestLog(t, Config{Now: clk.Now, Store: st, Hooks: []Hook{rcv.hook("siem", "*")},
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "user.session.start"})
	flush(t, l)
	// The handshake fails and is retried with backoff; nothing is ever POSTed meanwhile.
	// (The clock moves while waiting: the retry is due some time after the failure is noticed.)
	waitFor(t, "4 handshakes", func() bool { clk.Advance(10 * time.Second); return rcv.challenges.Load() >= 4 })
	time.Sleep(20 * time.Millisecond)
	if n := rcv.posts.Load(); n != 0 {
		t.Fatalf("%d POSTs before the receiver passed the handshake", n)
	}
	if bl, err := l.Backlog(ctx); err != nil || bl["siem"] != 1 {
		t.Fatalf("backlog %v, %v; want the delivery still queued", bl, err)
	}
	if d, err := getDelivery(t, l, "siem", onlyEvent(t, l).ID); err != nil || d.Attempts != 0 {
		t.Errorf("delivery %+v, %v; want no attempt used by failed handshakes", d, err)
	}
	if !strings.Contains(logs.String(), "answer does not echo the challenge") {
		t.Errorf("the failed handshake was not logged with its reason:\n%s", logs.String())
	}

	// Once the receiver answers properly, the queued event goes out.
	rcv.wrongAnswer.Store(false)
	clk.Advance(11 * time.Minute)
	waitFor(t, "the delivery", func() bool { return len(rcv.got()) == 1 })
	var hs hookState
	if r, err := st.Get(ctx, KindHookState, "siem"); err != nil || json.Unmarshal(r.Value, &hs) != nil || !hs.Verified || !hs.VerifiedAt.Equal(clk.Now()) {
		t.Errorf("hook state %+v, %v", hs, err)
	}

	// Another Log with the same URL trusts the stored state; a changed URL needs a new handshake.
	before := rcv.challenges.Load()
	for _, u := range []string{rcv.srv.URL + "/hook", rcv.srv.URL + "/hook?v=2"} {
		h := rcv.hook("siem", "*")
		h.URL = u
		l2, _ := newTestLog(t, Config{Now: clk.Now, Store: st, Hooks: []Hook{h}})
		want := len(rcv.got()) + 1
		l2.Record(ctx, Event{Type: "user.session.end"})
		flush(t, l2)
		waitFor(t, "the delivery from "+u, func() bool { return len(rcv.got()) == want })
		if err := l2.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := rcv.challenges.Load() - before; n != 1 {
		t.Errorf("%d more handshakes, want 1 (for the changed URL only)", n)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	rcv.status.Store(http.StatusServiceUnavailable)
	l, _ := newTestLog(t, Config{Now: clk.Now, Store: openStore(t, filepath.Join(t.TempDir(), "a.db"), clk), Hooks: []Hook{rcv.hook("siem", "*")}})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "user.session.start"})
	flush(t, l)
	id := onlyEvent(t, l).ID

	wantWait := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, base := range wantWait {
		attempts := i + 1
		var d delivery
		waitFor(t, "a failed attempt", func() bool {
			var err error
			d, err = getDelivery(t, l, "siem", id)
			return err == nil && d.Attempts == attempts
		})
		wait := d.NextAttempt.Sub(clk.Now())
		if wait < base*3/4 || wait > base*5/4 || !d.LeaseUntil.IsZero() || d.LastError != "HTTP 503" {
			t.Fatalf("after attempt %d: %+v (next in %s); want a retry in %s ± 25%%, no lease, the error", attempts, d, wait, base)
		}
		// Not retried before its time.
		time.Sleep(20 * time.Millisecond)
		if n := rcv.posts.Load(); n != int32(attempts) {
			t.Fatalf("%d POSTs after %d attempts and no time passing", n, attempts)
		}
		if attempts == len(wantWait) {
			rcv.status.Store(0)
		}
		clk.Advance(base * 5 / 4)
	}
	waitFor(t, "the delivery", func() bool { return len(rcv.got()) == 1 })
	waitFor(t, "the delivery to be deleted", func() bool {
		_, err := getDelivery(t, l, "siem", id)
		return errors.Is(err, store.ErrNotFound)
	})
	if n := l.DeliveryFailures(); n != 0 {
		t.Errorf("delivery failures = %d", n)
	}
}

func TestRestartDeliversQueued(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	rcv.status.Store(http.StatusInternalServerError)
	path := filepath.Join(t.TempDir(), "a.db")
	hooks := []Hook{rcv.hook("siem", "user.*")}

	st1 := openStore(t, path, clk)
	l1, _ := newTestLog(t, Config{Now: clk.Now, Store: st1, Hooks: hooks})
	ctx := context.Background()
	for range 3 {
		l1.Record(ctx, Event{Type: "user.session.start"})
	}
	flush(t, l1)
	waitFor(t, "a failed attempt", func() bool { return rcv.posts.Load() >= 1 })
	if err := l1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	rcv.status.Store(0)
	clk.Advance(time.Minute)
	st2 := openStore(t, path, clk)
	l2, _ := newTestLog(t, Config{Now: clk.Now, Store: st2, Hooks: hooks})
	waitFor(t, "the queued deliveries", func() bool { return len(rcv.got()) == 3 })
	seen := map[string]bool{}
	for _, p := range rcv.got() {
		seen[p.EventID] = true
	}
	if len(seen) != 3 {
		t.Errorf("delivered %v, want 3 distinct events", seen)
	}
	if n := rcv.challenges.Load(); n != 1 {
		t.Errorf("%d handshakes; the second Log should trust the stored verification", n)
	}
	waitFor(t, "an empty backlog", func() bool {
		bl, err := l2.Backlog(ctx)
		return err == nil && bl["siem"] == 0
	})
}

func TestTwoLogsDeliverOnce(t *testing.T) {
	clk := newClock()
	// Requests stay in flight a moment, so the two nodes overlap.
	rcv := newReceiver(t, clk, func(r *receiver) { r.delay = time.Millisecond })
	st := openStore(t, filepath.Join(t.TempDir(), "a.db"), clk)
	hooks := []Hook{rcv.hook("siem", "*")}
	a, _ := newTestLog(t, Config{Now: clk.Now, Store: st, Hooks: hooks})
	b, _ := newTestLog(t, Config{Now: clk.Now, Store: st, Hooks: hooks})
	ctx := context.Background()
	const n = 40
	for i := range n {
		if i%2 == 0 {
			a.Record(ctx, Event{Type: "user.session.start"})
		} else {
			b.Record(ctx, Event{Type: "user.session.start"})
		}
	}
	flush(t, a)
	flush(t, b)
	waitFor(t, "every delivery", func() bool { return len(rcv.got()) >= n })
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show up
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.counts) != n {
		t.Errorf("%d distinct events delivered, want %d", len(rcv.counts), n)
	}
	for id, c := range rcv.counts {
		if c != 1 {
			t.Errorf("event %s delivered %d times", id, c)
		}
	}
}

func TestAbandonAfterMaxAttempts(t *testing.T) {
	clk := newClock()
	down := newReceiver(t, clk)
	down.status.Store(http.StatusBadGateway)
	watch := newReceiver(t, clk)
	primary := down.hook("primary", "user.", "event_hook.*")
	primary.MaxAttempts = 2
	l, _ := newTestLog(t, Config{Now: clk.Now, Store: openStore(t, filepath.Join(t.TempDir(), "a.db"), clk),
		Hooks: []Hook{primary, watch.hook("watch", TypeDeliveryAbandon)}})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "user.session.start"})
	flush(t, l)
	id := onlyEvent(t, l).ID
	waitFor(t, "the first failed attempt", func() bool {
		d, err := getDelivery(t, l, "primary", id)
		return err == nil && d.Attempts == 1
	})
	clk.Advance(2 * time.Second)
	waitFor(t, "the abandonment", func() bool { return l.DeliveryFailures() == 1 })
	flush(t, l)

	if _, err := getDelivery(t, l, "primary", id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("abandoned delivery still queued: %v", err)
	}
	p, err := l.Query(ctx, Filter{Types: []string{TypeDeliveryAbandon}})
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("abandon events: %+v, %v", p, err)
	}
	e := p.Events[0]
	if e.Severity != SeverityWarn || e.Outcome != OutcomeFailure || e.Reason != "HTTP 502" || e.Details["hook"] != "primary" ||
		e.Details["eventId"] != id || e.Details["attempts"] != "2" || len(e.Targets) != 2 || e.Targets[0].ID != "primary" || e.Targets[1].ID != id {
		t.Errorf("abandon event %+v", e)
	}
	// The other hook hears about it; the hook it is about does not (no loop).
	waitFor(t, "the watcher's delivery", func() bool { return len(watch.got()) == 1 })
	if got := watch.got()[0]; got.EventType != TypeDeliveryAbandon || got.Data.Events[0].Details["hook"] != "primary" {
		t.Errorf("watcher got %+v", got)
	}
	waitFor(t, "empty backlogs", func() bool {
		bl, err := l.Backlog(ctx)
		return err == nil && bl["primary"] == 0 && bl["watch"] == 0
	})
	time.Sleep(20 * time.Millisecond)
	if n := down.posts.Load(); n != 2 {
		t.Errorf("primary got %d POSTs, want exactly its 2 attempts", n)
	}
}

func TestCloseReleasesInFlightDelivery(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk, func(r *receiver) {
		r.block = make(chan struct{}) // never answers
		r.started = make(chan struct{}, 1)
	})
	st := openStore(t, filepath.Join(t.TempDir(), "a.db"), clk)
	l, _ := newTestLog(t, Config{Now: clk.Now, Store: st, Hooks: []Hook{rcv.hook("siem", "*")}})
	ctx := context.Background()
	l.Record(ctx, Event{Type: "user.session.start"})
	flush(t, l)
	id := onlyEvent(t, l).ID
	<-rcv.started
	if d, err := getDelivery(t, l, "siem", id); err != nil || !d.LeaseUntil.Equal(clk.Now().Add(leaseDuration)) {
		t.Fatalf("in flight: %+v, %v; want a 30 s lease", d, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.Close(cctx); err != nil {
		t.Fatal(err)
	}
	d, err := getDelivery(t, l, "siem", id)
	if err != nil || !d.LeaseUntil.IsZero() || d.Attempts != 0 {
		t.Errorf("after close: %+v, %v; want released, no attempt counted", d, err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	clk := newClock()
	rcv := newReceiver(t, clk)
	rcv.status.Store(http.StatusFound)
	l, _ := newTestLog(t, Config{Now: clk.Now, Store: openStore(t, filepath.Join(t.TempDir(), "a.db"), clk), Hooks: []Hook{rcv.hook("siem", "*")}})
	l.Record(context.Background(), Event{Type: "x"})
	flush(t, l)
	id := onlyEvent(t, l).ID
	waitFor(t, "a failed attempt", func() bool {
		d, err := getDelivery(t, l, "siem", id)
		return err == nil && d.Attempts == 1 && d.LastError == "HTTP 302"
	})
}

package ratelimit

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

func newLimiter(t *testing.T, rule Rule) (*Limiter, *storetest.Clock) {
	t.Helper()
	clk := storetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	st, err := bolt.Open(t.TempDir()+"/rl.db", bolt.Options{Now: clk.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := New(st, rule, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func TestHitBlocksPastTheLimit(t *testing.T) {
	ctx := context.Background()
	l, clk := newLimiter(t, Rule{Name: "login-user", Limit: 3, Window: time.Minute, Block: 5 * time.Minute})
	start := clk.Now()
	for i, want := range []int{2, 1, 0} {
		r, err := l.Hit(ctx, "alice")
		if err != nil || !r.Allowed || r.Remaining != want || r.Limit != 3 || !r.Reset.Equal(start.Add(time.Minute)) {
			t.Fatalf("hit %d: %+v, %v; want allowed, %d remaining", i+1, r, err, want)
		}
	}
	r, err := l.Hit(ctx, "alice")
	if err != nil || r.Allowed || r.Remaining != 0 || !r.Reset.Equal(start.Add(5*time.Minute)) {
		t.Fatalf("hit over the limit: %+v, %v; want blocked for 5m", r, err)
	}
	// Another key is untouched; the blocked key stays blocked past its window.
	if r, _ := l.Check(ctx, "bob"); !r.Allowed || r.Remaining != 3 {
		t.Errorf("another key: %+v", r)
	}
	clk.Advance(2 * time.Minute)
	if r, _ := l.Check(ctx, "alice"); r.Allowed {
		t.Error("block lifted with the window instead of after Block")
	}
	if r, _ := l.Hit(ctx, "alice"); r.Allowed {
		t.Error("a hit while blocked was allowed")
	}
	clk.Advance(3*time.Minute + time.Second)
	if r, _ := l.Check(ctx, "alice"); !r.Allowed || r.Remaining != 3 {
		t.Errorf("after the block: %+v", r)
	}
	if r, _ := l.Hit(ctx, "alice"); !r.Allowed || r.Remaining != 2 {
		t.Errorf("first hit after the block: %+v, want a fresh window", r)
	}
}

func TestWindowStartsOver(t *testing.T) {
	ctx := context.Background()
	l, clk := newLimiter(t, Rule{Name: "ip", Limit: 2, Window: time.Minute})
	l.Hit(ctx, "10.0.0.1")
	l.Hit(ctx, "10.0.0.1")
	clk.Advance(time.Minute)
	if r, _ := l.Hit(ctx, "10.0.0.1"); !r.Allowed || r.Remaining != 1 {
		t.Errorf("hit in a new window: %+v", r)
	}
}

func TestReset(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, Rule{Name: "u", Limit: 1, Window: time.Hour})
	l.Hit(ctx, "alice")
	if r, _ := l.Hit(ctx, "alice"); r.Allowed {
		t.Fatal("not blocked")
	}
	if err := l.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if r, _ := l.Check(ctx, "alice"); !r.Allowed {
		t.Error("still blocked after Reset")
	}
}

func TestHitDistinctCountsDifferentValuesOnly(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, Rule{Name: "ip-users", Limit: 3, Window: time.Hour})
	for range 10 { // the same user again and again is one value
		if r, _ := l.HitDistinct(ctx, "203.0.113.9", "alice"); !r.Allowed || r.Remaining != 2 {
			t.Fatalf("repeated value: %+v", r)
		}
	}
	l.HitDistinct(ctx, "203.0.113.9", "bob")
	l.HitDistinct(ctx, "203.0.113.9", "carol")
	if r, _ := l.HitDistinct(ctx, "203.0.113.9", "dave"); r.Allowed {
		t.Fatalf("fourth distinct user from one address allowed: %+v", r)
	}
}

func TestConcurrentHitsAllCount(t *testing.T) {
	ctx := context.Background()
	l, _ := newLimiter(t, Rule{Name: "c", Limit: 1000, Window: time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := l.Hit(ctx, "k"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if r, _ := l.Check(ctx, "k"); r.Remaining != 920 {
		t.Errorf("remaining %d after 80 concurrent hits, want 920", r.Remaining)
	}
}

func TestKeysAreNotStoredInClear(t *testing.T) {
	l, _ := newLimiter(t, Rule{Name: "u", Limit: 1, Window: time.Hour})
	if id := l.id("alice@example.com"); len(id) < 10 || containsAny(id, "alice", "example") {
		t.Errorf("store id %q reveals the key", id)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				return true
			}
		}
	}
	return false
}

func TestSetHeaders(t *testing.T) {
	now := time.Unix(1000, 0)
	h := http.Header{}
	SetHeaders(h, Result{Allowed: false, Limit: 5, Remaining: 0, Reset: now.Add(90 * time.Second)}, now)
	want := map[string]string{"X-Rate-Limit-Limit": "5", "X-Rate-Limit-Remaining": "0",
		"X-Rate-Limit-Reset": strconv.FormatInt(1090, 10), "Retry-After": "90"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	h = http.Header{}
	SetHeaders(h, Result{Allowed: true, Limit: 5, Remaining: 4, Reset: now.Add(time.Minute)}, now)
	if h.Get("Retry-After") != "" || h.Get("X-Rate-Limit-Remaining") != "4" {
		t.Errorf("allowed headers: %v", h)
	}
}

func TestNewRefusesBadRules(t *testing.T) {
	for _, r := range []Rule{{}, {Name: "x", Limit: 0, Window: time.Minute}, {Name: "x", Limit: 1}, {Name: "x", Limit: 1, Window: time.Minute, Block: -1}} {
		if _, err := New(nil, r, nil); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

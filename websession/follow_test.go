package websession

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/redistest"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/redis"
)

// TestFollowAcrossNodes runs two nodes on one Redis, each with its own cache that would keep a
// session for an hour: a revocation on one node is seen by the other at once, and while Redis
// is down no node answers from its cache.
func TestFollowAcrossNodes(t *testing.T) {
	srv := redistest.StartServer(t)
	node := func() (*Manager, *Cache) {
		st, err := redis.Open(context.Background(), redis.Options{URL: "redis://" + srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c := NewCache()
		stop := c.Follow(st)
		t.Cleanup(stop)
		m, err := New(Config{Store: st, CookieName: "s", Keys: [][]byte{key}, Cache: c, CacheTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return m, c
	}
	a, ca := node()
	b, cb := node()
	waitHearing := func(c *Cache) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for c.deaf.Load() {
			if time.Now().After(deadline) {
				t.Fatal("cache never started listening")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitHearing(ca)
	waitHearing(cb)

	_, cookie := start(t, a)
	if _, err := load(b, cookie); err != nil { // now cached on b for an hour
		t.Fatal(err)
	}
	s, err := load(a, cookie)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := a.Revoke(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := load(b, cookie)
		if errors.Is(err, ErrNoSession) {
			break
		}
		if time.Since(began) > time.Second {
			t.Fatalf("node b still accepts a session revoked on node a after 1s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("revocation seen on the other node after %s", time.Since(began).Round(time.Millisecond))

	// A fresh session, cached on b; then Redis goes away: b must not answer from its cache.
	_, cookie = start(t, a)
	if _, err := load(b, cookie); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := load(b, cookie)
		if err != nil {
			if errors.Is(err, ErrNoSession) || !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("with Redis down: %v, want an error wrapping store.ErrUnavailable", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node b kept answering from its cache with Redis down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The test's Redis keeps nothing across a restart; recovery means new sessions work on
	// both nodes again, without restarting either.
	srv.Restart()
	deadline = time.Now().Add(10 * time.Second)
	for {
		w := httptest.NewRecorder()
		_, err := a.Start(w, httptest.NewRequest("GET", "http://app.example/", nil), Session{UserID: "u"})
		if err == nil {
			if _, err = load(b, w.Result().Cookies()[0]); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/redistest"
)

// TestNotify checks that a message published through one store reaches a subscriber of
// another (two nodes), that a dropped link is reported, and that the subscription recovers.
func TestNotify(t *testing.T) {
	srv := redistest.StartServer(t)
	ctx := context.Background()
	open := func() *Store {
		s, err := Open(ctx, Options{URL: "redis://" + srv.Addr, KeyPrefix: "notify:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()

	var mu sync.Mutex
	var got []string
	var links []bool
	msgs := make(chan struct{}, 16)
	linkCh := make(chan bool, 16)
	stop := b.Subscribe("revoked", func(m string) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		msgs <- struct{}{}
	}, func(up bool) {
		mu.Lock()
		links = append(links, up)
		mu.Unlock()
		linkCh <- up
	})
	defer stop()

	waitLink := func(want bool) {
		t.Helper()
		select {
		case up := <-linkCh:
			if up != want {
				t.Fatalf("link reported %v, want %v", up, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no link change to %v within 10s", want)
		}
	}
	waitLink(true)
	if err := a.Publish(ctx, "revoked", "session-1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-msgs:
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered")
	}
	// Another channel's messages do not arrive.
	if err := a.Publish(ctx, "other", "x"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	waitLink(false)
	if err := a.Publish(ctx, "revoked", "lost"); err == nil {
		t.Error("publishing with Redis down did not fail")
	}
	srv.Restart()
	waitLink(true)
	if err := a.Publish(ctx, "revoked", "session-2"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-msgs:
	case <-time.After(5 * time.Second):
		t.Fatal("message after recovery not delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "session-1" || got[1] != "session-2" {
		t.Errorf("messages %q, want session-1 and session-2", got)
	}
}

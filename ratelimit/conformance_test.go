package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/redistest"
	"github.com/zonegate/zonegate/store/redis"
	"github.com/zonegate/zonegate/store/storetest"
)

// TestSharedByNodes counts on two limiters over one Redis, as two gateway nodes would: their
// hits add up, so spreading guesses over nodes does not multiply the limit.
func TestSharedByNodes(t *testing.T) {
	addr := redistest.Start(t)
	clk := storetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	rule := Rule{Name: "login-user", Limit: 4, Window: time.Minute}
	node := func() *Limiter {
		st, err := redis.Open(context.Background(), redis.Options{URL: "redis://" + addr, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, err := New(st, rule, clk.Now)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := node(), node()
	ctx := context.Background()
	for i := range 4 {
		l := a
		if i%2 == 1 {
			l = b
		}
		if r, err := l.Hit(ctx, "alice"); err != nil || !r.Allowed {
			t.Fatalf("hit %d: %+v %v", i+1, r, err)
		}
	}
	if r, _ := b.Hit(ctx, "alice"); r.Allowed {
		t.Fatal("the fifth hit, spread over two nodes, was allowed")
	}
	if r, _ := a.Check(ctx, "alice"); r.Allowed {
		t.Fatal("node a does not see the block node b set")
	}
}

package audit

import (
	"context"
	"testing"
)

// BenchmarkRecord measures Record's cost to its caller (defaults, id, a copy, the channel send),
// with the buffer drained as fast as it fills and the logger discarding.
func BenchmarkRecord(b *testing.B) {
	clk := newClock()
	l, err := New(Config{Store: nopStore{}, Now: clk.Now, Hooks: []Hook{{Name: "siem", URL: "https://siem.example.com/", Secret: secret, Types: []string{"user.*"}}}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-l.ch:
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	ctx := context.Background()
	e := Event{
		Type:     "policy.evaluate_sign_on",
		Actor:    Actor{ID: "u1", Type: ActorUser, Name: "alice"},
		Targets:  []Target{{ID: "app1", Type: "app", Name: "wiki"}},
		ClientIP: "192.0.2.1",
		Zones:    []string{"office"},
		Outcome:  OutcomeAllow,
		Reason:   `rule "staff-from-office"`,
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Record(ctx, e)
	}
	if n := l.Dropped(); n > 0 {
		b.Logf("%d dropped", n)
	}
}

// BenchmarkMatchHooks measures the type matching the writer does for every event and hook.
func BenchmarkMatchHooks(b *testing.B) {
	h := Hook{Types: []string{"user.session.*", "user.authentication.", "policy.evaluate_sign_on", "application.access.deny"}}
	b.ReportAllocs()
	for b.Loop() {
		if !h.Matches("application.access.deny") {
			b.Fatal("no match")
		}
	}
}

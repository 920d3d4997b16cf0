package caddymodule

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestMetrics() *metrics {
	return &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "zonegate_gate_decisions_total", Help: "h"}, []string{"site", "outcome", "reason"}),
		duration:  prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "zonegate_gate_check_duration_seconds", Help: "h"}, []string{"site", "outcome"}),
	}
}

// TestGateObserverCounts checks the cached series count what they should, per site.
func TestGateObserverCounts(t *testing.T) {
	m := newTestMetrics()
	a, b := m.forSite("https://a.example"), m.forSite("https://b.example")
	for range 3 {
		a.Decided("allow", "rule_allow", time.Microsecond)
	}
	a.Decided("deny", "default_deny", time.Microsecond)
	b.Decided("allow", "rule_allow", time.Microsecond)
	want := `
# HELP zonegate_gate_decisions_total h
# TYPE zonegate_gate_decisions_total counter
zonegate_gate_decisions_total{outcome="allow",reason="rule_allow",site="https://a.example"} 3
zonegate_gate_decisions_total{outcome="allow",reason="rule_allow",site="https://b.example"} 1
zonegate_gate_decisions_total{outcome="deny",reason="default_deny",site="https://a.example"} 1
`
	if err := testutil.CollectAndCompare(m.decisions, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Fatalf("%d duration series, want 3", n)
	}
}

func BenchmarkGateObserver(b *testing.B) {
	o := newTestMetrics().forSite("https://a.example")
	b.ReportAllocs()
	for b.Loop() {
		o.Decided("allow", "rule_allow", time.Microsecond)
	}
}

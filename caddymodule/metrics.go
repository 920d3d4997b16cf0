package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zonegate/zonegate/gateway"
)

// metrics are zonegate's Prometheus metrics, in Caddy's registry (served wherever the config
// serves Caddy's metrics: the admin endpoint's /metrics, or a metrics handler).
type metrics struct {
	decisions *prometheus.CounterVec   // site, outcome, reason
	duration  *prometheus.HistogramVec // site, outcome
	signIns   *prometheus.CounterVec   // method, outcome
	storeErrs *prometheus.CounterVec   // op
}

func newMetrics(ctx caddy.Context) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zonegate", Subsystem: "gate", Name: "decisions_total",
			Help: "Gate decisions by site, outcome (allow, deny, authenticate, unavailable) and reason.",
		}, []string{"site", "outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "zonegate", Subsystem: "gate", Name: "check_duration_seconds",
			Help:    "Time the gate spent deciding a request (not the backend's time).",
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 0.1, 1},
		}, []string{"site", "outcome"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zonegate", Subsystem: "idp", Name: "signins_total",
			Help: "Sign-in attempts at the embedded IdP by method (pwd) and outcome (success, or why not).",
		}, []string{"method", "outcome"}),
		storeErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "zonegate", Subsystem: "store", Name: "errors_total",
			Help: "Store operations that failed (not-found and already-exists are answers, not failures), by operation.",
		}, []string{"op"}),
	}
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return m, nil // not registered anywhere, still counted
	}
	for i, c := range []prometheus.Collector{m.decisions, m.duration, m.signIns, m.storeErrs, newAuditCollector()} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			// Registered by an earlier app in this config's registry: use that one.
			switch i {
			case 0:
				m.decisions = are.ExistingCollector.(*prometheus.CounterVec)
			case 1:
				m.duration = are.ExistingCollector.(*prometheus.HistogramVec)
			case 2:
				m.signIns = are.ExistingCollector.(*prometheus.CounterVec)
			case 3:
				m.storeErrs = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m, nil
}

// gateObserver records one site's decisions. Looking a series up by its label values hashes
// them on every call; the gate sees few distinct (outcome, reason) pairs, so the resolved
// series are kept in a map that is read without allocating.
type gateObserver struct {
	decisions *prometheus.CounterVec // curried with the site
	duration  prometheus.ObserverVec // curried with the site

	mu     sync.RWMutex
	series map[decisionKey]decisionSeries
}

type decisionKey struct{ outcome, reason string }

type decisionSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

func (m *metrics) forSite(site string) gateway.Observer {
	return &gateObserver{
		decisions: m.decisions.MustCurryWith(prometheus.Labels{"site": site}),
		duration:  m.duration.MustCurryWith(prometheus.Labels{"site": site}),
		series:    make(map[decisionKey]decisionSeries),
	}
}

// Decided implements gateway.Observer.
func (o *gateObserver) Decided(outcome, reason string, elapsed time.Duration) {
	k := decisionKey{outcome, reason}
	o.mu.RLock()
	s, ok := o.series[k]
	o.mu.RUnlock()
	if !ok {
		s = decisionSeries{
			count:    o.decisions.WithLabelValues(outcome, reason),
			duration: o.duration.WithLabelValues(outcome),
		}
		o.mu.Lock()
		if len(o.series) < 1024 { // reasons come from the policy and the gate: a small set
			o.series[k] = s
		}
		o.mu.Unlock()
	}
	s.count.Inc()
	s.duration.Observe(elapsed.Seconds())
}

// SignIn implements idp.SignInObserver.
func (m *metrics) SignIn(method, outcome string) {
	m.signIns.WithLabelValues(method, outcome).Inc()
}

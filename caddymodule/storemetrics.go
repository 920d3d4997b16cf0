package caddymodule

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zonegate/zonegate/store"
)

// countingStore counts the store's failures by operation (zonegate_store_errors_total):
// errors other than not-found and already-exists, which are answers, not failures.
type countingStore struct {
	store.Store
	errs *prometheus.CounterVec
}

// notifyingCountingStore keeps the Notifier of a store that has one (Redis), so revocations
// still reach every node through the counted store.
type notifyingCountingStore struct {
	countingStore
	store.Notifier
}

// countStoreErrors wraps st so its failures are counted in errs.
func countStoreErrors(st store.Store, errs *prometheus.CounterVec) store.Store {
	c := countingStore{Store: st, errs: errs}
	if n, ok := st.(store.Notifier); ok {
		return notifyingCountingStore{countingStore: c, Notifier: n}
	}
	return c
}

func (s countingStore) count(op string, err error) error {
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrAlreadyExists) &&
		!errors.Is(err, context.Canceled) {
		s.errs.WithLabelValues(op).Inc()
	}
	return err
}

func (s countingStore) Create(ctx context.Context, r store.Record) error {
	return s.count("create", s.Store.Create(ctx, r))
}

func (s countingStore) Get(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	r, err := s.Store.Get(ctx, kind, id)
	return r, s.count("get", err)
}

func (s countingStore) Update(ctx context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	var fnErr error
	r, err := s.Store.Update(ctx, kind, id, func(r store.Record) (store.Record, error) {
		out, err := fn(r)
		fnErr = err
		return out, err
	})
	if err != nil && fnErr != nil && errors.Is(err, fnErr) {
		return r, err // the caller's own refusal, not a store failure
	}
	return r, s.count("update", err)
}

func (s countingStore) Delete(ctx context.Context, kind store.Kind, id string) error {
	return s.count("delete", s.Store.Delete(ctx, kind, id))
}

func (s countingStore) Take(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	r, err := s.Store.Take(ctx, kind, id)
	return r, s.count("take", err)
}

func (s countingStore) ListByOwner(ctx context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	rs, err := s.Store.ListByOwner(ctx, kind, owner)
	return rs, s.count("list", err)
}

func (s countingStore) DeleteByOwner(ctx context.Context, kind store.Kind, owner string) (int, error) {
	n, err := s.Store.DeleteByOwner(ctx, kind, owner)
	return n, s.count("delete", err)
}

func (s countingStore) Health(ctx context.Context) error {
	return s.count("health", s.Store.Health(ctx))
}

// auditCollector reports the system log's hook backlog and losses at scrape time, for the
// app of the running config (a reload keeps the collector and moves to the new app).
type auditCollector struct {
	backlog, dropped, failures *prometheus.Desc
}

func newAuditCollector() *auditCollector {
	return &auditCollector{
		backlog: prometheus.NewDesc("zonegate_audit_hook_backlog",
			"Event deliveries queued in the store, by hook.", []string{"hook"}, nil),
		dropped: prometheus.NewDesc("zonegate_audit_events_dropped_total",
			"System-log events dropped because the write buffer was full (this process).", nil, nil),
		failures: prometheus.NewDesc("zonegate_audit_hook_deliveries_abandoned_total",
			"Event deliveries given up after their last attempt (this process).", nil, nil),
	}
}

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.dropped
	ch <- c.failures
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	a := running.Load()
	if a == nil || a.audit == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(a.audit.Dropped()))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(a.audit.DeliveryFailures()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	backlog, err := a.audit.Backlog(ctx)
	if err != nil {
		return // the store error is counted; a missing series says "unknown"
	}
	for _, h := range a.Audit.hookNames() {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(backlog[h]), h)
	}
}

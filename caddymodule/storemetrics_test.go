package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
)

// downStore fails every Get as an unreachable backend would.
type downStore struct{ store.Store }

func (downStore) Get(context.Context, store.Kind, string) (store.Record, error) {
	return store.Record{}, fmt.Errorf("get: %w", store.ErrUnavailable)
}

// notifier is a store with the Notifier capability.
type notifier struct{ store.Store }

func (notifier) Publish(context.Context, string, string) error { return nil }
func (notifier) Subscribe(string, func(string), func(bool)) func() {
	return func() {}
}

// TestCountStoreErrors: failures are counted by operation; not-found, already-exists and the
// caller's own refusal inside Update are not; a store's Notifier survives the wrapping.
func TestCountStoreErrors(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"op"})
	ctx := context.Background()

	c := countStoreErrors(st, errs)
	if _, err := c.Get(ctx, "k", "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	_ = c.Create(ctx, store.Record{Kind: "k", ID: "a", Value: []byte("1")})
	if err := c.Create(ctx, store.Record{Kind: "k", ID: "a", Value: []byte("1")}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	refuse := errors.New("no")
	if _, err := c.Update(ctx, "k", "a", func(store.Record) (store.Record, error) { return store.Record{}, refuse }); !errors.Is(err, refuse) {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(errs.WithLabelValues("get")) + testutil.ToFloat64(errs.WithLabelValues("create")) + testutil.ToFloat64(errs.WithLabelValues("update")); n != 0 {
		t.Fatalf("answers counted as failures: %v", n)
	}

	down := countStoreErrors(downStore{st}, errs)
	for range 2 {
		if _, err := down.Get(ctx, "k", "a"); !errors.Is(err, store.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	if n := testutil.ToFloat64(errs.WithLabelValues("get")); n != 2 {
		t.Errorf("get failures counted %v, want 2", n)
	}
	if _, ok := c.(store.Notifier); ok {
		t.Error("a bolt store gained a Notifier")
	}
	if _, ok := countStoreErrors(notifier{st}, errs).(store.Notifier); !ok {
		t.Error("the wrapped store lost its Notifier")
	}
}

func TestDeviceEvents(t *testing.T) {
	dev := device.Device{ID: "d1", Owner: "bob", Source: "mdm", Managed: true, Compliance: device.Compliance("compliant")}
	non := dev
	non.Compliance, non.Suspended, non.SuspendedBy = device.Compliance("noncompliant"), true, device.SuspendReason("noncompliant")
	tests := []struct {
		name          string
		before, after device.Device
		want          []string
	}{
		{"registered", device.Device{}, dev, []string{"device.enrollment.create"}},
		{"falls out of compliance", dev, non, []string{"device.compliance.change", "device.lifecycle.suspend"}},
		{"back in compliance", non, dev, []string{"device.compliance.change", "device.lifecycle.unsuspend"}},
		{"nothing changed", dev, dev, nil},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range deviceEvents(tt.before, tt.after) {
			got = append(got, e.Type)
			if e.Device != "d1" || e.Targets[0].ID != "d1" {
				t.Errorf("%s: event %+v does not name the device", tt.name, e)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: events %v, want %v", tt.name, got, tt.want)
		}
	}
}

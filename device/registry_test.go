package device

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"

	"github.com/zonegate/zonegate/internal/syncbuf"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer = syncbuf.Buffer

type env struct {
	st    *bolt.Store
	clock *storetest.Clock
	reg   *Registry
	logs  *syncBuffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &env{st: st, clock: clock, reg: NewRegistry(st, clock.Now, log), logs: logs}
}

// change is one OnChange call.
type change struct{ before, after Device }

func (e *env) recordChanges() *[]change {
	var mu sync.Mutex
	var got []change
	e.reg.OnChange(func(_ context.Context, before, after Device) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, change{before, after})
	})
	return &got
}

func TestTrust(t *testing.T) {
	reg := t0
	tests := []struct {
		name string
		d    *Device
		want Trust
	}{
		{"nil (unregistered)", nil, TrustUnknown},
		{"managed compliant", &Device{Created: reg, Managed: true, Compliance: Compliant}, Trusted},
		{"not registered", &Device{Managed: true, Compliance: Compliant}, TrustUnknown},
		{"unmanaged compliant", &Device{Created: reg, Compliance: Compliant}, TrustUnknown},
		{"managed unknown", &Device{Created: reg, Managed: true, Compliance: Unknown}, TrustUnknown},
		{"managed empty compliance", &Device{Created: reg, Managed: true}, TrustUnknown},
		{"noncompliant", &Device{Created: reg, Managed: true, Compliance: NonCompliant}, NotTrusted},
		{"noncompliant unmanaged", &Device{Created: reg, Compliance: NonCompliant}, NotTrusted},
		{"suspended compliant", &Device{Created: reg, Managed: true, Compliance: Compliant, Suspended: true}, NotTrusted},
		{"suspended unknown", &Device{Created: reg, Compliance: Unknown, Suspended: true}, NotTrusted},
	}
	for _, tt := range tests {
		if got := tt.d.Trust(); got != tt.want {
			t.Errorf("%s: Trust() = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRegisterGetListDelete(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	d, err := e.reg.Register(ctx, Device{ID: "dev-1", Owner: "alice", Platform: "macOS", Serial: "SN1", Source: "admin", Managed: true, Compliance: Compliant,
		Suspended: true, Created: t0.Add(-time.Hour)}) // Suspended and Created are the registry's
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	want := Device{ID: "dev-1", Owner: "alice", Platform: "macOS", Serial: "SN1", Source: "admin", Managed: true, Compliance: Compliant,
		ComplianceSince: t0, Created: t0, Updated: t0}
	if *d != want {
		t.Errorf("Register = %+v\nwant %+v", *d, want)
	}
	if got, err := e.reg.Get(ctx, "dev-1"); err != nil || *got != want {
		t.Errorf("Get = %+v, %v", got, err)
	}
	if got := d.Trust(); got != Trusted {
		t.Errorf("Trust = %s, want TRUSTED", got)
	}
	if _, err := e.reg.Register(ctx, Device{ID: "dev-1"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("second Register: %v, want ErrAlreadyExists", err)
	}
	if _, err := e.reg.Register(ctx, Device{ID: "dev-0", Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Register(ctx, Device{ID: "dev-2", Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	list, err := e.reg.List(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].ID != "dev-0" || list[1].ID != "dev-1" {
		t.Errorf("List(alice) = %+v, %v; want dev-0, dev-1", list, err)
	}

	// Put moves the device to another owner: the owner index follows.
	e.clock.Advance(time.Minute)
	if _, err := e.reg.Put(ctx, Device{ID: "dev-1", Owner: "bob", Serial: "SN1", Managed: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.reg.Get(ctx, "dev-1")
	if got.Owner != "bob" || got.Compliance != Compliant || !got.Created.Equal(t0) || !got.Updated.Equal(t0.Add(time.Minute)) || !got.ComplianceSince.Equal(t0) {
		t.Errorf("after Put: %+v (want owner bob, compliance kept, created kept, updated now)", got)
	}
	if list, _ := e.reg.List(ctx, "alice"); len(list) != 1 || list[0].ID != "dev-0" {
		t.Errorf("List(alice) after the move = %+v", list)
	}
	if list, _ := e.reg.List(ctx, "bob"); len(list) != 2 {
		t.Errorf("List(bob) after the move = %+v", list)
	}

	changes := e.recordChanges()
	if err := e.reg.Delete(ctx, "dev-1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.reg.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, err := e.reg.FindBySerial(ctx, "SN1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindBySerial after Delete: %v, want ErrNotFound", err)
	}
	if err := e.reg.Delete(ctx, "dev-1"); err != nil {
		t.Errorf("Delete of a missing device: %v", err)
	}
	if len(*changes) != 1 || (*changes)[0].before.ID != "dev-1" || (*changes)[0].after != (Device{ID: "dev-1"}) {
		t.Errorf("OnChange on Delete: %+v", *changes)
	}
}

func TestRegistryRejects(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for _, d := range []Device{
		{},
		{ID: "has space"},
		{ID: strings.Repeat("x", 257)},
		{ID: "ok", Compliance: "green"},
		{ID: "ok", Owner: "a\nb"},
		{ID: "ok", Serial: "\x00"},
		{ID: "ok", Platform: strings.Repeat("p", 65)},
	} {
		if _, err := e.reg.Register(ctx, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("Register(%+v) = %v, want ErrInvalid", d, err)
		}
		if _, err := e.reg.Put(ctx, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put(%+v) = %v, want ErrInvalid", d, err)
		}
	}
	if _, err := e.reg.Get(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(\"\") = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.Suspend(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Suspend(missing) = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.SetCompliance(ctx, "missing", Compliant, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetCompliance(missing) = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.SetCompliance(ctx, "missing", "green", "test"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetCompliance(green) = %v, want ErrInvalid", err)
	}
}

func TestFindBySerial(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.reg.Register(ctx, Device{ID: "dev-1", Serial: "SN1"}); err != nil {
		t.Fatal(err)
	}
	d, err := e.reg.FindBySerial(ctx, "SN1")
	if err != nil || d.ID != "dev-1" {
		t.Fatalf("FindBySerial(SN1) = %+v, %v", d, err)
	}
	// The serial changes: the old one no longer finds it, the new one does.
	if _, err := e.reg.Put(ctx, Device{ID: "dev-1", Serial: "SN2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.FindBySerial(ctx, "SN1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindBySerial(old serial) = %v, want ErrNotFound", err)
	}
	if d, err := e.reg.FindBySerial(ctx, "SN2"); err != nil || d.ID != "dev-1" {
		t.Errorf("FindBySerial(SN2) = %+v, %v", d, err)
	}
	// A stale index entry (left by a crash between the two writes) is not believed.
	if err := e.reg.serials.Create(ctx, "SN9", "", time.Time{}, serialEntry{DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.FindBySerial(ctx, "SN9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindBySerial(stale entry) = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.FindBySerial(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindBySerial(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := e.reg.FindBySerial(ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindBySerial(\"\") = %v, want ErrNotFound", err)
	}
}

// TestSuspensionRules walks a device through compliance and admin changes, checking the
// state, the reason and the callbacks after each step.
func TestSuspensionRules(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.reg.Register(ctx, Device{ID: "d", Managed: true, Compliance: Compliant}); err != nil {
		t.Fatal(err)
	}
	changes := e.recordChanges()
	steps := []struct {
		name       string
		do         func() (*Device, error)
		compliance Compliance
		suspended  bool
		by         SuspendReason
		trust      Trust
		wantChange bool
	}{
		{"noncompliant suspends", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", NonCompliant, "mdm") },
			NonCompliant, true, SuspendedByCompliance, NotTrusted, true},
		{"compliant lifts the compliance suspension", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", Compliant, "mdm") },
			Compliant, false, "", Trusted, true},
		{"same report again changes nothing", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", Compliant, "mdm") },
			Compliant, false, "", Trusted, false},
		{"admin suspends", func() (*Device, error) { return e.reg.Suspend(ctx, "d") },
			Compliant, true, SuspendedByAdmin, NotTrusted, true},
		{"noncompliant keeps the admin reason", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", NonCompliant, "mdm") },
			NonCompliant, true, SuspendedByAdmin, NotTrusted, true},
		{"compliant does not lift an admin suspension", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", Compliant, "mdm") },
			Compliant, true, SuspendedByAdmin, NotTrusted, true},
		{"unsuspend lifts it", func() (*Device, error) { return e.reg.Unsuspend(ctx, "d") },
			Compliant, false, "", Trusted, true},
		{"noncompliant again", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", NonCompliant, "mdm") },
			NonCompliant, true, SuspendedByCompliance, NotTrusted, true},
		{"admin suspends a compliance-suspended device: now the admin's", func() (*Device, error) { return e.reg.Suspend(ctx, "d") },
			NonCompliant, true, SuspendedByAdmin, NotTrusted, false},
		{"unsuspend while noncompliant stays suspended for compliance", func() (*Device, error) { return e.reg.Unsuspend(ctx, "d") },
			NonCompliant, true, SuspendedByCompliance, NotTrusted, false},
		{"unknown does not lift a compliance suspension", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", Unknown, "mdm") },
			Unknown, true, SuspendedByCompliance, NotTrusted, true},
		{"compliant lifts it", func() (*Device, error) { return e.reg.SetCompliance(ctx, "d", Compliant, "mdm") },
			Compliant, false, "", Trusted, true},
	}
	for _, s := range steps {
		e.clock.Advance(time.Second)
		n := len(*changes)
		before, _ := e.reg.Get(ctx, "d")
		d, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		stored, _ := e.reg.Get(ctx, "d")
		if *stored != *d {
			t.Errorf("%s: returned %+v, stored %+v", s.name, d, stored)
		}
		if d.Compliance != s.compliance || d.Suspended != s.suspended || d.SuspendedBy != s.by || d.Trust() != s.trust {
			t.Errorf("%s: got compliance %s suspended %v by %q trust %s; want %s %v %q %s",
				s.name, d.Compliance, d.Suspended, d.SuspendedBy, d.Trust(), s.compliance, s.suspended, s.by, s.trust)
		}
		wantSince := before.ComplianceSince
		if before.Compliance != d.Compliance {
			wantSince = e.clock.Now()
		}
		if !d.ComplianceSince.Equal(wantSince) {
			t.Errorf("%s: ComplianceSince = %v, want %v", s.name, d.ComplianceSince, wantSince)
		}
		got := (*changes)[n:]
		switch {
		case s.wantChange && (len(got) != 1 || got[0].before != *before || got[0].after != *d):
			t.Errorf("%s: OnChange calls %+v, want one with before %+v after %+v", s.name, got, *before, *d)
		case !s.wantChange && len(got) != 0:
			t.Errorf("%s: OnChange called %+v, want no call", s.name, got)
		}
	}
}

func TestChangesAreLogged(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.reg.Register(ctx, Device{ID: "dev-9", Compliance: Compliant}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.SetCompliance(ctx, "dev-9", NonCompliant, "mdm"); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	for _, want := range []string{
		`msg="device registered" device=dev-9`,
		`msg="device changed" device=dev-9 source=mdm compliance="compliant → noncompliant" suspended="no → by compliance"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestConcurrentUpsert(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := Compliant
			if i%2 == 0 {
				c = NonCompliant
			}
			if _, err := e.reg.Put(ctx, Device{ID: "same", Serial: "SN", Compliance: c}); err != nil {
				t.Errorf("Put: %v", err)
			}
		})
	}
	wg.Wait()
	d, err := e.reg.FindBySerial(ctx, "SN")
	if err != nil || d.ID != "same" {
		t.Fatalf("FindBySerial = %+v, %v", d, err)
	}
	if (d.Compliance == NonCompliant) != d.Suspended {
		t.Errorf("invariant broken: %+v", d)
	}
}

func TestStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.st.Close()
	ctx := t.Context()
	if _, err := e.reg.Get(ctx, "d"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get on a closed store: %v, want ErrUnavailable", err)
	}
	if _, err := e.reg.Put(ctx, Device{ID: "d"}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Put on a closed store: %v, want ErrUnavailable", err)
	}
}

func BenchmarkRegistryGet(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.reg.Register(ctx, Device{ID: "dev-1", Owner: "alice", Managed: true, Compliance: Compliant}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.reg.Get(ctx, "dev-1")
		if err != nil || d.Trust() != Trusted {
			b.Fatal(d, err)
		}
	}
}

package accounts

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// downStore fails every call with store.ErrUnavailable while down is set.
type downStore struct {
	store.Store
	down atomic.Bool
}

func (d *downStore) err() error {
	if d.down.Load() {
		return fmt.Errorf("test store: %w", store.ErrUnavailable)
	}
	return nil
}

func (d *downStore) Create(ctx context.Context, r store.Record) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.Store.Create(ctx, r)
}

func (d *downStore) Get(ctx context.Context, k store.Kind, id string) (store.Record, error) {
	if err := d.err(); err != nil {
		return store.Record{}, err
	}
	return d.Store.Get(ctx, k, id)
}

func (d *downStore) Update(ctx context.Context, k store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	if err := d.err(); err != nil {
		return store.Record{}, err
	}
	return d.Store.Update(ctx, k, id, fn)
}

func (d *downStore) ListByOwner(ctx context.Context, k store.Kind, owner string) ([]store.Record, error) {
	if err := d.err(); err != nil {
		return nil, err
	}
	return d.Store.ListByOwner(ctx, k, owner)
}

type change struct{ before, after State }

type fixture struct {
	m       *Manager
	clock   *storetest.Clock // the manager's clock
	st      *downStore
	mu      sync.Mutex
	changes []change
}

// newFixture returns a manager on a fresh bolt store. With sharedClock the store expires
// records on the manager's clock; otherwise on a clock that stays at t0, so the manager's own
// lock-end check is what counts.
func newFixture(t testing.TB, sharedClock bool) *fixture {
	t.Helper()
	f := &fixture{clock: storetest.NewClock(t0)}
	storeNow := storetest.NewClock(t0).Now
	if sharedClock {
		storeNow = f.clock.Now
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: storeNow, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f.st = &downStore{Store: b}
	f.m, err = New(Config{Store: f.st, Now: f.clock.Now, OnChange: func(ctx context.Context, before, after State) {
		if ctx.Err() != nil {
			panic("OnChange got a cancelled context")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.changes = append(f.changes, change{before, after})
	}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// takeChanges returns and forgets the OnChange calls so far.
func (f *fixture) takeChanges() []change {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.changes
	f.changes = nil
	return c
}

// do performs a on user (lock: until an admin unlocks).
func (f *fixture) do(ctx context.Context, user string, a Action) (State, error) {
	if a == actionLock {
		return f.m.Lock(ctx, user, time.Time{}, "5 failed sign-ins")
	}
	return f.m.Apply(ctx, user, a, "admin-token", "ticket 42")
}

// reach brings user from Active to status.
func (f *fixture) reach(t *testing.T, user string, status Status) {
	t.Helper()
	path := map[Status]Action{Suspended: ActionSuspend, LockedOut: actionLock, Deprovisioned: ActionDeprovision}
	if status != Active {
		if _, err := f.do(t.Context(), user, path[status]); err != nil {
			t.Fatalf("reaching %s: %v", status, err)
		}
	}
	f.takeChanges()
}

func TestTransitions(t *testing.T) {
	allowed := map[Status]map[Action]Status{
		Active:        {ActionSuspend: Suspended, ActionDeprovision: Deprovisioned, actionLock: LockedOut},
		Suspended:     {ActionUnsuspend: Active, ActionDeprovision: Deprovisioned},
		LockedOut:     {ActionSuspend: Suspended, ActionUnlock: Active, ActionDeprovision: Deprovisioned},
		Deprovisioned: {ActionActivate: Active},
	}
	statuses := []Status{Active, Suspended, LockedOut, Deprovisioned}
	actions := []Action{ActionSuspend, ActionUnsuspend, ActionUnlock, ActionDeprovision, ActionActivate, actionLock}
	for _, from := range statuses {
		for _, a := range actions {
			t.Run(fmt.Sprintf("%s from %s", a, from), func(t *testing.T) {
				f := newFixture(t, true)
				ctx := t.Context()
				f.reach(t, "alice", from)
				before, err := f.m.Get(ctx, "alice")
				if err != nil || before.Status != from {
					t.Fatalf("Get before: %+v, %v; want %s", before, err, from)
				}
				f.clock.Advance(time.Minute)
				got, err := f.do(ctx, "alice", a)
				to, ok := allowed[from][a]
				if !ok {
					if !errors.Is(err, ErrInvalidTransition) {
						t.Fatalf("got %+v, %v; want ErrInvalidTransition", got, err)
					}
					msg := fmt.Sprintf("cannot %s a user who is %s", a, from)
					if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), `"alice"`) {
						t.Fatalf("error %q does not say %q and name the user", err, msg)
					}
					var te *TransitionError
					if !errors.As(err, &te) || te.From != from || te.Action != a {
						t.Fatalf("error %#v: want a TransitionError from %s by %s", err, from, a)
					}
					if c := f.takeChanges(); len(c) != 0 {
						t.Fatalf("OnChange called for a refused transition: %+v", c)
					}
					if s, _ := f.m.Get(ctx, "alice"); s != before {
						t.Fatalf("state changed by a refused transition: %+v, was %+v", s, before)
					}
					return
				}
				if err != nil {
					t.Fatalf("want %s, got %v", to, err)
				}
				wantBy, wantReason := "admin-token", ""
				if a == actionLock {
					wantBy = System
				}
				if to != Active {
					wantReason = "ticket 42"
					if a == actionLock {
						wantReason = "5 failed sign-ins"
					}
				}
				want := State{UserID: "alice", Status: to, Since: f.clock.Now(), By: wantBy, Reason: wantReason}
				if got != want {
					t.Fatalf("returned %+v, want %+v", got, want)
				}
				c := f.takeChanges()
				if len(c) != 1 || c[0].before != before || c[0].after != want {
					t.Fatalf("OnChange calls %+v, want one with before %+v after %+v", c, before, want)
				}
				stored, err := f.m.Get(ctx, "alice")
				if err != nil {
					t.Fatal(err)
				}
				if to == Active {
					want = State{UserID: "alice", Status: Active} // Active is not stored
				}
				if stored != want {
					t.Fatalf("Get after: %+v, want %+v", stored, want)
				}
				list, err := f.m.List(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if to == Active && len(list) != 0 || to != Active && (len(list) != 1 || list[0] != want) {
					t.Fatalf("List after: %+v", list)
				}
				// Active leaves no live record behind.
				if _, err := f.st.Get(ctx, KindState, "alice"); to == Active && !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("record of an Active user: %v, want ErrNotFound", err)
				}
			})
		}
	}
}

func TestRoundTrips(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	steps := []struct {
		a    Action
		want Status
	}{
		{ActionSuspend, Suspended}, {ActionUnsuspend, Active},
		{actionLock, LockedOut}, {ActionSuspend, Suspended}, {ActionUnsuspend, Active},
		{actionLock, LockedOut}, {ActionUnlock, Active},
		{ActionDeprovision, Deprovisioned}, {ActionActivate, Active},
		{ActionSuspend, Suspended},
	}
	for i, s := range steps {
		f.clock.Advance(time.Second)
		got, err := f.do(ctx, "bob", s.a)
		if err != nil || got.Status != s.want {
			t.Fatalf("step %d %s: %+v, %v; want %s", i, s.a, got, err, s.want)
		}
	}
	if c := f.takeChanges(); len(c) != len(steps) {
		t.Fatalf("%d OnChange calls for %d transitions", len(c), len(steps))
	}
}

func TestAutoUnlock(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("store clock shared %v", shared), func(t *testing.T) {
			f := newFixture(t, shared)
			ctx := t.Context()
			until := t0.Add(15 * time.Minute)
			got, err := f.m.Lock(ctx, "carol", until, "too many failures")
			if err != nil {
				t.Fatal(err)
			}
			want := State{UserID: "carol", Status: LockedOut, Since: t0, By: System, Reason: "too many failures", LockedUntil: until}
			if got != want {
				t.Fatalf("Lock: %+v, want %+v", got, want)
			}
			f.clock.Advance(15*time.Minute - time.Nanosecond)
			err = f.m.CanSignIn(ctx, "carol")
			var na *NotActiveError
			if !errors.As(err, &na) || na.State != want || !strings.Contains(err.Error(), "LOCKED_OUT until 2030-01-01T00:15:00Z") {
				t.Fatalf("CanSignIn just before the lock ends: %v", err)
			}
			f.clock.Advance(time.Nanosecond)
			if err := f.m.CanSignIn(ctx, "carol"); err != nil {
				t.Fatalf("CanSignIn when the lock has ended: %v", err)
			}
			s, err := f.m.Get(ctx, "carol")
			if err != nil || s != (State{UserID: "carol", Status: Active}) {
				t.Fatalf("Get when the lock has ended: %+v, %v", s, err)
			}
			if l, err := f.m.List(ctx); err != nil || len(l) != 0 {
				t.Fatalf("List when the lock has ended: %+v, %v", l, err)
			}
			// It is Active for transitions too: Unlock is refused, Lock and Suspend work.
			if _, err := f.m.Unlock(ctx, "carol", "admin"); !errors.Is(err, ErrInvalidTransition) ||
				!strings.Contains(err.Error(), "cannot unlock a user who is ACTIVE") {
				t.Fatalf("Unlock after the lock ended: %v", err)
			}
			if _, err := f.m.Lock(ctx, "carol", time.Time{}, "again"); err != nil {
				t.Fatalf("Lock after the lock ended: %v", err)
			}
			if _, err := f.m.Suspend(ctx, "carol", "admin", "investigate"); err != nil {
				t.Fatalf("Suspend of the locked user: %v", err)
			}
			// A suspension from a timed lock does not end with the lock's time.
			f.clock.Advance(24 * time.Hour)
			if s, err := f.m.Get(ctx, "carol"); err != nil || s.Status != Suspended {
				t.Fatalf("suspended user a day later: %+v, %v", s, err)
			}
			if c := f.takeChanges(); len(c) != 3 {
				t.Fatalf("%d OnChange calls, want 3 (lock, lock, suspend)", len(c))
			}
		})
	}
}

func TestLockRefuses(t *testing.T) {
	f := newFixture(t, true)
	for _, until := range []time.Time{t0, t0.Add(-time.Second)} {
		if _, err := f.m.Lock(t.Context(), "dave", until, ""); err == nil || !strings.Contains(err.Error(), "not in the future") {
			t.Errorf("Lock until %v: got %v", until, err)
		}
	}
}

func TestConcurrentSuspend(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = f.m.Suspend(ctx, "erin", fmt.Sprintf("admin%d", i), "race")
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrInvalidTransition) && strings.Contains(err.Error(), "cannot suspend a user who is SUSPENDED"):
		default:
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d Suspends succeeded, want exactly 1", won)
	}
	if c := f.takeChanges(); len(c) != 1 {
		t.Fatalf("%d OnChange calls, want 1", len(c))
	}

	// Racing returns to Active: one wins too.
	for i := range n {
		wg.Go(func() { _, errs[i] = f.m.Unsuspend(ctx, "erin", fmt.Sprintf("admin%d", i)) })
	}
	wg.Wait()
	won = 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, ErrInvalidTransition) {
			t.Error(err)
		}
	}
	if won != 1 || len(f.takeChanges()) != 1 {
		t.Fatalf("%d Unsuspends succeeded, want exactly 1", won)
	}
}

func TestCanSignIn(t *testing.T) {
	for _, st := range []Status{Active, Suspended, LockedOut, Deprovisioned} {
		t.Run(string(st), func(t *testing.T) {
			f := newFixture(t, true)
			f.reach(t, "frank", st)
			err := f.m.CanSignIn(t.Context(), "frank")
			if st == Active {
				if err != nil {
					t.Fatalf("Active user: %v", err)
				}
				return
			}
			var na *NotActiveError
			if !errors.Is(err, ErrNotActive) || !errors.As(err, &na) || na.State.Status != st {
				t.Fatalf("got %v, want ErrNotActive with status %s", err, st)
			}
			if want := fmt.Sprintf(`user "frank" is %s`, st); err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
		})
	}
}

func TestStoreFailure(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	f.reach(t, "gina", Suspended)
	f.st.down.Store(true)
	check := func(what string, err error) {
		t.Helper()
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: got %v, want a store.ErrUnavailable error", what, err)
		}
		if errors.Is(err, ErrNotActive) || errors.Is(err, ErrInvalidTransition) {
			t.Fatalf("%s: %v looks like an answer, not a store failure", what, err)
		}
	}
	// Fails closed: an unknown (Active) user is refused too while the store is down.
	check("CanSignIn of a suspended user", f.m.CanSignIn(ctx, "gina"))
	check("CanSignIn of an active user", f.m.CanSignIn(ctx, "nobody"))
	_, err := f.m.Get(ctx, "gina")
	check("Get", err)
	_, err = f.m.Unsuspend(ctx, "gina", "admin")
	check("Unsuspend", err)
	_, err = f.m.Suspend(ctx, "nobody", "admin", "")
	check("Suspend", err)
	_, err = f.m.List(ctx)
	check("List", err)
	if c := f.takeChanges(); len(c) != 0 {
		t.Fatalf("OnChange called while the store was down: %+v", c)
	}

	// A record that cannot be read fails closed as well.
	f.st.down.Store(false)
	if err := f.st.Create(ctx, store.Record{Kind: KindState, ID: "hank", Owner: OwnerStates, Value: []byte(`{"user_id":"hank","status":"WEIRD"}`)}); err != nil {
		t.Fatal(err)
	}
	err = f.m.CanSignIn(ctx, "hank")
	check("CanSignIn with a bad record", err)
	if err := f.st.Create(ctx, store.Record{Kind: KindState, ID: "ivan", Owner: OwnerStates, Value: []byte(`not json`)}); err != nil {
		t.Fatal(err)
	}
	check("CanSignIn with a broken record", f.m.CanSignIn(ctx, "ivan"))
}

func TestArgs(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	tests := []struct {
		name     string
		do       func() (State, error)
		contains string
	}{
		{"no user", func() (State, error) { return f.m.Suspend(ctx, "", "admin", "") }, "no user id"},
		{"long user", func() (State, error) { return f.m.Suspend(ctx, strings.Repeat("u", 513), "admin", "") }, "longer than 512"},
		{"no actor", func() (State, error) { return f.m.Suspend(ctx, "u", " ", "") }, "no actor"},
		{"long reason", func() (State, error) { return f.m.Deprovision(ctx, "u", "admin", strings.Repeat("r", 1025)) }, "reason is longer"},
		{"bad action", func() (State, error) { return f.m.Apply(ctx, "u", "lock", "admin", "") }, `lifecycle action "lock"`},
	}
	for _, tt := range tests {
		_, err := tt.do()
		if err == nil || !strings.Contains(err.Error(), tt.contains) {
			t.Errorf("%s: got %v, want an error saying %q", tt.name, err, tt.contains)
		}
	}
	if _, err := f.m.Get(ctx, ""); err == nil {
		t.Error("Get of an empty user id: no error")
	}
	if err := f.m.CanSignIn(ctx, ""); err == nil {
		t.Error("CanSignIn of an empty user id: no error")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store: no error")
	}
}

func TestList(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	f.reach(t, "zoe", Suspended)
	f.reach(t, "amy", Deprovisioned)
	f.reach(t, "kim", LockedOut)
	if _, err := f.m.Lock(ctx, "tim", t0.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	list, err := f.m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list {
		got = append(got, s.UserID+"="+string(s.Status))
	}
	if g := strings.Join(got, " "); g != "amy=DEPROVISIONED kim=LOCKED_OUT tim=LOCKED_OUT zoe=SUSPENDED" {
		t.Fatalf("List: %s", g)
	}
	f.clock.Advance(time.Minute)
	if list, _ := f.m.List(ctx); len(list) != 3 {
		t.Fatalf("List after tim's lock ended: %+v", list)
	}
}

var actionCases = []struct {
	in   string
	want Action
	ok   bool
}{
	{"suspend", ActionSuspend, true},
	{"unsuspend", ActionUnsuspend, true},
	{"unlock", ActionUnlock, true},
	{"deprovision", ActionDeprovision, true},
	{"activate", ActionActivate, true},
	{"lock", "", false},
	{"", "", false},
	{"Suspend", "", false},
	{" suspend", "", false},
	{"reactivate", "", false},
	{"deactivate", "", false},
}

func TestParseAction(t *testing.T) {
	for _, tt := range actionCases {
		got, err := ParseAction(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseAction(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "want suspend, unsuspend, unlock, deprovision or activate") {
			t.Errorf("ParseAction(%q): error %q does not list the actions", tt.in, err)
		}
	}
}

func FuzzParseAction(f *testing.F) {
	for _, tt := range actionCases {
		f.Add(tt.in)
	}
	f.Add(strings.Repeat("x", 1000))
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAction(s)
		if err != nil {
			if a != "" {
				t.Fatalf("ParseAction(%q) = %q with error %v", s, a, err)
			}
			if len(err.Error()) > 300 { // 32 bytes quoted (at most 4 each) and the text
				t.Fatalf("error for %d bytes of input is %d bytes long", len(s), len(err.Error()))
			}
			return
		}
		if string(a) != s {
			t.Fatalf("ParseAction(%q) = %q", s, a)
		}
		if _, ok := rules[a]; !ok || a == actionLock {
			t.Fatalf("ParseAction(%q) accepted an action with no admin rule", s)
		}
	})
}

func BenchmarkCanSignIn(b *testing.B) {
	for _, st := range []Status{Active, Suspended} {
		b.Run(string(st), func(b *testing.B) {
			f := newFixture(b, true)
			ctx := context.Background()
			if st == Suspended {
				if _, err := f.m.Suspend(ctx, "u", "admin", ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := f.m.CanSignIn(ctx, "u"); (err == nil) != (st == Active) {
					b.Fatal(err)
				}
			}
		})
	}
}

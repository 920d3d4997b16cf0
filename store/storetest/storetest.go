// Package storetest is the conformance suite every store backend runs.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
)

// Factory opens a fresh, empty store that reads time from clock.Now. It registers its own
// cleanup (t.Cleanup), so the suite never closes the store itself.
type Factory func(t *testing.T, clock *Clock) store.Store

// start is where every subtest's clock begins. It has whole milliseconds: backends must keep
// ExpiresAt to at least millisecond precision.
var start = time.Date(2030, time.January, 2, 3, 4, 5, 123_000_000, time.UTC)

// Run runs the conformance suite: named subtests, each on a fresh store from newStore with its
// own clock. Beyond the store.Store documentation it requires that ExpiresAt round-trips with at
// least millisecond precision and that a record is gone at its ExpiresAt (not only after it).
// The subtests run one after another, so a factory may share one server between them.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store, c *Clock)
	}{
		{"CreateGet", testCreateGet},
		{"ValuesAreCopied", testValuesAreCopied},
		{"CreateTwice", testCreateTwice},
		{"GetMissing", testGetMissing},
		{"KindsAreIndependent", testKindsAreIndependent},
		{"Expiry", testExpiry},
		{"ExpiryBoundary", testExpiryBoundary},
		{"ZeroExpiryNeverExpires", testZeroExpiry},
		{"Update", testUpdate},
		{"UpdateFnError", testUpdateFnError},
		{"UpdateMissing", testUpdateMissing},
		{"ConcurrentUpdate", testConcurrentUpdate},
		{"Take", testTake},
		{"ConcurrentTake", testConcurrentTake},
		{"Delete", testDelete},
		{"Owners", testOwners},
		{"EmptyOwnerNotIndexed", testEmptyOwner},
		{"LargeValue", testLargeValue},
		{"Health", testHealth},
		{"Collection", testCollection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock(start)
			s := newStore(t, c)
			if s == nil {
				t.Fatal("factory returned a nil store")
			}
			tt.run(t, s, c)
		})
	}
}

// checkRecord fails t unless got has want's kind, id, owner, value and expiry and a version.
func checkRecord(t *testing.T, what string, got, want store.Record) {
	t.Helper()
	if got.Kind != want.Kind || got.ID != want.ID {
		t.Errorf("%s: got kind/id %q/%q, want %q/%q", what, got.Kind, got.ID, want.Kind, want.ID)
	}
	if got.Owner != want.Owner {
		t.Errorf("%s: got owner %q, want %q", what, got.Owner, want.Owner)
	}
	if !bytes.Equal(got.Value, want.Value) {
		t.Errorf("%s: got value %s, want %s", what, short(got.Value), short(want.Value))
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("%s: got ExpiresAt %v, want %v", what, got.ExpiresAt, want.ExpiresAt)
	}
	if got.Version == 0 {
		t.Errorf("%s: Version is 0, want it set by the backend", what)
	}
}

func short(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", b[:64], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// checkErr fails t unless errors.Is(err, want).
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func mustCreate(t *testing.T, s store.Store, r store.Record) {
	t.Helper()
	if err := s.Create(t.Context(), r); err != nil {
		t.Fatalf("Create %s %q: %v", r.Kind, r.ID, err)
	}
}

func mustGet(t *testing.T, s store.Store, kind store.Kind, id string) store.Record {
	t.Helper()
	r, err := s.Get(t.Context(), kind, id)
	if err != nil {
		t.Fatalf("Get %s %q: %v", kind, id, err)
	}
	return r
}

// ids returns the sorted ids of rs.
func ids(rs []store.Record) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	sort.Strings(out)
	return out
}

// checkOwned fails t unless ListByOwner(kind, owner) returns exactly the records with wantIDs.
func checkOwned(t *testing.T, s store.Store, kind store.Kind, owner string, wantIDs ...string) {
	t.Helper()
	rs, err := s.ListByOwner(t.Context(), kind, owner)
	if err != nil {
		t.Fatalf("ListByOwner %s %q: %v", kind, owner, err)
	}
	got := ids(rs)
	sort.Strings(wantIDs)
	if fmt.Sprint(got) != fmt.Sprint(wantIDs) || len(got) != len(wantIDs) {
		t.Errorf("ListByOwner %s %q: got ids %q, want %q", kind, owner, got, wantIDs)
	}
	for _, r := range rs {
		if r.Kind != kind || r.Owner != owner || r.Version == 0 {
			t.Errorf("ListByOwner %s %q: record %q has kind %q, owner %q, version %d", kind, owner, r.ID, r.Kind, r.Owner, r.Version)
		}
	}
}

func testCreateGet(t *testing.T, s store.Store, c *Clock) {
	want := store.Record{
		Kind:      store.KindSession,
		ID:        "sess-1",
		Owner:     "alice",
		Value:     []byte("{\"a\":1}\x00\xff binary is fine"),
		ExpiresAt: c.Now().Add(time.Hour),
		Version:   12345, // callers leave Version alone; the backend sets its own
	}
	mustCreate(t, s, want)
	got := mustGet(t, s, want.Kind, want.ID)
	checkRecord(t, "Get after Create", got, want)

	// An empty value and an empty owner round-trip too.
	empty := store.Record{Kind: store.KindSession, ID: "sess-empty"}
	mustCreate(t, s, empty)
	got = mustGet(t, s, empty.Kind, empty.ID)
	checkRecord(t, "Get of an empty record", got, empty)
	if len(got.Value) != 0 {
		t.Errorf("Get of an empty record: got value %q, want empty", got.Value)
	}
}

func testValuesAreCopied(t *testing.T, s store.Store, c *Clock) {
	in := []byte("original")
	mustCreate(t, s, store.Record{Kind: store.KindSession, ID: "x", Value: in})
	copy(in, "CHANGED!")
	got := mustGet(t, s, store.KindSession, "x")
	if string(got.Value) != "original" {
		t.Fatalf("changing the slice passed to Create changed the stored value: got %q", got.Value)
	}
	copy(got.Value, "CHANGED!")
	if again := mustGet(t, s, store.KindSession, "x"); string(again.Value) != "original" {
		t.Fatalf("changing the slice returned by Get changed the stored value: got %q", again.Value)
	}
	// fn may change the record it is given in place without corrupting the store.
	_, err := s.Update(t.Context(), store.KindSession, "x", func(r store.Record) (store.Record, error) {
		copy(r.Value, "CHANGED!")
		return r, errors.New("abort")
	})
	if err == nil {
		t.Fatal("Update: fn's error was not returned")
	}
	if again := mustGet(t, s, store.KindSession, "x"); string(again.Value) != "original" {
		t.Fatalf("changing the value given to an aborted Update fn changed the stored value: got %q", again.Value)
	}
}

func testCreateTwice(t *testing.T, s store.Store, c *Clock) {
	first := store.Record{Kind: store.KindAuthCode, ID: "code", Owner: "alice", Value: []byte("first")}
	mustCreate(t, s, first)
	err := s.Create(t.Context(), store.Record{Kind: store.KindAuthCode, ID: "code", Owner: "bob", Value: []byte("second")})
	checkErr(t, "second Create", err, store.ErrAlreadyExists)
	checkRecord(t, "Get after a refused Create", mustGet(t, s, first.Kind, first.ID), first)
	checkOwned(t, s, store.KindAuthCode, "bob")
}

func testGetMissing(t *testing.T, s store.Store, c *Clock) {
	_, err := s.Get(t.Context(), store.KindSession, "nope")
	checkErr(t, "Get in an empty store", err, store.ErrNotFound)
	mustCreate(t, s, store.Record{Kind: store.KindSession, ID: "there", Value: []byte("v")})
	_, err = s.Get(t.Context(), store.KindSession, "nope")
	checkErr(t, "Get of a missing id", err, store.ErrNotFound)
	_, err = s.Get(t.Context(), store.KindToken, "there")
	checkErr(t, "Get of an id stored under another kind", err, store.ErrNotFound)
}

func testKindsAreIndependent(t *testing.T, s store.Store, c *Clock) {
	a := store.Record{Kind: store.KindSession, ID: "same", Owner: "alice", Value: []byte("session")}
	b := store.Record{Kind: store.KindToken, ID: "same", Owner: "alice", Value: []byte("token")}
	mustCreate(t, s, a)
	mustCreate(t, s, b)
	checkRecord(t, "Get session", mustGet(t, s, a.Kind, a.ID), a)
	checkRecord(t, "Get token", mustGet(t, s, b.Kind, b.ID), b)
	checkOwned(t, s, store.KindSession, "alice", "same")
	checkOwned(t, s, store.KindToken, "alice", "same")

	if err := s.Delete(t.Context(), a.Kind, a.ID); err != nil {
		t.Fatalf("Delete session: %v", err)
	}
	_, err := s.Get(t.Context(), a.Kind, a.ID)
	checkErr(t, "Get of the deleted session", err, store.ErrNotFound)
	checkRecord(t, "Get token after deleting the session", mustGet(t, s, b.Kind, b.ID), b)
	checkOwned(t, s, store.KindToken, "alice", "same")
}

func testExpiry(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	r := store.Record{Kind: store.KindLoginState, ID: "st", Owner: "alice", Value: []byte("v1"), ExpiresAt: c.Now().Add(time.Minute)}
	mustCreate(t, s, r)
	checkRecord(t, "Get before expiry", mustGet(t, s, r.Kind, r.ID), r)
	checkOwned(t, s, r.Kind, "alice", "st")

	c.Advance(2 * time.Minute)
	_, err := s.Get(ctx, r.Kind, r.ID)
	checkErr(t, "Get after expiry", err, store.ErrNotFound)
	_, err = s.Take(ctx, r.Kind, r.ID)
	checkErr(t, "Take after expiry", err, store.ErrNotFound)
	called := false
	_, err = s.Update(ctx, r.Kind, r.ID, func(r store.Record) (store.Record, error) {
		called = true
		return r, nil
	})
	checkErr(t, "Update after expiry", err, store.ErrNotFound)
	if called {
		t.Error("Update after expiry called fn")
	}
	checkOwned(t, s, r.Kind, "alice")

	again := store.Record{Kind: r.Kind, ID: r.ID, Owner: "bob", Value: []byte("v2"), ExpiresAt: c.Now().Add(time.Minute)}
	if err := s.Create(ctx, again); err != nil {
		t.Fatalf("Create over an expired record: %v", err)
	}
	checkRecord(t, "Get of the re-created record", mustGet(t, s, r.Kind, r.ID), again)
	checkOwned(t, s, r.Kind, "alice")
	checkOwned(t, s, r.Kind, "bob", "st")
}

func testExpiryBoundary(t *testing.T, s store.Store, c *Clock) {
	r := store.Record{Kind: store.KindSession, ID: "edge", Value: []byte("v"), ExpiresAt: c.Now().Add(time.Second)}
	mustCreate(t, s, r)
	c.Advance(time.Second - time.Millisecond)
	checkRecord(t, "Get 1ms before ExpiresAt", mustGet(t, s, r.Kind, r.ID), r)
	c.Advance(time.Millisecond)
	_, err := s.Get(t.Context(), r.Kind, r.ID)
	checkErr(t, "Get at ExpiresAt", err, store.ErrNotFound)

	// A record created already expired does not exist.
	past := store.Record{Kind: store.KindSession, ID: "past", Value: []byte("v"), ExpiresAt: c.Now().Add(-time.Hour)}
	mustCreate(t, s, past)
	_, err = s.Get(t.Context(), past.Kind, past.ID)
	checkErr(t, "Get of a record created already expired", err, store.ErrNotFound)
}

func testZeroExpiry(t *testing.T, s store.Store, c *Clock) {
	r := store.Record{Kind: store.KindSecret, ID: "key", Owner: "signing", Value: []byte("k")}
	mustCreate(t, s, r)
	c.Advance(100 * 365 * 24 * time.Hour)
	got := mustGet(t, s, r.Kind, r.ID)
	checkRecord(t, "Get after 100 years", got, r)
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt: got %v, want the zero time", got.ExpiresAt)
	}
	checkOwned(t, s, r.Kind, "signing", "key")
}

func testUpdate(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	orig := store.Record{Kind: store.KindToken, ID: "tok", Owner: "alice", Value: []byte("v1"), ExpiresAt: c.Now().Add(time.Minute)}
	mustCreate(t, s, orig)
	before := mustGet(t, s, orig.Kind, orig.ID)

	want := store.Record{Kind: orig.Kind, ID: orig.ID, Owner: "bob", Value: []byte("v2, longer than before"), ExpiresAt: c.Now().Add(time.Hour)}
	calls := 0
	got, err := s.Update(ctx, orig.Kind, orig.ID, func(r store.Record) (store.Record, error) {
		calls++
		checkRecord(t, "record given to fn", r, orig)
		if r.Version != before.Version {
			t.Errorf("record given to fn: Version %d, want %d", r.Version, before.Version)
		}
		r.Owner = want.Owner
		r.Value = want.Value
		r.ExpiresAt = want.ExpiresAt
		r.Kind = store.KindSession // ignored: Kind and ID are kept
		r.ID = "other"
		r.Version = 0 // ignored: the backend sets Version
		return r, nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls < 1 {
		t.Fatal("Update did not call fn")
	}
	checkRecord(t, "record returned by Update", got, want)
	if got.Version <= before.Version {
		t.Errorf("Update: Version %d, want more than %d", got.Version, before.Version)
	}
	after := mustGet(t, s, orig.Kind, orig.ID)
	checkRecord(t, "Get after Update", after, want)
	if after.Version != got.Version {
		t.Errorf("Get after Update: Version %d, want %d as returned by Update", after.Version, got.Version)
	}
	_, err = s.Get(ctx, store.KindSession, "other")
	checkErr(t, "Get of the kind and id fn tried to move to", err, store.ErrNotFound)

	// The new expiry is in force: the record outlives the old one and dies at the new one.
	c.Advance(2 * time.Minute)
	mustGet(t, s, orig.Kind, orig.ID)
	c.Advance(time.Hour)
	_, err = s.Get(ctx, orig.Kind, orig.ID)
	checkErr(t, "Get after the updated expiry", err, store.ErrNotFound)

	// Clearing ExpiresAt makes a record permanent.
	perm := store.Record{Kind: store.KindToken, ID: "perm", Value: []byte("v"), ExpiresAt: c.Now().Add(time.Minute)}
	mustCreate(t, s, perm)
	if _, err := s.Update(ctx, perm.Kind, perm.ID, func(r store.Record) (store.Record, error) {
		r.ExpiresAt = time.Time{}
		return r, nil
	}); err != nil {
		t.Fatalf("Update clearing ExpiresAt: %v", err)
	}
	c.Advance(time.Hour)
	if got := mustGet(t, s, perm.Kind, perm.ID); !got.ExpiresAt.IsZero() {
		t.Errorf("after clearing ExpiresAt: got %v, want the zero time", got.ExpiresAt)
	}
}

func testUpdateFnError(t *testing.T, s store.Store, c *Clock) {
	r := store.Record{Kind: store.KindSession, ID: "s", Owner: "alice", Value: []byte("v1")}
	mustCreate(t, s, r)
	before := mustGet(t, s, r.Kind, r.ID)
	fnErr := errors.New("fn says no")
	_, err := s.Update(t.Context(), r.Kind, r.ID, func(old store.Record) (store.Record, error) {
		old.Value = []byte("v2")
		old.Owner = "bob"
		return old, fnErr
	})
	if err != fnErr { //nolint:errorlint // the contract is that fn's error is returned as is
		t.Errorf("Update: got error %v, want fn's error returned as is", err)
	}
	after := mustGet(t, s, r.Kind, r.ID)
	checkRecord(t, "Get after an aborted Update", after, r)
	if after.Version != before.Version {
		t.Errorf("aborted Update changed Version from %d to %d", before.Version, after.Version)
	}
	checkOwned(t, s, r.Kind, "alice", "s")
	checkOwned(t, s, r.Kind, "bob")
}

func testUpdateMissing(t *testing.T, s store.Store, c *Clock) {
	called := false
	fn := func(r store.Record) (store.Record, error) {
		called = true
		return r, nil
	}
	_, err := s.Update(t.Context(), store.KindSession, "nope", fn)
	checkErr(t, "Update in an empty store", err, store.ErrNotFound)
	mustCreate(t, s, store.Record{Kind: store.KindSession, ID: "there"})
	_, err = s.Update(t.Context(), store.KindSession, "nope", fn)
	checkErr(t, "Update of a missing id", err, store.ErrNotFound)
	if called {
		t.Error("Update of a missing record called fn")
	}
	_, err = s.Get(t.Context(), store.KindSession, "nope")
	checkErr(t, "Get after Update of a missing id", err, store.ErrNotFound)
}

type counter struct {
	N int `json:"n"`
}

func testConcurrentUpdate(t *testing.T, s store.Store, c *Clock) {
	const workers, perWorker = 8, 25
	col := store.Collection[counter]{Store: s, Kind: store.KindToken}
	if err := col.Create(t.Context(), "ctr", "", time.Time{}, counter{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	before := mustGet(t, s, store.KindToken, "ctr")
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				_, err := col.Update(t.Context(), "ctr", func(v counter) (counter, time.Time, error) {
					v.N++
					return v, time.Time{}, nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := col.Get(t.Context(), "ctr")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.N != workers*perWorker {
		t.Errorf("counter: got %d, want %d (lost updates)", got.N, workers*perWorker)
	}
	if after := mustGet(t, s, store.KindToken, "ctr"); after.Version <= before.Version {
		t.Errorf("Version after %d updates: got %d, want more than %d", workers*perWorker, after.Version, before.Version)
	}
}

func testTake(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	r := store.Record{Kind: store.KindAuthCode, ID: "code", Owner: "alice", Value: []byte("req-1"), ExpiresAt: c.Now().Add(time.Minute)}
	mustCreate(t, s, r)
	got, err := s.Take(ctx, r.Kind, r.ID)
	if err != nil {
		t.Fatalf("Take: %v", err)
	}
	checkRecord(t, "record returned by Take", got, r)
	_, err = s.Get(ctx, r.Kind, r.ID)
	checkErr(t, "Get after Take", err, store.ErrNotFound)
	_, err = s.Take(ctx, r.Kind, r.ID)
	checkErr(t, "second Take", err, store.ErrNotFound)
	_, err = s.Take(ctx, r.Kind, "never-there")
	checkErr(t, "Take of a missing id", err, store.ErrNotFound)
	checkOwned(t, s, r.Kind, "alice")
	if err := s.Create(ctx, r); err != nil {
		t.Errorf("Create after Take: %v", err)
	}
}

func testConcurrentTake(t *testing.T, s store.Store, c *Clock) {
	const racers = 16
	r := store.Record{Kind: store.KindAuthCode, ID: "code", Value: []byte("once")}
	mustCreate(t, s, r)
	var (
		wins  atomic.Int32
		wg    sync.WaitGroup
		ready = make(chan struct{})
	)
	for range racers {
		wg.Go(func() {
			<-ready
			got, err := s.Take(t.Context(), r.Kind, r.ID)
			switch {
			case err == nil:
				wins.Add(1)
				if string(got.Value) != "once" {
					t.Errorf("winning Take: got value %q, want %q", got.Value, "once")
				}
			case errors.Is(err, store.ErrNotFound):
			default:
				t.Errorf("losing Take: got error %v, want %v", err, store.ErrNotFound)
			}
		})
	}
	close(ready)
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d of %d concurrent Takes got the record, want exactly 1", n, racers)
	}
}

func testDelete(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	if err := s.Delete(ctx, store.KindSession, "nope"); err != nil {
		t.Errorf("Delete in an empty store: %v", err)
	}
	r := store.Record{Kind: store.KindSession, ID: "s", Owner: "alice", Value: []byte("v")}
	mustCreate(t, s, r)
	if err := s.Delete(ctx, store.KindSession, "nope"); err != nil {
		t.Errorf("Delete of a missing id: %v", err)
	}
	if err := s.Delete(ctx, r.Kind, r.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Get(ctx, r.Kind, r.ID)
	checkErr(t, "Get after Delete", err, store.ErrNotFound)
	checkOwned(t, s, r.Kind, "alice")
	if err := s.Delete(ctx, r.Kind, r.ID); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	mustCreate(t, s, r)
	checkRecord(t, "Get after re-Create", mustGet(t, s, r.Kind, r.ID), r)
}

func testOwners(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	k := store.KindSession
	for _, r := range []store.Record{
		{Kind: k, ID: "a1", Owner: "alice", Value: []byte("a1")},
		{Kind: k, ID: "a2", Owner: "alice", Value: []byte("a2")},
		{Kind: k, ID: "b1", Owner: "bob", Value: []byte("b1")},
		{Kind: k, ID: "b-expired", Owner: "bob", Value: []byte("bx"), ExpiresAt: c.Now().Add(time.Minute)},
		{Kind: k, ID: "n1", Value: []byte("no owner")},
		{Kind: store.KindToken, ID: "t1", Owner: "alice", Value: []byte("t1")},
		{Kind: store.KindToken, ID: "t2", Owner: "bob", Value: []byte("t2")},
	} {
		mustCreate(t, s, r)
	}
	checkOwned(t, s, k, "alice", "a1", "a2")
	checkOwned(t, s, k, "bob", "b1", "b-expired")
	checkOwned(t, s, k, "carol")
	checkOwned(t, s, store.KindToken, "alice", "t1")
	rs, err := s.ListByOwner(ctx, k, "alice")
	if err != nil {
		t.Fatalf("ListByOwner: %v", err)
	}
	for _, r := range rs {
		if string(r.Value) != r.ID {
			t.Errorf("ListByOwner: record %q has value %q, want %q", r.ID, r.Value, r.ID)
		}
	}

	// Update moves a2 from alice to bob.
	if _, err := s.Update(ctx, k, "a2", func(r store.Record) (store.Record, error) {
		r.Owner = "bob"
		return r, nil
	}); err != nil {
		t.Fatalf("Update a2: %v", err)
	}
	checkOwned(t, s, k, "alice", "a1")
	checkOwned(t, s, k, "bob", "a2", "b1", "b-expired")
	// Update clears an owner.
	if _, err := s.Update(ctx, k, "a1", func(r store.Record) (store.Record, error) {
		r.Owner = ""
		return r, nil
	}); err != nil {
		t.Fatalf("Update a1: %v", err)
	}
	checkOwned(t, s, k, "alice")
	// Update gives n1 an owner.
	if _, err := s.Update(ctx, k, "n1", func(r store.Record) (store.Record, error) {
		r.Owner = "alice"
		return r, nil
	}); err != nil {
		t.Fatalf("Update n1: %v", err)
	}
	checkOwned(t, s, k, "alice", "n1")
	// Delete removes from the index.
	if err := s.Delete(ctx, k, "n1"); err != nil {
		t.Fatalf("Delete n1: %v", err)
	}
	checkOwned(t, s, k, "alice")
	mustCreate(t, s, store.Record{Kind: k, ID: "a3", Owner: "alice", Value: []byte("a3")})

	// An expired record is neither listed nor counted.
	c.Advance(2 * time.Minute)
	checkOwned(t, s, k, "bob", "a2", "b1")
	n, err := s.DeleteByOwner(ctx, k, "bob")
	if err != nil {
		t.Fatalf("DeleteByOwner bob: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteByOwner bob: got %d, want 2", n)
	}
	checkOwned(t, s, k, "bob")
	for _, id := range []string{"a2", "b1", "b-expired"} {
		_, err := s.Get(ctx, k, id)
		checkErr(t, "Get "+id+" after DeleteByOwner", err, store.ErrNotFound)
	}
	// Other owners and other kinds are untouched.
	checkOwned(t, s, k, "alice", "a3")
	mustGet(t, s, k, "a1")
	checkOwned(t, s, store.KindToken, "bob", "t2")
	checkOwned(t, s, store.KindToken, "alice", "t1")

	n, err = s.DeleteByOwner(ctx, k, "bob")
	if err != nil || n != 0 {
		t.Errorf("second DeleteByOwner bob: got %d, %v; want 0, nil", n, err)
	}
	n, err = s.DeleteByOwner(ctx, store.KindAuthCode, "nobody")
	if err != nil || n != 0 {
		t.Errorf("DeleteByOwner of an unknown owner: got %d, %v; want 0, nil", n, err)
	}
}

func testEmptyOwner(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	r := store.Record{Kind: store.KindSession, ID: "anon", Value: []byte("v")}
	mustCreate(t, s, r)
	checkOwned(t, s, r.Kind, "")
	n, err := s.DeleteByOwner(ctx, r.Kind, "")
	if err != nil || n != 0 {
		t.Errorf("DeleteByOwner with an empty owner: got %d, %v; want 0, nil", n, err)
	}
	checkRecord(t, "Get after DeleteByOwner with an empty owner", mustGet(t, s, r.Kind, r.ID), r)
}

func testLargeValue(t *testing.T, s store.Store, c *Clock) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	r := store.Record{Kind: store.KindSecret, ID: "big", Owner: "o", Value: big}
	mustCreate(t, s, r)
	checkRecord(t, "Get of a 1 MiB value", mustGet(t, s, r.Kind, r.ID), r)

	bigger := append(bytes.Clone(big), big[:1000]...)
	got, err := s.Update(t.Context(), r.Kind, r.ID, func(old store.Record) (store.Record, error) {
		old.Value = bigger
		return old, nil
	})
	if err != nil {
		t.Fatalf("Update to a larger value: %v", err)
	}
	r.Value = bigger
	checkRecord(t, "record returned by Update", got, r)
	checkRecord(t, "Get after Update", mustGet(t, s, r.Kind, r.ID), r)
}

func testHealth(t *testing.T, s store.Store, c *Clock) {
	if err := s.Health(t.Context()); err != nil {
		t.Errorf("Health: %v", err)
	}
}

type item struct {
	Name string            `json:"name"`
	N    int               `json:"n"`
	Tags []string          `json:"tags"`
	Meta map[string]string `json:"meta"`
}

func testCollection(t *testing.T, s store.Store, c *Clock) {
	ctx := t.Context()
	col := store.Collection[item]{Store: s, Kind: store.KindAuthRequest}
	exp := c.Now().Add(time.Hour)
	one := item{Name: "one", N: 1, Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}
	if err := col.Create(ctx, "i1", "alice", exp, one); err != nil {
		t.Fatalf("Create: %v", err)
	}
	err := col.Create(ctx, "i1", "alice", exp, one)
	checkErr(t, "second Create", err, store.ErrAlreadyExists)
	got, err := col.Get(ctx, "i1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", one) {
		t.Errorf("Get: got %#v, want %#v", got, one)
	}

	// A zero expiry from fn keeps the record's expiry.
	updated, err := col.Update(ctx, "i1", func(v item) (item, time.Time, error) {
		v.N++
		v.Tags = append(v.Tags, "c")
		return v, time.Time{}, nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := item{Name: "one", N: 2, Tags: []string{"a", "b", "c"}, Meta: map[string]string{"k": "v"}}
	if fmt.Sprintf("%#v", updated) != fmt.Sprintf("%#v", want) {
		t.Errorf("Update returned %#v, want %#v", updated, want)
	}
	if got, err := col.Get(ctx, "i1"); err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("Get after Update: got %#v, %v; want %#v", got, err, want)
	}
	if raw := mustGet(t, s, col.Kind, "i1"); !raw.ExpiresAt.Equal(exp) || raw.Owner != "alice" {
		t.Errorf("after Update with a zero expiry: got owner %q, ExpiresAt %v; want %q, %v", raw.Owner, raw.ExpiresAt, "alice", exp)
	}
	later := exp.Add(time.Hour)
	if _, err := col.Update(ctx, "i1", func(v item) (item, time.Time, error) { return v, later, nil }); err != nil {
		t.Fatalf("Update with an expiry: %v", err)
	}
	if raw := mustGet(t, s, col.Kind, "i1"); !raw.ExpiresAt.Equal(later) {
		t.Errorf("after Update with an expiry: got ExpiresAt %v, want %v", raw.ExpiresAt, later)
	}
	fnErr := errors.New("no")
	if _, err := col.Update(ctx, "i1", func(v item) (item, time.Time, error) { return v, time.Time{}, fnErr }); !errors.Is(err, fnErr) {
		t.Errorf("Update with a failing fn: got %v, want %v", err, fnErr)
	}
	_, err = col.Update(ctx, "missing", func(v item) (item, time.Time, error) { return v, time.Time{}, nil })
	checkErr(t, "Update of a missing id", err, store.ErrNotFound)

	two := item{Name: "two"}
	if err := col.Create(ctx, "i2", "alice", time.Time{}, two); err != nil {
		t.Fatalf("Create i2: %v", err)
	}
	list, err := col.ListByOwner(ctx, "alice")
	if err != nil {
		t.Fatalf("ListByOwner: %v", err)
	}
	names := make([]string, 0, len(list))
	for _, v := range list {
		names = append(names, v.Name)
	}
	sort.Strings(names)
	if fmt.Sprint(names) != "[one two]" {
		t.Errorf("ListByOwner: got names %q, want [one two]", names)
	}

	taken, err := col.Take(ctx, "i2")
	if err != nil || taken.Name != "two" {
		t.Errorf("Take: got %#v, %v; want %#v", taken, err, two)
	}
	_, err = col.Take(ctx, "i2")
	checkErr(t, "second Take", err, store.ErrNotFound)
	_, err = col.Get(ctx, "i2")
	checkErr(t, "Get after Take", err, store.ErrNotFound)

	n, err := col.DeleteByOwner(ctx, "alice")
	if err != nil || n != 1 {
		t.Errorf("DeleteByOwner: got %d, %v; want 1, nil", n, err)
	}
	if err := col.Delete(ctx, "i1"); err != nil {
		t.Errorf("Delete of a deleted id: %v", err)
	}
	_, err = col.Get(ctx, "i1")
	checkErr(t, "Get after DeleteByOwner", err, store.ErrNotFound)
}

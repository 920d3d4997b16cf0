package redis

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/redistest"
	"github.com/zonegate/zonegate/store"
)

// TestOwnerIndexUnderRaces checks the index invariant while writers race: every live record
// with an owner is listed under that owner, whatever happened meanwhile.
func TestOwnerIndexUnderRaces(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: "redis://" + addr, KeyPrefix: "races:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// Widen the window between a writer's index entry and its record, where a reader that
	// removed young stale entries would lose the record from the index.
	testHookAfterIndex = func() { time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) }
	t.Cleanup(func() { testHookAfterIndex = nil })
	owners := []string{"alice", "bob", "carol"}
	ids := []string{"s1", "s2", "s3", "s4"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for k := range 150 {
				id := ids[(w+k)%len(ids)]
				owner := owners[(w*7+k)%len(owners)]
				var err error
				switch (w + 3*k) % 6 {
				case 0:
					err = s.Create(ctx, store.Record{Kind: store.KindSession, ID: id, Owner: owner, Value: []byte("v")})
					if errors.Is(err, store.ErrAlreadyExists) {
						err = nil
					}
				case 1, 2:
					_, err = s.Update(ctx, store.KindSession, id, func(r store.Record) (store.Record, error) {
						r.Owner = owner
						r.ExpiresAt = time.Now().Add(time.Duration(k+1) * time.Minute)
						return r, nil
					})
				case 3:
					err = s.Delete(ctx, store.KindSession, id)
				case 4:
					_, err = s.ListByOwner(ctx, store.KindSession, owner)
				case 5:
					_, err = s.DeleteByOwner(ctx, store.KindSession, owner)
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("worker %d op %d: %v", w, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		r, err := s.Get(ctx, store.KindSession, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && r.Owner == "") {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.ListByOwner(ctx, store.KindSession, r.Owner)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(rs, func(x store.Record) bool { return x.ID == id }) {
			t.Errorf("live record %s of %s is not in its owner's index", id, r.Owner)
		}
	}
}

// TestReaderInsideWritersWindow runs a reader exactly between a writer's index entry and its
// record: the reader sees an entry whose record is missing or another owner's, and must leave
// it, or the record would be live but unlisted (and survive DeleteByOwner).
func TestReaderInsideWritersWindow(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: "redis://" + addr, KeyPrefix: "window:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(func() { testHookAfterIndex = nil })
	k := store.KindSession
	readers := map[string]func(t *testing.T, owner string){
		"ListByOwner": func(t *testing.T, owner string) {
			if _, err := s.ListByOwner(ctx, k, owner); err != nil {
				t.Errorf("ListByOwner in the window: %v", err)
			}
		},
		"DeleteByOwner": func(t *testing.T, owner string) {
			if n, err := s.DeleteByOwner(ctx, k, owner); err != nil || n != 0 {
				t.Errorf("DeleteByOwner in the window: got %d, %v; want 0, nil", n, err)
			}
		},
	}
	listed := func(t *testing.T, owner, id string) bool {
		t.Helper()
		rs, err := s.ListByOwner(ctx, k, owner)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(rs, func(r store.Record) bool { return r.ID == id })
	}
	for name, read := range readers {
		t.Run("Create/"+name, func(t *testing.T) {
			id, owner := "x"+name, "create-"+name
			testHookAfterIndex = func() { read(t, owner) }
			err := s.Create(ctx, store.Record{Kind: k, ID: id, Owner: owner, Value: []byte("v")})
			testHookAfterIndex = nil
			if err != nil {
				t.Fatal(err)
			}
			if !listed(t, owner, id) {
				t.Error("the created record is not in its owner's index")
			}
		})
		t.Run("Update/"+name, func(t *testing.T) {
			id, from, to := "y", "from-"+name, "to-"+name
			if err := s.Create(ctx, store.Record{Kind: k, ID: id + name, Owner: from, Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			testHookAfterIndex = func() { read(t, to) }
			_, err := s.Update(ctx, k, id+name, func(r store.Record) (store.Record, error) {
				r.Owner = to
				return r, nil
			})
			testHookAfterIndex = nil
			if err != nil {
				t.Fatal(err)
			}
			if !listed(t, to, id+name) {
				t.Error("the moved record is not in its new owner's index")
			}
			if listed(t, from, id+name) {
				t.Error("the moved record is still listed under its old owner")
			}
		})
	}
}

// TestUnindexKeepsNewerEntry: an operation that removed a record removes that record's index
// entry only, not the entry of a record created with the same id meanwhile.
func TestUnindexKeepsNewerEntry(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	s, err := Open(ctx, Options{URL: "redis://" + addr, KeyPrefix: "unindex:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	k, r := store.KindSession, store.Record{Kind: store.KindSession, ID: "x", Owner: "alice", Value: []byte("v")}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	old, err := s.client.HGet(ctx, s.recordKey(k, "x"), "i").Result()
	if err != nil {
		t.Fatal(err)
	}
	// A Delete ran its script; before it removes the entry, the id is created again.
	if err := s.Delete(ctx, k, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	s.unindex(ctx, k, "alice", "x", old) // the late removal of the old record's entry
	if rs, err := s.ListByOwner(ctx, k, "alice"); err != nil || len(rs) != 1 {
		t.Errorf("ListByOwner after a late removal of the old entry: got %v, %v; want the new record", rs, err)
	}
	now, err := s.client.HGet(ctx, s.recordKey(k, "x"), "i").Result()
	if err != nil {
		t.Fatal(err)
	}
	s.unindex(ctx, k, "alice", "x", now)
	if n, _ := s.client.Exists(ctx, s.indexKey(k, "alice")).Result(); n != 0 {
		t.Error("removing the entry with its own stamp left it in the index")
	}
}

package bolt

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/storetest"
)

func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.GCInterval == 0 {
		opts.GCInterval = -1
	}
	s, err := Open(filepath.Join(t.TempDir(), "z.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dump lists what the file holds: "kind id" for records and "kind/owners owner id" for index
// entries, sorted.
func dump(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v != nil {
					out = append(out, fmt.Sprintf("%s %s", name, k))
					return nil
				}
				return b.Bucket(k).ForEach(func(id, _ []byte) error {
					out = append(out, fmt.Sprintf("%s %s %s", name, k, id))
					return nil
				})
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func checkDump(t *testing.T, s *Store, want ...string) {
	t.Helper()
	got := dump(t, s)
	sort.Strings(want)
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("file holds\n %q\nwant\n %q", got, want)
	}
}

func TestGC(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, Options{Now: clock.Now})
	soon, later := clock.Now().Add(time.Minute), clock.Now().Add(time.Hour)
	for _, r := range []store.Record{
		{Kind: store.KindSession, ID: "a-soon", Owner: "alice", ExpiresAt: soon},
		{Kind: store.KindSession, ID: "a-later", Owner: "alice", ExpiresAt: later},
		{Kind: store.KindSession, ID: "b-soon", Owner: "bob", ExpiresAt: soon},
		{Kind: store.KindSession, ID: "never", Owner: "bob"},
		{Kind: store.KindAuthCode, ID: "code", ExpiresAt: soon},
		{Kind: store.KindSecret, ID: "key"},
	} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.GC(ctx); err != nil || n != 0 {
		t.Errorf("GC before anything expired: got %d, %v; want 0, nil", n, err)
	}

	clock.Advance(2 * time.Minute)
	n, err := s.GC(ctx)
	if err != nil || n != 3 {
		t.Errorf("GC: got %d, %v; want 3, nil", n, err)
	}
	checkDump(t, s,
		"session a-later", "session never", "secret key",
		"session/owners alice a-later", "session/owners bob never",
	)
	if list, err := s.ListByOwner(ctx, store.KindSession, "bob"); err != nil || len(list) != 1 || list[0].ID != "never" {
		t.Errorf("ListByOwner bob after GC: got %v, %v", list, err)
	}

	// Everything goes, and the empty owner buckets with it.
	clock.Advance(2 * time.Hour)
	if n, err := s.GC(ctx); err != nil || n != 1 {
		t.Errorf("second GC: got %d, %v; want 1, nil", n, err)
	}
	checkDump(t, s, "session never", "secret key", "session/owners bob never")
}

func TestGCInBatches(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, Options{Now: clock.Now})
	defer func(n int) { gcScanLimit = n }(gcScanLimit)
	gcScanLimit = 100
	total := 2*gcScanLimit + 50
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte(store.KindToken))
		if err != nil {
			return err
		}
		for i := range total {
			exp := time.Time{}
			if i%2 == 0 {
				exp = clock.Now().Add(time.Minute)
			}
			id := []byte(fmt.Sprintf("t%06d", i))
			if err := b.Put(id, encode(1, exp, "o", nil)); err != nil {
				return err
			}
			if err := index(tx, store.KindToken, "o", id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	n, err := s.GC(ctx)
	if err != nil || n != total/2 {
		t.Fatalf("GC: got %d, %v; want %d, nil", n, err, total/2)
	}
	left := dump(t, s)
	if len(left) != total {
		t.Errorf("after GC the file holds %d entries, want %d records and index entries", len(left), total)
	}
	for _, e := range left {
		var i int
		if _, err := fmt.Sscanf(e[len(e)-6:], "%d", &i); err != nil || i%2 == 0 {
			t.Fatalf("entry %q survived GC", e)
		}
	}
}

func TestBackgroundGC(t *testing.T) {
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, Options{Now: clock.Now, GCInterval: 5 * time.Millisecond})
	if err := s.Create(t.Context(), store.Record{Kind: store.KindSession, ID: "s", Owner: "o", ExpiresAt: clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), store.Record{Kind: store.KindSession, ID: "keep"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for len(dump(t, s)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the background GC did not remove the expired record: file holds %q", dump(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkDump(t, s, "session keep")
	if err := s.Close(); err != nil {
		t.Fatalf("Close with the GC running: %v", err)
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, Options{})
	k := store.KindSession
	if err := s.Create(ctx, store.Record{Kind: k, ID: "bad", Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(k)).Put([]byte("bad"), []byte("garbage"))
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := s.Get(ctx, k, "bad"); return err }},
		{"Create", func() error { return s.Create(ctx, store.Record{Kind: k, ID: "bad"}) }},
		{"Update", func() error {
			_, err := s.Update(ctx, k, "bad", func(r store.Record) (store.Record, error) { return r, nil })
			return err
		}},
		{"Take", func() error { _, err := s.Take(ctx, k, "bad"); return err }},
		{"ListByOwner", func() error { _, err := s.ListByOwner(ctx, k, "alice"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, errCorrupt) {
				t.Errorf("got error %v, want store.ErrUnavailable and a corrupt record", err)
			}
			if errors.Is(err, store.ErrNotFound) {
				t.Errorf("error %v says not found; an unreadable record must fail closed", err)
			}
		})
	}
	if n, err := s.GC(ctx); err != nil || n != 0 {
		t.Errorf("GC: got %d, %v; want it to skip the unreadable record", n, err)
	}
	if err := s.Delete(ctx, k, "bad"); err != nil {
		t.Fatalf("Delete of an unreadable record: %v", err)
	}
	if _, err := s.Get(ctx, k, "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: got %v, want store.ErrNotFound", err)
	}
	// The index entry Delete could not see is left, and is harmless.
	if list, err := s.ListByOwner(ctx, k, "alice"); err != nil || len(list) != 0 {
		t.Errorf("ListByOwner after Delete: got %v, %v", list, err)
	}
	if n, err := s.DeleteByOwner(ctx, k, "alice"); err != nil || n != 0 {
		t.Errorf("DeleteByOwner after Delete: got %d, %v", n, err)
	}
	checkDump(t, s)
}

func TestStaleIndexEntryIsIgnored(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, Options{})
	k := store.KindSession
	if err := s.Create(ctx, store.Record{Kind: k, ID: "x", Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	// An index entry claiming alice owns x (it does not).
	if err := s.db.Update(func(tx *bbolt.Tx) error { return index(tx, k, "alice", []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListByOwner(ctx, k, "alice"); err != nil || len(list) != 0 {
		t.Errorf("ListByOwner alice: got %v, %v; want nothing", list, err)
	}
	if n, err := s.DeleteByOwner(ctx, k, "alice"); err != nil || n != 0 {
		t.Errorf("DeleteByOwner alice: got %d, %v; want 0", n, err)
	}
	checkDump(t, s, "session x", "session/owners bob x")
}

func TestIndexStaysClean(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, Options{Now: clock.Now})
	k := store.KindSession
	move := func(id, owner string) {
		t.Helper()
		if _, err := s.Update(ctx, k, id, func(r store.Record) (store.Record, error) {
			r.Owner = owner
			return r, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []store.Record{
		{Kind: k, ID: "1", Owner: "alice"},
		{Kind: k, ID: "2", Owner: "alice"},
		{Kind: k, ID: "3", Owner: "bob"},
		{Kind: k, ID: "4", Owner: "bob", ExpiresAt: clock.Now().Add(time.Minute)},
	} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	move("1", "bob")
	move("2", "")
	checkDump(t, s, "session 1", "session 2", "session 3", "session 4",
		"session/owners bob 1", "session/owners bob 3", "session/owners bob 4")
	if _, err := s.Take(ctx, k, "3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, k, "1"); err != nil {
		t.Fatal(err)
	}
	checkDump(t, s, "session 2", "session 4", "session/owners bob 4")
	// Create over the expired record drops its old index entry.
	clock.Advance(time.Hour)
	if err := s.Create(ctx, store.Record{Kind: k, ID: "4", Owner: "carol"}); err != nil {
		t.Fatal(err)
	}
	checkDump(t, s, "session 2", "session 4", "session/owners carol 4")
	if n, err := s.DeleteByOwner(ctx, k, "carol"); err != nil || n != 1 {
		t.Fatalf("DeleteByOwner: got %d, %v", n, err)
	}
	checkDump(t, s, "session 2")
}

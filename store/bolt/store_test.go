package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

func open(t testing.TB, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	if opts.GCInterval == 0 {
		opts.GCInterval = -1
	}
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "z.db")
	clock := storetest.NewClock(time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC))
	s := open(t, path, bolt.Options{Now: clock.Now})
	want := store.Record{Kind: store.KindSession, ID: "s1", Owner: "alice", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Hour)}
	if err := s.Create(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, want.Kind, want.ID, func(r store.Record) (store.Record, error) { return r, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, store.Record{Kind: store.KindSecret, ID: "k", Value: []byte("key")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path, bolt.Options{Now: clock.Now})
	got, err := s.Get(ctx, want.Kind, want.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Owner != want.Owner || string(got.Value) != "v" || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Version != 2 {
		t.Errorf("Get after reopen: got %+v, want %+v with Version 2", got, want)
	}
	list, err := s.ListByOwner(ctx, want.Kind, "alice")
	if err != nil || len(list) != 1 || list[0].ID != "s1" {
		t.Errorf("ListByOwner after reopen: got %v, %v", list, err)
	}
	if k, err := s.Get(ctx, store.KindSecret, "k"); err != nil || string(k.Value) != "key" || !k.ExpiresAt.IsZero() {
		t.Errorf("Get secret after reopen: got %+v, %v", k, err)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "zonegate")
	path := filepath.Join(dir, "z.db")
	open(t, path, bolt.Options{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, got, c.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "not.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a bbolt file ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, want string
	}{
		{"empty path", "", "opening store: no file path"},
		{"not a database", notDB, fmt.Sprintf("opening store %q: ", notDB)},
		{"directory is a file", filepath.Join(blocker, "z.db"), "creating its directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := bolt.Open(tt.path, bolt.Options{GCInterval: -1})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z.db")
	first := open(t, path, bolt.Options{})

	const timeout = 300 * time.Millisecond
	type result struct {
		s       *bolt.Store
		err     error
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		s, err := bolt.Open(path, bolt.Options{LockTimeout: timeout, GCInterval: -1})
		done <- result{s, err, time.Since(start)}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("second Open of a locked file did not give up")
	}
	if r.err == nil {
		r.s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	want := fmt.Sprintf("opening store %q: the file is locked by another process (is another zonegate running with the same storage file?)", path)
	if r.err.Error() != want {
		t.Errorf("got error %q, want %q", r.err, want)
	}
	if !errors.Is(r.err, store.ErrUnavailable) {
		t.Errorf("error %v does not wrap store.ErrUnavailable", r.err)
	}
	// bbolt retries every 50ms until the timeout is nearly spent: it did wait.
	if r.elapsed < timeout-100*time.Millisecond {
		t.Errorf("gave up after %v, before the %v lock timeout", r.elapsed, timeout)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, path, bolt.Options{LockTimeout: timeout})
}

func TestAfterClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "z.db"), bolt.Options{GCInterval: time.Hour})
	ctx := t.Context()
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: "s", Owner: "o"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	k := store.KindSession
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"Create", func() error { return s.Create(ctx, store.Record{Kind: k, ID: "t"}) }},
		{"Get", func() error { _, err := s.Get(ctx, k, "s"); return err }},
		{"Update", func() error {
			_, err := s.Update(ctx, k, "s", func(r store.Record) (store.Record, error) { return r, nil })
			return err
		}},
		{"Delete", func() error { return s.Delete(ctx, k, "s") }},
		{"Take", func() error { _, err := s.Take(ctx, k, "s"); return err }},
		{"ListByOwner", func() error { _, err := s.ListByOwner(ctx, k, "o"); return err }},
		{"DeleteByOwner", func() error { _, err := s.DeleteByOwner(ctx, k, "o"); return err }},
		{"Health", func() error { return s.Health(ctx) }},
		{"GC", func() error { _, err := s.GC(ctx); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("got error %v, want store.ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "is closed") {
				t.Errorf("error %q does not say the store is closed", err)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "z.db"), bolt.Options{})
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		call func() error
		want string
	}{
		{"empty kind", func() error { return s.Create(ctx, store.Record{ID: "x"}) }, `invalid kind "": want 1 to 64 characters`},
		{"upper-case kind", func() error { _, err := s.Get(ctx, "Session", "x"); return err }, `invalid kind "Session": want only a-z, 0-9, _ and -`},
		{"kind with a slash", func() error { return s.Delete(ctx, "session/owners", "x") }, `invalid kind "session/owners"`},
		{"long kind", func() error { _, err := s.ListByOwner(ctx, store.Kind(strings.Repeat("k", 65)), "o"); return err }, "want 1 to 64 characters"},
		{"empty id", func() error { return s.Create(ctx, store.Record{Kind: store.KindSession}) }, "creating session record: id must be 1 to 32768 bytes"},
		{"long id", func() error {
			return s.Create(ctx, store.Record{Kind: store.KindSession, ID: strings.Repeat("i", 32769)})
		}, "id must be 1 to 32768 bytes"},
		{"long owner", func() error {
			return s.Create(ctx, store.Record{Kind: store.KindSession, ID: "x", Owner: strings.Repeat("o", 32769)})
		}, "owner is 32769 bytes, more than 32768"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			for _, sentinel := range []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrUnavailable} {
				if errors.Is(err, sentinel) {
					t.Errorf("error %v wraps %v; bad input is the caller's fault", err, sentinel)
				}
			}
		})
	}

	// Ids that can never be stored are simply not there.
	if _, err := s.Get(ctx, store.KindSession, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get with an empty id: got %v, want store.ErrNotFound", err)
	}
	if _, err := s.Take(ctx, store.KindSession, strings.Repeat("i", 40000)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Take with a long id: got %v, want store.ErrNotFound", err)
	}

	// An Update whose fn returns an owner too long to index fails and changes nothing.
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: "x", Owner: "o", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Update(ctx, store.KindSession, "x", func(r store.Record) (store.Record, error) {
		r.Owner = strings.Repeat("o", 32769)
		r.Value = []byte("w")
		return r, nil
	})
	if err == nil || !strings.Contains(err.Error(), "updating session record: owner is 32769 bytes") {
		t.Errorf("Update to a too long owner: got %v", err)
	}
	if r, err := s.Get(ctx, store.KindSession, "x"); err != nil || string(r.Value) != "v" || r.Owner != "o" {
		t.Errorf("after the refused Update: got %+v, %v", r, err)
	}
}

func TestErrorsDoNotQuoteIDs(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "z.db"), bolt.Options{})
	ctx := t.Context()
	const secret = "s3cr3t-session-id"
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: secret, Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	errs := []error{s.Create(ctx, store.Record{Kind: store.KindSession, ID: secret})}
	_, err := s.Get(ctx, store.KindSession, secret+"x")
	errs = append(errs, err)
	_, err = s.Update(ctx, store.KindSession, secret+"x", nil)
	errs = append(errs, err)
	_, err = s.Take(ctx, store.KindSession, secret+"x")
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q quotes the id", err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "z.db"), bolt.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Create: got %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, store.KindSession, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get: got %v, want context.Canceled", err)
	}
	if _, err := s.Get(t.Context(), store.KindSession, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after a canceled Create: got %v, want store.ErrNotFound", err)
	}
}

func TestHealthNoticesRemovedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "z.db")
	s := open(t, path, bolt.Options{})
	if err := s.Health(t.Context()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := s.Health(t.Context())
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no longer the open store file") {
		t.Errorf("Health after the file was replaced: got %v", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Health after the file was removed: got %v, want store.ErrUnavailable", err)
	}
}

func BenchmarkGet(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "z.db"), bolt.Options{})
	ctx := context.Background()
	r := store.Record{Kind: store.KindSession, ID: "0123456789abcdef0123456789abcdef", Owner: "alice",
		Value: []byte(strings.Repeat("x", 300)), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, r.Kind, r.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "z.db"), bolt.Options{})
	ctx := context.Background()
	r := store.Record{Kind: store.KindSession, ID: "0123456789abcdef0123456789abcdef", Owner: "alice",
		Value: []byte(strings.Repeat("x", 300)), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	fn := func(r store.Record) (store.Record, error) {
		r.ExpiresAt = r.ExpiresAt.Add(time.Second)
		return r, nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Update(ctx, r.Kind, r.ID, fn); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCloseWhileBusy(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "z.db"), bolt.Options{GCInterval: time.Millisecond})
	ctx := t.Context()
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: "s", Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					_, err = s.Get(ctx, store.KindSession, "s")
				} else {
					_, err = s.Update(ctx, store.KindSession, "s", func(r store.Record) (store.Record, error) { return r, nil })
				}
				if err != nil && !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("during Close: got %v, want nil or store.ErrUnavailable", err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
}

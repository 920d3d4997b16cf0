package passkey

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonegate/zonegate/store"
)

// memStore is a small in-memory store.Store for the fuzz target, where a bbolt file would spend
// its time in fsync. The unit tests use the real bbolt backend.
type memStore struct {
	mu   sync.Mutex
	now  func() time.Time
	recs map[memKey]store.Record
	ver  uint64
}

type memKey struct {
	kind store.Kind
	id   string
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, recs: map[memKey]store.Record{}}
}

func (s *memStore) live(k memKey) (store.Record, bool) {
	r, ok := s.recs[k]
	if !ok {
		return r, false
	}
	if !r.ExpiresAt.IsZero() && !s.now().Before(r.ExpiresAt) {
		delete(s.recs, k)
		return r, false
	}
	r.Value = slices.Clone(r.Value)
	return r, true
}

func (s *memStore) Create(_ context.Context, r store.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{r.Kind, r.ID}
	if _, ok := s.live(k); ok {
		return store.ErrAlreadyExists
	}
	s.ver++
	r.Version = s.ver
	r.Value = slices.Clone(r.Value)
	s.recs[k] = r
	return nil
}

func (s *memStore) Get(_ context.Context, kind store.Kind, id string) (store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.live(memKey{kind, id}); ok {
		return r, nil
	}
	return store.Record{}, store.ErrNotFound
}

func (s *memStore) Update(_ context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{kind, id}
	r, ok := s.live(k)
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	nr, err := fn(r)
	if err != nil {
		return store.Record{}, err
	}
	nr.Kind, nr.ID = kind, id
	s.ver++
	nr.Version = s.ver
	nr.Value = slices.Clone(nr.Value)
	s.recs[k] = nr
	return nr, nil
}

func (s *memStore) Delete(_ context.Context, kind store.Kind, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.recs, memKey{kind, id})
	return nil
}

func (s *memStore) Take(_ context.Context, kind store.Kind, id string) (store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey{kind, id}
	r, ok := s.live(k)
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	delete(s.recs, k)
	return r, nil
}

func (s *memStore) ListByOwner(_ context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Record
	for k := range s.recs {
		if r, ok := s.live(k); ok && k.kind == kind && owner != "" && r.Owner == owner {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memStore) DeleteByOwner(_ context.Context, kind store.Kind, owner string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.recs {
		if r, ok := s.live(k); ok && k.kind == kind && owner != "" && r.Owner == owner {
			delete(s.recs, k)
			n++
		}
	}
	return n, nil
}

func (s *memStore) Health(context.Context) error { return nil }
func (s *memStore) Close() error                 { return nil }

// flakyStore fails reads and writes with store.ErrUnavailable while down is set.
type flakyStore struct {
	store.Store
	down atomic.Bool
}

func (s *flakyStore) err() error {
	if s.down.Load() {
		return fmt.Errorf("injected outage: %w", store.ErrUnavailable)
	}
	return nil
}

func (s *flakyStore) Create(ctx context.Context, r store.Record) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Create(ctx, r)
}

func (s *flakyStore) Get(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	if err := s.err(); err != nil {
		return store.Record{}, err
	}
	return s.Store.Get(ctx, kind, id)
}

func (s *flakyStore) Update(ctx context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	if err := s.err(); err != nil {
		return store.Record{}, err
	}
	return s.Store.Update(ctx, kind, id, fn)
}

func (s *flakyStore) Take(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	if err := s.err(); err != nil {
		return store.Record{}, err
	}
	return s.Store.Take(ctx, kind, id)
}

func (s *flakyStore) ListByOwner(ctx context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.ListByOwner(ctx, kind, owner)
}

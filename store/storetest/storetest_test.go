package storetest_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/storetest"
)

// memStore is the simplest correct backend: it shows the suite asks for nothing beyond the
// store.Store contract (no bbolt specifics).
type memStore struct {
	mu   sync.Mutex
	now  func() time.Time
	recs map[string]store.Record
}

func key(kind store.Kind, id string) string { return string(kind) + "\x00" + id }

func clone(r store.Record) store.Record {
	r.Value = bytes.Clone(r.Value)
	return r
}

func (m *memStore) live(kind store.Kind, id string) (store.Record, bool) {
	r, ok := m.recs[key(kind, id)]
	if !ok || (!r.ExpiresAt.IsZero() && !m.now().Before(r.ExpiresAt)) {
		return store.Record{}, false
	}
	return r, true
}

func (m *memStore) Create(_ context.Context, r store.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(r.Kind, r.ID); ok {
		return fmt.Errorf("create: %w", store.ErrAlreadyExists)
	}
	r = clone(r)
	r.Version = 1
	m.recs[key(r.Kind, r.ID)] = r
	return nil
}

func (m *memStore) Get(_ context.Context, kind store.Kind, id string) (store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind, id)
	if !ok {
		return r, fmt.Errorf("get: %w", store.ErrNotFound)
	}
	return clone(r), nil
}

func (m *memStore) Update(_ context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind, id)
	if !ok {
		return r, fmt.Errorf("update: %w", store.ErrNotFound)
	}
	n, err := fn(clone(r))
	if err != nil {
		return store.Record{}, err
	}
	n.Kind, n.ID, n.Version = kind, id, r.Version+1
	m.recs[key(kind, id)] = clone(n)
	return n, nil
}

func (m *memStore) Delete(_ context.Context, kind store.Kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, key(kind, id))
	return nil
}

func (m *memStore) Take(_ context.Context, kind store.Kind, id string) (store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind, id)
	if !ok {
		return r, fmt.Errorf("take: %w", store.ErrNotFound)
	}
	delete(m.recs, key(kind, id))
	return r, nil
}

func (m *memStore) ListByOwner(_ context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Record
	for _, r := range m.recs {
		if r.Kind == kind && r.Owner == owner && owner != "" {
			if _, ok := m.live(kind, r.ID); ok {
				out = append(out, clone(r))
			}
		}
	}
	return out, nil
}

func (m *memStore) DeleteByOwner(_ context.Context, kind store.Kind, owner string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.recs {
		if r.Kind == kind && r.Owner == owner && owner != "" {
			if _, ok := m.live(kind, r.ID); ok {
				n++
			}
			delete(m.recs, k)
		}
	}
	return n, nil
}

func (m *memStore) Health(context.Context) error { return nil }
func (m *memStore) Close() error                 { return nil }

func TestRunOnMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return &memStore{now: clock.Now, recs: map[string]store.Record{}}
	})
}

func TestClock(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := storetest.NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now: got %v, want %v", c.Now(), start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c.Advance(time.Second)
			_ = c.Now()
		})
	}
	wg.Wait()
	if want := start.Add(10 * time.Second); !c.Now().Equal(want) {
		t.Errorf("after 10 concurrent Advance(1s): got %v, want %v", c.Now(), want)
	}
	c.Advance(-time.Minute)
	if want := start.Add(-50 * time.Second); !c.Now().Equal(want) {
		t.Errorf("after Advance(-1m): got %v, want %v", c.Now(), want)
	}
}

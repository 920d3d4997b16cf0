package websession

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/zonegate/zonegate/store"
)

// revokedChannel carries the ids of revoked sessions between the nodes sharing a store.
const revokedChannel = "websession:revoked"

// Cache keeps recently loaded sessions in memory for a short time. Share one between the
// Managers of a process so a revocation through one is seen by all at once.
type Cache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry
	puts    int
	// deaf is set while the cache cannot hear revocations from other nodes: it then serves
	// nothing, so every request asks the store (and fails closed if the store is down too).
	deaf atomic.Bool
}

type cacheEntry struct {
	s     *Session
	until time.Time
}

// NewCache returns an empty Cache.
func NewCache() *Cache { return &Cache{entries: make(map[string]cacheEntry)} }

func (c *Cache) get(id string, now time.Time) (*Session, bool) {
	if c.deaf.Load() {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return e.s, true
}

func (c *Cache) put(id string, s *Session, now, until time.Time) {
	c.mu.Lock()
	c.entries[id] = cacheEntry{s: s, until: until}
	c.puts++
	if c.puts >= 1024 { // sweep expired entries now and then so the map does not grow forever
		c.puts = 0
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
	}
	c.mu.Unlock()
}

func (c *Cache) remove(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

// Clear forgets every cached session.
func (c *Cache) Clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// Follow keeps the cache in step with the other nodes sharing n: a session revoked on any node
// leaves this cache at once, and while the link to the store is down the cache serves nothing.
// It starts deaf until the subscription is listening. Call stop to end it.
func (c *Cache) Follow(n store.Notifier) (stop func()) {
	c.deaf.Store(true)
	return n.Subscribe(revokedChannel, c.remove, func(up bool) {
		c.Clear() // whatever was missed while deaf is forgotten
		c.deaf.Store(!up)
	})
}

package websession

import (
	"sync"
	"time"
)

// verifiedCookies remembers, for a minute, cookie values whose signature checked out and the
// session ID they name, so a browser's requests after the first skip the base64 decoding,
// HMAC and hashing. Only values that verified are stored, and a value is looked up whole,
// so nothing unverified is ever trusted. Whether the session is still live is checked on
// every request as before.
type verifiedCookies struct {
	mu      sync.RWMutex
	entries map[string]verifiedCookie
}

type verifiedCookie struct {
	id    string
	until time.Time
}

const (
	verifiedTTL = time.Minute
	verifiedMax = 1 << 14 // past this many, start over rather than grow
)

func (v *verifiedCookies) get(value string, now time.Time) (string, bool) {
	v.mu.RLock()
	e, ok := v.entries[value]
	v.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.id, true
}

func (v *verifiedCookies) put(value, id string, now time.Time) {
	v.mu.Lock()
	if v.entries == nil || len(v.entries) >= verifiedMax {
		v.entries = make(map[string]verifiedCookie)
	}
	v.entries[value] = verifiedCookie{id: id, until: now.Add(verifiedTTL)}
	v.mu.Unlock()
}

// Package ratelimit counts events per key in fixed windows, shared by every node through the
// store, for brute-force defense: sign-in failures per user and per client address.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/zonegate/zonegate/store"
)

// Kind is the store kind of the counters.
const Kind store.Kind = "ratelimit"

// Rule is one limit: at most Limit events per Window for a key; past it the key is blocked
// until Block has passed since the event that crossed the limit.
type Rule struct {
	Name   string        // short and stable, part of the store key: "login-user", "login-ip"
	Limit  int           // events allowed per window
	Window time.Duration // the counting window
	Block  time.Duration // how long a key is blocked once over the limit; default Window
}

// Result says where a key stands after Check or Hit.
type Result struct {
	Allowed   bool      // false: blocked
	Limit     int       // the rule's limit
	Remaining int       // events left in this window (0 when blocked)
	Reset     time.Time // when the window (or the block) ends
}

// Limiter applies one Rule through a store.
type Limiter struct {
	rule     Rule
	counters store.Collection[counter]
	now      func() time.Time
}

type counter struct {
	Start        time.Time `json:"start"`         // window start
	Count        int       `json:"count"`         // events in the window
	BlockedUntil time.Time `json:"blocked_until"` // zero: not blocked
	// Distinct holds hashes of distinct values seen in the window (HitDistinct), capped at
	// Limit+1 entries.
	Distinct []string `json:"distinct,omitempty"`
}

// New returns a Limiter for rule on st. now is the clock (nil: time.Now).
func New(st store.Store, rule Rule, now func() time.Time) (*Limiter, error) {
	if rule.Name == "" || rule.Limit < 1 || rule.Window <= 0 || rule.Block < 0 {
		return nil, fmt.Errorf("ratelimit: rule %q needs a name, a limit of at least 1 and a positive window", rule.Name)
	}
	if rule.Block == 0 {
		rule.Block = rule.Window
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rule: rule, counters: store.Collection[counter]{Store: st, Kind: Kind}, now: now}, nil
}

// Rule returns the limiter's rule.
func (l *Limiter) Rule() Rule { return l.rule }

// id is the store id of a key: hashed, so the store holds no usernames or addresses in clear.
func (l *Limiter) id(key string) string {
	sum := sha256.Sum256([]byte(l.rule.Name + "\x00" + key))
	return l.rule.Name + ":" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// Check reports whether key may act now, without counting anything.
func (l *Limiter) Check(ctx context.Context, key string) (Result, error) {
	now := l.now()
	c, err := l.counters.Get(ctx, l.id(key))
	if errors.Is(err, store.ErrNotFound) {
		return Result{Allowed: true, Limit: l.rule.Limit, Remaining: l.rule.Limit, Reset: now.Add(l.rule.Window)}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	return l.result(c, now), nil
}

// Hit counts one event for key and reports where it stands afterwards.
func (l *Limiter) Hit(ctx context.Context, key string) (Result, error) {
	return l.hit(ctx, key, "")
}

// HitDistinct counts value for key only if it was not seen in this window: Limit then bounds
// how many different values one key may show (one address trying many usernames).
func (l *Limiter) HitDistinct(ctx context.Context, key, value string) (Result, error) {
	sum := sha256.Sum256([]byte(value))
	return l.hit(ctx, key, base64.RawURLEncoding.EncodeToString(sum[:12]))
}

func (l *Limiter) hit(ctx context.Context, key, distinct string) (Result, error) {
	now := l.now()
	id := l.id(key)
	bump := func(c counter) (counter, time.Time) {
		if !c.BlockedUntil.IsZero() && now.Before(c.BlockedUntil) {
			return c, c.BlockedUntil // blocked: nothing more to count
		}
		if !c.BlockedUntil.IsZero() || c.Start.IsZero() || !now.Before(c.Start.Add(l.rule.Window)) {
			c = counter{Start: now}
		}
		if distinct != "" {
			if slices.Contains(c.Distinct, distinct) {
				return c, c.Start.Add(l.rule.Window)
			}
			if len(c.Distinct) <= l.rule.Limit {
				c.Distinct = append(c.Distinct, distinct)
			}
		}
		c.Count++
		if c.Count > l.rule.Limit {
			c.BlockedUntil = now.Add(l.rule.Block)
			return c, c.BlockedUntil
		}
		return c, c.Start.Add(l.rule.Window)
	}
	c, err := l.counters.Update(ctx, id, func(c counter) (counter, time.Time, error) {
		c, exp := bump(c)
		return c, exp, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		var exp time.Time
		c, exp = bump(counter{})
		err = l.counters.Create(ctx, id, "", exp, c)
		if errors.Is(err, store.ErrAlreadyExists) { // another node counted first: count again on top
			return l.hit(ctx, key, distinct)
		}
	}
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: %w", err)
	}
	return l.result(c, now), nil
}

// Reset forgets key (a successful sign-in clears the user's failures).
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.counters.Delete(ctx, l.id(key)); err != nil {
		return fmt.Errorf("ratelimit: %w", err)
	}
	return nil
}

func (l *Limiter) result(c counter, now time.Time) Result {
	r := Result{Limit: l.rule.Limit}
	switch {
	case !c.BlockedUntil.IsZero() && now.Before(c.BlockedUntil):
		r.Reset = c.BlockedUntil
	case c.Start.IsZero() || !now.Before(c.Start.Add(l.rule.Window)):
		r.Allowed, r.Remaining, r.Reset = true, l.rule.Limit, now.Add(l.rule.Window)
	default:
		r.Allowed = true
		r.Remaining = max(l.rule.Limit-c.Count, 0)
		r.Reset = c.Start.Add(l.rule.Window)
	}
	return r
}

// SetHeaders writes the rate-limit headers for r: X-Rate-Limit-Limit, X-Rate-Limit-Remaining,
// X-Rate-Limit-Reset (Unix seconds), and Retry-After (seconds) when blocked.
func SetHeaders(h http.Header, r Result, now time.Time) {
	h.Set("X-Rate-Limit-Limit", strconv.Itoa(r.Limit))
	h.Set("X-Rate-Limit-Remaining", strconv.Itoa(r.Remaining))
	h.Set("X-Rate-Limit-Reset", strconv.FormatInt(r.Reset.Unix(), 10))
	if !r.Allowed {
		secs := int(r.Reset.Sub(now).Round(time.Second) / time.Second)
		h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
}

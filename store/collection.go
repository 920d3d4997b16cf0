package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Collection stores values of one Go type as JSON records of one kind.
type Collection[T any] struct {
	Store Store
	Kind  Kind
}

// Create stores v under id. owner and expiresAt are as in Record.
func (c Collection[T]) Create(ctx context.Context, id, owner string, expiresAt time.Time, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a %s record: %w", c.Kind, err)
	}
	return c.Store.Create(ctx, Record{Kind: c.Kind, ID: id, Owner: owner, Value: b, ExpiresAt: expiresAt})
}

// Get returns the value stored under id.
func (c Collection[T]) Get(ctx context.Context, id string) (T, error) {
	var v T
	r, err := c.Store.Get(ctx, c.Kind, id)
	if err != nil {
		return v, err
	}
	return c.decode(r)
}

// Take returns the value stored under id and deletes it atomically.
func (c Collection[T]) Take(ctx context.Context, id string) (T, error) {
	var v T
	r, err := c.Store.Take(ctx, c.Kind, id)
	if err != nil {
		return v, err
	}
	return c.decode(r)
}

// Update changes the value under id with fn (compare-and-swap; fn may run more than once).
// fn returns the new value and its expiry (zero keeps the record's current expiry).
func (c Collection[T]) Update(ctx context.Context, id string, fn func(T) (T, time.Time, error)) (T, error) {
	var out T
	_, err := c.Store.Update(ctx, c.Kind, id, func(r Record) (Record, error) {
		v, err := c.decode(r)
		if err != nil {
			return r, err
		}
		nv, exp, err := fn(v)
		if err != nil {
			return r, err
		}
		b, err := json.Marshal(nv)
		if err != nil {
			return r, fmt.Errorf("encoding a %s record: %w", c.Kind, err)
		}
		r.Value = b
		if !exp.IsZero() {
			r.ExpiresAt = exp
		}
		out = nv
		return r, nil
	})
	return out, err
}

// Delete removes the value under id (missing is not an error).
func (c Collection[T]) Delete(ctx context.Context, id string) error {
	return c.Store.Delete(ctx, c.Kind, id)
}

// ListByOwner returns the values whose owner is owner.
func (c Collection[T]) ListByOwner(ctx context.Context, owner string) ([]T, error) {
	rs, err := c.Store.ListByOwner(ctx, c.Kind, owner)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		v, err := c.decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// DeleteByOwner removes the values whose owner is owner.
func (c Collection[T]) DeleteByOwner(ctx context.Context, owner string) (int, error) {
	return c.Store.DeleteByOwner(ctx, c.Kind, owner)
}

func (c Collection[T]) decode(r Record) (T, error) {
	var v T
	if err := json.Unmarshal(r.Value, &v); err != nil {
		return v, fmt.Errorf("decoding a %s record: %w", c.Kind, err)
	}
	return v, nil
}

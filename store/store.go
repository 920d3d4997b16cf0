// Package store defines zonegate's storage: one small record interface that every backend
// implements, typed collections on top of it, and the sentinel errors callers test for.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	// ErrNotFound means no live record has that kind and id (an expired record is not found).
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists means Create found a live record with the same kind and id.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrUnavailable means the backend could not be reached or answered with an error.
	// Callers on the decision path fail closed on it (503).
	ErrUnavailable = errors.New("store: unavailable")
)

// Kind names a collection of records. Kinds are short lowercase words.
type Kind string

// The kinds zonegate uses.
const (
	KindSession     Kind = "session"     // web sessions (IdP and gate)
	KindLoginState  Kind = "loginstate"  // a gate's pending OIDC login (state, nonce, PKCE verifier, return path)
	KindAuthRequest Kind = "authrequest" // the IdP's pending OIDC authorization requests
	KindAuthCode    Kind = "authcode"    // authorization code -> auth request id, single use
	KindToken       Kind = "token"       // access and refresh tokens issued by the IdP
	KindSecret      Kind = "secret"      // long-lived secrets: signing keys, cookie keys
)

// Record is one stored value. Value is opaque to the backend (typed collections store JSON).
type Record struct {
	Kind Kind
	ID   string
	// Owner is an optional secondary index (usually a user id): ListByOwner and DeleteByOwner
	// find records by it. Empty means not indexed.
	Owner string
	Value []byte
	// ExpiresAt is when the record stops existing. Zero means never.
	ExpiresAt time.Time
	// Version is set by the backend on read; callers leave it alone.
	Version uint64
}

// Store is what every backend implements. All methods are safe for concurrent use. Expired
// records behave as if they did not exist, whether or not the backend has removed them yet.
type Store interface {
	// Create stores a new record; ErrAlreadyExists if a live one has the same kind and id.
	Create(ctx context.Context, r Record) error
	// Get returns the live record or ErrNotFound.
	Get(ctx context.Context, kind Kind, id string) (Record, error)
	// Update reads the live record, calls fn with it and stores what fn returns, atomically
	// (compare-and-swap: fn may run again if another writer won). fn may change Value, Owner
	// and ExpiresAt; Kind and ID are kept. An error from fn aborts and is returned as is.
	// ErrNotFound if there is no live record.
	Update(ctx context.Context, kind Kind, id string, fn func(Record) (Record, error)) (Record, error)
	// Delete removes a record. Deleting a missing record is not an error.
	Delete(ctx context.Context, kind Kind, id string) error
	// Take returns the live record and deletes it in one atomic step, so two callers racing
	// for a single-use value (an authorization code) cannot both get it. ErrNotFound otherwise.
	Take(ctx context.Context, kind Kind, id string) (Record, error)
	// ListByOwner returns the live records of a kind whose Owner is owner, in no set order.
	ListByOwner(ctx context.Context, kind Kind, owner string) ([]Record, error)
	// DeleteByOwner removes the records of a kind whose Owner is owner and says how many.
	DeleteByOwner(ctx context.Context, kind Kind, owner string) (int, error)
	// Health returns nil when the backend can serve reads and writes.
	Health(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// Notifier is an optional capability of a store that several nodes share (Redis): a message
// published on one node reaches the subscribers on every node. Subscribers also learn when
// their link to the store drops and when it is back, so a node can stop trusting what it has
// cached while it cannot hear about changes.
type Notifier interface {
	// Publish sends msg to every subscriber of channel, on every node.
	Publish(ctx context.Context, channel, msg string) error
	// Subscribe calls fn for each message on channel, and onLink(false) when the link drops
	// and onLink(true) once it is (re)established and listening, until stop is called. It
	// reconnects by itself. Messages sent while the link is down are lost.
	Subscribe(channel string, fn func(msg string), onLink func(up bool)) (stop func())
}

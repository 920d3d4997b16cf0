// Package bolt is zonegate's embedded store: one bbolt file, nothing to install.
//
// Each kind has a bucket named after it holding id -> encoded record (see record.go) and an owner
// index bucket "<kind>/owners" holding owner -> nested bucket of ids. Every write is one bbolt
// write transaction, so writes are serialized and Update's fn runs exactly once per call.
// Expired records are invisible at once and removed by GC, which runs in the background.
package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/zonegate/zonegate/store"
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// Now is the clock expiry is checked against. Default time.Now.
	Now func() time.Time
	// GCInterval is how often expired records are removed from the file; default 1 minute;
	// negative disables the background collection (GC can still be called).
	GCInterval time.Duration
	// LockTimeout is how long Open waits for the file lock another process holds; default 2s.
	LockTimeout time.Duration
	// Logger receives the store's own events (failed collections). Default: discards.
	Logger *slog.Logger
}

// Store is a store.Store in one bbolt file. It is safe for concurrent use; only one process
// (one Store) can have the file open at a time.
type Store struct {
	db     *bbolt.DB
	path   string
	file   os.FileInfo // the file as opened, to notice it being deleted or replaced
	now    func() time.Time
	logger *slog.Logger

	closed    atomic.Bool
	stopGC    context.CancelFunc
	gcDone    chan struct{} // closed when the GC goroutine has returned; nil if it never ran
	closeOnce sync.Once
	closeErr  error
}

const (
	defaultGCInterval  = time.Minute
	defaultLockTimeout = 2 * time.Second
	// ownersSuffix names a kind's owner index bucket. Kinds cannot contain '/'.
	ownersSuffix = "/owners"
	maxKindLen   = 64
)

// gcScanLimit bounds the records one GC write transaction looks at, so a large file does not
// block writers for long. A variable so tests can make batches small.
var gcScanLimit = 10_000

// lockedError is Open's error when another process holds the file lock.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("opening store %q: the file is locked by another process (is another zonegate running with the same storage file?)", e.path)
}

func (e *lockedError) Unwrap() []error { return []error{store.ErrUnavailable, bbolt.ErrTimeout} }

// Open opens the store file at path, creating it (mode 0600) and its directory (mode 0700) if
// they are missing. If another process holds the file, Open gives up after opts.LockTimeout.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("opening store: no file path")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = defaultGCInterval
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("opening store %q: creating its directory: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, &lockedError{path: path}
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %q: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening store %q: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		opts.Logger.Warn("store file is accessible to other users; it holds sessions and keys, consider chmod 600",
			"path", path, "mode", fi.Mode().Perm().String())
	}
	s := &Store{db: db, path: path, file: fi, now: opts.Now, logger: opts.Logger, stopGC: func() {}}
	if opts.GCInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopGC = cancel
		s.gcDone = make(chan struct{})
		go s.gcLoop(ctx, opts.GCInterval)
	}
	return s, nil
}

// Close stops the background collection and closes the file. Methods called after Close
// return an error wrapping store.ErrUnavailable. Closing twice returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopGC()
		if s.gcDone != nil {
			<-s.gcDone
		}
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("closing store %q: %w", s.path, err)
		}
	})
	return s.closeErr
}

// opName says what a method was doing, for its errors. It is formatted only when an error
// needs it, which keeps the hot path free of string building.
type opName struct {
	what string // a format with one %s for kind, or plain text if kind is empty
	kind store.Kind
}

func (o opName) String() string {
	if o.kind == "" {
		return o.what
	}
	return fmt.Sprintf(o.what, o.kind)
}

// abortError carries an error that is the answer (not found, fn's error, bad input) out of a
// transaction, as opposed to an error from bbolt itself.
type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }

func abort(err error) error { return abortError{err} }

// run runs fn in a read (write false) or write transaction. An abortError from fn is returned
// unwrapped; any other error is bbolt's and is wrapped with store.ErrUnavailable.
func (s *Store) run(ctx context.Context, op opName, write bool, fn func(*bbolt.Tx) error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w: store %q is closed", op, store.ErrUnavailable, s.path)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var err error
	if write {
		err = s.db.Update(fn)
	} else {
		err = s.db.View(fn)
	}
	if err == nil {
		return nil
	}
	var a abortError
	if errors.As(err, &a) {
		return a.err
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

// checkKind rejects kinds that could collide with the index buckets.
func checkKind(kind store.Kind) error {
	if len(kind) == 0 || len(kind) > maxKindLen {
		return fmt.Errorf("invalid kind %q: want 1 to %d characters", kind, maxKindLen)
	}
	for _, c := range []byte(kind) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("invalid kind %q: want only a-z, 0-9, _ and -", kind)
		}
	}
	return nil
}

// validID reports whether id can be a key. Nothing is ever stored under another id.
func validID(id string) bool { return id != "" && len(id) <= bbolt.MaxKeySize }

// checkRecord validates what a write would store. Errors do not quote the id (ids are often
// bearer secrets) or the owner.
func checkRecord(owner string, value []byte) error {
	if len(owner) > bbolt.MaxKeySize {
		return fmt.Errorf("owner is %d bytes, more than %d", len(owner), bbolt.MaxKeySize)
	}
	if len(value) > maxValueLen(owner) {
		return fmt.Errorf("value is %d bytes, more than %d", len(value), maxValueLen(owner))
	}
	return nil
}

func ownersName(kind store.Kind) []byte { return []byte(string(kind) + ownersSuffix) }

func notFound(op opName) error { return abort(fmt.Errorf("%s: %w", op, store.ErrNotFound)) }

func corrupt(op opName, err error) error {
	return abort(fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err))
}

// index adds id to owner's index in kind (nothing for an empty owner).
func index(tx *bbolt.Tx, kind store.Kind, owner string, id []byte) error {
	if owner == "" {
		return nil
	}
	ob, err := tx.CreateBucketIfNotExists(ownersName(kind))
	if err != nil {
		return err
	}
	nb, err := ob.CreateBucketIfNotExists([]byte(owner))
	if err != nil {
		return err
	}
	return nb.Put(id, []byte{})
}

// unindex removes id from owner's index in kind, and the owner's bucket once it is empty.
func unindex(tx *bbolt.Tx, kind store.Kind, owner string, id []byte) error {
	if owner == "" {
		return nil
	}
	ob := tx.Bucket(ownersName(kind))
	if ob == nil {
		return nil
	}
	nb := ob.Bucket([]byte(owner))
	if nb == nil {
		return nil
	}
	if err := nb.Delete(id); err != nil {
		return err
	}
	if k, _ := nb.Cursor().First(); k == nil {
		return ob.DeleteBucket([]byte(owner))
	}
	return nil
}

// Create stores a new record with Version 1; ErrAlreadyExists if a live one has its kind and id.
// An expired record with the same id is replaced.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	op := opName{"creating %s record", r.Kind}
	if err := checkKind(r.Kind); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !validID(r.ID) {
		return fmt.Errorf("%s: id must be 1 to %d bytes", op, bbolt.MaxKeySize)
	}
	if err := checkRecord(r.Owner, r.Value); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	id := []byte(r.ID)
	enc := encode(1, r.ExpiresAt, r.Owner, r.Value)
	return s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(r.Kind))
		if err != nil {
			return err
		}
		if old := b.Get(id); old != nil {
			o, err := decode(old)
			if err != nil {
				return corrupt(op, err)
			}
			if !o.expired(s.now()) {
				return abort(fmt.Errorf("%s: %w", op, store.ErrAlreadyExists))
			}
			if err := unindex(tx, r.Kind, string(o.owner), id); err != nil {
				return err
			}
		}
		if err := b.Put(id, enc); err != nil {
			return err
		}
		return index(tx, r.Kind, r.Owner, id)
	})
}

// get reads the live record kind/id inside tx.
func (s *Store) get(tx *bbolt.Tx, op opName, kind store.Kind, id string) (*bbolt.Bucket, raw, error) {
	b := tx.Bucket([]byte(kind))
	if b == nil {
		return nil, raw{}, notFound(op)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, raw{}, notFound(op)
	}
	o, err := decode(v)
	if err != nil {
		return nil, raw{}, corrupt(op, err)
	}
	if o.expired(s.now()) {
		return nil, raw{}, notFound(op)
	}
	return b, o, nil
}

// Get returns the live record or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	op := opName{"getting %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	var out store.Record
	err := s.run(ctx, op, false, func(tx *bbolt.Tx) error {
		_, o, err := s.get(tx, op, kind, id)
		if err != nil {
			return err
		}
		out = o.record(kind, id)
		return nil
	})
	return out, err
}

// Update reads the live record, calls fn with a copy of it and stores what fn returns with the
// next Version, all in one bbolt write transaction: fn runs exactly once and blocks every other
// writer while it runs. fn must therefore be quick and must not call the store (a write from
// inside fn deadlocks). An error from fn aborts and is returned as is.
func (s *Store) Update(ctx context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	op := opName{"updating %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	var out store.Record
	err := s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		b, o, err := s.get(tx, op, kind, id)
		if err != nil {
			return err
		}
		cur := o.record(kind, id)
		oldOwner, version := cur.Owner, o.version+1
		next, err := fn(cur)
		if err != nil {
			return abort(err)
		}
		if err := checkRecord(next.Owner, next.Value); err != nil {
			return abort(fmt.Errorf("%s: %w", op, err))
		}
		key := []byte(id)
		if err := b.Put(key, encode(version, next.ExpiresAt, next.Owner, next.Value)); err != nil {
			return err
		}
		if next.Owner != oldOwner {
			if err := unindex(tx, kind, oldOwner, key); err != nil {
				return err
			}
			if err := index(tx, kind, next.Owner, key); err != nil {
				return err
			}
		}
		out = store.Record{Kind: kind, ID: id, Owner: next.Owner, Value: next.Value, ExpiresAt: next.ExpiresAt, Version: version}
		return nil
	})
	if err != nil {
		return store.Record{}, err
	}
	return out, nil
}

// Delete removes a record, live, expired or unreadable. Deleting a missing record is not an error.
func (s *Store) Delete(ctx context.Context, kind store.Kind, id string) error {
	op := opName{"deleting %s record", kind}
	if err := checkKind(kind); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return nil
	}
	return s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		key := []byte(id)
		v := b.Get(key)
		if v == nil {
			return nil
		}
		owner := ""
		if o, err := decode(v); err == nil {
			owner = string(o.owner)
		}
		if err := b.Delete(key); err != nil {
			return err
		}
		return unindex(tx, kind, owner, key)
	})
}

// Take returns the live record and deletes it in the same write transaction.
func (s *Store) Take(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	op := opName{"taking %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	var out store.Record
	err := s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		b, o, err := s.get(tx, op, kind, id)
		if err != nil {
			return err
		}
		out = o.record(kind, id)
		key := []byte(id)
		if err := b.Delete(key); err != nil {
			return err
		}
		return unindex(tx, kind, out.Owner, key)
	})
	if err != nil {
		return store.Record{}, err
	}
	return out, nil
}

// ListByOwner returns the live records of kind whose Owner is owner, in id order. An empty
// owner lists nothing.
func (s *Store) ListByOwner(ctx context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	op := opName{"listing %s records by owner", kind}
	if err := checkKind(kind); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || len(owner) > bbolt.MaxKeySize {
		return nil, nil
	}
	var out []store.Record
	err := s.run(ctx, op, false, func(tx *bbolt.Tx) error {
		b, nb := ownerBuckets(tx, kind, owner)
		if nb == nil {
			return nil
		}
		now := s.now()
		c := nb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			v := b.Get(k)
			if v == nil {
				continue // an index entry without its record; nothing to list
			}
			o, err := decode(v)
			if err != nil {
				return corrupt(op, err)
			}
			if o.expired(now) || string(o.owner) != owner {
				continue
			}
			out = append(out, o.record(kind, string(k)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ownerBuckets returns kind's record bucket and owner's index bucket, or nils.
func ownerBuckets(tx *bbolt.Tx, kind store.Kind, owner string) (records, ids *bbolt.Bucket) {
	records = tx.Bucket([]byte(kind))
	ob := tx.Bucket(ownersName(kind))
	if records == nil || ob == nil {
		return nil, nil
	}
	ids = ob.Bucket([]byte(owner))
	if ids == nil {
		return nil, nil
	}
	return records, ids
}

// DeleteByOwner removes the records of kind whose Owner is owner, in one write transaction, and
// returns how many of them were live. An empty owner deletes nothing.
func (s *Store) DeleteByOwner(ctx context.Context, kind store.Kind, owner string) (int, error) {
	op := opName{"deleting %s records by owner", kind}
	if err := checkKind(kind); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || len(owner) > bbolt.MaxKeySize {
		return 0, nil
	}
	n := 0
	err := s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		n = 0 // in case bbolt runs fn again
		b, nb := ownerBuckets(tx, kind, owner)
		if nb == nil {
			return nil
		}
		var keys [][]byte
		c := nb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		now := s.now()
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				continue
			}
			live := true
			if o, err := decode(v); err == nil {
				if string(o.owner) != owner {
					continue // the index entry is stale; the record belongs to someone else
				}
				live = !o.expired(now)
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			if live {
				n++
			}
		}
		return tx.Bucket(ownersName(kind)).DeleteBucket([]byte(owner))
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Health returns nil when the file is open, readable, and still the file at the store's path
// (a deleted or replaced file would lose every write at the next restart).
func (s *Store) Health(ctx context.Context) error {
	op := opName{what: "checking store health"}
	err := s.run(ctx, op, false, func(tx *bbolt.Tx) error {
		onDisk, err := os.Stat(s.path)
		if err != nil {
			return err
		}
		if !os.SameFile(s.file, onDisk) {
			return fmt.Errorf("the file at %q is no longer the open store file", s.path)
		}
		return nil
	})
	return err
}

// GC removes the expired records (and their owner index entries) now and says how many. It
// works in batches of short write transactions and stops early when ctx is done.
func (s *Store) GC(ctx context.Context) (removed int, err error) {
	op := opName{what: "collecting expired records"}
	var kinds []store.Kind
	err = s.run(ctx, op, false, func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if checkKind(store.Kind(name)) == nil {
				kinds = append(kinds, store.Kind(name))
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	for _, kind := range kinds {
		var next []byte
		for {
			n, after, err := s.gcBatch(ctx, kind, next)
			removed += n
			if err != nil {
				return removed, err
			}
			if after == nil {
				break
			}
			next = after
		}
	}
	return removed, nil
}

// gcBatch removes the expired records among up to gcScanLimit records of kind from key from
// on, and returns where the next batch starts (nil when the bucket is done).
func (s *Store) gcBatch(ctx context.Context, kind store.Kind, from []byte) (removed int, next []byte, err error) {
	op := opName{"collecting expired %s records", kind}
	err = s.run(ctx, op, true, func(tx *bbolt.Tx) error {
		removed, next = 0, nil
		b := tx.Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		type victim struct {
			key   []byte
			owner string
		}
		var victims []victim
		now := s.now()
		c := b.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for scanned := 0; k != nil; k, v = c.Next() {
			if scanned == gcScanLimit {
				next = bytes.Clone(k)
				break
			}
			scanned++
			if v == nil {
				continue // a nested bucket; there are none
			}
			o, err := decode(v)
			if err != nil || !o.expired(now) {
				continue // unreadable records are left for Get to report and Delete to remove
			}
			victims = append(victims, victim{bytes.Clone(k), string(o.owner)})
		}
		for _, vi := range victims {
			if err := b.Delete(vi.key); err != nil {
				return err
			}
			if err := unindex(tx, kind, vi.owner, vi.key); err != nil {
				return err
			}
		}
		removed = len(victims)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return removed, next, nil
}

func (s *Store) gcLoop(ctx context.Context, every time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.GC(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger.Warn("removing expired records failed", "path", s.path, "removed", n, "error", err)
		case n > 0:
			s.logger.Debug("removed expired records", "path", s.path, "removed", n)
		}
	}
}

var _ store.Store = (*Store)(nil)

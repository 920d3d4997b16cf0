package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zonegate/zonegate/store"
)

// recordFields are the hash fields a read fetches, in the order decode expects.
var recordFields = []string{"v", "o", "e", "n", "c", "i"}

// raw is a record as stored: the fields of its hash.
type raw struct {
	value   []byte
	owner   string
	expires int64  // e: unix milliseconds; 0 never
	n       string // the version as stored, for compare-and-swap
	version uint64
	c       string // the incarnation: random per Create
	i       string // the stamp of the record's entry in its owner's index; "" without owner
}

// live reports whether the record exists at now (unix milliseconds): it is gone at e.
func (r raw) live(now int64) bool { return r.expires == 0 || now < r.expires }

func (r raw) record(kind store.Kind, id string) store.Record {
	return store.Record{Kind: kind, ID: id, Owner: r.owner, Value: r.value, ExpiresAt: fromMillis(r.expires), Version: r.version}
}

// errCorrupt says a key holds something that is not one of our records.
var errCorrupt = errors.New("the record's hash is not one this store wrote")

// decode reads an HMGET of recordFields. found is false if the key does not exist.
func decode(vals []any) (r raw, found bool, err error) {
	if len(vals) != len(recordFields) {
		return raw{}, false, errCorrupt
	}
	n, ok := vals[3].(string)
	if !ok {
		for _, v := range vals {
			if v != nil {
				return raw{}, false, errCorrupt
			}
		}
		return raw{}, false, nil
	}
	var strs [6]string
	for k, v := range vals {
		s, ok := v.(string)
		if !ok && k != 5 { // i may be missing; the others are always written
			return raw{}, false, errCorrupt
		}
		strs[k] = s
	}
	r = raw{value: []byte(strs[0]), owner: strs[1], n: n, c: strs[4], i: strs[5]}
	if r.expires, err = strconv.ParseInt(strs[2], 10, 64); err != nil {
		return raw{}, false, errCorrupt
	}
	if r.version, err = strconv.ParseUint(n, 10, 64); err != nil || r.version == 0 {
		return raw{}, false, errCorrupt
	}
	return r, true, nil
}

// toMillis encodes an expiry as unix milliseconds, truncated (a record may expire up to 1ms
// early, never late); 0 means never, so a non-zero time that would encode as 0 becomes -1.
func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if ms := t.UnixMilli(); ms != 0 {
		return ms
	}
	return -1
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// maxTTL is the longest Redis TTL set; a record that lives longer gets none.
const maxTTL = 100 * 365 * 24 * time.Hour

// ttlMillis is the Redis TTL for a record with expiry e (unix milliseconds) written at now:
// -1 for none, 0 if the record expired more than expiryMargin ago (do not keep it), else the
// time until e plus expiryMargin.
func ttlMillis(e int64, now time.Time) int64 {
	if e == 0 {
		return -1
	}
	left := e - now.UnixMilli()
	if left > maxTTL.Milliseconds() {
		return -1
	}
	if ms := left + expiryMargin.Milliseconds(); ms > 0 {
		return ms
	}
	return 0
}

// newIncarnation returns a random tag for a new record. It is not a secret: it only tells
// apart records that had the same id at different times.
func newIncarnation() string { return strconv.FormatUint(rand.Uint64(), 36) }

// read fetches the record at key.
func (s *Store) read(ctx context.Context, op opName, key string) (raw, bool, error) {
	vals, err := s.client.HMGet(ctx, key, recordFields...).Result()
	if err != nil {
		return raw{}, false, s.unavailable(ctx, op, err)
	}
	r, found, err := decode(vals)
	if err != nil {
		return raw{}, false, fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	return r, found, nil
}

// Create stores a new record with Version 1; ErrAlreadyExists if a live one has its kind and id.
// An expired record with the same id is replaced.
func (s *Store) Create(ctx context.Context, r store.Record) error {
	op := opName{"creating %s record", r.Kind}
	if err := checkKind(r.Kind); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !validID(r.ID) {
		return fmt.Errorf("%s: id must be 1 to %d bytes", op, maxKeyPartLen)
	}
	if err := checkRecord(r.Owner, r.Value); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	now := s.now()
	e := toMillis(r.ExpiresAt)
	ttl := ttlMillis(e, now)
	stamp := ""
	if r.Owner != "" && ttl != 0 {
		// The index entry first: see the package comment.
		var err error
		if stamp, err = s.index(ctx, op, r.Kind, r.Owner, r.ID, ttl); err != nil {
			return err
		}
	}
	key := s.recordKey(r.Kind, r.ID)
	res, err := createScript.Run(ctx, s.client, []string{key},
		now.UnixMilli(), r.Value, r.Owner, e, ttl, newIncarnation(), stamp).Result()
	if err != nil {
		return s.unavailable(ctx, op, err)
	}
	created, ok := res.([]any)
	if !ok {
		// A live record has the id. If it has the same owner, the entry just added is its
		// entry with a newer stamp, which only makes it outlive the record; harmless.
		return fmt.Errorf("%s: %w", op, store.ErrAlreadyExists)
	}
	if len(created) == 3 {
		// The expired record this one replaced leaves its owner's index.
		s.unindex(ctx, r.Kind, str(created[1]), r.ID, str(created[2]))
	}
	return nil
}

// Get returns the live record or an error wrapping store.ErrNotFound. Finding an expired
// record deletes it.
func (s *Store) Get(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	op := opName{"getting %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, notFound(op)
	}
	r, found, err := s.read(ctx, op, s.recordKey(kind, id))
	if err != nil {
		return store.Record{}, err
	}
	if !found {
		return store.Record{}, notFound(op)
	}
	if !r.live(s.now().UnixMilli()) {
		s.dropExpired(ctx, kind, id, r)
		return store.Record{}, notFound(op)
	}
	return r.record(kind, id), nil
}

// dropExpired deletes an expired record a read found, unless it has changed since, and its
// owner index entry. Failures are only logged: the record is invisible either way.
func (s *Store) dropExpired(ctx context.Context, kind store.Kind, id string, r raw) {
	n, err := deleteIfSameScript.Run(ctx, s.client, []string{s.recordKey(kind, id)}, r.c, r.n).Int()
	if err != nil {
		s.logger.Debug("deleting an expired record failed", "kind", kind, "error", err)
		return
	}
	if n == 1 {
		s.unindex(ctx, kind, r.owner, id, r.i)
	}
}

// Update reads the live record, calls fn with a copy of it and writes what fn returns if no one
// else wrote the record in between; otherwise it starts over, so fn may run several times (at
// most maxUpdateAttempts, then Update gives up with an error wrapping store.ErrUnavailable).
// An error from fn aborts and is returned as is.
func (s *Store) Update(ctx context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	op := opName{"updating %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, notFound(op)
	}
	key := s.recordKey(kind, id)
	for attempt := range maxUpdateAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return store.Record{}, fmt.Errorf("%s: %w", op, err)
			}
		}
		cur, found, err := s.read(ctx, op, key)
		if err != nil {
			return store.Record{}, err
		}
		if !found {
			return store.Record{}, notFound(op)
		}
		if !cur.live(s.now().UnixMilli()) {
			s.dropExpired(ctx, kind, id, cur)
			return store.Record{}, notFound(op)
		}
		next, err := fn(cur.record(kind, id))
		if err != nil {
			return store.Record{}, err
		}
		if err := checkRecord(next.Owner, next.Value); err != nil {
			return store.Record{}, fmt.Errorf("%s: %w", op, err)
		}
		now := s.now()
		e := toMillis(next.ExpiresAt)
		ttl := ttlMillis(e, now)
		stamp := cur.i
		switch {
		case next.Owner == "":
			stamp = ""
		case ttl != 0 && (next.Owner != cur.owner || cur.i == "" || extends(cur.expires, e)):
			// A new owner gets its entry before the record says so; a longer life needs the
			// index to live as long.
			if stamp, err = s.index(ctx, op, kind, next.Owner, id, ttl); err != nil {
				return store.Record{}, err
			}
		}
		version, err := updateScript.Run(ctx, s.client, []string{key},
			now.UnixMilli(), cur.c, cur.n, next.Value, next.Owner, e, ttl, stamp).Int64()
		if err != nil {
			return store.Record{}, s.unavailable(ctx, op, err)
		}
		if version < 0 {
			continue // another writer won; read again
		}
		if cur.owner != next.Owner || ttl == 0 {
			s.unindex(ctx, kind, cur.owner, id, cur.i)
		}
		return store.Record{Kind: kind, ID: id, Owner: next.Owner, Value: next.Value, ExpiresAt: fromMillis(e), Version: uint64(version)}, nil
	}
	return store.Record{}, fmt.Errorf("%s: %w: gave up after %d attempts, other writers kept changing the record", op, store.ErrUnavailable, maxUpdateAttempts)
}

// extends reports whether expiry e lasts longer than old (both unix milliseconds, 0 never).
func extends(old, e int64) bool { return old != 0 && (e == 0 || e > old) }

// backoff waits a little, more after more attempts, so racing writers spread out.
func backoff(ctx context.Context, attempt int) error {
	d := rand.N(time.Duration(min(attempt, 50)) * 100 * time.Microsecond)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delete removes a record, live or expired. Deleting a missing record is not an error.
func (s *Store) Delete(ctx context.Context, kind store.Kind, id string) error {
	op := opName{"deleting %s record", kind}
	if err := checkKind(kind); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return nil
	}
	res, err := deleteScript.Run(ctx, s.client, []string{s.recordKey(kind, id)}).Slice()
	if err != nil {
		return s.unavailable(ctx, op, err)
	}
	if len(res) == 2 {
		s.unindex(ctx, kind, str(res[0]), id, str(res[1]))
	}
	return nil
}

// Take returns the live record and deletes it in one script, so only one caller gets it.
func (s *Store) Take(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	op := opName{"taking %s record", kind}
	if err := checkKind(kind); err != nil {
		return store.Record{}, fmt.Errorf("%s: %w", op, err)
	}
	if !validID(id) {
		return store.Record{}, notFound(op)
	}
	res, err := takeScript.Run(ctx, s.client, []string{s.recordKey(kind, id)}, s.now().UnixMilli()).Slice()
	if errors.Is(err, goredis.Nil) {
		return store.Record{}, notFound(op)
	}
	if err != nil {
		return store.Record{}, s.unavailable(ctx, op, err)
	}
	if len(res) == 3 { // it had expired
		s.unindex(ctx, kind, str(res[1]), id, str(res[2]))
		return store.Record{}, notFound(op)
	}
	if len(res) != 6 {
		return store.Record{}, fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, errCorrupt)
	}
	r, found, err := decode([]any{res[1], res[2], res[3], res[4], "", res[5]})
	if err != nil || !found {
		return store.Record{}, fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, errCorrupt)
	}
	s.unindex(ctx, kind, r.owner, id, r.i)
	return r.record(kind, id), nil
}

// str returns v if it is a string, else "" (a Lua false or missing field).
func str(v any) string {
	s, _ := v.(string)
	return s
}

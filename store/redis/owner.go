package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zonegate/zonegate/store"
)

// ownerBatch is how many records ListByOwner and DeleteByOwner handle per pipeline.
const ownerBatch = 256

// testHookAfterIndex, if set, runs between adding an index entry and writing its record, so
// tests can widen that window.
var testHookAfterIndex func()

// index adds id to owner's index of kind for a record with Redis TTL ttl and returns the
// entry's stamp, which the record stores in field i.
func (s *Store) index(ctx context.Context, op opName, kind store.Kind, owner, id string, ttl int64) (string, error) {
	stamp, err := indexAddScript.Run(ctx, s.client, []string{s.indexKey(kind, owner)}, id, ttl).Int64()
	if err != nil {
		return "", s.unavailable(ctx, op, err)
	}
	if testHookAfterIndex != nil {
		testHookAfterIndex()
	}
	return strconv.FormatInt(stamp, 10), nil
}

// unindex removes id from owner's index of kind if its entry still has stamp, after the
// caller removed the record that had it. Failures are only logged: a stale entry is harmless.
func (s *Store) unindex(ctx context.Context, kind store.Kind, owner, id, stamp string) {
	if owner == "" || stamp == "" {
		return
	}
	s.removeEntries(ctx, kind, owner, []any{id, stamp, "x"})
}

// removeEntries runs indexRemoveScript on owner's index with triples (id, stamp, mode), in
// batches. Failures are only logged.
func (s *Store) removeEntries(ctx context.Context, kind store.Kind, owner string, triples []any) {
	key := s.indexKey(kind, owner)
	for len(triples) > 0 {
		n := min(len(triples), 3*ownerBatch)
		args := append([]any{indexGrace.Microseconds()}, triples[:n]...)
		triples = triples[n:]
		if err := indexRemoveScript.Run(ctx, s.client, []string{key}, args...).Err(); err != nil {
			s.logger.Warn("removing owner index entries failed; they stay, which is harmless", "kind", kind, "error", err)
			return
		}
	}
}

// entries returns owner's index of kind.
func (s *Store) entries(ctx context.Context, op opName, kind store.Kind, owner string) ([]goredis.Z, error) {
	zs, err := s.client.ZRangeWithScores(ctx, s.indexKey(kind, owner), 0, -1).Result()
	if err != nil {
		return nil, s.unavailable(ctx, op, err)
	}
	return zs, nil
}

func stampOf(z goredis.Z) string { return strconv.FormatFloat(z.Score, 'f', -1, 64) }

// ListByOwner returns the live records of kind whose Owner is owner. It checks every record
// the index names; entries whose record is gone or has another owner are skipped (and removed
// once older than indexGrace), and expired records are deleted. An empty owner lists nothing.
func (s *Store) ListByOwner(ctx context.Context, kind store.Kind, owner string) ([]store.Record, error) {
	op := opName{"listing %s records by owner", kind}
	if err := checkKind(kind); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || len(owner) > maxKeyPartLen {
		return nil, nil
	}
	zs, err := s.entries(ctx, op, kind, owner)
	if err != nil {
		return nil, err
	}
	var (
		out     []store.Record
		stale   []any
		expired []raw
		ids     []string
	)
	for len(zs) > 0 {
		batch := zs[:min(len(zs), ownerBatch)]
		zs = zs[len(batch):]
		cmds := make([]*goredis.SliceCmd, len(batch))
		_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for k, z := range batch {
				cmds[k] = p.HMGet(ctx, s.recordKey(kind, str(z.Member)), recordFields...)
			}
			return nil
		})
		if err != nil {
			return nil, s.unavailable(ctx, op, err)
		}
		now := s.now().UnixMilli()
		for k, z := range batch {
			id := str(z.Member)
			r, found, err := decode(cmds[k].Val())
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
			}
			switch {
			case !found || r.owner != owner:
				stale = append(stale, id, stampOf(z), "g")
			case !r.live(now):
				expired = append(expired, r)
				ids = append(ids, id)
			default:
				out = append(out, r.record(kind, id))
			}
		}
	}
	for k, r := range expired {
		s.dropExpired(ctx, kind, ids[k], r)
	}
	s.removeEntries(ctx, kind, owner, stale)
	return out, nil
}

// DeleteByOwner removes the records of kind whose Owner is owner and returns how many of them
// were live. Each record is deleted by a script that checks its owner first, so a record that
// moved to another owner meanwhile stays. Records created while it runs may stay too. An empty
// owner deletes nothing.
func (s *Store) DeleteByOwner(ctx context.Context, kind store.Kind, owner string) (int, error) {
	op := opName{"deleting %s records by owner", kind}
	if err := checkKind(kind); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if owner == "" || len(owner) > maxKeyPartLen {
		return 0, nil
	}
	zs, err := s.entries(ctx, op, kind, owner)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for len(zs) > 0 {
		batch := zs[:min(len(zs), ownerBatch)]
		zs = zs[len(batch):]
		cmds := make([]*goredis.Cmd, len(batch))
		now := s.now().UnixMilli()
		// Eval rather than EvalSha: a pipeline cannot fall back when the script is not cached.
		_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for k, z := range batch {
				cmds[k] = deleteOwnedScript.Eval(ctx, p, []string{s.recordKey(kind, str(z.Member))}, owner, now)
			}
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return deleted, s.unavailable(ctx, op, err)
		}
		var removals []any
		for k, z := range batch {
			id := str(z.Member)
			res, err := cmds[k].Slice()
			switch {
			case errors.Is(err, goredis.Nil): // gone, or another owner's
				removals = append(removals, id, stampOf(z), "g")
			case err != nil:
				return deleted, s.unavailable(ctx, op, err)
			case len(res) == 2:
				if live, _ := res[0].(int64); live == 1 {
					deleted++
				}
				if stamp := str(res[1]); stamp != "" {
					removals = append(removals, id, stamp, "x")
				}
			}
		}
		s.removeEntries(ctx, kind, owner, removals)
	}
	return deleted, nil
}

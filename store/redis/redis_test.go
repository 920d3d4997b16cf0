package redis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zonegate/zonegate/internal/redistest"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/redis"
	"github.com/zonegate/zonegate/store/storetest"
)

// The password the error tests plant; no error may show it.
const secret = "secretpass"

var prefixes atomic.Int64

// uniquePrefix gives each store in a test run its own keys on the shared server.
func uniquePrefix() string { return fmt.Sprintf("zgtest%d:", prefixes.Add(1)) }

// open opens a store on the server at addr with a fresh prefix unless opts has one.
func open(t testing.TB, addr string, opts redis.Options) *redis.Store {
	t.Helper()
	opts.URL = "redis://" + addr
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = uniquePrefix()
	}
	s, err := redis.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw is a plain client for looking at what the store wrote.
func raw(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// keys returns the sorted keys that start with prefix.
func keys(t *testing.T, c *goredis.Client, prefix string) []string {
	t.Helper()
	var out []string
	iter := c.Scan(t.Context(), 0, prefix+"*", 100).Iterator()
	for iter.Next(t.Context()) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	slices.Sort(out)
	return out
}

// quiet drops go-redis's own log lines (failed dials during the outage tests).
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quiet{})
	m.Run()
}

func TestConformance(t *testing.T) {
	addr := redistest.Start(t) // one server for every subtest; each store has its own prefix
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		return open(t, addr, redis.Options{Now: clock.Now})
	})
}

// TestConformanceOnCluster runs the suite on a Redis Cluster when one is given, e.g.
// ZONEGATE_TEST_REDIS_CLUSTER=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003.
func TestConformanceOnCluster(t *testing.T) {
	seeds := os.Getenv("ZONEGATE_TEST_REDIS_CLUSTER")
	if seeds == "" {
		t.Skip("set ZONEGATE_TEST_REDIS_CLUSTER to seed addresses of a Redis Cluster to run the suite on it")
	}
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		s, err := redis.Open(t.Context(), redis.Options{ClusterAddrs: strings.Split(seeds, ","), KeyPrefix: uniquePrefix(), Now: clock.Now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestOpenErrors(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name            string
		opts            redis.Options
		want            string // in the error
		wantUnavailable bool
	}{
		{"unreachable", redis.Options{URL: "redis://:" + secret + "@127.0.0.1:1"}, "127.0.0.1:1", true},
		{"unreachable with a user and a db", redis.Options{URL: "redis://admin:" + secret + "@127.0.0.1:1/3"}, "127.0.0.1:1 (db 3)", true},
		{"password option is not shown", redis.Options{URL: "redis://127.0.0.1:1", Password: secret}, "127.0.0.1:1", true},
		{"not a URL", redis.Options{URL: "redis://:" + secret + "@[::1"}, "not a valid URL", false},
		{"scheme", redis.Options{URL: "http://:" + secret + "@127.0.0.1:6379"}, "unsupported scheme", false},
		{"scheme without slashes", redis.Options{URL: "redis:" + secret}, "no host", false},
		{"no host", redis.Options{URL: "redis://:" + secret + "@/0"}, "no host", false},
		{"bad database", redis.Options{URL: "redis://:" + secret + "@127.0.0.1:6379/abc"}, "invalid database number", false},
		{"slash in the password", redis.Options{URL: "redis://:1234/" + secret + "@127.0.0.1:6379"}, "does not end the user info", false},
		{"question mark in the password", redis.Options{URL: "redis://:12?" + secret + "@127.0.0.1:6379"}, "does not end the user info", false},
		{"hash in the password", redis.Options{URL: "redis://:12#" + secret + "@127.0.0.1:6379"}, "fragment", false},
		{"nothing to connect to", redis.Options{}, "exactly one of", false},
		{"URL and Cluster", redis.Options{URL: "redis://127.0.0.1:6379", ClusterAddrs: []string{"127.0.0.1:7000"}}, "exactly one of", false},
		{"Sentinel without addresses", redis.Options{MasterName: "mymaster"}, "both a master name and Sentinel addresses", false},
		{"Sentinel without master", redis.Options{SentinelAddrs: []string{"127.0.0.1:26379"}}, "both a master name and Sentinel addresses", false},
		{"TLS with redis://", redis.Options{URL: "redis://127.0.0.1:6379", TLS: &tls.Config{}}, "use rediss://", false},
		{"prefix with a brace", redis.Options{URL: "redis://" + addr, KeyPrefix: "zg{x}:"}, "must not contain '{'", false},
		{"unreachable Sentinel", redis.Options{MasterName: "mymaster", SentinelAddrs: []string{"127.0.0.1:1"}, Password: secret}, `Sentinel master "mymaster" via 127.0.0.1:1`, true},
		{"unreachable Cluster", redis.Options{ClusterAddrs: []string{"127.0.0.1:1"}, Password: secret}, "cluster 127.0.0.1:1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			s, err := redis.Open(ctx, tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q shows the password", msg)
			}
			if got := errors.Is(err, store.ErrUnavailable); got != tt.wantUnavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v (error %q)", got, tt.wantUnavailable, msg)
			}
		})
	}
}

func TestPasswordOptionOverridesURL(t *testing.T) {
	addr := redistest.Start(t)
	admin := raw(t, addr)
	if err := admin.ConfigSet(t.Context(), "requirepass", "right-password").Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	ctx := t.Context()
	if s, err := redis.Open(ctx, redis.Options{URL: "redis://:wrong-password@" + addr, Password: "right-password"}); err != nil {
		t.Errorf("Open with the right Password option: %v", err)
	} else {
		s.Close()
	}
	s, err := redis.Open(ctx, redis.Options{URL: "redis://:right-password@" + addr, Password: secret})
	if err == nil {
		s.Close()
		t.Fatal("Open with a wrong Password option succeeded: it did not override the URL")
	}
	if !errors.Is(err, store.ErrUnavailable) || strings.Contains(err.Error(), secret) {
		t.Errorf("Open with a wrong password: got %q, want ErrUnavailable without the password", err)
	}
}

func TestOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	s := open(t, srv.Addr, redis.Options{})
	ctx := t.Context()
	const id = "outage-id-abc123" // ids are often bearer secrets: no error may show one
	if err := s.Create(ctx, store.Record{Kind: store.KindSession, ID: id, Owner: "alice", Value: []byte("v")}); err != nil {
		t.Fatalf("Create: %v", err)
	}

	srv.Stop()
	checks := map[string]error{}
	_, checks["Get"] = s.Get(ctx, store.KindSession, id)
	checks["Create"] = s.Create(ctx, store.Record{Kind: store.KindSession, ID: id + "2"})
	_, checks["Update"] = s.Update(ctx, store.KindSession, id, func(r store.Record) (store.Record, error) { return r, nil })
	checks["Delete"] = s.Delete(ctx, store.KindSession, id)
	_, checks["Take"] = s.Take(ctx, store.KindSession, id)
	_, checks["ListByOwner"] = s.ListByOwner(ctx, store.KindSession, "alice")
	_, checks["DeleteByOwner"] = s.DeleteByOwner(ctx, store.KindSession, "alice")
	checks["Health"] = s.Health(ctx)
	for name, err := range checks {
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s during an outage: got %v, want an error wrapping ErrUnavailable and not ErrNotFound", name, err)
		}
		if err != nil && strings.Contains(err.Error(), id) {
			t.Errorf("%s during an outage: error %q shows the id", name, err)
		}
	}

	srv.Restart() // a new, empty server on the same port; the store is not reopened
	deadline := time.Now().Add(10 * time.Second)
	for s.Health(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Health after Restart: %v", s.Health(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := store.Record{Kind: store.KindSession, ID: id, Owner: "alice", Value: []byte("again")}
	if err := s.Create(ctx, r); err != nil {
		t.Fatalf("Create after Restart: %v", err)
	}
	if got, err := s.Get(ctx, r.Kind, r.ID); err != nil || string(got.Value) != "again" {
		t.Fatalf("Get after Restart: got %q, %v", got.Value, err)
	}
}

func TestKeyLayout(t *testing.T) {
	addr := redistest.Start(t)
	s := open(t, addr, redis.Options{KeyPrefix: "layout:"})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	for _, r := range []store.Record{
		{Kind: store.KindSession, ID: "abc", Owner: "alice", Value: []byte("v"), ExpiresAt: exp},
		// An id that looks like an owner index does not collide with one.
		{Kind: store.KindSession, ID: "owner:alice", Owner: "bob", Value: []byte("v")},
		{Kind: store.KindToken, ID: "t1", Value: []byte("v")},
		{Kind: store.KindSecret, ID: "k}{", Owner: "signing", Value: []byte("v")},
	} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatalf("Create %s: %v", r.ID, err)
		}
	}
	c := raw(t, addr)
	want := []string{
		"layout:{secret/owner:signing}",
		"layout:{secret:k}{}",
		"layout:{session/owner:alice}",
		"layout:{session/owner:bob}",
		"layout:{session:abc}",
		"layout:{session:owner:alice}",
		"layout:{token:t1}",
	}
	if got := keys(t, c, "layout:"); !slices.Equal(got, want) {
		t.Errorf("keys:\n got %q\nwant %q", got, want)
	}
	// Every key has a hash tag right after the prefix, so Cluster hashes the braces' content.
	for _, k := range want {
		rest, ok := strings.CutPrefix(k, "layout:{")
		if !ok || !strings.Contains(rest, "}") {
			t.Errorf("key %q has no hash tag after the prefix", k)
		}
	}

	h, err := c.HGetAll(ctx, "layout:{session:abc}").Result()
	if err != nil {
		t.Fatal(err)
	}
	if h["v"] != "v" || h["o"] != "alice" || h["e"] != fmt.Sprint(exp.UnixMilli()) || h["n"] != "1" || h["c"] == "" || h["i"] == "" {
		t.Errorf("record hash: got %v, want v, o, e (unix ms), n=1, c and i", h)
	}
	z, err := c.ZRangeWithScores(ctx, "layout:{session/owner:alice}", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(z) != 1 || z[0].Member != "abc" || fmt.Sprintf("%.0f", z[0].Score) != h["i"] {
		t.Errorf("owner index: got %v, want abc with the record's stamp %s", z, h["i"])
	}
	if rs, err := s.ListByOwner(ctx, store.KindSession, "alice"); err != nil || len(rs) != 1 || rs[0].ID != "abc" {
		t.Errorf("ListByOwner alice: got %v, %v; want only abc", rs, err)
	}
	if r, err := s.Get(ctx, store.KindSecret, "k}{"); err != nil || r.Owner != "signing" {
		t.Errorf("Get of an id with braces: got %+v, %v", r, err)
	}
}

func TestRedisTTLs(t *testing.T) {
	addr := redistest.Start(t)
	clock := storetest.NewClock(time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC))
	prefix := uniquePrefix()
	s := open(t, addr, redis.Options{KeyPrefix: prefix, Now: clock.Now})
	c := raw(t, addr)
	ctx := t.Context()
	ttl := func(key string) time.Duration {
		t.Helper()
		d, err := c.PTTL(ctx, prefix+key).Result()
		if err != nil {
			t.Fatalf("PTTL %s: %v", key, err)
		}
		return d
	}
	const margin = time.Hour
	mustCreate := func(r store.Record) {
		t.Helper()
		if err := s.Create(ctx, r); err != nil {
			t.Fatalf("Create %s: %v", r.ID, err)
		}
	}
	mustUpdate := func(id string, fn func(*store.Record)) {
		t.Helper()
		if _, err := s.Update(ctx, store.KindSession, id, func(r store.Record) (store.Record, error) {
			fn(&r)
			return r, nil
		}); err != nil {
			t.Fatalf("Update %s: %v", id, err)
		}
	}
	inRange := func(what string, got, lo, hi time.Duration) {
		t.Helper()
		if got <= lo || got > hi {
			t.Errorf("%s: TTL %v, want in (%v, %v]", what, got, lo, hi)
		}
	}

	mustCreate(store.Record{Kind: store.KindSession, ID: "exp", Owner: "alice", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Minute)})
	inRange("expiring record", ttl("{session:exp}"), margin, margin+time.Minute)
	inRange("index of an expiring record", ttl("{session/owner:alice}"), margin, margin+time.Minute)

	mustCreate(store.Record{Kind: store.KindSession, ID: "perm", Owner: "bob", Value: []byte("v")})
	if got := ttl("{session:perm}"); got != -1 {
		t.Errorf("permanent record: TTL %v, want none (-1)", got)
	}
	if got := ttl("{session/owner:bob}"); got != -1 {
		t.Errorf("index of a permanent record: TTL %v, want none (-1)", got)
	}

	// A longer life lengthens both TTLs; a shorter one keeps the index's.
	mustUpdate("exp", func(r *store.Record) { r.ExpiresAt = clock.Now().Add(3 * time.Hour) })
	inRange("record after extending", ttl("{session:exp}"), margin+2*time.Hour, margin+3*time.Hour)
	inRange("index after extending", ttl("{session/owner:alice}"), margin+2*time.Hour, margin+3*time.Hour)
	mustUpdate("exp", func(r *store.Record) { r.ExpiresAt = clock.Now().Add(time.Minute) })
	inRange("record after shortening", ttl("{session:exp}"), margin, margin+time.Minute)
	inRange("index after shortening", ttl("{session/owner:alice}"), margin+2*time.Hour, margin+3*time.Hour)

	// Clearing the expiry clears both TTLs.
	mustUpdate("exp", func(r *store.Record) { r.ExpiresAt = time.Time{} })
	if got := ttl("{session:exp}"); got != -1 {
		t.Errorf("record after clearing ExpiresAt: TTL %v, want none", got)
	}
	if got := ttl("{session/owner:alice}"); got != -1 {
		t.Errorf("index after clearing ExpiresAt: TTL %v, want none", got)
	}
	// An index listing a permanent record keeps no TTL when an expiring one joins it.
	mustCreate(store.Record{Kind: store.KindSession, ID: "exp2", Owner: "bob", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Minute)})
	if got := ttl("{session/owner:bob}"); got != -1 {
		t.Errorf("index with a permanent and an expiring record: TTL %v, want none", got)
	}
	// Setting an expiry on a permanent record gives it a TTL.
	mustUpdate("perm", func(r *store.Record) { r.ExpiresAt = clock.Now().Add(time.Minute) })
	inRange("record after setting an expiry", ttl("{session:perm}"), margin, margin+time.Minute)

	// A record that expired longer ago than the margin is not written at all.
	mustCreate(store.Record{Kind: store.KindSession, ID: "old", Owner: "carol", Value: []byte("v"), ExpiresAt: clock.Now().Add(-2 * margin)})
	for _, k := range []string{"{session:old}", "{session/owner:carol}"} {
		if n, _ := c.Exists(ctx, prefix+k).Result(); n != 0 {
			t.Errorf("%s exists for a record created long expired", k)
		}
	}
}

func TestReadsDeleteExpiredRecords(t *testing.T) {
	addr := redistest.Start(t)
	c := raw(t, addr)
	reads := map[string]func(s store.Store, id string) error{
		"Get": func(s store.Store, id string) error {
			_, err := s.Get(t.Context(), store.KindSession, id)
			return err
		},
		"Update": func(s store.Store, id string) error {
			_, err := s.Update(t.Context(), store.KindSession, id, func(r store.Record) (store.Record, error) { return r, nil })
			return err
		},
		"Take": func(s store.Store, id string) error {
			_, err := s.Take(t.Context(), store.KindSession, id)
			return err
		},
		"ListByOwner": func(s store.Store, id string) error {
			rs, err := s.ListByOwner(t.Context(), store.KindSession, "alice")
			if err == nil && len(rs) > 0 {
				return fmt.Errorf("listed %d records", len(rs))
			}
			return store.ErrNotFound
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			clock := storetest.NewClock(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
			prefix := uniquePrefix()
			s := open(t, addr, redis.Options{KeyPrefix: prefix, Now: clock.Now})
			if err := s.Create(t.Context(), store.Record{Kind: store.KindSession, ID: "x", Owner: "alice", Value: []byte("v"), ExpiresAt: clock.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			if err := read(s, "x"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s of an expired record: got %v, want ErrNotFound", name, err)
			}
			if got := keys(t, c, prefix); len(got) != 0 {
				t.Errorf("after %s of an expired record, keys remain: %q", name, got)
			}
		})
	}
}

func TestStaleIndexEntries(t *testing.T) {
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	s := open(t, addr, redis.Options{KeyPrefix: prefix})
	c := raw(t, addr)
	ctx := t.Context()
	for _, r := range []store.Record{
		{Kind: store.KindSession, ID: "mine", Owner: "alice", Value: []byte("v")},
		{Kind: store.KindSession, ID: "moved", Owner: "bob", Value: []byte("v")},
	} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Entries a crashed or slow writer could leave: old ones (stamp 1) and young ones.
	idx := prefix + "{session/owner:alice}"
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	young := float64(now.UnixMicro())
	for _, z := range []goredis.Z{
		{Score: 1, Member: "ghost-old"},
		{Score: young, Member: "ghost-young"},
		{Score: 2, Member: "moved"},
	} {
		if err := c.ZAdd(ctx, idx, z).Err(); err != nil {
			t.Fatal(err)
		}
	}
	members := func() []string {
		t.Helper()
		m, err := c.ZRange(ctx, idx, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m)
		return m
	}

	rs, err := s.ListByOwner(ctx, store.KindSession, "alice")
	if err != nil || len(rs) != 1 || rs[0].ID != "mine" {
		t.Fatalf("ListByOwner alice: got %v, %v; want only mine", rs, err)
	}
	// The old stale entries went; the young one stays (its writer may still be at work).
	if got, want := members(), []string{"ghost-young", "mine"}; !slices.Equal(got, want) {
		t.Errorf("alice's index after ListByOwner: got %q, want %q", got, want)
	}

	if err := c.ZAdd(ctx, idx, goredis.Z{Score: 2, Member: "moved"}).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteByOwner(ctx, store.KindSession, "alice")
	if err != nil || n != 1 {
		t.Fatalf("DeleteByOwner alice: got %d, %v; want 1", n, err)
	}
	if r, err := s.Get(ctx, store.KindSession, "moved"); err != nil || r.Owner != "bob" {
		t.Errorf("bob's record after DeleteByOwner alice: got %+v, %v", r, err)
	}
	if got, want := members(), []string{"ghost-young"}; !slices.Equal(got, want) {
		t.Errorf("alice's index after DeleteByOwner: got %q, want %q", got, want)
	}
}

func TestUpdateGivesUpUnderConstantConflict(t *testing.T) {
	addr := redistest.Start(t)
	s := open(t, addr, redis.Options{})
	ctx := t.Context()
	if err := s.Create(ctx, store.Record{Kind: store.KindToken, ID: "hot", Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := s.Update(ctx, store.KindToken, "hot", func(r store.Record) (store.Record, error) {
		calls++
		// Another writer changes the record every time fn runs.
		if _, err := s.Update(ctx, store.KindToken, "hot", func(r store.Record) (store.Record, error) { return r, nil }); err != nil {
			return r, err
		}
		return r, nil
	})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("Update that always conflicts: got %v, want an error wrapping ErrUnavailable that says it gave up", err)
	}
	if calls != 100 {
		t.Errorf("fn ran %d times, want 100", calls)
	}
}

func TestBadInput(t *testing.T) {
	addr := redistest.Start(t)
	s := open(t, addr, redis.Options{})
	ctx := t.Context()
	long := strings.Repeat("x", 32<<10+1)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"Create with an upper-case kind", s.Create(ctx, store.Record{Kind: "Session", ID: "x"}), "invalid kind"},
		{"Create with a colon in the kind", s.Create(ctx, store.Record{Kind: "a:b", ID: "x"}), "invalid kind"},
		{"Create with an empty kind", s.Create(ctx, store.Record{ID: "x"}), "invalid kind"},
		{"Create with a long kind", s.Create(ctx, store.Record{Kind: store.Kind(strings.Repeat("k", 65)), ID: "x"}), "invalid kind"},
		{"Create with an empty id", s.Create(ctx, store.Record{Kind: store.KindSession}), "id must be"},
		{"Create with a long id", s.Create(ctx, store.Record{Kind: store.KindSession, ID: long}), "id must be"},
		{"Create with a long owner", s.Create(ctx, store.Record{Kind: store.KindSession, ID: "x", Owner: long}), "owner is"},
		{"Delete with a bad kind", s.Delete(ctx, "Bad", "x"), "invalid kind"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error saying %q", tt.name, tt.err, tt.want)
		}
		if errors.Is(tt.err, store.ErrUnavailable) {
			t.Errorf("%s: %v wraps ErrUnavailable; bad input is not an outage", tt.name, tt.err)
		}
	}
	if _, err := s.Get(ctx, store.KindSession, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of an empty id: got %v, want ErrNotFound", err)
	}
	if _, err := s.Take(ctx, store.KindSession, long); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Take of a long id: got %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, store.KindSession, ""); err != nil {
		t.Errorf("Delete of an empty id: %v", err)
	}
	if rs, err := s.ListByOwner(ctx, store.KindSession, ""); err != nil || rs != nil {
		t.Errorf("ListByOwner of an empty owner: got %v, %v", rs, err)
	}
}

func TestErrorsDoNotShowIDs(t *testing.T) {
	addr := redistest.Start(t)
	s := open(t, addr, redis.Options{})
	ctx := t.Context()
	const id = "bearer-secret-xyz"
	r := store.Record{Kind: store.KindAuthCode, ID: id, Owner: "alice", Value: []byte("v")}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	errs := []error{s.Create(ctx, r)}
	_, err := s.Get(ctx, store.KindAuthCode, id+"-missing")
	errs = append(errs, err)
	_, err = s.Take(ctx, store.KindAuthCode, id+"-missing")
	errs = append(errs, err)
	_, err = s.Update(ctx, store.KindAuthCode, id+"-missing", func(r store.Record) (store.Record, error) { return r, nil })
	errs = append(errs, err)
	_, err = s.Update(ctx, store.KindAuthCode, id, func(r store.Record) (store.Record, error) {
		r.Value = make([]byte, 64<<20+1)
		return r, nil
	})
	errs = append(errs, err)
	for k, err := range errs {
		if err == nil {
			t.Errorf("error %d: got nil", k)
		} else if strings.Contains(err.Error(), id) || strings.Contains(err.Error(), "alice") {
			t.Errorf("error %d: %q shows the id or owner", k, err)
		}
	}
}

func TestCorruptRecords(t *testing.T) {
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	s := open(t, addr, redis.Options{KeyPrefix: prefix})
	c := raw(t, addr)
	ctx := t.Context()
	if err := c.Set(ctx, prefix+"{session:string}", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, prefix+"{session:partial}", "v", "value only").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, prefix+"{session:badexp}", "v", "x", "o", "", "e", "soon", "n", "1", "c", "c").Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"string", "partial", "badexp"} {
		if _, err := s.Get(ctx, store.KindSession, id); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Get of a corrupt record %s: got %v, want ErrUnavailable", id, err)
		}
		if err := s.Delete(ctx, store.KindSession, id); id != "string" && err != nil {
			t.Errorf("Delete of a corrupt record %s: %v", id, err)
		}
	}
}

func TestClientAndClose(t *testing.T) {
	addr := redistest.Start(t)
	s, err := redis.Open(t.Context(), redis.Options{URL: "redis://" + addr, KeyPrefix: uniquePrefix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Ping(t.Context()).Err(); err != nil {
		t.Errorf("PING through Client: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Get(t.Context(), store.KindSession, "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Get after Close: got %v, want ErrUnavailable", err)
	}
}

func BenchmarkGet(b *testing.B) {
	addr := redistest.Start(b)
	s := open(b, addr, redis.Options{})
	ctx := context.Background()
	r := store.Record{Kind: store.KindSession, ID: "bench-session-id", Owner: "alice", Value: []byte(`{"user":"alice","acr":"mfa","created":1700000000}`), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, r.Kind, r.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	addr := redistest.Start(b)
	s := open(b, addr, redis.Options{})
	ctx := context.Background()
	r := store.Record{Kind: store.KindSession, ID: "bench-session-id", Owner: "alice", Value: []byte(`{"user":"alice","acr":"mfa","created":1700000000}`), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		// The common write: a sliding session whose idle expiry moves forward.
		if _, err := s.Update(ctx, r.Kind, r.ID, func(r store.Record) (store.Record, error) {
			r.ExpiresAt = time.Now().Add(time.Hour)
			return r, nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

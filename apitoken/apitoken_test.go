package apitoken

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// wrapStore counts Updates and can make every call fail with store.ErrUnavailable.
type wrapStore struct {
	store.Store
	updates atomic.Int64
	down    atomic.Bool // every call fails
	readOK  atomic.Bool // with down: reads still work, writes fail
}

func (w *wrapStore) fail(write bool) error {
	if w.down.Load() && (write || !w.readOK.Load()) {
		return fmt.Errorf("test store: %w", store.ErrUnavailable)
	}
	return nil
}

func (w *wrapStore) Create(ctx context.Context, r store.Record) error {
	if err := w.fail(true); err != nil {
		return err
	}
	return w.Store.Create(ctx, r)
}

func (w *wrapStore) Get(ctx context.Context, k store.Kind, id string) (store.Record, error) {
	if err := w.fail(false); err != nil {
		return store.Record{}, err
	}
	return w.Store.Get(ctx, k, id)
}

func (w *wrapStore) Update(ctx context.Context, k store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	if err := w.fail(true); err != nil {
		return store.Record{}, err
	}
	return w.Store.Update(ctx, k, id, func(r store.Record) (store.Record, error) {
		nr, err := fn(r)
		if err == nil {
			w.updates.Add(1)
		}
		return nr, err
	})
}

func (w *wrapStore) Take(ctx context.Context, k store.Kind, id string) (store.Record, error) {
	if err := w.fail(true); err != nil {
		return store.Record{}, err
	}
	return w.Store.Take(ctx, k, id)
}

func (w *wrapStore) ListByOwner(ctx context.Context, k store.Kind, owner string) ([]store.Record, error) {
	if err := w.fail(false); err != nil {
		return nil, err
	}
	return w.Store.ListByOwner(ctx, k, owner)
}

type fixture struct {
	m     *Manager
	clock *storetest.Clock // the manager's clock
	st    *wrapStore
}

// newFixture returns a manager on a fresh bolt store. With sharedClock the store expires
// records on the manager's clock; otherwise on a clock that stays at t0, so the manager's own
// expiry checks are what refuses.
func newFixture(t testing.TB, sharedClock bool) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	storeNow := storetest.NewClock(t0).Now
	if sharedClock {
		storeNow = clock.Now
	}
	b, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: storeNow, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	st := &wrapStore{Store: b}
	m, err := New(Config{Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, clock: clock, st: st}
}

func (f *fixture) create(t testing.TB, name string, scope Scope) (string, Token) {
	t.Helper()
	sec, tok, err := f.m.Create(context.Background(), name, scope, "admin")
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return sec, tok
}

var tokenRE = regexp.MustCompile(`^zgt_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$`)

func TestCreateCheck(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	sec, tok, err := f.m.Create(ctx, "  ci deploy ", ScopeReadWrite, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(sec) {
		t.Fatalf("token %q does not have the form zgt_<id>_<secret>", sec)
	}
	if !strings.HasPrefix(sec, tok.ID+"_") {
		t.Fatalf("token does not start with its id %q", tok.ID)
	}
	want := Token{ID: tok.ID, Name: "ci deploy", Scope: ScopeReadWrite, Created: t0, CreatedBy: "alice", ExpiresAt: t0.Add(DefaultIdleTimeout)}
	if tok != want {
		t.Fatalf("Create: got %+v, want %+v", tok, want)
	}
	// The store keeps no secret.
	r, err := f.st.Store.Get(ctx, KindToken, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Value), sec[len(tok.ID)+1:]) || r.Owner != OwnerTokens || !r.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("stored record %+v: want no secret, owner %q, expiry %v", r, OwnerTokens, want.ExpiresAt)
	}

	f.clock.Advance(time.Hour)
	got, err := f.m.Check(ctx, sec)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	want.LastUsed, want.ExpiresAt = t0.Add(time.Hour), t0.Add(time.Hour+DefaultIdleTimeout)
	if got != want {
		t.Fatalf("Check: got %+v, want %+v", got, want)
	}
	if !got.Allows(true) || !got.Allows(false) {
		t.Fatal("read-write token does not allow everything")
	}
}

func TestCheckRefuses(t *testing.T) {
	f := newFixture(t, false)
	ctx := t.Context()
	sec, tok := f.create(t, "one", ScopeRead)
	other, otherTok := f.create(t, "two", ScopeRead)
	revoked, revokedTok := f.create(t, "three", ScopeRead)
	if err := f.m.Revoke(ctx, revokedTok.ID); err != nil {
		t.Fatal(err)
	}
	secretOf := func(s string) string { return s[idLen+1:] }
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name, presented, reason string
	}{
		{"empty", "", "malformed: 0 bytes"},
		{"truncated", sec[:len(sec)-1], "malformed: 55 bytes"},
		{"one more char", sec + "A", "malformed: 57 bytes"},
		{"wrong secret", flip(sec, len(sec)-5), "wrong secret"},
		{"other token's id with this secret", otherTok.ID + "_" + secretOf(sec), "wrong secret"},
		{"this id with other token's secret", tok.ID + "_" + secretOf(other), "wrong secret"},
		{"revoked", revoked, "unknown id"},
		{"unknown id", "zgt_aaaaaaaa_" + secretOf(sec), "unknown id"},
		{"bad prefix", "zgx_" + sec[4:], "bad id"},
		{"uppercase id", strings.ToUpper(sec[:idLen]) + sec[idLen:], "bad id"},
		{"no separator", sec[:idLen] + "." + sec[idLen+1:], "no separator"},
		{"bad secret char", sec[:len(sec)-3] + "+" + sec[len(sec)-2:], "not base64url"},
		{"secret with padding", sec[:len(sec)-1] + "=", "not base64url"},
		{"space inside", sec[:20] + " " + sec[21:], "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.m.Check(ctx, tt.presented)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, want ErrInvalidToken", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("error %q does not say %q", err, tt.reason)
			}
			if len(tt.presented) > idLen+8 && strings.Contains(err.Error(), secretOf(tt.presented)[:8]) {
				t.Fatalf("error %q holds part of the secret", err)
			}
		})
	}
	// The refusals did not harm the valid token.
	if _, err := f.m.Check(ctx, sec); err != nil {
		t.Fatalf("valid token after refusals: %v", err)
	}
	// A non-canonical spelling of the same secret (different unused low bits) is refused.
	last := sec[len(sec)-1]
	alt := strings.IndexByte("AEIMQUYcgkosw048", last) // characters with both low bits zero
	if alt < 0 {
		t.Fatalf("last character %q has non-zero padding bits", last)
	}
	noncanon := sec[:len(sec)-1] + string("BFJNRVZdhlptx159"[alt])
	if _, err := f.m.Check(ctx, noncanon); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("non-canonical secret: got %v, want ErrInvalidToken", err)
	}
}

func TestIdleExpiry(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("store clock shared %v", shared), func(t *testing.T) {
			f := newFixture(t, shared)
			ctx := t.Context()
			sec, _ := f.create(t, "one", ScopeRead)
			// Each use slides the expiry.
			for range 3 {
				f.clock.Advance(DefaultIdleTimeout - time.Hour)
				got, err := f.m.Check(ctx, sec)
				if err != nil {
					t.Fatalf("use within the idle timeout: %v", err)
				}
				if now := f.clock.Now(); !got.LastUsed.Equal(now) || !got.ExpiresAt.Equal(now.Add(DefaultIdleTimeout)) {
					t.Fatalf("after use at %v: LastUsed %v, ExpiresAt %v", now, got.LastUsed, got.ExpiresAt)
				}
			}
			list, err := f.m.List(ctx)
			if err != nil || len(list) != 1 {
				t.Fatalf("List before expiry: %v, %v", list, err)
			}
			f.clock.Advance(DefaultIdleTimeout)
			_, err = f.m.Check(ctx, sec)
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("idle token: got %v, want ErrInvalidToken", err)
			}
			reason := "expired after being idle since"
			if shared {
				reason = "unknown id" // the store expired it first
			}
			if !strings.Contains(err.Error(), reason) {
				t.Fatalf("error %q does not say %q", err, reason)
			}
			if list, err := f.m.List(ctx); err != nil || len(list) != 0 {
				t.Fatalf("List after expiry: %v, %v; want none", list, err)
			}
		})
	}
}

func TestLastUsedThrottle(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	sec, _ := f.create(t, "one", ScopeRead)
	check := func(wantUpdates int64, wantLastUsed time.Time) {
		t.Helper()
		got, err := f.m.Check(ctx, sec)
		if err != nil {
			t.Fatal(err)
		}
		if n := f.st.updates.Load(); n != wantUpdates {
			t.Fatalf("%d store updates, want %d", n, wantUpdates)
		}
		if !got.LastUsed.Equal(wantLastUsed) {
			t.Fatalf("LastUsed %v, want %v", got.LastUsed, wantLastUsed)
		}
	}
	check(1, t0) // first use is written
	for range 10 {
		check(1, t0)
	}
	f.clock.Advance(59 * time.Second)
	check(1, t0)
	f.clock.Advance(time.Second)
	check(2, t0.Add(time.Minute))

	// Concurrent uses after the interval write once.
	f.clock.Advance(time.Minute)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := f.m.Check(ctx, sec); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.st.updates.Load(); n != 3 {
		t.Fatalf("%d store updates after 16 concurrent uses, want 3", n)
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		scope         Scope
		read, written bool
	}{
		{ScopeRead, true, false},
		{ScopeReadWrite, true, true},
		{"", false, false},
		{"admin", false, false},
	}
	for _, tt := range tests {
		tok := Token{Scope: tt.scope}
		if tok.Allows(false) != tt.read || tok.Allows(true) != tt.written {
			t.Errorf("scope %q: Allows(false)=%v Allows(true)=%v, want %v %v", tt.scope, tok.Allows(false), tok.Allows(true), tt.read, tt.written)
		}
	}
	f := newFixture(t, true)
	sec, _ := f.create(t, "reader", ScopeRead)
	tok, err := f.m.Check(t.Context(), sec)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Allows(false) || tok.Allows(true) {
		t.Fatalf("read token: Allows(false)=%v Allows(true)=%v, want true false", tok.Allows(false), tok.Allows(true))
	}
}

func TestStoreUnavailable(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	sec, tok := f.create(t, "one", ScopeRead)
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if errors.Is(err, ErrInvalidToken) {
			t.Fatalf("%s: %v wraps ErrInvalidToken; want a store error (503, not 401)", what, err)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("%s: %v does not wrap store.ErrUnavailable", what, err)
		}
		if strings.Contains(err.Error(), sec[idLen+1:]) {
			t.Fatalf("%s: error holds the secret", what)
		}
	}
	f.st.down.Store(true)
	_, err := f.m.Check(ctx, sec)
	check("Check, store down", err)
	// Reads work but recording the use fails: fail closed.
	f.st.readOK.Store(true)
	_, err = f.m.Check(ctx, sec)
	check("Check, store read-only", err)
	_, _, err = f.m.Create(ctx, "two", ScopeRead, "admin")
	check("Create", err)
	check("Revoke", f.m.Revoke(ctx, tok.ID))
	f.st.readOK.Store(false)
	_, err = f.m.List(ctx)
	check("List", err)

	// A malformed token is refused without the store.
	if _, err := f.m.Check(ctx, "nope"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("malformed token, store down: got %v, want ErrInvalidToken", err)
	}
	// A cancelled request is not an invalid token either.
	f.st.down.Store(false)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.m.Check(cctx, sec); err == nil || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cancelled context: got %v, want a non-token error", err)
	}
}

func TestListRevoke(t *testing.T) {
	f := newFixture(t, true)
	ctx := t.Context()
	var ids []string
	for _, n := range []string{"c", "a", "b"} {
		_, tok := f.create(t, n, ScopeRead)
		ids = append(ids, tok.ID)
		f.clock.Advance(time.Second)
	}
	list, err := f.m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tok := range list {
		got = append(got, tok.ID)
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("List: %v, want by creation %v", got, ids)
	}
	if err := f.m.Revoke(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ids[1], "zgt_aaaaaaaa", "bogus", ""} {
		err := f.m.Revoke(ctx, id)
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Revoke(%q): got %v, want ErrNotFound", id, err)
		}
	}
	list, _ = f.m.List(ctx)
	if len(list) != 2 || list[0].ID != ids[0] || list[1].ID != ids[2] {
		t.Fatalf("List after revoke: %+v", list)
	}
}

func TestCreateRefuses(t *testing.T) {
	f := newFixture(t, true)
	tests := []struct {
		name      string
		scope     Scope
		by, error string
	}{
		{"", ScopeRead, "admin", "token name is empty"},
		{"  ", ScopeRead, "admin", "token name is empty"},
		{"a\nb", ScopeRead, "admin", "not printable"},
		{strings.Repeat("é", 65), ScopeRead, "admin", "longer than 64"},
		{"ok", "write", "admin", `scope "write"`},
		{"ok", "", "admin", `scope ""`},
		{"ok", ScopeRead, "", "creator is empty"},
		{"ok", ScopeRead, "a\x00", "not printable"},
	}
	for _, tt := range tests {
		_, _, err := f.m.Create(t.Context(), tt.name, tt.scope, tt.by)
		if err == nil || !strings.Contains(err.Error(), tt.error) {
			t.Errorf("Create(%q, %q, %q): got %v, want error saying %q", tt.name, tt.scope, tt.by, err, tt.error)
		}
	}
}

func TestNew(t *testing.T) {
	f := newFixture(t, true)
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store: no error")
	}
	if _, err := New(Config{Store: f.st, IdleTimeout: time.Minute}); err == nil || !strings.Contains(err.Error(), "idle timeout 1m0s") {
		t.Errorf("New with a 1m idle timeout: got %v", err)
	}
	if _, err := New(Config{Store: f.st, IdleTimeout: -time.Hour}); err == nil {
		t.Error("New with a negative idle timeout: no error")
	}
	m, err := New(Config{Store: f.st, IdleTimeout: time.Hour})
	if err != nil || m.idle != time.Hour {
		t.Errorf("New with a 1h idle timeout: %v", err)
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]Scope{"read": ScopeRead, "read-write": ScopeReadWrite} {
		if got, err := ParseScope(in); err != nil || got != want {
			t.Errorf("ParseScope(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "READ", "write", "read write", "readwrite"} {
		if _, err := ParseScope(in); err == nil {
			t.Errorf("ParseScope(%q): no error", in)
		}
	}
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		headers []string
		want    string
		ok      bool
	}{
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer abc"}, "abc", true},
		{[]string{"BEARER  abc"}, "abc", true},
		{[]string{"SSWS abc"}, "abc", true},
		{[]string{"ssws abc"}, "abc", true},
		{nil, "", false},
		{[]string{""}, "", false},
		{[]string{"Bearer"}, "", false},
		{[]string{"Bearer "}, "", false},
		{[]string{"Basic YTpi"}, "", false},
		{[]string{"Bearer a b"}, "", false},
		{[]string{"Bearer abc", "Bearer abc"}, "", false},
		{[]string{"Bearerabc"}, "", false},
		{[]string{"Token abc"}, "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://gw.example/api/v1/users", nil)
		for _, h := range tt.headers {
			r.Header.Add("Authorization", h)
		}
		got, ok := FromRequest(r)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FromRequest(%q) = %q, %v; want %q, %v", tt.headers, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	fx := newFixture(f, true)
	sec, _ := fx.create(f, "fuzz", ScopeRead)
	for _, s := range []string{sec, sec[:len(sec)-1], sec + "A", "", "zgt_", "zgt_aaaaaaaa_", "zgt_aaaaaaaa_" + strings.Repeat("A", 43),
		"zgt_AAAAAAAA_" + strings.Repeat("A", 43), "zgt_aaaaaaaa." + strings.Repeat("A", 43), "zgt_aaaaaaaa_" + strings.Repeat("A", 42) + "=",
		strings.Repeat("\xff", tokenLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, raw, err := parse(s)
		if err != nil {
			if len(s) > idLen+8 && strings.Contains(err.Error(), s[idLen:]) {
				t.Fatalf("parse error %q holds the input", err)
			}
			return
		}
		if !tokenRE.MatchString(s) {
			t.Fatalf("parse accepted %q, which does not have the token form", s)
		}
		// One spelling per token: what parse read formats back to the input.
		if again := id + "_" + secretEncoding.EncodeToString(raw[:]); again != s {
			t.Fatalf("parse(%q) = %q, %x, which formats as %q", s, id, raw, again)
		}
		tok, err := fx.m.Check(t.Context(), s)
		if s == sec {
			if err != nil {
				t.Fatalf("the valid token is refused: %v", err)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Check(%q) = %+v, %v; want ErrInvalidToken", s, tok, err)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	f := newFixture(b, true)
	sec, _ := f.create(b, "bench", ScopeRead)
	ctx := context.Background()
	if _, err := f.m.Check(ctx, sec); err != nil { // LastUsed written; the loop only reads
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.m.Check(ctx, sec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckMalformed(b *testing.B) {
	f := newFixture(b, true)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.m.Check(ctx, "zgt_aaaaaaaa"); err == nil {
			b.Fatal("accepted")
		}
	}
}

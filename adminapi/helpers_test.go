package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/apitoken"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
	"github.com/zonegate/zonegate/websession"
)

// What the lead passes as Users and Sessions.
var (
	_ Users    = (*directory.File)(nil)
	_ Sessions = (*websession.Manager)(nil)
)

// t0 is the tests' starting time.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// flakyStore wraps a store and makes calls fail with store.ErrUnavailable: every call while
// down, or the calls on the kinds set with failKind.
type flakyStore struct {
	store.Store
	mu    sync.Mutex
	down  bool
	kinds map[store.Kind]bool
}

func (s *flakyStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *flakyStore) failKind(k store.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kinds == nil {
		s.kinds = map[store.Kind]bool{}
	}
	s.kinds[k] = true
}

func (s *flakyStore) fail(k store.Kind) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down || s.kinds[k] {
		return fmt.Errorf("test store (%s): %w", k, store.ErrUnavailable)
	}
	return nil
}

func (s *flakyStore) Create(ctx context.Context, r store.Record) error {
	if err := s.fail(r.Kind); err != nil {
		return err
	}
	return s.Store.Create(ctx, r)
}

func (s *flakyStore) Get(ctx context.Context, k store.Kind, id string) (store.Record, error) {
	if err := s.fail(k); err != nil {
		return store.Record{}, err
	}
	return s.Store.Get(ctx, k, id)
}

func (s *flakyStore) Update(ctx context.Context, k store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	if err := s.fail(k); err != nil {
		return store.Record{}, err
	}
	return s.Store.Update(ctx, k, id, fn)
}

func (s *flakyStore) Delete(ctx context.Context, k store.Kind, id string) error {
	if err := s.fail(k); err != nil {
		return err
	}
	return s.Store.Delete(ctx, k, id)
}

func (s *flakyStore) Take(ctx context.Context, k store.Kind, id string) (store.Record, error) {
	if err := s.fail(k); err != nil {
		return store.Record{}, err
	}
	return s.Store.Take(ctx, k, id)
}

func (s *flakyStore) ListByOwner(ctx context.Context, k store.Kind, owner string) ([]store.Record, error) {
	if err := s.fail(k); err != nil {
		return nil, err
	}
	return s.Store.ListByOwner(ctx, k, owner)
}

func (s *flakyStore) DeleteByOwner(ctx context.Context, k store.Kind, owner string) (int, error) {
	if err := s.fail(k); err != nil {
		return 0, err
	}
	return s.Store.DeleteByOwner(ctx, k, owner)
}

// fakeUsers is a directory in memory.
type fakeUsers struct {
	mu    sync.Mutex
	users []directory.User
}

func (f *fakeUsers) Users() []directory.User {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.users)
	slices.SortFunc(out, func(a, b directory.User) int { return strings.Compare(a.Username, b.Username) })
	return out
}

func (f *fakeUsers) Lookup(username string) (directory.User, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	username = directory.NormalizeUsername(username)
	for _, u := range f.users {
		if u.Username == username {
			return u, true
		}
	}
	return directory.User{}, false
}

func (f *fakeUsers) LookupID(id string) (directory.User, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.ID == id {
			return u, true
		}
	}
	return directory.User{}, false
}

func (f *fakeUsers) add(u directory.User) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users = append(f.users, u)
}

// fakeSessions keeps sessions in memory, by user id.
type fakeSessions struct {
	mu  sync.Mutex
	m   map[string][]websession.Session
	err error
}

func (f *fakeSessions) List(_ context.Context, userID string) ([]websession.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.m[userID]), nil
}

func (f *fakeSessions) RevokeUser(_ context.Context, userID string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	n := len(f.m[userID])
	delete(f.m, userID)
	return n, nil
}

// fakeFactors keeps factors in memory, by user id.
type fakeFactors struct {
	mu  sync.Mutex
	m   map[string][]Factor
	err error
}

func (f *fakeFactors) List(_ context.Context, userID string) ([]Factor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return slices.Clone(f.m[userID]), nil
}

func (f *fakeFactors) Reset(_ context.Context, userID string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	n := len(f.m[userID])
	delete(f.m, userID)
	return n, nil
}

// fixture is an API on a fresh bolt store with real token, account, device and audit
// managers, fake users, sessions and factors, and tokens of every kind.
type fixture struct {
	t        testing.TB
	clock    *storetest.Clock
	st       *flakyStore
	tokens   *apitoken.Manager
	accounts *accounts.Manager
	devices  *device.Registry
	log      *audit.Log
	users    *fakeUsers
	sessions *fakeSessions
	factors  *fakeFactors
	api      *API

	// Token strings.
	read, rw, revoked, idle string
	readTok, rwTok          apitoken.Token
}

// options choose what the fixture's API is configured with.
type options struct {
	noFactors, noDevices, noLog bool
}

// newFixture builds a fixture. The idle token was created 61 minutes ago and the idle timeout
// is an hour; the others were created 11 minutes ago.
func newFixture(t testing.TB, opts options) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(t0)
	b, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f := &fixture{t: t, clock: clock, st: &flakyStore{Store: b}}

	f.tokens, err = apitoken.New(apitoken.Config{Store: f.st, IdleTimeout: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.accounts, err = accounts.New(accounts.Config{Store: f.st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.devices = device.NewRegistry(f.st, clock.Now, nil)
	if !opts.noLog {
		f.log, err = audit.New(audit.Config{Store: f.st, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		f.log.Start()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			f.log.Close(ctx)
		})
	}
	f.users = &fakeUsers{users: []directory.User{
		{ID: "u-alice", Username: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins", "staff"}},
		{ID: "bob", Username: "bob", Name: "Bob Builder", Email: "bob@example.com", Groups: []string{"staff"}},
		{ID: "u-carol", Username: "carol", Name: "Carol Chen", Email: "carol@example.org"},
		{ID: "u-dave", Username: "dave", Name: "Dave Disabled", Disabled: true, Groups: []string{"staff"}},
		{ID: "u-erin", Username: "erin", Name: "Erin Example", Email: "erin@example.com"},
	}}
	f.sessions = &fakeSessions{m: map[string][]websession.Session{
		"u-alice": {
			{ID: "s2", Kind: "gate", Host: "app.example.com", UserID: "u-alice", AMR: []string{"pwd"}, ParentID: "s1",
				CreatedAt: t0.Add(-time.Minute), LastSeenAt: t0, ExpiresAt: t0.Add(12 * time.Hour), IdleTimeout: time.Hour},
			{ID: "s1", Kind: "idp", UserID: "u-alice", AMR: []string{"pwd", "hwk"},
				CreatedAt: t0.Add(-time.Hour), LastSeenAt: t0, ExpiresAt: t0.Add(11 * time.Hour), IdleTimeout: time.Hour},
		},
	}}
	f.factors = &fakeFactors{m: map[string][]Factor{
		"u-alice": {
			{ID: "totp-1", Type: FactorTOTP, Name: "phone", Created: t0.Add(-2 * time.Hour)},
			{ID: "pk-1", Type: FactorWebAuthn, Name: "YubiKey", Created: t0.Add(-3 * time.Hour), LastUsed: t0},
		},
	}}
	for _, d := range []device.Device{
		{ID: "dev-1", Owner: "u-alice", Platform: "macOS", Managed: true, Compliance: device.Compliant},
		{ID: "dev-2", Owner: "bob", Platform: "Windows"},
		{ID: "dev-del", Owner: "bob", Platform: "Linux"},
	} {
		if _, err := f.devices.Register(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	f.idle, _ = f.create("idle", apitoken.ScopeReadWrite)
	clock.Advance(50 * time.Minute)
	f.read, f.readTok = f.create("auditor", apitoken.ScopeRead)
	f.rw, f.rwTok = f.create("ops automation", apitoken.ScopeReadWrite)
	var revoked apitoken.Token
	f.revoked, revoked = f.create("old", apitoken.ScopeReadWrite)
	if err := f.tokens.Revoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Minute)

	cfg := Config{
		Tokens: f.tokens, Users: f.users, Accounts: f.accounts, Sessions: f.sessions,
		Factors: f.factors, Devices: f.devices, Now: clock.Now,
	}
	if f.log != nil {
		cfg.Log = f.log
	}
	if opts.noFactors {
		cfg.Factors = nil
	}
	if opts.noDevices {
		cfg.Devices = nil
	}
	f.api, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// create issues a token.
func (f *fixture) create(name string, scope apitoken.Scope) (string, apitoken.Token) {
	f.t.Helper()
	sec, tok, err := f.tokens.Create(context.Background(), name, scope, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	return sec, tok
}

// request is one request to the API.
type request struct {
	method, path, token string
	body, contentType   string
	header              http.Header
}

// do serves a request and returns the recorded answer.
func (f *fixture) do(r request) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, "http://idp.example.com"+r.path, body)
	req.RemoteAddr = "192.0.2.7:50000"
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	} else if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, req)
	return rec
}

// get is a GET with a token.
func (f *fixture) get(path, token string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(request{method: "GET", path: path, token: token})
}

// errorOf decodes an error answer.
func errorOf(t testing.TB, rec *httptest.ResponseRecorder) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	return e
}

// decode decodes a JSON answer into v.
func decode(t testing.TB, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
}

// flush waits for the audit log's writer.
func (f *fixture) flush() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.log.Flush(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// events returns the events of the last day of the given types (prefix patterns allowed).
func (f *fixture) events(types ...string) []audit.Event {
	f.t.Helper()
	f.flush()
	var out []audit.Event
	filter := audit.Filter{Types: types, Limit: audit.MaxLimit}
	for {
		p, err := f.log.Query(context.Background(), filter)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, p.Events...)
		if p.Next == "" {
			return out
		}
		filter.After = p.Next
	}
}

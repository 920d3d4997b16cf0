package directory

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testUsersFile is a users file with cheap hashes: alice (admins), bob (disabled), dave
// (disabled, no password).
func testUsersFile(t testing.TB) string {
	t.Helper()
	return lines(
		"users:",
		"  Alice:",
		`    displayname: "Alice Admin"`,
		"    email: alice@example.com",
		"    password: "+cheapHash(t, "alice-pass"),
		"    groups: [admins]",
		"  bob:",
		"    password: "+cheapHash(t, "bob-pass"),
		"    disabled: true",
		"  dave:",
		"    disabled: true",
	)
}

// openTest opens content as a users file that is not watched.
func openTest(t testing.TB, content string, opts Options) *File {
	t.Helper()
	if opts.ReloadInterval == 0 {
		opts.ReloadInterval = -1
	}
	f, err := OpenFile(writeUsers(t, content), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestAuthenticate(t *testing.T) {
	f := openTest(t, testUsersFile(t), Options{})
	alice := User{ID: "alice", Username: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins"}}
	cases := []struct {
		name, username, password string
		want                     User   // when reason is ""
		reason                   string // "" for success
	}{
		{name: "ok", username: "alice", password: "alice-pass", want: alice},
		{name: "username case and spaces", username: "  ALICE ", password: "alice-pass", want: alice},
		{name: "wrong password", username: "alice", password: "bob-pass", reason: ReasonWrongPassword},
		{name: "password case differs", username: "alice", password: "Alice-pass", reason: ReasonWrongPassword},
		{name: "password with trailing space", username: "alice", password: "alice-pass ", reason: ReasonWrongPassword},
		{name: "empty password", username: "alice", password: "", reason: ReasonWrongPassword},
		{name: "password too long", username: "alice", password: strings.Repeat("a", MaxPasswordLen+1), reason: ReasonWrongPassword},
		{name: "unknown user", username: "mallory", password: "alice-pass", reason: ReasonUnknownUser},
		{name: "unknown user, password too long", username: "mallory", password: strings.Repeat("a", MaxPasswordLen+1), reason: ReasonUnknownUser},
		{name: "empty username", username: "", password: "alice-pass", reason: ReasonUnknownUser},
		{name: "disabled, right password", username: "bob", password: "bob-pass", reason: ReasonDisabled},
		{name: "disabled, wrong password", username: "bob", password: "alice-pass", reason: ReasonWrongPassword},
		{name: "disabled, no password set", username: "dave", password: "dave-pass", reason: ReasonDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.Authenticate(context.Background(), tc.username, tc.password)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Authenticate() error = %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Authenticate() = %+v, want %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Authenticate() error = %v, want ErrInvalidCredentials", err)
			}
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason != tc.reason {
				t.Errorf("Authenticate() error = %v, want reason %s", err, tc.reason)
			}
			if !reflect.DeepEqual(got, User{}) {
				t.Errorf("Authenticate() = %+v with an error, want the zero User", got)
			}
		})
	}
}

func TestAuthenticateContext(t *testing.T) {
	f := openTest(t, testUsersFile(t), Options{MaxConcurrent: 1})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Authenticate(ctx, "alice", "alice-pass"); !errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("Authenticate(canceled) error = %v, want context.Canceled only", err)
	}

	// With the only slot taken, a caller gives up when its context ends.
	f.sem <- struct{}{}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Authenticate(ctx, "alice", "alice-pass"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authenticate(busy) error = %v, want context.DeadlineExceeded", err)
	}
	<-f.sem
	if _, err := f.Authenticate(context.Background(), "alice", "alice-pass"); err != nil {
		t.Errorf("Authenticate() after the slot freed: %v", err)
	}
}

func TestAuthErrorMessage(t *testing.T) {
	err := error(&AuthError{Reason: ReasonDisabled})
	if got, want := err.Error(), "invalid username or password (disabled)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalidCredentials) || errors.Is(err, context.Canceled) {
		t.Error("AuthError must be ErrInvalidCredentials and nothing else")
	}
}

// Unknown users are checked against a dummy hash shaped like the file's own hashes, so they cost
// the same as real ones.
func TestDummyHashMatchesFile(t *testing.T) {
	mk := func(m, tm uint32, p uint8, salt, key int) *entry {
		return &entry{hasHash: true, hash: Hash{Memory: m, Time: tm, Threads: p, Salt: make([]byte, salt), Key: make([]byte, key)}}
	}
	cases := []struct {
		name    string
		entries map[string]*entry
		want    hashParams
	}{
		{name: "no users: defaults", entries: map[string]*entry{},
			want: hashParams{DefaultMemory, DefaultTime, DefaultThreads, DefaultSaltLen, DefaultKeyLen}},
		{name: "only a disabled user without password: defaults", entries: map[string]*entry{"d": {}},
			want: hashParams{DefaultMemory, DefaultTime, DefaultThreads, DefaultSaltLen, DefaultKeyLen}},
		{name: "most common wins", entries: map[string]*entry{
			"a": mk(65536, 3, 4, 16, 32), "b": mk(65536, 3, 4, 16, 32), "c": mk(19456, 2, 1, 16, 32)},
			want: hashParams{65536, 3, 4, 16, 32}},
		{name: "tie goes to the costlier", entries: map[string]*entry{
			"a": mk(8192, 1, 1, 8, 16), "b": mk(19456, 2, 1, 16, 32)},
			want: hashParams{19456, 2, 1, 16, 32}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 5 { // map order must not matter
				d := newSnapshot(tc.entries).dummy
				got := hashParams{d.Memory, d.Time, d.Threads, len(d.Salt), len(d.Key)}
				if got != tc.want {
					t.Fatalf("dummy params = %+v, want %+v", got, tc.want)
				}
				if bytes.Equal(d.Key, make([]byte, len(d.Key))) {
					t.Fatal("dummy key is all zeros, want random")
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	f := openTest(t, testUsersFile(t), Options{})
	u, ok := f.Lookup(" ALICE")
	if !ok || u.Username != "alice" || u.Name != "Alice Admin" {
		t.Fatalf("Lookup(ALICE) = %+v, %v", u, ok)
	}
	u.Groups[0] = "changed" // must not reach the shared snapshot
	if u, _ := f.Lookup("alice"); u.Groups[0] != "admins" {
		t.Errorf("Lookup() returned a shared Groups slice: now %v", u.Groups)
	}
	if u, ok := f.Lookup("bob"); !ok || !u.Disabled {
		t.Errorf("Lookup(bob) = %+v, %v; want the disabled user", u, ok)
	}
	if _, ok := f.Lookup("mallory"); ok {
		t.Error("Lookup(mallory) found a user")
	}
	all := f.Users()
	if len(all) < 2 || all[0].Username != "alice" || all[1].Username != "bob" {
		t.Errorf("Users() = %+v, want alice and bob in order", all)
	}
	if u, ok := f.LookupID("alice"); !ok || u.Username != "alice" {
		t.Errorf("LookupID(alice) = %+v, %v", u, ok)
	}
	for _, id := range []string{"", "ALICE", "mallory"} {
		if u, ok := f.LookupID(id); ok {
			t.Errorf("LookupID(%q) = %+v, want none (ids match exactly)", id, u)
		}
	}
}

func TestOpenFileErrors(t *testing.T) {
	if _, err := OpenFile(filepath.Join(t.TempDir(), "none.yaml"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenFile(missing) error = %v, want ErrNotExist", err)
	}
	path := writeUsers(t, lines("users:", "  bob:", "    password: hunter2"))
	want := `users file "` + path + `": line 3: user "bob": password is not an argon2id hash`
	if _, err := OpenFile(path, Options{}); err == nil || err.Error() != want {
		t.Errorf("OpenFile(bad) error = %v, want %s", err, want)
	}
}

func TestExampleUsersAuthenticate(t *testing.T) {
	// The README's demo credentials.
	f, err := OpenFile("../examples/users.yaml", Options{ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct{ username, password, group string }{
		{"alice", "alice-demo-pass", "admins"},
		{"bob", "bob-demo-pass", "staff"},
	} {
		u, err := f.Authenticate(context.Background(), c.username, c.password)
		if err != nil || !reflect.DeepEqual(u.Groups, []string{c.group}) {
			t.Errorf("Authenticate(%s) = %+v, %v; want a user in %s", c.username, u, err, c.group)
		}
	}
	if _, err := f.Authenticate(context.Background(), "alice", "bob-demo-pass"); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("Authenticate(alice, bob's password) error = %v, want ErrInvalidCredentials", err)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it is true or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rewrite replaces the file at path with content and moves its modification time forward, so
// the change is seen even on file systems with coarse timestamps.
func rewrite(t *testing.T, path, content string, atomic bool) {
	t.Helper()
	target := path
	if atomic {
		target = path + ".tmp"
	}
	if err := os.WriteFile(target, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	mtime := time.Now()
	if err == nil && !mtime.After(info.ModTime()) {
		mtime = info.ModTime().Add(time.Second)
	}
	if err := os.Chtimes(target, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if atomic {
		if err := os.Rename(target, path); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReload(t *testing.T) {
	logs := &logBuffer{}
	path := writeUsers(t, testUsersFile(t))
	f, err := OpenFile(path, Options{
		ReloadInterval: 10 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// A new user and a changed group are picked up.
	carol := cheapHash(t, "correct horse")
	v2 := strings.Replace(testUsersFile(t), "[admins]", "[admins, ops]", 1) +
		lines("  carol:", "    password: "+carol)
	rewrite(t, path, v2, false)
	eventually(t, "carol to appear", func() bool { _, ok := f.Lookup("carol"); return ok })
	if u, _ := f.Lookup("alice"); !reflect.DeepEqual(u.Groups, []string{"admins", "ops"}) {
		t.Errorf("alice's groups after reload = %v, want [admins ops]", u.Groups)
	}
	if _, err := f.Authenticate(context.Background(), "carol", "correct horse"); err != nil {
		t.Errorf("Authenticate(carol) after reload: %v", err)
	}

	// A broken file is logged and the previous users stay.
	broken := strings.Replace(v2, "  carol:", "  carol:\n    pasword: x", 1)
	rewrite(t, path, broken, true)
	eventually(t, "the reload error to be logged", func() bool {
		return strings.Contains(logs.String(), "users file reload failed")
	})
	if !strings.Contains(logs.String(), `unknown field \"pasword\"`) {
		t.Errorf("log lacks the load error:\n%s", logs)
	}
	if _, ok := f.Lookup("carol"); !ok {
		t.Error("carol vanished after a broken reload; the previous users must stay")
	}

	// The broken file is not retried (nor logged again) until it changes.
	time.Sleep(50 * time.Millisecond)
	if n := strings.Count(logs.String(), "users file reload failed"); n != 1 {
		t.Errorf("reload failure logged %d times, want once", n)
	}

	// A file replaced by rename (as editors and config tools do) is picked up; carol is gone.
	rewrite(t, path, testUsersFile(t), true)
	eventually(t, "carol to disappear", func() bool { _, ok := f.Lookup("carol"); return !ok })

	// A deleted file keeps the users and is logged.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the missing file to be logged", func() bool {
		return strings.Contains(logs.String(), "users file unavailable")
	})
	if _, ok := f.Lookup("alice"); !ok {
		t.Error("alice vanished when the file was deleted")
	}
	rewrite(t, path, v2, false)
	eventually(t, "carol to come back", func() bool { _, ok := f.Lookup("carol"); return ok })

	out := logs.String()
	for _, secret := range []string{"$argon2id", carol[len(carol)-20:], "correct horse"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "users file reloaded") {
		t.Errorf("successful reloads not logged:\n%s", out)
	}
}

func TestNoReloadWhenDisabled(t *testing.T) {
	path := writeUsers(t, testUsersFile(t))
	f, err := OpenFile(path, Options{ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if f.done != nil {
		t.Error("a watcher goroutine started with ReloadInterval < 0")
	}
	// check() is what the watcher would run: it still works on demand.
	rewrite(t, path, testUsersFile(t)+lines("  carol:", "    disabled: true"), false)
	if _, ok := f.Lookup("carol"); ok {
		t.Fatal("reloaded without a watcher")
	}
	f.check() // sees the change
	if _, ok := f.Lookup("carol"); ok {
		t.Fatal("check() loaded a change before it held still for one interval")
	}
	f.check() // sees it unchanged: loads
	if _, ok := f.Lookup("carol"); !ok {
		t.Error("check() did not reload a changed file")
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

func TestCloseStopsWatcher(t *testing.T) {
	f := openTest(t, testUsersFile(t), Options{ReloadInterval: time.Millisecond})
	f.Close()
	select {
	case <-f.done:
	default:
		t.Fatal("watcher still running after Close")
	}
	if _, err := f.Authenticate(context.Background(), "alice", "alice-pass"); err != nil {
		t.Errorf("Authenticate after Close: %v", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	f := openTest(b, testUsersFile(b), Options{})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := f.Lookup("alice"); !ok {
			b.Fatal("not found")
		}
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	hash, err := HashPassword("alice-pass")
	if err != nil {
		b.Fatal(err)
	}
	f := openTest(b, lines("users:", "  alice:", "    password: "+hash), Options{})
	for _, bc := range []struct{ name, user string }{{"known", "alice"}, {"unknown", "mallory"}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.Authenticate(context.Background(), bc.user, "alice-pass")
			}
		})
	}
}

// TestOnRevoked: a reload that disables or removes active users reports exactly those, so
// their sessions can be ended; users already disabled and users still active are not.
func TestOnRevoked(t *testing.T) {
	carol := cheapHash(t, "correct horse")
	base := testUsersFile(t) + lines("  carol:", "    password: "+carol, "  erin:", "    password: "+carol)
	path := writeUsers(t, base)
	var mu sync.Mutex
	var got [][]string
	f, err := OpenFile(path, Options{
		ReloadInterval: 10 * time.Millisecond,
		OnRevoked: func(us []User) {
			var names []string
			for _, u := range us {
				names = append(names, u.Username)
			}
			sort.Strings(names)
			mu.Lock()
			got = append(got, names)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// carol disabled, erin removed, dave (already disabled) removed, alice kept.
	next := strings.Replace(base, "  carol:\n    password: "+carol, "  carol:\n    password: "+carol+"\n    disabled: true", 1)
	next = strings.Replace(next, "  erin:\n    password: "+carol+"\n", "", 1)
	next = strings.Replace(next, "  dave:\n    disabled: true\n", "", 1)
	if next == base {
		t.Fatal("the test's edit did not change the file")
	}
	rewrite(t, path, next, false)
	eventually(t, "the revoked users to be reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || strings.Join(got[0], ",") != "carol,erin" {
		t.Fatalf("revoked %v, want [[carol erin]]", got)
	}
}

package directory

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File is a users file kept in memory and reloaded when it changes. It is safe for concurrent
// use. Logins read one immutable snapshot, swapped atomically on reload, so a reload never
// blocks them and never shows a half-loaded file.
type File struct {
	path     string
	log      *slog.Logger
	interval time.Duration
	sem      chan struct{} // one token per password verification in progress

	snap atomic.Pointer[snapshot]

	mu          sync.Mutex  // serializes reloads; guards last, pending and statFailing
	last        os.FileInfo // the file as last loaded (or last found broken)
	pending     os.FileInfo // a change seen at the last check, loaded once it holds still
	statFailing bool        // the last stat failed and was logged

	stop      chan struct{}
	done      chan struct{} // closed when the watcher exits; nil without one
	onRevoked func([]User)
	closeOnce sync.Once
}

// snapshot is one loaded version of the file. It is never modified after it is stored.
type snapshot struct {
	users map[string]*entry // by lower-cased username
	// dummy is what an unknown user's password is checked against so that the login costs what
	// a real user's does: the most common parameters of the file with a random salt and key,
	// which no password matches.
	dummy Hash
}

// OpenFile loads the users file at path and, unless opts.ReloadInterval is negative, watches it
// for changes in a goroutine until Close. A change is loaded once the file has held still for one
// interval (so within two intervals). A file that fails to load is an error here; on reload it is
// logged and the previous users stay in force.
func OpenFile(path string, opts Options) (*File, error) {
	entries, info, err := loadFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{
		path:      path,
		log:       opts.Logger,
		onRevoked: opts.OnRevoked,
		interval:  opts.ReloadInterval,
		last:      info,
		stop:      make(chan struct{}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.interval == 0 {
		f.interval = DefaultReloadInterval
	}
	n := opts.MaxConcurrent
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	f.sem = make(chan struct{}, n)
	f.snap.Store(newSnapshot(entries))
	if f.interval > 0 {
		f.done = make(chan struct{})
		go f.watch()
	}
	return f, nil
}

// Close stops watching the file. The users loaded last stay usable.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		if f.done != nil {
			<-f.done
		}
	})
	return nil
}

// Lookup returns the user with this username (matched like Authenticate does), disabled or not.
func (f *File) Lookup(username string) (User, bool) {
	e, ok := f.snap.Load().users[NormalizeUsername(username)]
	if !ok {
		return User{}, false
	}
	return e.user.clone(), true
}

// Users returns every user of the file, disabled or not, sorted by username.
func (f *File) Users() []User {
	snap := f.snap.Load()
	out := make([]User, 0, len(snap.users))
	for _, e := range snap.users {
		out = append(out, e.user.clone())
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
	return out
}

// LookupID returns the user whose stable id (User.ID) is id, disabled or not. It looks
// through every user: for the rare sign-ins that start from an id (a passkey), not for each
// request.
func (f *File) LookupID(id string) (User, bool) {
	if id == "" {
		return User{}, false
	}
	for _, e := range f.snap.Load().users {
		if e.user.ID == id {
			return e.user.clone(), true
		}
	}
	return User{}, false
}

// Authenticate checks a username and password and returns the user. Usernames match
// case-insensitively, with surrounding spaces ignored.
//
// Every failure is an *AuthError, which errors.Is ErrInvalidCredentials; its Reason is for
// logs. Whether or not the user exists, one argon2id verification runs, so timing does not tell
// who exists; a disabled user's password is verified too, and the reason is ReasonDisabled only
// if it matched. An empty password, or one over MaxPasswordLen bytes, fails without hashing.
//
// Verifications are limited to Options.MaxConcurrent at once; if ctx ends while waiting for a
// turn, the error wraps the context's error instead (and is not ErrInvalidCredentials).
func (f *File) Authenticate(ctx context.Context, username, password string) (User, error) {
	snap := f.snap.Load()
	e := snap.users[NormalizeUsername(username)]
	if password == "" || len(password) > MaxPasswordLen {
		if e == nil {
			return User{}, &AuthError{Reason: ReasonUnknownUser}
		}
		return User{}, &AuthError{Reason: ReasonWrongPassword}
	}

	if err := f.acquire(ctx); err != nil {
		return User{}, err
	}
	defer func() { <-f.sem }()

	switch {
	case e == nil:
		snap.dummy.Verify(password)
		return User{}, &AuthError{Reason: ReasonUnknownUser}
	case !e.hasHash: // disabled with no password
		snap.dummy.Verify(password)
		return User{}, &AuthError{Reason: ReasonDisabled}
	case !e.hash.Verify(password):
		return User{}, &AuthError{Reason: ReasonWrongPassword}
	case e.user.Disabled:
		return User{}, &AuthError{Reason: ReasonDisabled}
	}
	return e.user.clone(), nil
}

// acquire waits for a verification slot.
func (f *File) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting to verify a password: %w", err)
	}
	select {
	case f.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to verify a password: %w", ctx.Err())
	}
}

// watch polls the file until Close.
func (f *File) watch() {
	defer close(f.done)
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.check()
		}
	}
}

// check reloads the file if its identity, modification time or size changed since it was last
// loaded (or last found broken) and then stayed the same for one more check, so a file being
// written in place is not loaded half-written.
func (f *File) check() {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := os.Stat(f.path)
	if err != nil {
		if !f.statFailing {
			f.statFailing = true
			f.log.Error("users file unavailable; keeping the previous users", "path", f.path, "error", err)
		}
		return
	}
	f.statFailing = false
	switch {
	case f.last != nil && sameFile(f.last, cur):
		f.pending = nil
	case f.pending == nil || !sameFile(f.pending, cur):
		f.pending = cur // changed: wait until it holds still
	default:
		f.pending = nil
		f.reloadLocked()
	}
}

// reloadLocked loads the file and swaps the snapshot in. On failure it logs, keeps the previous
// users and remembers the broken file so it is not retried until it changes again. f.mu is held.
func (f *File) reloadLocked() {
	entries, info, err := loadFile(f.path)
	if err == nil {
		// Someone may be writing the file right now: use what was read only if the file did not
		// change meanwhile; otherwise leave f.last alone and try again next tick.
		if cur, serr := os.Stat(f.path); serr != nil || !sameFile(info, cur) {
			f.log.Debug("users file changed while being read; retrying", "path", f.path)
			return
		}
	}
	if info != nil {
		f.last = info
	}
	if err != nil {
		f.log.Error("users file reload failed; keeping the previous users", "path", f.path, "error", err)
		return
	}
	old := f.snap.Swap(newSnapshot(entries))
	f.log.Info("users file reloaded", "path", f.path, "users", len(entries))
	if f.onRevoked != nil && old != nil {
		if gone := revoked(old.users, entries); len(gone) > 0 {
			f.onRevoked(gone)
		}
	}
}

// revoked lists the users active in before that are disabled in or missing from after.
func revoked(before, after map[string]*entry) []User {
	var out []User
	for name, e := range before {
		if e.user.Disabled {
			continue
		}
		if n, ok := after[name]; !ok || n.user.Disabled {
			out = append(out, e.user)
		}
	}
	return out
}

// sameFile reports whether a and b describe the same file with the same content, as far as a
// stat can tell: same file (inode), modification time and size.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// hashParams are the parameters that decide what a verification costs.
type hashParams struct {
	memory, time    uint32
	threads         uint8
	saltLen, keyLen int
}

// newSnapshot builds a snapshot, with a dummy hash shaped like the file's most common hash.
func newSnapshot(entries map[string]*entry) *snapshot {
	best := hashParams{DefaultMemory, DefaultTime, DefaultThreads, DefaultSaltLen, DefaultKeyLen}
	counts := map[hashParams]int{}
	bestCount := 0
	for _, e := range entries {
		if !e.hasHash {
			continue
		}
		p := hashParams{e.hash.Memory, e.hash.Time, e.hash.Threads, len(e.hash.Salt), len(e.hash.Key)}
		counts[p]++
		// Ties go to the costlier parameters, so the choice does not depend on map order.
		if c := counts[p]; c > bestCount || (c == bestCount && costlier(p, best)) {
			best, bestCount = p, c
		}
	}
	dummy := Hash{
		Memory:  best.memory,
		Time:    best.time,
		Threads: best.threads,
		Salt:    make([]byte, best.saltLen),
		Key:     make([]byte, best.keyLen),
	}
	// crypto/rand.Read never returns an error (it crashes the program instead).
	_, _ = rand.Read(dummy.Salt)
	_, _ = rand.Read(dummy.Key)
	return &snapshot{users: entries, dummy: dummy}
}

// costlier orders parameters by cost, then by the remaining fields, as a total order.
func costlier(a, b hashParams) bool {
	ca, cb := uint64(a.memory)*uint64(a.time), uint64(b.memory)*uint64(b.time)
	switch {
	case ca != cb:
		return ca > cb
	case a.threads != b.threads:
		return a.threads < b.threads // fewer lanes: slower
	case a.memory != b.memory:
		return a.memory > b.memory
	case a.keyLen != b.keyLen:
		return a.keyLen > b.keyLen
	}
	return a.saltLen > b.saltLen
}

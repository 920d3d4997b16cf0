// Package directory holds zonegate's users and groups, read from a YAML users file.
//
// The file format is Authelia's file backend, so an Authelia users file works as is (as long as
// its passwords are argon2id hashes):
//
//	users:
//	  alice:
//	    displayname: "Alice Admin"
//	    email: alice@example.com
//	    password: "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>"
//	    groups: [admins]
//	    disabled: false
//	    id: 4f1c...   # optional stable subject; defaults to the username
//
// Authelia's optional profile fields (given_name, family_name, locale, address, extra, ...) are
// accepted and ignored; any other field is an error, so typos do not pass silently.
package directory

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// User is one account from the users file.
type User struct {
	ID       string   // stable subject; the username unless the file sets id
	Username string   // as keyed in the file, lower-cased
	Name     string   // display name; the username when the file sets none
	Email    string   // may be empty
	Groups   []string // in file order, without duplicates
	Disabled bool     // a disabled user never authenticates
}

// clone returns u with its own copy of Groups, so callers cannot change a shared snapshot.
func (u User) clone() User {
	u.Groups = slices.Clone(u.Groups)
	return u
}

// ErrInvalidCredentials is the one error callers show: wrong user, wrong password and disabled
// account look the same.
var ErrInvalidCredentials = errors.New("invalid username or password")

// Reasons an AuthError carries.
const (
	ReasonUnknownUser   = "unknown_user"   // no such user
	ReasonWrongPassword = "wrong_password" // the password does not match (or is empty or too long)
	ReasonDisabled      = "disabled"       // the account is disabled
)

// AuthError says why an authentication failed, for logs only; show users
// ErrInvalidCredentials.Error() instead. errors.Is(err, ErrInvalidCredentials) is true.
type AuthError struct {
	Reason string // ReasonUnknownUser, ReasonWrongPassword or ReasonDisabled
}

// Error returns the shared message with the reason appended.
func (e *AuthError) Error() string {
	return ErrInvalidCredentials.Error() + " (" + e.Reason + ")"
}

// Is reports whether target is ErrInvalidCredentials.
func (e *AuthError) Is(target error) bool { return target == ErrInvalidCredentials }

// Options configures OpenFile.
type Options struct {
	// ReloadInterval is how often the file is checked for changes (modification time, size,
	// identity). Zero means 2s; a negative value disables reloading.
	ReloadInterval time.Duration
	// Logger receives reload events; it never sees a password or a hash. Nil discards.
	Logger *slog.Logger
	// MaxConcurrent is how many password verifications may run at once; more wait for a turn
	// (or give up when their context ends). Each costs the hash's memory (19 MiB for
	// HashPassword's), so this bounds what a flood of logins can allocate. Zero means
	// 2 x GOMAXPROCS.
	MaxConcurrent int
	// OnRevoked, when set, is called after a reload with the users that were active before and
	// are now disabled or gone from the file, so their sessions can be ended. It runs on the
	// reload goroutine.
	OnRevoked func(users []User)
}

// DefaultReloadInterval is the ReloadInterval used when Options leaves it zero.
const DefaultReloadInterval = 2 * time.Second

// NormalizeUsername returns the form usernames are matched in: spaces trimmed, lower-cased.
func NormalizeUsername(username string) string {
	return strings.ToLower(strings.TrimSpace(username))
}

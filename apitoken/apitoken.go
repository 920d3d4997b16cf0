// Package apitoken issues and checks the admin API's bearer tokens.
package apitoken

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zonegate/zonegate/store"
)

// Sentinel errors. Returned errors wrap them; test with errors.Is. No error text holds a
// token's secret.
var (
	// ErrInvalidToken means the presented token is malformed, unknown, revoked, idle-expired or
	// has the wrong secret. The caller answers 401 without saying which; the error text says
	// which, for the log.
	ErrInvalidToken = errors.New("apitoken: invalid token")
	// ErrNotFound means no token has that id (Revoke). Errors wrapping it also wrap
	// store.ErrNotFound.
	ErrNotFound = errors.New("apitoken: no such token")
)

// KindToken is the store kind of API tokens; every record has Owner OwnerTokens.
const (
	KindToken   store.Kind = "api_token"
	OwnerTokens            = "api_tokens"
)

// DefaultIdleTimeout is how long an unused token lives when Config.IdleTimeout is zero.
const DefaultIdleTimeout = 30 * 24 * time.Hour

// MinIdleTimeout is the shortest Config.IdleTimeout New accepts: expiry slides in steps of
// lastUsedInterval, so it must be much longer than that.
const MinIdleTimeout = 10 * time.Minute

const (
	idPrefix         = "zgt_"
	idRandLen        = 8  // base32 characters after the prefix (5 random bytes)
	secretBytes      = 32 // random bytes of the secret
	secretLen        = 43 // base64url characters of secretBytes, unpadded
	idLen            = len(idPrefix) + idRandLen
	tokenLen         = idLen + 1 + secretLen // id "_" secret
	lastUsedInterval = time.Minute           // LastUsed (and the idle expiry) is written at most this often
	maxNameLen       = 64                    // token name, in characters
	maxCreatedByLen  = 256                   // bytes
	createAttempts   = 4                     // new ids tried when one is taken
)

// idEncoding writes token ids: lowercase RFC 4648 base32, no padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// secretEncoding reads and writes the secret part; strict so each secret has one spelling.
var secretEncoding = base64.RawURLEncoding.Strict()

// Scope is what a token may do.
type Scope string

// The scopes.
const (
	// ScopeRead allows reading only (GET and HEAD).
	ScopeRead Scope = "read"
	// ScopeReadWrite allows every admin API call.
	ScopeReadWrite Scope = "read-write"
)

// ParseScope returns the scope named s ("read" or "read-write").
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeReadWrite:
		return Scope(s), nil
	}
	return "", fmt.Errorf("API token scope %q: want %q or %q", truncate(s, 32), ScopeRead, ScopeReadWrite)
}

// Token is a token's metadata. It never holds the secret.
type Token struct {
	// ID is the public id, "zgt_" and 8 base32 characters. It is the start of the token string,
	// so checking a token is one lookup.
	ID string `json:"id"`
	// Name is the operator's label.
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	// Created is when the token was issued, CreatedBy by whom.
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	// LastUsed is when Check last accepted the token, to the minute: it is written at most
	// once a minute. Zero if never used.
	LastUsed time.Time `json:"last_used,omitzero"`
	// ExpiresAt is when the token expires unless used: LastUsed (or Created) plus the idle
	// timeout.
	ExpiresAt time.Time `json:"expires_at"`
}

// Allows reports whether the token may make a request: any request for read-write, only
// requests that change nothing (write false) for read.
func (t Token) Allows(write bool) bool {
	switch t.Scope {
	case ScopeReadWrite:
		return true
	case ScopeRead:
		return !write
	}
	return false
}

// record is what the store holds for a token: the metadata and SHA-256 of the secret.
type record struct {
	Token
	Hash []byte `json:"hash"`
}

// Config configures a Manager.
type Config struct {
	// Store keeps the tokens. Required.
	Store store.Store
	// IdleTimeout is how long a token lives without being used. Default 30 days; at least
	// MinIdleTimeout.
	IdleTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Manager issues, checks, lists and revokes API tokens. It is safe for concurrent use.
type Manager struct {
	st   store.Store
	idle time.Duration
	now  func() time.Time
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("API tokens: no store")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.IdleTimeout < MinIdleTimeout {
		return nil, fmt.Errorf("API tokens: idle timeout %s: want at least %s", cfg.IdleTimeout, MinIdleTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{st: cfg.Store, idle: cfg.IdleTimeout, now: cfg.Now}, nil
}

// Create issues a token. It returns the token string, "zgt_<id>_<secret>" with the secret 43
// base64url characters of 32 random bytes, which is shown once and stored nowhere (the store
// keeps its SHA-256), and the token's metadata.
func (m *Manager) Create(ctx context.Context, name string, scope Scope, createdBy string) (secret string, t Token, err error) {
	name, err = cleanName(name)
	if err != nil {
		return "", Token{}, fmt.Errorf("creating API token: %w", err)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", Token{}, fmt.Errorf("creating API token %q: %w", name, err)
	}
	if err := checkCreatedBy(createdBy); err != nil {
		return "", Token{}, fmt.Errorf("creating API token %q: %w", name, err)
	}
	var raw [secretBytes]byte
	rand.Read(raw[:]) // never fails (crypto/rand)
	sec := secretEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256(raw[:])
	now := m.now()
	for range createAttempts {
		id := newID()
		rec := record{
			Token: Token{ID: id, Name: name, Scope: scope, Created: now, CreatedBy: createdBy, ExpiresAt: now.Add(m.idle)},
			Hash:  sum[:],
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return "", Token{}, fmt.Errorf("creating API token %q: encoding: %w", name, err)
		}
		err = m.st.Create(ctx, store.Record{Kind: KindToken, ID: id, Owner: OwnerTokens, Value: b, ExpiresAt: rec.ExpiresAt})
		if errors.Is(err, store.ErrAlreadyExists) {
			continue // 40 random bits collided; take another id
		}
		if err != nil {
			return "", Token{}, fmt.Errorf("creating API token %q: %w", name, err)
		}
		return id + "_" + sec, rec.Token, nil
	}
	return "", Token{}, fmt.Errorf("creating API token %q: %d random ids were all taken", name, createAttempts)
}

// errFresh aborts the LastUsed update when another request recorded a use less than
// lastUsedInterval ago.
var errFresh = errors.New("last use recorded recently")

// Check returns the metadata of the presented token if it is valid: well formed, known, with
// the right secret (compared in constant time), not revoked and not idle-expired. It records
// the use (LastUsed, and ExpiresAt slides) at most once a minute. Errors wrap ErrInvalidToken
// (answer 401) or are the store's (answer 503; they never wrap ErrInvalidToken).
func (m *Manager) Check(ctx context.Context, presented string) (Token, error) {
	id, raw, err := parse(presented)
	if err != nil {
		return Token{}, fmt.Errorf("checking API token: %w: %w", ErrInvalidToken, err)
	}
	r, err := m.st.Get(ctx, KindToken, id)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, fmt.Errorf("checking API token %q: %w: unknown id (never issued, revoked or expired)", id, ErrInvalidToken)
	}
	if err != nil {
		return Token{}, fmt.Errorf("checking API token %q: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return Token{}, fmt.Errorf("checking API token %q: decoding its record: %w: %w", id, store.ErrUnavailable, err)
	}
	sum := sha256.Sum256(raw[:])
	if subtle.ConstantTimeCompare(sum[:], rec.Hash) != 1 {
		return Token{}, fmt.Errorf("checking API token %q: %w: wrong secret", id, ErrInvalidToken)
	}
	now := m.now()
	if !now.Before(rec.ExpiresAt) {
		return Token{}, fmt.Errorf("checking API token %q: %w: expired after being idle since %s", id, ErrInvalidToken, rec.lastActive().UTC().Format(time.RFC3339))
	}
	if now.Sub(rec.LastUsed) < lastUsedInterval {
		return rec.Token, nil
	}
	var out Token
	_, err = m.st.Update(ctx, KindToken, id, func(cur store.Record) (store.Record, error) {
		var c record
		if err := json.Unmarshal(cur.Value, &c); err != nil {
			return cur, fmt.Errorf("decoding its record: %w: %w", store.ErrUnavailable, err)
		}
		if subtle.ConstantTimeCompare(c.Hash, rec.Hash) != 1 {
			return cur, fmt.Errorf("%w: replaced meanwhile", ErrInvalidToken)
		}
		if now.Sub(c.LastUsed) < lastUsedInterval {
			out = c.Token
			return cur, errFresh
		}
		c.LastUsed = now
		c.ExpiresAt = now.Add(m.idle)
		b, err := json.Marshal(c)
		if err != nil {
			return cur, fmt.Errorf("encoding its record: %w", err)
		}
		cur.Value, cur.ExpiresAt = b, c.ExpiresAt
		out = c.Token
		return cur, nil
	})
	switch {
	case err == nil || errors.Is(err, errFresh):
		return out, nil
	case errors.Is(err, store.ErrNotFound):
		return Token{}, fmt.Errorf("checking API token %q: %w: revoked or expired meanwhile", id, ErrInvalidToken)
	case errors.Is(err, ErrInvalidToken):
		return Token{}, fmt.Errorf("checking API token %q: %w", id, err)
	}
	return Token{}, fmt.Errorf("checking API token %q: recording its use: %w", id, err)
}

// lastActive is when the token was last used, or created if never.
func (r record) lastActive() time.Time {
	if r.LastUsed.After(r.Created) {
		return r.LastUsed
	}
	return r.Created
}

// List returns the live tokens, oldest first.
func (m *Manager) List(ctx context.Context) ([]Token, error) {
	rs, err := m.st.ListByOwner(ctx, KindToken, OwnerTokens)
	if err != nil {
		return nil, fmt.Errorf("listing API tokens: %w", err)
	}
	now := m.now()
	out := make([]Token, 0, len(rs))
	for _, r := range rs {
		var rec record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			return nil, fmt.Errorf("listing API tokens: decoding %q: %w: %w", r.ID, store.ErrUnavailable, err)
		}
		if now.Before(rec.ExpiresAt) {
			out = append(out, rec.Token)
		}
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Revoke deletes the token with id id; Check refuses it from then on. An unknown id gives an
// error wrapping ErrNotFound (and store.ErrNotFound).
func (m *Manager) Revoke(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("revoking API token %q: %w: %w", truncate(id, idLen), ErrNotFound, store.ErrNotFound)
	}
	if _, err := m.st.Take(ctx, KindToken, id); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revoking API token %q: %w: %w", id, ErrNotFound, err)
	} else if err != nil {
		return fmt.Errorf("revoking API token %q: %w", id, err)
	}
	return nil
}

// FromRequest returns the token of an "Authorization: Bearer <token>" header, or "SSWS
// <token>" as Okta's clients send it (scheme case-insensitive). It reports false when there is
// no such header, more than one Authorization header, or anything else in it.
func FromRequest(r *http.Request) (string, bool) {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vs[0], " ")
	if !ok || !(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "SSWS")) {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", false
	}
	return tok, true
}

// parse splits a token string into its id and the secret's bytes. Its errors never hold the
// token or any part of the secret.
func parse(s string) (id string, raw [secretBytes]byte, err error) {
	if len(s) != tokenLen {
		return "", raw, fmt.Errorf("malformed: %d bytes, want %d", len(s), tokenLen)
	}
	id, sec := s[:idLen], s[idLen+1:]
	if !validID(id) {
		return "", raw, errors.New("malformed: bad id")
	}
	if s[idLen] != '_' {
		return "", raw, errors.New("malformed: no separator after the id")
	}
	var src [secretLen]byte
	copy(src[:], sec)
	if n, err := secretEncoding.Decode(raw[:], src[:]); err != nil || n != secretBytes {
		return "", [secretBytes]byte{}, errors.New("malformed: secret is not base64url of 32 bytes")
	}
	return id, raw, nil
}

// validID reports whether id has the form of a token id.
func validID(id string) bool {
	if len(id) != idLen || !strings.HasPrefix(id, idPrefix) {
		return false
	}
	for _, c := range []byte(id[len(idPrefix):]) {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// newID returns a random token id.
func newID() string {
	var b [5]byte
	rand.Read(b[:])
	return idPrefix + idEncoding.EncodeToString(b[:])
}

// cleanName trims a token name and checks it.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errors.New("token name is empty")
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fmt.Errorf("token name %q is not printable text", truncate(name, maxNameLen))
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", fmt.Errorf("token name is longer than %d characters", maxNameLen)
	}
	return name, nil
}

// checkCreatedBy checks the creator's label.
func checkCreatedBy(by string) error {
	switch {
	case strings.TrimSpace(by) == "":
		return errors.New("creator is empty")
	case len(by) > maxCreatedByLen:
		return fmt.Errorf("creator is longer than %d bytes", maxCreatedByLen)
	case !utf8.ValidString(by) || strings.IndexFunc(by, unicode.IsControl) >= 0:
		return fmt.Errorf("creator %q is not printable text", truncate(by, 64))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

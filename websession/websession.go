// Package websession keeps server-side web sessions: the cookie holds only a signed session id.
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/zonegate/zonegate/store"
)

// ErrNoSession means the request has no usable session: no cookie, a cookie whose signature
// does not verify, or a session that is unknown, revoked, or past its idle or absolute expiry.
var ErrNoSession = errors.New("websession: no valid session")

// Session is one signed-in browser, as stored.
type Session struct {
	// ID names the session in the store, in logs and as the IdP's sid claim. It is the SHA-256
	// of the secret token in the cookie, so neither the store nor a log line holds a token
	// that signs anyone in.
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`           // "idp" (single sign-on at the issuer) or "gate" (one protected host)
	Host     string    `json:"host,omitempty"` // the protected host, for gate sessions
	UserID   string    `json:"uid"`
	Username string    `json:"username"`
	Name     string    `json:"name,omitempty"`
	Email    string    `json:"email,omitempty"`
	Groups   []string  `json:"groups,omitempty"`
	AMR      []string  `json:"amr,omitempty"`
	AuthTime time.Time `json:"auth_time"`
	ParentID string    `json:"parent,omitempty"` // a gate session's IdP session (the sid claim)
	// Predecessors are the IdP sessions of the same user this one replaced when the user
	// signed in again (step-up, prompt=login), newest last: ending this session ends what
	// was started under them too.
	Predecessors []string `json:"prev,omitempty"`
	// DeviceID is the device a gate session was started from (its client certificate), so a
	// device falling out of compliance can end its sessions.
	DeviceID string `json:"device,omitempty"`
	// Behavior are the signals the sign-in behind the session was flagged with
	// ("new_country", "impossible_travel", ...), for policies.
	Behavior    []string      `json:"behavior,omitempty"`
	CreatedAt   time.Time     `json:"created"`
	LastSeenAt  time.Time     `json:"last_seen"`
	ExpiresAt   time.Time     `json:"expires"` // absolute expiry
	IdleTimeout time.Duration `json:"idle"`
}

// Config configures a Manager.
type Config struct {
	// Store keeps the sessions (kind store.KindSession, owner = user id).
	Store store.Store
	// CookieName is the session cookie's name.
	CookieName string
	// Keys sign the cookie (HMAC-SHA256): the first signs, every one verifies, so keys can
	// rotate. Each at least 32 bytes.
	Keys [][]byte
	// Persistent makes the cookie outlive the browser (Max-Age = the absolute timeout);
	// otherwise it is a browser-session cookie.
	Persistent bool
	// IdleTimeout ends a session not used for this long. Default 1 hour.
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after sign-in, used or not. Default 12 hours.
	AbsoluteTimeout time.Duration
	// CacheTTL is how long a loaded session is reused from memory before it is read from the
	// store again. Default 2 seconds; negative disables the cache. A revocation through any
	// Manager sharing the Cache is seen at once.
	CacheTTL time.Duration
	// Cache is shared by Managers of one process so a revocation through one is seen by all.
	// Nil gives the Manager its own.
	Cache *Cache
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Manager loads, starts and ends sessions. It is also a gorilla sessions.Store.
type Manager struct {
	cfg      Config
	sessions store.Collection[Session]
	codecs   []securecookie.Codec
	cache    *Cache
	touch    time.Duration
	verified verifiedCookies
}

// New checks cfg, fills defaults and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("websession: no store")
	}
	if cfg.CookieName == "" {
		return nil, errors.New("websession: no cookie name")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("websession: no cookie signing key")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.AbsoluteTimeout == 0 {
		cfg.AbsoluteTimeout = 12 * time.Hour
	}
	if cfg.IdleTimeout < 0 || cfg.AbsoluteTimeout < 0 {
		return nil, errors.New("websession: timeouts must be positive")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Cache == nil {
		cfg.Cache = NewCache()
	}
	m := &Manager{
		cfg:      cfg,
		sessions: store.Collection[Session]{Store: cfg.Store, Kind: store.KindSession},
		cache:    cfg.Cache,
	}
	for i, k := range cfg.Keys {
		if len(k) < 32 {
			return nil, fmt.Errorf("websession: cookie key %d is shorter than 32 bytes", i+1)
		}
		c := securecookie.New(k, nil)
		c.SetSerializer(securecookie.NopEncoder{})
		c.MaxAge(int(cfg.AbsoluteTimeout / time.Second))
		c.MaxLength(512)
		m.codecs = append(m.codecs, c)
	}
	// Refresh LastSeenAt in the store at most this often: idle expiry stays accurate to a
	// fraction of the timeout without a write on every request.
	m.touch = min(cfg.IdleTimeout/8, time.Minute)
	return m, nil
}

// CookieName returns the name of the session cookie.
func (m *Manager) CookieName() string { return m.cfg.CookieName }

// Load returns the request's live session, ErrNoSession, or an error wrapping
// store.ErrUnavailable when the store cannot say.
func (m *Manager) Load(r *http.Request) (*Session, error) {
	id, ok := m.cookieID(r)
	if !ok {
		return nil, ErrNoSession
	}
	return m.Get(r.Context(), id)
}

// Get returns the live session with id (see Load for the errors).
func (m *Manager) Get(ctx context.Context, id string) (*Session, error) {
	now := m.cfg.Now()
	if m.cfg.CacheTTL > 0 {
		if s, ok := m.cache.get(id, now); ok {
			if err := m.live(s, now); err != nil {
				return nil, err
			}
			if now.Sub(s.LastSeenAt) < m.touch {
				return s, nil
			}
		}
	}
	s, err := m.sessions.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		m.cache.remove(id)
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	if err := m.live(&s, now); err != nil {
		m.cache.remove(id)
		return nil, err
	}
	if now.Sub(s.LastSeenAt) >= m.touch {
		s, err = m.sessions.Update(ctx, id, func(old Session) (Session, time.Time, error) {
			old.LastSeenAt = now
			return old, m.recordExpiry(&old), nil
		})
		if errors.Is(err, store.ErrNotFound) {
			m.cache.remove(id)
			return nil, ErrNoSession
		}
		if err != nil {
			return nil, fmt.Errorf("refreshing session: %w", err)
		}
	}
	p := &s
	if m.cfg.CacheTTL > 0 {
		m.cache.put(id, p, now, now.Add(m.cfg.CacheTTL))
	}
	return p, nil
}

func (m *Manager) live(s *Session, now time.Time) error {
	if !now.Before(s.ExpiresAt) {
		return ErrNoSession
	}
	if s.IdleTimeout > 0 && now.Sub(s.LastSeenAt) >= s.IdleTimeout {
		return ErrNoSession
	}
	return nil
}

// recordExpiry is when the stored record may go: the earlier of idle and absolute expiry.
func (m *Manager) recordExpiry(s *Session) time.Time {
	if s.IdleTimeout > 0 {
		if idle := s.LastSeenAt.Add(s.IdleTimeout); idle.Before(s.ExpiresAt) {
			return idle
		}
	}
	return s.ExpiresAt
}

// Start stores s as a new session (ID, CreatedAt, LastSeenAt, ExpiresAt and IdleTimeout are
// filled here) and sets the cookie.
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, s Session) (*Session, error) {
	now := m.cfg.Now()
	token := NewID()
	s.ID = hashToken(token)
	s.CreatedAt = now
	s.LastSeenAt = now
	s.ExpiresAt = now.Add(m.cfg.AbsoluteTimeout)
	s.IdleTimeout = m.cfg.IdleTimeout
	if err := m.sessions.Create(r.Context(), s.ID, s.UserID, m.recordExpiry(&s), s); err != nil {
		return nil, fmt.Errorf("starting session: %w", err)
	}
	if err := m.setCookie(w, r, token); err != nil {
		return nil, err
	}
	return &s, nil
}

func (m *Manager) setCookie(w http.ResponseWriter, r *http.Request, token string) error {
	v, err := securecookie.EncodeMulti(m.cfg.CookieName, []byte(token), m.codecs...)
	if err != nil {
		return fmt.Errorf("signing session cookie: %w", err)
	}
	c := &http.Cookie{
		Name:     m.cfg.CookieName,
		Value:    v,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	}
	if m.cfg.Persistent {
		c.MaxAge = int(m.cfg.AbsoluteTimeout / time.Second)
	}
	http.SetCookie(w, c)
	return nil
}

// End deletes the request's session, if any, and clears the cookie.
func (m *Manager) End(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{
		Name: m.cfg.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode,
	})
	id, ok := m.cookieID(r)
	if !ok {
		return nil
	}
	return m.Revoke(r.Context(), id)
}

// Revoke deletes the session with id, and tells the other nodes sharing the store (when it
// can notify) to forget any copy they cached.
func (m *Manager) Revoke(ctx context.Context, id string) error {
	m.cache.remove(id)
	if err := m.sessions.Delete(ctx, id); err != nil {
		return fmt.Errorf("revoking session: %w", err)
	}
	m.announce(ctx, id)
	return nil
}

// announce publishes a revoked session id. A lost message costs the other nodes at most the
// cache TTL, so a failure here does not undo the revocation.
func (m *Manager) announce(ctx context.Context, id string) {
	if n, ok := m.cfg.Store.(store.Notifier); ok {
		_ = n.Publish(ctx, revokedChannel, id)
	}
}

// RevokeUser deletes every session of a user and says how many there were.
func (m *Manager) RevokeUser(ctx context.Context, userID string) (int, error) {
	list, err := m.sessions.ListByOwner(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("listing sessions of a user: %w", err)
	}
	for _, s := range list {
		m.cache.remove(s.ID)
	}
	n, err := m.sessions.DeleteByOwner(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("revoking sessions of a user: %w", err)
	}
	for _, s := range list {
		m.announce(ctx, s.ID)
	}
	return n, nil
}

// List returns the live sessions of a user, of every kind, in no set order.
func (m *Manager) List(ctx context.Context, userID string) ([]Session, error) {
	list, err := m.sessions.ListByOwner(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sessions of a user: %w", err)
	}
	now := m.cfg.Now()
	live := list[:0]
	for _, s := range list {
		if m.live(&s, now) == nil {
			live = append(live, s)
		}
	}
	return live, nil
}

// RevokeChildren deletes the sessions of a user whose ParentID is parentID (the gate sessions
// that came from one IdP session) and says how many.
func (m *Manager) RevokeChildren(ctx context.Context, userID, parentID string) (int, error) {
	if parentID == "" {
		return 0, nil
	}
	return m.RevokeMatching(ctx, userID, func(s *Session) bool { return s.ParentID == parentID })
}

// RevokeMatching deletes the sessions of a user for which match is true and says how many.
func (m *Manager) RevokeMatching(ctx context.Context, userID string, match func(*Session) bool) (int, error) {
	list, err := m.sessions.ListByOwner(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("listing sessions of a user: %w", err)
	}
	n := 0
	for i := range list {
		if !match(&list[i]) {
			continue
		}
		if err := m.Revoke(ctx, list[i].ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// cookieID returns the ID of the session the request's cookie names.
func (m *Manager) cookieID(r *http.Request) (string, bool) {
	c, err := r.Cookie(m.cfg.CookieName)
	if err != nil || c.Value == "" {
		return "", false
	}
	now := m.cfg.Now()
	if id, ok := m.verified.get(c.Value, now); ok {
		return id, true
	}
	var token []byte
	if err := securecookie.DecodeMulti(m.cfg.CookieName, c.Value, &token, m.codecs...); err != nil {
		return "", false
	}
	if len(token) == 0 {
		return "", false
	}
	id := hashToken(string(token))
	m.verified.put(c.Value, id, now)
	return id, true
}

// hashToken turns a cookie's secret token into the session's ID.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewID returns a random 256-bit identifier, URL-safe.
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("websession: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

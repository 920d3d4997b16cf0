// Package redis is zonegate's store on Redis (standalone, Sentinel or Cluster), for several gateways sharing users.
//
// # Keys
//
// With the default prefix "zonegate:", a record of kind session and id abc is the hash
//
//	zonegate:{session:abc}          fields v=value, o=owner, e=ExpiresAt in unix milliseconds
//	                                (0: never), n=version, c=incarnation, i=index stamp
//
// and the ids of owner alice's session records are the sorted set
//
//	zonegate:{session/owner:alice}  member=id, score=index stamp
//
// The braces are Redis Cluster hash tags: every key is hashed on what is between them, so a
// record's key never straddles slots. The owner index uses "/owner:" rather than ":owner:" so
// that no record id can ever name an index key (kinds cannot contain '/' or ':').
//
// # Records
//
// Every change to a record is one Lua script on the record's key alone, so it is atomic on any
// topology. Create starts Version at 1 (also when it replaces an expired record, as the bolt
// store does) and gives the record a random incarnation c, so that an Update which read an
// earlier record of the same id can never overwrite a later one whose version happens to match.
// Update is optimistic: it reads the record, calls fn, and writes with a script that succeeds
// only if c and n are unchanged; on a conflict it runs fn again (at most maxUpdateAttempts
// times).
//
// # Expiry
//
// Visibility never depends on Redis TTLs: every read compares e with Options.Now (so tests can
// inject a clock), expired records are missing, and a read that finds one deletes it. Redis TTLs
// only reclaim memory: a record that expires gets PEXPIRE (ExpiresAt - Now + expiryMargin), which
// with the real clock is its expiry plus the margin; a record without expiry has no TTL.
//
// # Owner index
//
// A record and its owner index are in different slots, so they cannot change in one
// transaction on Cluster. The index is kept correct without one: it may hold entries whose
// record is gone, belongs to someone else, or has expired (readers check every record and skip
// those), but it must never miss a live record, or DeleteByOwner (revoking a user's sessions)
// would miss it. So:
//
//   - A writer adds the id to the new owner's index before it writes the record. If the write
//     then fails, or the process dies in between, the index has a stale entry, which is harmless.
//   - Each add gives the entry a fresh stamp (the index's server time in microseconds, strictly
//     increasing per index), and the record remembers the stamp of its entry in field i.
//   - An operation that removed or moved a record (Delete, Take, Update, DeleteByOwner, a read
//     that deleted an expired record) removes the old entry only if its stamp is still the one
//     that record had: if another writer re-added the id meanwhile, the entry is theirs and stays.
//   - ListByOwner and DeleteByOwner remove other stale entries they meet only when the entry is
//     older than indexGrace: a younger entry may belong to a writer that has added it but not
//     yet written its record.
//
// An index key gets the longest TTL of the records added to it and none once a record without
// expiry is added, so it never expires before a record it lists.
//
// Scripts read the server clock (TIME) before writing, which needs Redis 5 or later.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/zonegate/zonegate/store"
)

// Options say which Redis to use and how. Exactly one of URL, MasterName with SentinelAddrs, or
// ClusterAddrs must be set.
type Options struct {
	// URL is a standalone server: redis://[[user]:password@]host[:port][/db], or rediss:// for
	// TLS. go-redis query options (dial_timeout=3s, ...) are accepted.
	URL string
	// MasterName and SentinelAddrs select a Sentinel-managed primary.
	MasterName    string
	SentinelAddrs []string
	// ClusterAddrs are seed nodes of a Redis Cluster.
	ClusterAddrs []string
	// Username and Password, when set, override what the URL says (the Caddy layer may read the
	// password from a file or the environment). For Sentinel they authenticate to the primary.
	Username, Password string
	// TLS enables TLS for Sentinel and Cluster. With a URL, rediss:// enables it and TLS, if
	// set, replaces the default configuration (for a private CA); TLS with redis:// is refused.
	TLS *tls.Config
	// KeyPrefix starts every key; default "zonegate:". It must not contain '{' or '}'.
	KeyPrefix string
	// Now is the clock expiry is computed with; default time.Now.
	Now func() time.Time
	// Logger receives the store's own events (failed background cleanups); default discards.
	Logger *slog.Logger
}

// Store is a store.Store on Redis. It is safe for concurrent use, also by several processes
// sharing the same Redis and prefix.
type Store struct {
	client goredis.UniversalClient
	prefix string
	now    func() time.Time
	logger *slog.Logger
}

const (
	defaultKeyPrefix = "zonegate:"
	// expiryMargin is how long Redis keeps a record after it expired (it is invisible by then).
	expiryMargin = time.Hour
	// maxUpdateAttempts bounds how often Update runs fn when other writers keep winning.
	maxUpdateAttempts = 100
	maxKindLen        = 64
	// maxKeyPartLen bounds ids and owners, as in the bolt store.
	maxKeyPartLen = 32 << 10
	// maxValueLen bounds a record's value; Redis itself allows 512 MiB.
	maxValueLen = 64 << 20
	// defaultMaxRetries and defaultDialerRetries keep an outage short on the decision path
	// (go-redis would try 4 commands of 5 dials each): a command is tried twice, a dial once,
	// which still rides over a connection that the server closed (a restart, a failover).
	defaultMaxRetries    = 1
	defaultDialerRetries = 1
)

// indexGrace is how old a stale owner index entry must be before a reader removes it: longer
// than any writer takes between adding the entry and writing its record. A variable for tests.
var indexGrace = 10 * time.Minute

// Open connects to Redis and checks the connection with PING. Errors name the address but
// never the password; an unreachable server gives an error wrapping store.ErrUnavailable.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = defaultKeyPrefix
	}
	if strings.ContainsAny(opts.KeyPrefix, "{}") {
		return nil, errors.New("opening Redis store: the key prefix must not contain '{' or '}' (they would put every key in one Cluster slot)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client, where, err := newClient(opts)
	if err != nil {
		return nil, fmt.Errorf("opening Redis store: %w", err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("opening Redis store at %s: %w: %w", where, store.ErrUnavailable, scrub(err, opts.Password, urlPassword(opts.URL)))
	}
	return &Store{client: client, prefix: opts.KeyPrefix, now: opts.Now, logger: opts.Logger}, nil
}

// newClient builds the go-redis client opts ask for and says where it connects, for errors.
func newClient(opts Options) (goredis.UniversalClient, string, error) {
	modes := 0
	if opts.URL != "" {
		modes++
	}
	if opts.MasterName != "" || len(opts.SentinelAddrs) > 0 {
		modes++
	}
	if len(opts.ClusterAddrs) > 0 {
		modes++
	}
	if modes != 1 {
		return nil, "", errors.New("set exactly one of a URL, a Sentinel master name with Sentinel addresses, or Cluster addresses")
	}
	switch {
	case opts.URL != "":
		o, err := parseURL(opts.URL, opts.TLS)
		if err != nil {
			return nil, "", err
		}
		if opts.Username != "" {
			o.Username = opts.Username
		}
		if opts.Password != "" {
			o.Password = opts.Password
		}
		o.ContextTimeoutEnabled = true
		if o.MaxRetries == 0 {
			o.MaxRetries = defaultMaxRetries
		}
		o.DialerRetries = defaultDialerRetries
		where := o.Addr
		if o.DB != 0 {
			where = fmt.Sprintf("%s (db %d)", o.Addr, o.DB)
		}
		return goredis.NewClient(o), where, nil
	case len(opts.ClusterAddrs) > 0:
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:                 opts.ClusterAddrs,
			Username:              opts.Username,
			Password:              opts.Password,
			TLSConfig:             opts.TLS,
			ContextTimeoutEnabled: true,
			MaxRetries:            defaultMaxRetries,
			DialerRetries:         defaultDialerRetries,
		}), "cluster " + strings.Join(opts.ClusterAddrs, ","), nil
	default:
		if opts.MasterName == "" || len(opts.SentinelAddrs) == 0 {
			return nil, "", errors.New("a Sentinel setup needs both a master name and Sentinel addresses")
		}
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            opts.MasterName,
			SentinelAddrs:         opts.SentinelAddrs,
			Username:              opts.Username,
			Password:              opts.Password,
			TLSConfig:             opts.TLS,
			ContextTimeoutEnabled: true,
			MaxRetries:            defaultMaxRetries,
			DialerRetries:         defaultDialerRetries,
		}), fmt.Sprintf("Sentinel master %q via %s", opts.MasterName, strings.Join(opts.SentinelAddrs, ",")), nil
	}
}

// parseURL turns a redis:// or rediss:// URL into client options. Its errors never quote the
// URL's user info, and the parts they do quote are checked for the password.
func parseURL(raw string, tlsConf *tls.Config) (*goredis.Options, error) {
	const want = "want redis://[[user]:password@]host[:port][/db] or rediss://...; percent-encode special characters in the password"
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included, so say nothing of it.
		return nil, errors.New("the Redis URL is not a valid URL (" + want + ")")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, errors.New("the Redis URL has an unsupported scheme (" + want + ")")
	}
	// An '@' that url.Parse did not take as the end of the user info means a password with an
	// unescaped '/', '?' or '#' was split into host, path or fragment: refuse rather than send
	// part of it somewhere else (or print it in an error).
	if u.Host == "" {
		return nil, errors.New("the Redis URL has no host (" + want + ")")
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return nil, errors.New("the Redis URL has a '#' fragment (" + want + ")")
	}
	if at := strings.LastIndex(raw, "@"); at >= 0 && (u.User == nil || !strings.HasPrefix(raw[at+1:], u.Host)) {
		return nil, errors.New("the Redis URL has an '@' that does not end the user info (" + want + ")")
	}
	password, _ := u.User.Password()
	o, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("reading the Redis URL: %w", scrub(err, password))
	}
	if tlsConf != nil {
		if u.Scheme != "rediss" {
			return nil, errors.New("a TLS configuration is set but the Redis URL is redis:// (use rediss:// for TLS)")
		}
		c := tlsConf.Clone()
		if c.ServerName == "" {
			c.ServerName = u.Hostname()
		}
		o.TLSConfig = c
	}
	return o, nil
}

// urlPassword returns the password in a Redis URL, or "".
func urlPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// scrub returns err, or, if its text shows one of secrets, a plain error with the same text
// and the secrets replaced.
func scrub(err error, secrets ...string) error {
	msg := err.Error()
	leaked := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
			leaked = true
		}
	}
	if !leaked {
		return err
	}
	return errors.New(msg)
}

// Client returns the underlying go-redis client, for pub/sub by other packages. Closing the
// store closes it.
func (s *Store) Client() goredis.UniversalClient { return s.client }

// Health returns nil when Redis answers PING.
func (s *Store) Health(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.unavailable(ctx, opName{what: "checking Redis store health"}, err)
	}
	return nil
}

// Close closes the client. Methods called after Close return an error wrapping
// store.ErrUnavailable.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("closing Redis store: %w", err)
	}
	return nil
}

// opName says what a method was doing, for its errors. It is formatted only when an error
// needs it. Errors never quote ids (often bearer secrets) or owners.
type opName struct {
	what string // a format with one %s for kind, or plain text if kind is empty
	kind store.Kind
}

func (o opName) String() string {
	if o.kind == "" {
		return o.what
	}
	return fmt.Sprintf(o.what, o.kind)
}

// unavailable wraps an error from Redis (or the network) with store.ErrUnavailable.
func (s *Store) unavailable(ctx context.Context, op opName, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%s: %w: %w: %w", op, store.ErrUnavailable, ctxErr, err)
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

func notFound(op opName) error { return fmt.Errorf("%s: %w", op, store.ErrNotFound) }

// checkKind enforces the kind syntax: [a-z0-9_-]{1,64}.
func checkKind(kind store.Kind) error {
	if len(kind) == 0 || len(kind) > maxKindLen {
		return fmt.Errorf("invalid kind %q: want 1 to %d characters", kind, maxKindLen)
	}
	for _, c := range []byte(kind) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("invalid kind %q: want only a-z, 0-9, _ and -", kind)
		}
	}
	return nil
}

// validID reports whether id can name a record. Nothing is ever stored under another id.
func validID(id string) bool { return id != "" && len(id) <= maxKeyPartLen }

// checkRecord validates what a write would store, without quoting the owner.
func checkRecord(owner string, value []byte) error {
	if len(owner) > maxKeyPartLen {
		return fmt.Errorf("owner is %d bytes, more than %d", len(owner), maxKeyPartLen)
	}
	if len(value) > maxValueLen {
		return fmt.Errorf("value is %d bytes, more than %d", len(value), maxValueLen)
	}
	return nil
}

// recordKey is "<prefix>{<kind>:<id>}".
func (s *Store) recordKey(kind store.Kind, id string) string {
	return s.prefix + "{" + string(kind) + ":" + id + "}"
}

// indexKey is "<prefix>{<kind>/owner:<owner>}".
func (s *Store) indexKey(kind store.Kind, owner string) string {
	return s.prefix + "{" + string(kind) + "/owner:" + owner + "}"
}

var _ store.Store = (*Store)(nil)

package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/ratelimit"
	"github.com/zonegate/zonegate/store"
)

// Defaults of BruteForce.
const (
	DefaultAddressLimit  = 30          // sign-in attempts per client address per window
	DefaultAddressWindow = time.Minute // per-address counting window
	DefaultAddressBlock  = time.Minute // how long an address over the limit waits

	DefaultUserMaxFailures = 20               // failed sign-ins per username per window
	DefaultUserWindow      = 15 * time.Minute // per-username counting window
	DefaultUserLockout     = 15 * time.Minute // how long a locked-out account stays locked

	DefaultStuffingDistinctUsers = 10               // usernames one address may fail on per window
	DefaultStuffingWindow        = 10 * time.Minute // credential-stuffing counting window
	DefaultStuffingBlock         = 30 * time.Minute // how long a stuffing address is blocked
)

// Names of the limiter rules (part of their store keys).
const (
	ruleLoginAddress  = "login-ip"
	ruleLoginUser     = "login-user"
	ruleLoginStuffing = "login-stuffing"
)

// Reasons of refused sign-ins in the logs.
const (
	reasonLockedOut          = "locked_out"
	reasonAddressRateLimited = "address_rate_limited"
	reasonCredentialStuffing = "credential_stuffing"
)

// BruteForce configures the defenses of the sign-in form (POST /login) against password
// guessing. The counters live in Config.Store, so every node sharing the store enforces the
// same limits. The zero value applies the defaults; each field left zero takes its default.
// The client address is Config.ClientIP's; IPv6 addresses count per /64 (what one
// subscriber usually holds), IPv4 addresses one by one.
//
// The limits apply after the form's CSRF check and before the password is checked:
//
//   - Address: every sign-in attempt from a client address counts, successful or not. Past
//     AddressLimit attempts in AddressWindow the address gets 429 (Retry-After, no password
//     check) for AddressBlock. Every POST /login response carries this limiter's
//     X-Rate-Limit-Limit, -Remaining and -Reset headers.
//   - Account lockout: failed sign-ins count per username (trimmed and lower-cased, as the
//     directory matches them; unknown usernames count the same, so a lockout does not tell
//     who exists). The UserMaxFailures-th failure in UserWindow locks the account for
//     UserLockout, after which it unlocks by itself. While locked the password is still
//     checked, and the answer is exactly that of a wrong password, right password or not.
//     A successful sign-in clears the username's failures.
//   - Credential stuffing: failed sign-ins from one address against more than
//     StuffingDistinctUsers different usernames in StuffingWindow block the address (429)
//     for StuffingBlock.
//
// When the store cannot be read or written the sign-in is refused with 503 (fail closed).
type BruteForce struct {
	// Disabled turns every limit above off.
	Disabled bool

	// AddressLimit is how many sign-in attempts one client address may make per
	// AddressWindow. Default DefaultAddressLimit (30).
	AddressLimit int
	// AddressWindow is the per-address counting window. Default DefaultAddressWindow (1m).
	AddressWindow time.Duration
	// AddressBlock is how long an address over AddressLimit is refused, from the attempt
	// that crossed it. Default DefaultAddressBlock (1m).
	AddressBlock time.Duration

	// UserMaxFailures is how many failed sign-ins per username in UserWindow lock the
	// account: the failure that reaches it starts the lockout. At least 2. Default
	// DefaultUserMaxFailures (20).
	UserMaxFailures int
	// UserWindow is the per-username counting window. Default DefaultUserWindow (15m).
	UserWindow time.Duration
	// UserLockout is how long a locked-out account stays locked. Default
	// DefaultUserLockout (15m).
	UserLockout time.Duration

	// StuffingDistinctUsers is how many different usernames one client address may fail to
	// sign in as per StuffingWindow; one more blocks the address. Default
	// DefaultStuffingDistinctUsers (10).
	StuffingDistinctUsers int
	// StuffingWindow is the credential-stuffing counting window. Default
	// DefaultStuffingWindow (10m).
	StuffingWindow time.Duration
	// StuffingBlock is how long a credential-stuffing address is refused. Default
	// DefaultStuffingBlock (30m).
	StuffingBlock time.Duration
}

// withDefaults checks b and fills in its defaults.
func (b BruteForce) withDefaults() (BruteForce, error) {
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"address limit", &b.AddressLimit, DefaultAddressLimit},
		{"user max failures", &b.UserMaxFailures, DefaultUserMaxFailures},
		{"stuffing distinct users", &b.StuffingDistinctUsers, DefaultStuffingDistinctUsers},
	}
	for _, f := range ints {
		if *f.v < 0 {
			return b, fmt.Errorf("%s %d is negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if b.UserMaxFailures < 2 {
		return b, fmt.Errorf("user max failures %d: must be at least 2", b.UserMaxFailures)
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"address window", &b.AddressWindow, DefaultAddressWindow},
		{"address block", &b.AddressBlock, DefaultAddressBlock},
		{"user window", &b.UserWindow, DefaultUserWindow},
		{"user lockout", &b.UserLockout, DefaultUserLockout},
		{"stuffing window", &b.StuffingWindow, DefaultStuffingWindow},
		{"stuffing block", &b.StuffingBlock, DefaultStuffingBlock},
	}
	for _, f := range durs {
		if *f.v < 0 {
			return b, fmt.Errorf("%s %v is negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	return b, nil
}

// bruteForce holds the sign-in limiters; nil when BruteForce.Disabled.
type bruteForce struct {
	address  *ratelimit.Limiter // every attempt, per address key
	user     *ratelimit.Limiter // failures, per normalised username
	stuffing *ratelimit.Limiter // distinct usernames failed, per address key
}

// newBruteForce checks cfg (even when disabled) and builds its limiters on st; nil, nil
// when cfg.Disabled.
func newBruteForce(st store.Store, cfg BruteForce, now func() time.Time) (*bruteForce, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Disabled {
		return nil, nil
	}
	var bf bruteForce
	for _, l := range []struct {
		dst  **ratelimit.Limiter
		rule ratelimit.Rule
	}{
		{&bf.address, ratelimit.Rule{Name: ruleLoginAddress, Limit: cfg.AddressLimit, Window: cfg.AddressWindow, Block: cfg.AddressBlock}},
		// Limit is the failures allowed before the lockout: the one past it, the
		// UserMaxFailures-th, crosses it and starts the block.
		{&bf.user, ratelimit.Rule{Name: ruleLoginUser, Limit: cfg.UserMaxFailures - 1, Window: cfg.UserWindow, Block: cfg.UserLockout}},
		{&bf.stuffing, ratelimit.Rule{Name: ruleLoginStuffing, Limit: cfg.StuffingDistinctUsers, Window: cfg.StuffingWindow, Block: cfg.StuffingBlock}},
	} {
		if *l.dst, err = ratelimit.New(st, l.rule, now); err != nil {
			return nil, err
		}
	}
	return &bf, nil
}

// addressKey is the key a client address counts under: an IPv4 address as is, an IPv6
// address by its /64, and every unknown address (zero Addr) under one shared key.
func addressKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// loginAttempt is one POST /login that passed the CSRF check.
type loginAttempt struct {
	addr     netip.Addr
	addrKey  string
	userKey  string // normalised username
	username string // as typed, trimmed: for the form and the logs
	address  ratelimit.Result
	locked   bool // the account was locked out before this attempt
}

// loginHeaders sets the address limiter's headers on a POST /login response written
// before the attempt is counted (a form that cannot be read, an expired request, a failed
// CSRF check). Best effort: a store error leaves them out and the attempt, if it gets that
// far, fails closed when it is counted.
func (p *IdP) loginHeaders(w http.ResponseWriter, r *http.Request) {
	if p.brute == nil {
		return
	}
	res, err := p.brute.address.Check(r.Context(), addressKey(p.clientIP(r)))
	if err == nil {
		ratelimit.SetHeaders(w.Header(), res, p.now())
	}
}

// admitLogin counts the attempt against its address and decides, before the password is
// checked, whether it may go on. When it may not, it has answered (429 or 503) and returns
// false.
func (p *IdP) admitLogin(w http.ResponseWriter, r *http.Request, a *authRequest, username string) (*loginAttempt, bool) {
	ctx := r.Context()
	addr := p.clientIP(r)
	at := &loginAttempt{addr: addr, addrKey: addressKey(addr), userKey: directory.NormalizeUsername(username), username: username}
	if p.brute == nil {
		return at, true
	}
	res, err := p.brute.address.Hit(ctx, at.addrKey)
	if err != nil {
		p.limiterFailed(w, r, a, at, err)
		return nil, false
	}
	at.address = res
	ratelimit.SetHeaders(w.Header(), res, p.now())
	if !res.Allowed {
		p.refuseAddress(w, r, a, at, reasonAddressRateLimited, res.Reset)
		return nil, false
	}
	st, err := p.brute.stuffing.Check(ctx, at.addrKey)
	if err != nil {
		p.limiterFailed(w, r, a, at, err)
		return nil, false
	}
	if !st.Allowed {
		p.refuseAddress(w, r, a, at, reasonCredentialStuffing, st.Reset)
		return nil, false
	}
	u, err := p.brute.user.Check(ctx, at.userKey)
	if err != nil {
		p.limiterFailed(w, r, a, at, err)
		return nil, false
	}
	at.locked = !u.Allowed
	return at, true
}

// loginFailed counts a refused sign-in (a wrong password, an unknown or disabled user, or
// any attempt on a locked-out account) against the username and the address. It returns
// false after answering itself: 503 when the store fails, 429 when this failure showed
// credential stuffing. Otherwise the caller answers as for a wrong password.
func (p *IdP) loginFailed(w http.ResponseWriter, r *http.Request, a *authRequest, at *loginAttempt) bool {
	if p.brute == nil {
		return true
	}
	ctx := r.Context()
	// Counted while locked too (a no-op for a blocked key), so a locked account costs the
	// same store work as any other.
	u, err := p.brute.user.Hit(ctx, at.userKey)
	if err != nil {
		p.limiterFailed(w, r, a, at, err)
		return false
	}
	if !u.Allowed && !at.locked {
		p.log.WarnContext(ctx, "idp: account locked out after repeated sign-in failures",
			slog.String("event", "user.account.lock"), slog.String("username", at.userKey),
			slog.String("address", at.addr.String()), slog.Time("until", u.Reset))
		p.emit(ctx, r, Event{Type: "user.account.lock", Outcome: "SUCCESS", Severity: "WARN", Reason: "too_many_failures",
			Username: at.userKey, Details: map[string]string{"until": u.Reset.UTC().Format(time.RFC3339)}})
		if p.onLockout != nil {
			if user, ok := p.users.Lookup(at.userKey); ok {
				p.onLockout(ctx, user.ID, u.Reset)
			}
		}
	}
	st, err := p.brute.stuffing.HitDistinct(ctx, at.addrKey, at.userKey)
	if err != nil {
		p.limiterFailed(w, r, a, at, err)
		return false
	}
	if !st.Allowed {
		p.log.WarnContext(ctx, "idp: credential stuffing: sign-in failures for too many usernames from one address",
			slog.String("event", "security.threat.detected"), slog.String("address", at.addr.String()),
			slog.String("address_key", at.addrKey), slog.Int("distinct_usernames", p.brute.stuffing.Rule().Limit+1),
			slog.Time("until", st.Reset))
		p.emit(ctx, r, Event{Type: "security.threat.detected", Outcome: "DENY", Severity: "WARN", Reason: reasonCredentialStuffing,
			Details: map[string]string{"until": st.Reset.UTC().Format(time.RFC3339)}})
		p.refuseAddress(w, r, a, at, reasonCredentialStuffing, st.Reset)
		return false
	}
	return true
}

// loginSucceeded clears the username's failures. It returns false after answering 503 when
// the store fails.
func (p *IdP) loginSucceeded(w http.ResponseWriter, r *http.Request, a *authRequest, at *loginAttempt) bool {
	if p.brute == nil {
		return true
	}
	if err := p.brute.user.Reset(r.Context(), at.userKey); err != nil {
		p.limiterFailed(w, r, a, at, err)
		return false
	}
	return true
}

// ClearLockout forgets the sign-in failures of username, ending a lockout they caused (an
// administrator unlocking the account).
func (p *IdP) ClearLockout(ctx context.Context, username string) error {
	if p.brute == nil {
		return nil
	}
	if err := p.brute.user.Reset(ctx, directory.NormalizeUsername(username)); err != nil {
		return fmt.Errorf("idp: clearing the lockout of %q: %w", username, err)
	}
	return nil
}

// refuseAddress answers 429 with the sign-in form and a message saying when to come back.
// The rate-limit headers show the address limiter's limit, nothing left, and until.
func (p *IdP) refuseAddress(w http.ResponseWriter, r *http.Request, a *authRequest, at *loginAttempt, reason string, until time.Time) {
	now := p.now()
	ratelimit.SetHeaders(w.Header(), ratelimit.Result{Limit: p.brute.address.Rule().Limit, Reset: until}, now)
	p.log.InfoContext(r.Context(), "idp: sign-in refused", slog.String("username", at.username),
		slog.String("reason", reason), slog.String("client_id", a.ClientID),
		slog.String("address", at.addr.String()), slog.Time("until", until))
	p.observeSignIn(amrPassword, reason)
	p.showLogin(w, r, http.StatusTooManyRequests, a, at.username, tooManyAttemptsMessage(until.Sub(now)))
}

// tooManyAttemptsMessage tells the user how long to wait, in whole minutes rounded up.
func tooManyAttemptsMessage(wait time.Duration) string {
	minutes := max(int((wait+time.Minute-1)/time.Minute), 1)
	unit := "minutes"
	if minutes == 1 {
		unit = "minute"
	}
	return "Too many sign-in attempts from your network. Try again in " + strconv.Itoa(minutes) + " " + unit + "."
}

// limiterFailed answers 503 when a limiter's store fails: the attempt is not let through
// unchecked.
func (p *IdP) limiterFailed(w http.ResponseWriter, r *http.Request, a *authRequest, at *loginAttempt, err error) {
	level := slog.LevelError
	if errors.Is(err, context.Canceled) {
		level = slog.LevelInfo
	}
	p.log.Log(r.Context(), level, "idp: sign-in refused: brute-force limits could not be checked",
		slog.String("username", at.username), slog.String("address", at.addr.String()), slog.Any("error", err))
	p.showLogin(w, r, http.StatusServiceUnavailable, a, at.username, msgUnavailable)
}

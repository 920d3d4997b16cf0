package idp

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/ratelimit"
	"github.com/zonegate/zonegate/store"
)

// withBruteForce sets Config.BruteForce.
func withBruteForce(bf BruteForce) envOption {
	return func(c *Config) { c.BruteForce = bf }
}

// withHeaderClientIP takes the browser's address from testIPHeader (see browserAt).
func withHeaderClientIP() envOption {
	return func(c *Config) {
		c.ClientIP = func(r *http.Request) netip.Addr {
			a, _ := netip.ParseAddr(r.Header.Get(testIPHeader))
			return a
		}
	}
}

// login is a browser at the sign-in form of one authorization request of the web client.
type login struct {
	t    testing.TB
	b    *browser
	form page
}

// newLogin starts an authorization request in a new browser (at ip, or the default peer
// address when ip is empty) and opens its sign-in form.
func (e *env) newLogin(r *rp, ip string) *login {
	e.t.Helper()
	b := e.browser()
	if ip != "" {
		b = e.browserAt(ip)
	}
	form := b.get(r.start().url)
	if !isLoginForm(form) {
		e.t.Fatalf("no sign-in form: status %d\n%s", form.status, form.body)
	}
	return &login{t: e.t, b: b, form: form}
}

// try posts username and password and keeps the form of the answer for the next try.
func (l *login) try(username, password string) page {
	l.t.Helper()
	p := l.b.submitLogin(l.form, username, password)
	if isLoginForm(p) {
		l.form = p
	}
	return p
}

// tryNoFollow posts like try but does not follow the redirect of a successful sign-in, so
// the answer to POST /login itself is returned.
func (l *login) tryNoFollow(username, password string) page {
	l.t.Helper()
	c := *l.b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	nb := *l.b
	nb.c = &c
	return nb.submitLogin(l.form, username, password)
}

const msgTooManyAttempts1m = "Too many sign-in attempts from your network. Try again in 1 minute."

// errorText is the error message of a page ("" if none).
func errorText(p page) string {
	_, rest, ok := strings.Cut(p.body, `role="alert">`)
	if !ok {
		return ""
	}
	msg, _, _ := strings.Cut(rest, "</div>")
	return html.UnescapeString(msg)
}

// wantFailure checks that p is exactly the answer to a wrong password: 401, the sign-in form,
// the generic message, no rate-limit refusal.
func wantFailure(t testing.TB, what string, p page) {
	t.Helper()
	if p.status != http.StatusUnauthorized || !isLoginForm(p) || errorText(p) != msgInvalidCredentials || p.header.Get("Retry-After") != "" {
		t.Fatalf("%s: status %d, error %q, Retry-After %q; want 401 with %q", what, p.status, errorText(p), p.header.Get("Retry-After"), msgInvalidCredentials)
	}
}

// wantRefused checks a 429 with the sign-in form, msg and Retry-After.
func wantRefused(t testing.TB, what string, p page, msg string, retryAfter time.Duration) {
	t.Helper()
	if p.status != http.StatusTooManyRequests || !isLoginForm(p) || errorText(p) != msg {
		t.Fatalf("%s: status %d, error %q; want 429 with %q\n%s", what, p.status, errorText(p), msg, p.body)
	}
	if got, want := p.header.Get("Retry-After"), strconv.Itoa(int(retryAfter/time.Second)); got != want {
		t.Errorf("%s: Retry-After %q, want %q", what, got, want)
	}
	if p.header.Get("X-Rate-Limit-Remaining") != "0" {
		t.Errorf("%s: X-Rate-Limit-Remaining %q, want 0", what, p.header.Get("X-Rate-Limit-Remaining"))
	}
}

func wantSignedIn(t testing.TB, what string, p page) {
	t.Helper()
	q := redirectedTo(t, p, webRedirect)
	if q.Get("code") == "" {
		t.Fatalf("%s: no code in the redirect (error %q)", what, q.Get("error"))
	}
}

// TestAccountLockout: the 20th failure locks alice out; while locked the right password gets
// exactly the answer of a wrong one, yet is still checked; after the lockout it works.
func TestAccountLockout(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	l := e.newLogin(r, "")
	var before page
	for i := 1; i <= DefaultUserMaxFailures; i++ {
		p := l.try("alice", "wrong")
		wantFailure(t, fmt.Sprintf("failure %d", i), p)
		if i == DefaultUserMaxFailures-1 {
			before = p
		}
	}
	if n := strings.Count(e.logs.String(), "event=user.account.lock"); n != 1 {
		t.Fatalf("%d lock events after %d failures, want 1:\n%s", n, DefaultUserMaxFailures, e.logs)
	}
	if !strings.Contains(e.logs.String(), `level=WARN msg="idp: account locked out after repeated sign-in failures" event=user.account.lock username=alice address=127.0.0.1`) {
		t.Errorf("lock not logged at warn with username and address:\n%s", e.logs)
	}

	calls := e.dir.calls.Load()
	lockedWrong := l.try("alice", "wrong")
	lockedRight := l.try("alice", "alice-password")
	wantFailure(t, "wrong password while locked", lockedWrong)
	wantFailure(t, "right password while locked", lockedRight)
	if got := e.dir.calls.Load() - calls; got != 2 {
		t.Errorf("%d password checks while locked, want 2 (the lockout must not skip them)", got)
	}
	if lockedRight.body != lockedWrong.body || lockedRight.body != before.body {
		t.Errorf("the locked answer differs from a wrong password's:\nbefore the lock:\n%s\nlocked, right password:\n%s", before.body, lockedRight.body)
	}
	for _, h := range []string{"Content-Type", "Content-Security-Policy", "Cache-Control", "Retry-After", "X-Rate-Limit-Limit"} {
		if lockedRight.header.Get(h) != lockedWrong.header.Get(h) || lockedRight.header.Get(h) != before.header.Get(h) {
			t.Errorf("header %s: %q (locked, right), %q (locked, wrong), %q (before)", h,
				lockedRight.header.Get(h), lockedWrong.header.Get(h), before.header.Get(h))
		}
	}
	if l.b.hasCookie(sessionCookie) {
		t.Error("a session was started while locked")
	}
	if n := strings.Count(e.logs.String(), "reason=locked_out"); n != 2 {
		t.Errorf("%d refused attempts logged with reason=locked_out, want 2", n)
	}
	if n := strings.Count(e.logs.String(), "event=user.account.lock"); n != 1 {
		t.Errorf("%d lock events, want 1 (logged once, when the lock starts)", n)
	}
	// Bob is not affected.
	wantSignedIn(t, "bob while alice is locked", e.newLogin(r, "").try("bob", "bob-password"))

	// Still locked just before the end; unlocked after.
	e.clock.Advance(DefaultUserLockout - time.Second)
	wantFailure(t, "right password a second before the unlock", e.newLogin(r, "").try("alice", "alice-password"))
	e.clock.Advance(time.Second)
	wantSignedIn(t, "right password after the lockout", e.newLogin(r, "").try("alice", "alice-password"))
}

// TestLockoutUnknownUser: an unknown username locks exactly as a known one does, so
// lockout does not reveal who exists. Usernames are normalised as the directory does.
func TestLockoutUnknownUser(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	known, unknown := e.newLogin(r, ""), e.newLogin(r, "")
	spellings := []string{"alice", "Alice", " ALICE "}
	for i := 1; i <= DefaultUserMaxFailures+2; i++ {
		if i == DefaultAddressLimit/2 {
			e.clock.Advance(DefaultAddressWindow) // stay under the per-address limit
		}
		k := known.try(spellings[i%len(spellings)], "wrong")
		u := unknown.try("nobody", "wrong")
		wantFailure(t, fmt.Sprintf("alice, failure %d", i), k)
		wantFailure(t, fmt.Sprintf("nobody, failure %d", i), u)
		kb := strings.ReplaceAll(k.body, strings.TrimSpace(spellings[i%len(spellings)]), "USER")
		ub := strings.ReplaceAll(u.body, "nobody", "USER")
		kb = strings.ReplaceAll(kb, hiddenFields(t, k.body).Get("authRequestID"), "REQ")
		ub = strings.ReplaceAll(ub, hiddenFields(t, u.body).Get("authRequestID"), "REQ")
		kb = strings.ReplaceAll(kb, hiddenFields(t, k.body).Get(csrfFieldName), "CSRF")
		ub = strings.ReplaceAll(ub, hiddenFields(t, u.body).Get(csrfFieldName), "CSRF")
		if kb != ub {
			t.Fatalf("attempt %d: a known and an unknown username get different pages:\n%s\n---\n%s", i, kb, ub)
		}
	}
	logs := e.logs.String()
	for _, user := range []string{"alice", "nobody"} {
		if n := strings.Count(logs, "event=user.account.lock username="+user+" "); n != 1 {
			t.Errorf("%s: %d lock events, want 1:\n%s", user, n, logs)
		}
	}
	// The spellings counted as one account: alice is locked.
	wantFailure(t, "alice's right password", known.try("alice", "alice-password"))
}

// TestSuccessResetsFailures: a successful sign-in clears the failures, so failures before and
// after it do not add up to a lockout.
func TestSuccessResetsFailures(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	for round := range 3 {
		l := e.newLogin(r, "")
		for i := 1; i < DefaultUserMaxFailures; i++ {
			wantFailure(t, fmt.Sprintf("round %d, failure %d", round, i), l.try("alice", "wrong"))
		}
		wantSignedIn(t, fmt.Sprintf("round %d, right password", round), l.try("alice", "alice-password"))
		e.clock.Advance(DefaultAddressWindow) // a fresh per-address window; the user window goes on
	}
	if strings.Contains(e.logs.String(), "user.account.lock") {
		t.Error("locked although every run of failures ended with a success")
	}
}

// TestAddressLimit: every attempt from an address counts, successful or not, and the
// headers count down; past the limit the address gets 429 without a password check.
func TestAddressLimit(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	start := e.clock.Now()
	wantReset := strconv.FormatInt(start.Add(DefaultAddressWindow).Unix(), 10)
	l := e.newLogin(r, "")
	for i := 1; i <= DefaultAddressLimit; i++ {
		var p page
		if i%10 == 0 { // successes count too
			l = e.newLogin(r, "")
			p = l.tryNoFollow("bob", "bob-password")
			if p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "/authorize/callback") {
				t.Fatalf("attempt %d: status %d to %q, want 303 to op's callback", i, p.status, p.header.Get("Location"))
			}
		} else {
			p = l.try("bob", "wrong")
			if p.status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: status %d, want 401", i, p.status)
			}
		}
		h := p.header
		if h.Get("X-Rate-Limit-Limit") != strconv.Itoa(DefaultAddressLimit) ||
			h.Get("X-Rate-Limit-Remaining") != strconv.Itoa(DefaultAddressLimit-i) ||
			h.Get("X-Rate-Limit-Reset") != wantReset || h.Get("Retry-After") != "" {
			t.Fatalf("attempt %d: Limit %q Remaining %q Reset %q Retry-After %q; want %d, %d, %s, none", i,
				h.Get("X-Rate-Limit-Limit"), h.Get("X-Rate-Limit-Remaining"), h.Get("X-Rate-Limit-Reset"), h.Get("Retry-After"),
				DefaultAddressLimit, DefaultAddressLimit-i, wantReset)
		}
	}
	calls := e.dir.calls.Load()
	l = e.newLogin(r, "")
	p := l.try("alice", "alice-password")
	wantRefused(t, "attempt over the limit", p, msgTooManyAttempts1m, DefaultAddressBlock)
	if got, want := p.header.Get("X-Rate-Limit-Reset"), strconv.FormatInt(start.Add(DefaultAddressBlock).Unix(), 10); got != want {
		t.Errorf("X-Rate-Limit-Reset %q while blocked, want the block's end %s", got, want)
	}
	e.clock.Advance(20 * time.Second)
	p = l.try("alice", "alice-password")
	wantRefused(t, "attempt while blocked", p, msgTooManyAttempts1m, DefaultAddressBlock-20*time.Second)
	if e.dir.calls.Load() != calls {
		t.Error("a password was checked while the address was over its limit")
	}
	if !strings.Contains(e.logs.String(), "reason=address_rate_limited") {
		t.Error("refusal not logged with its reason")
	}
	// A failed CSRF check is answered before the attempt counts, but still shows the headers.
	form := hiddenFields(t, l.form.body)
	form.Set(csrfFieldName, "forged")
	form.Set("username", "alice")
	if p := l.b.post(e.issuer+"/login", form); p.status != http.StatusForbidden || p.header.Get("X-Rate-Limit-Limit") == "" || p.header.Get("Retry-After") == "" {
		t.Errorf("CSRF failure: status %d, headers %v; want 403 with the rate-limit headers", p.status, p.header)
	}

	e.clock.Advance(DefaultAddressBlock - 20*time.Second)
	p = l.tryNoFollow("alice", "alice-password")
	if p.status != http.StatusSeeOther {
		t.Fatalf("after the block: status %d, want 303", p.status)
	}
	if p.header.Get("X-Rate-Limit-Remaining") != strconv.Itoa(DefaultAddressLimit-1) {
		t.Errorf("first attempt after the block: Remaining %q, want %d", p.header.Get("X-Rate-Limit-Remaining"), DefaultAddressLimit-1)
	}
}

// TestAddressKey: addresses count one by one in IPv4, per /64 in IPv6.
func TestAddressKey(t *testing.T) {
	tests := []struct {
		addr, want, why string
	}{
		{"192.0.2.7", "192.0.2.7", "IPv4 counts per address"},
		{"::ffff:192.0.2.7", "192.0.2.7", "an IPv4-mapped address is its IPv4 address"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64", "IPv6 counts per /64"},
		{"2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64", "the same /64"},
		{"fe80::1%eth0", "fe80::/64", "the zone is dropped"},
		{"", "unknown", "no address shares one key"},
	}
	for _, tc := range tests {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := addressKey(a); got != tc.want {
			t.Errorf("addressKey(%q) = %q, want %q (%s)", tc.addr, got, tc.want, tc.why)
		}
	}
}

// TestAddressLimitIPv6Prefix: two addresses in one /64 share the per-address limit.
func TestAddressLimitIPv6Prefix(t *testing.T) {
	e := newEnv(t, withHeaderClientIP(), withBruteForce(BruteForce{AddressLimit: 2}))
	r := e.webRP()
	e.newLogin(r, "2001:db8::1").try("bob", "wrong")
	e.newLogin(r, "2001:db8::2").try("bob", "wrong")
	wantRefused(t, "third attempt from the /64", e.newLogin(r, "2001:db8::3").try("bob", "bob-password"), msgTooManyAttempts1m, DefaultAddressBlock)
	wantSignedIn(t, "another /64", e.newLogin(r, "2001:db8:0:1::1").try("bob", "bob-password"))
}

// TestCredentialStuffing: one address failing on 11 different usernames is blocked for 30
// minutes, right password or not; another address still signs in.
func TestCredentialStuffing(t *testing.T) {
	const attacker, other = "203.0.113.66", "198.51.100.7"
	e := newEnv(t, withHeaderClientIP())
	r := e.webRP()
	l := e.newLogin(r, attacker)
	for i := 1; i <= DefaultStuffingDistinctUsers; i++ {
		user := fmt.Sprintf("user%02d", i)
		wantFailure(t, user, l.try(user, "Winter2026!"))
		// Repeating a username does not count again.
		wantFailure(t, user+" again", l.try(user, "Summer2026!"))
	}
	if strings.Contains(e.logs.String(), "security.threat.detected") {
		t.Fatalf("stuffing detected after %d usernames, want after %d", DefaultStuffingDistinctUsers, DefaultStuffingDistinctUsers+1)
	}
	msg30m := "Too many sign-in attempts from your network. Try again in 30 minutes."
	wantRefused(t, "the 11th username", l.try("user11", "Winter2026!"), msg30m, DefaultStuffingBlock)

	calls := e.dir.calls.Load()
	p := l.try("alice", "alice-password")
	wantRefused(t, "right password from the blocked address", p, msg30m, DefaultStuffingBlock)
	if e.dir.calls.Load() != calls {
		t.Error("a password was checked from a blocked address")
	}
	if got := p.header.Get("X-Rate-Limit-Limit"); got != strconv.Itoa(DefaultAddressLimit) {
		t.Errorf("X-Rate-Limit-Limit %q, want the per-address limit %d", got, DefaultAddressLimit)
	}
	wantSignedIn(t, "alice from another address", e.newLogin(r, other).try("alice", "alice-password"))

	logs := e.logs.String()
	if n := strings.Count(logs, "event=security.threat.detected"); n != 1 {
		t.Errorf("%d threat events, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=WARN msg=\"idp: credential stuffing: sign-in failures for too many usernames from one address\" event=security.threat.detected address="+attacker) {
		t.Errorf("threat not logged at warn with the address:\n%s", logs)
	}

	e.clock.Advance(DefaultStuffingBlock - time.Minute)
	wantRefused(t, "a minute before the end", l.try("alice", "alice-password"), msgTooManyAttempts1m, time.Minute)
	e.clock.Advance(time.Minute)
	wantSignedIn(t, "after the block", l.try("alice", "alice-password"))
}

// TestStuffingCountsLockedAttempts: an attempt on a locked-out account counts as a failure
// for credential stuffing too, whichever the password.
func TestStuffingCountsLockedAttempts(t *testing.T) {
	e := newEnv(t, withHeaderClientIP(), withBruteForce(BruteForce{UserMaxFailures: 2, StuffingDistinctUsers: 1}))
	r := e.webRP()
	a := e.newLogin(r, officeIP)
	wantFailure(t, "alice 1", a.try("alice", "wrong"))
	wantFailure(t, "alice 2 (locks)", a.try("alice", "wrong"))
	b := e.newLogin(r, homeIP)
	wantFailure(t, "alice locked, right password, from another address", b.try("alice", "alice-password"))
	wantRefused(t, "a second username from that address", b.try("bob", "wrong"),
		"Too many sign-in attempts from your network. Try again in 30 minutes.", DefaultStuffingBlock)
}

// faultStore fails the ratelimit records whose id starts with prefix, for the operations in
// ops ("get", "write"), on demand.
type faultStore struct {
	store.Store
	mu     sync.Mutex
	prefix string
	ops    string
}

func (s *faultStore) set(prefix, ops string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefix, s.ops = prefix, ops
}

func (s *faultStore) fails(kind store.Kind, id, op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return kind == ratelimit.Kind && s.prefix != "" && strings.HasPrefix(id, s.prefix) && strings.Contains(s.ops, op)
}

func (s *faultStore) Get(ctx context.Context, kind store.Kind, id string) (store.Record, error) {
	if s.fails(kind, id, "get") {
		return store.Record{}, store.ErrUnavailable
	}
	return s.Store.Get(ctx, kind, id)
}

func (s *faultStore) Create(ctx context.Context, r store.Record) error {
	if s.fails(r.Kind, r.ID, "write") {
		return store.ErrUnavailable
	}
	return s.Store.Create(ctx, r)
}

func (s *faultStore) Update(ctx context.Context, kind store.Kind, id string, fn func(store.Record) (store.Record, error)) (store.Record, error) {
	if s.fails(kind, id, "write") {
		return store.Record{}, store.ErrUnavailable
	}
	return s.Store.Update(ctx, kind, id, fn)
}

func (s *faultStore) Delete(ctx context.Context, kind store.Kind, id string) error {
	if s.fails(kind, id, "write") {
		return store.ErrUnavailable
	}
	return s.Store.Delete(ctx, kind, id)
}

// TestLimiterStoreFailure: a limiter that cannot read or write its counters refuses the
// sign-in with 503, never lets it through unchecked.
func TestLimiterStoreFailure(t *testing.T) {
	fs := &faultStore{}
	e := newEnv(t, func(c *Config) { fs.Store = c.Store; c.Store = fs })
	r := e.webRP()
	tests := []struct {
		name, prefix, ops, password string
		passwordChecked             bool
	}{
		{"address limiter unavailable", ruleLoginAddress + ":", "get write", "alice-password", false},
		{"address limiter cannot count", ruleLoginAddress + ":", "write", "alice-password", false},
		{"stuffing check unavailable", ruleLoginStuffing + ":", "get", "alice-password", false},
		{"lockout check unavailable", ruleLoginUser + ":", "get", "alice-password", false},
		{"failure cannot be counted", ruleLoginUser + ":", "write", "wrong", true},
		{"stuffing cannot be counted", ruleLoginStuffing + ":", "write", "wrong", true},
		{"failures cannot be cleared", ruleLoginUser + ":", "write", "alice-password", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := e.newLogin(r, "")
			fs.set(tc.prefix, tc.ops)
			calls := e.dir.calls.Load()
			p := l.try("alice", tc.password)
			fs.set("", "")
			if p.status != http.StatusServiceUnavailable || errorText(p) != msgUnavailable {
				t.Fatalf("status %d, error %q; want 503 with %q", p.status, errorText(p), msgUnavailable)
			}
			if checked := e.dir.calls.Load() != calls; checked != tc.passwordChecked {
				t.Errorf("password checked: %v, want %v", checked, tc.passwordChecked)
			}
			if l.b.hasCookie(sessionCookie) {
				t.Error("a session was started")
			}
		})
	}
	if !strings.Contains(e.logs.String(), "brute-force limits could not be checked") {
		t.Error("store failures not logged")
	}
	wantSignedIn(t, "store back", e.newLogin(r, "").try("alice", "alice-password"))
}

// TestBruteForceDisabled: Disabled turns every limit off: no headers, no lockout, no 429,
// and the limiters' store is not used.
func TestBruteForceDisabled(t *testing.T) {
	fs := &faultStore{}
	e := newEnv(t, withHeaderClientIP(), withBruteForce(BruteForce{Disabled: true, AddressLimit: 1}),
		func(c *Config) { fs.Store = c.Store; c.Store = fs })
	fs.set("login-", "get write")
	r := e.webRP()
	l := e.newLogin(r, homeIP)
	for i := 1; i <= DefaultAddressLimit+5; i++ {
		user := "alice"
		if i%3 == 0 {
			user = fmt.Sprintf("user%02d", i)
		}
		p := l.try(user, "wrong")
		wantFailure(t, fmt.Sprintf("attempt %d", i), p)
		if p.header.Get("X-Rate-Limit-Limit") != "" {
			t.Fatalf("attempt %d: rate-limit headers although disabled", i)
		}
	}
	wantSignedIn(t, "right password after many failures", l.try("alice", "alice-password"))
}

// TestBruteForceConfig: bad settings are refused by New with what was wrong.
func TestBruteForceConfig(t *testing.T) {
	tests := []struct {
		name string
		bf   BruteForce
		want string
	}{
		{"negative address limit", BruteForce{AddressLimit: -1}, "address limit -1 is negative"},
		{"one failure", BruteForce{UserMaxFailures: 1}, "user max failures 1: must be at least 2"},
		{"negative lockout", BruteForce{UserLockout: -time.Minute}, "user lockout -1m0s is negative"},
		{"negative stuffing window", BruteForce{StuffingWindow: -time.Second}, "stuffing window -1s is negative"},
	}
	st := openStore(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, "http://localhost:9000", st, newFakeDir(), &syncBuffer{}, time.Now)
			cfg.BruteForce = tc.bf
			_, err := New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), "idp: brute force: "+tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Disabled still checks the other fields: a typo stays an error.
	cfg := baseConfig(t, "http://localhost:9000", st, newFakeDir(), &syncBuffer{}, time.Now)
	cfg.BruteForce = BruteForce{Disabled: true, UserMaxFailures: 1}
	if _, err := New(context.Background(), cfg); err == nil {
		t.Fatal("a bad setting was accepted because Disabled was set")
	}
}

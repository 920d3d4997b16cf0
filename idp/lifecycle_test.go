package idp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/zonegate/zonegate/store"
)

var errTestNotActive = errors.New("test: account not active")

// fakeLifecycle answers CanSignIn from a map of user id to error.
type fakeLifecycle struct {
	mu   sync.Mutex
	errs map[string]error
}

func (l *fakeLifecycle) set(userID string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs[userID] = err
}

func (l *fakeLifecycle) CanSignIn(_ context.Context, userID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs[userID]
}

func withLifecycle(l *fakeLifecycle) envOption {
	return func(c *Config) {
		c.Lifecycle = l
		c.NotActive = func(err error) bool { return errors.Is(err, errTestNotActive) }
	}
}

// TestLifecycleRefusals: a user whose account is not active cannot sign in with the right
// password (and is told what a wrong password tells), loses the single-sign-on session and
// the refresh token they hold, and a lifecycle that cannot answer fails the sign-in closed.
func TestLifecycleRefusals(t *testing.T) {
	life := &fakeLifecycle{errs: map[string]error{}}
	e := newEnv(t, withRefreshClients(), withLifecycle(life))
	r := e.appRP()

	// alice signs in while active: a refresh token and an SSO session in browser b.
	b := e.browser()
	f := r.start()
	tok, _ := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}

	life.set("u-alice", errTestNotActive)

	// The refresh token no longer works.
	if _, err := r.refresh(tok.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh of a suspended user: %v, want invalid_grant", err)
	}
	// The SSO session does not complete a new sign-in: the form, with the generic message.
	p := b.get(r.start().url)
	if p.status != http.StatusUnauthorized || !isLoginForm(p) || !strings.Contains(p.body, msgInvalidCredentials) {
		t.Fatalf("SSO of a suspended user: %d\n%s", p.status, p.body)
	}
	// The right password in a fresh browser: the same message, no session.
	b2 := e.browser()
	p = b2.submitLogin(b2.get(r.start().url), "alice", "alice-password")
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, msgInvalidCredentials) || b2.hasCookie(sessionCookie) {
		t.Fatalf("password sign-in of a suspended user: %d (session cookie %v)\n%s", p.status, b2.hasCookie(sessionCookie), p.body)
	}
	// The wrong password reads the same.
	b3 := e.browser()
	wrong := b3.submitLogin(b3.get(r.start().url), "alice", "not-her-password")
	if wrong.status != p.status || !strings.Contains(wrong.body, msgInvalidCredentials) {
		t.Errorf("wrong password %d vs right password of a suspended user %d", wrong.status, p.status)
	}

	// A lifecycle that cannot answer: 503, no session.
	life.set("u-bob", store.ErrUnavailable)
	b4 := e.browser()
	p = b4.submitLogin(b4.get(r.start().url), "bob", "bob-password")
	if p.status != http.StatusServiceUnavailable || b4.hasCookie(sessionCookie) {
		t.Fatalf("sign-in while the account state is unknown: %d (session %v)", p.status, b4.hasCookie(sessionCookie))
	}
	// Back to active: bob signs in.
	life.set("u-bob", nil)
	f = r.start()
	if code := e.browser().signIn(r, f, "bob", "bob-password"); code == "" {
		t.Fatal("bob could not sign in once active")
	}
}

package idp

import (
	"slices"
	"sync"
	"testing"
)

type signInRecorder struct {
	mu  sync.Mutex
	got []string
}

func (s *signInRecorder) SignIn(method, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, method+"/"+outcome)
}

// TestSignInObserver checks that metrics hear each password sign-in with its outcome.
func TestSignInObserver(t *testing.T) {
	rec := &signInRecorder{}
	e := newEnv(t, func(c *Config) { c.SignIns = rec })
	r := e.webRP()
	b := e.browser()
	f := r.start()
	b.submitLogin(b.get(f.url), "alice", "wrong")
	b.submitLogin(b.get(f.url), "nobody", "wrong")
	b.signIn(r, f, "alice", "alice-password")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{"pwd/wrong_password", "pwd/unknown_user", "pwd/success"}
	if !slices.Equal(rec.got, want) {
		t.Fatalf("observed %q, want %q", rec.got, want)
	}
}

package idp

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/websession"
)

// TestSignOutAfterSigningInAgain: alice signs in, an app and a gate get sessions and tokens
// under that session, then she signs in again (prompt=login, as a step-up does) and signs
// out. What was started under the first session must end too, not only what the second one
// started.
func TestSignOutAfterSigningInAgain(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	b := e.browser()
	f := r.start()
	tok1, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	first := sidOf(t, idt)

	// A gate session started from the first IdP session, as the gate's callback makes one.
	gates, err := websession.New(websession.Config{Store: e.store, CookieName: "gate", Keys: [][]byte{make([]byte, 32)}, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := gates.Start(httptest.NewRecorder(), httptest.NewRequest("GET", "http://app.example/", nil),
		websession.Session{Kind: "gate", UserID: "u-alice", Username: "alice", ParentID: first})
	if err != nil {
		t.Fatal(err)
	}

	f = r.start(oauth2.SetAuthURLParam("prompt", "login"))
	_, idt = r.exchange(r.code(b.submitLogin(b.get(f.url), "alice", "alice-password"), f), f)
	second := sidOf(t, idt)
	if second == first {
		t.Fatal("signing in again kept the session id")
	}
	// Signing in again alone ends nothing the user is using.
	if _, err := gates.Get(context.Background(), gate.ID); err != nil {
		t.Fatalf("the gate session ended when alice signed in again: %v", err)
	}
	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok1)); err != nil {
		t.Fatalf("the first session's token stopped working when alice signed in again: %v", err)
	}

	if err := e.idp.EndSession(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	if _, err := gates.Get(context.Background(), gate.ID); !errors.Is(err, websession.ErrNoSession) {
		t.Errorf("the gate session from the first IdP session survived sign-out: %v", err)
	}
	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok1)); err == nil {
		t.Error("the first session's access token survived sign-out")
	}
}

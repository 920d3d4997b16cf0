package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

const (
	testRPID   = "example.com"
	testOrigin = "https://id.example.com"
)

// t0 is in the future: go-webauthn also compares SessionData.Expires with the real clock.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	alice   = User{ID: "u-alice", Name: "alice", DisplayName: "Alice Example"}
	bob     = User{ID: "u-bob", Name: "bob"}
	aaguidA = uuid.MustParse("2fc0579f-8113-47ea-b116-bb5a8db9202a")
	aaguidB = uuid.MustParse("ee882879-721c-4913-9775-3dfcce97072a")
)

type fixture struct {
	m     *Manager
	clock *storetest.Clock
	st    *flakyStore
}

func baseSettings() Settings {
	return Settings{RPID: testRPID, Origins: []string{testOrigin}}
}

func newFixture(t testing.TB, s Settings) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{clock: clock, st: &flakyStore{Store: st}}
	f.m = f.manager(t, s)
	return f
}

// manager returns another Manager over the fixture's store (settings changed by the operator).
func (f *fixture) manager(t testing.TB, s Settings) *Manager {
	t.Helper()
	m, err := New(f.st, s, f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// register runs a registration of k for u through m, with the honest response changed by mod.
func (f *fixture) register(t testing.TB, m *Manager, u User, k *softKey, mod func(*knobs)) (Credential, error) {
	t.Helper()
	id, opts, err := m.BeginRegistration(t.Context(), u)
	if err != nil {
		return Credential{}, err
	}
	o := f.knobs(k)
	if mod != nil {
		mod(&o)
	}
	return m.FinishRegistration(t.Context(), u, id, k.create(t, opts, o), "")
}

func (f *fixture) mustRegister(t testing.TB, u User, k *softKey, mod func(*knobs)) Credential {
	t.Helper()
	c, err := f.register(t, f.m, u, k, mod)
	if err != nil {
		t.Fatalf("registering for %s: %v", u.ID, err)
	}
	return c
}

// login runs a login (userID "" for discoverable) of k through m.
func (f *fixture) login(t testing.TB, m *Manager, userID string, k *softKey, mod func(*knobs)) (Assertion, error) {
	t.Helper()
	id, opts, err := m.BeginLogin(t.Context(), userID)
	if err != nil {
		return Assertion{}, err
	}
	o := f.knobs(k)
	if mod != nil {
		mod(&o)
	}
	return m.FinishLogin(t.Context(), id, k.get(t, opts, o))
}

func (f *fixture) stored(t testing.TB, credID string) (credentialRecord, bool) {
	t.Helper()
	r, err := f.m.creds.Get(t.Context(), credID)
	if errors.Is(err, store.ErrNotFound) {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func checkErr(t *testing.T, err, want error, reason string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if got := Reason(err); got != reason {
		t.Fatalf("Reason(%v) = %q, want %q", err, got, reason)
	}
}

func TestRegisterAndLogin(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	c := f.mustRegister(t, alice, k, nil)
	want := Credential{
		ID: b64.EncodeToString(k.id), UserID: alice.ID, Name: DefaultName, Created: t0, SignCount: 1,
		AAGUID: aaguidA.String(), Attachment: "cross-platform", Transports: []string{"usb", "nfc"},
	}
	if !credEqual(c, want) {
		t.Fatalf("registered %+v, want %+v", c, want)
	}

	f.clock.Advance(time.Minute)
	a, err := f.login(t, f.m, alice.ID, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	want.SignCount, want.LastUsed = 2, t0.Add(time.Minute)
	if a.UserID != alice.ID || !a.UserVerified || !a.UserPresent || !credEqual(a.Credential, want) {
		t.Fatalf("assertion %+v, want user %s, UV, UP, credential %+v", a, alice.ID, want)
	}
	if got := a.AMR(); !slices.Equal(got, []string{"hwk", "user", "pin", "mfa"}) {
		t.Fatalf("AMR = %v", got)
	}
	list, err := f.m.List(t.Context(), alice.ID)
	if err != nil || len(list) != 1 || !credEqual(list[0], want) {
		t.Fatalf("List = %+v, %v; want [%+v]", list, err, want)
	}
	if r, _ := f.stored(t, c.ID); r.WebAuthn.Authenticator.SignCount != 2 {
		t.Fatalf("library record sign count = %d, want 2", r.WebAuthn.Authenticator.SignCount)
	}
}

func credEqual(a, b Credential) bool {
	return reflect.DeepEqual(a, b)
}

func TestDiscoverableLogin(t *testing.T) {
	s := baseSettings()
	s.ResidentKey = "required"
	f := newFixture(t, s)
	ka, kb := newSoftKey(t, aaguidA), newSoftKey(t, aaguidB)
	ca := f.mustRegister(t, alice, ka, func(o *knobs) { o.credProps = boolp(true); o.be, o.bs = true, true; o.attachment = "platform" })
	f.mustRegister(t, bob, kb, nil)
	if !ca.Discoverable || !ca.BackupEligible || !ca.BackupState || ca.Attachment != "platform" {
		t.Fatalf("registered %+v, want discoverable, backed-up platform credential", ca)
	}
	for _, tc := range []struct {
		k    *softKey
		user string
	}{{ka, alice.ID}, {kb, bob.ID}} {
		a, err := f.login(t, f.m, "", tc.k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.UserID != tc.user || a.Credential.UserID != tc.user {
			t.Fatalf("discoverable login = %+v, want user %s", a, tc.user)
		}
	}
}

func TestDiscoverableFlag(t *testing.T) {
	tests := []struct {
		name        string
		residentKey string
		credProps   *bool
		want        bool
	}{
		{"preferred, not reported", "preferred", nil, false},
		{"preferred, reported rk", "preferred", boolp(true), true},
		{"preferred, reported not rk", "preferred", boolp(false), false},
		{"required, not reported", "required", nil, true},
		{"discouraged, reported rk", "discouraged", boolp(true), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			s.ResidentKey = tt.residentKey
			f := newFixture(t, s)
			c := f.mustRegister(t, alice, newSoftKey(t, aaguidA), func(o *knobs) { o.credProps = tt.credProps })
			if c.Discoverable != tt.want {
				t.Fatalf("Discoverable = %v, want %v", c.Discoverable, tt.want)
			}
		})
	}
}

func TestNonCountingAuthenticator(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	k.counting = false
	f.mustRegister(t, alice, k, nil)
	for i := range 3 {
		a, err := f.login(t, f.m, alice.ID, k, nil)
		if err != nil {
			t.Fatalf("login %d with counter 0: %v", i, err)
		}
		if a.Credential.SignCount != 0 {
			t.Fatalf("SignCount = %d", a.Credential.SignCount)
		}
	}
	// A counter that starts counting later is fine; going back to 0 after that is not.
	if _, err := f.login(t, f.m, alice.ID, k, func(o *knobs) { o.count = u32(5) }); err != nil {
		t.Fatal(err)
	}
	_, err := f.login(t, f.m, alice.ID, k, func(o *knobs) { o.count = u32(0) })
	checkErr(t, err, ErrCloneWarning, "clone_warning")
}

func TestUserVerificationPreferred(t *testing.T) {
	s := baseSettings()
	s.UserVerification = "preferred"
	f := newFixture(t, s)
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, func(o *knobs) { o.uv = false })
	a, err := f.login(t, f.m, alice.ID, k, func(o *knobs) { o.uv = false })
	if err != nil {
		t.Fatal(err)
	}
	if a.UserVerified || !slices.Equal(a.AMR(), []string{"hwk", "user"}) {
		t.Fatalf("assertion %+v, AMR %v", a, a.AMR())
	}
}

func TestBackupStateUpdates(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	c := f.mustRegister(t, alice, k, func(o *knobs) { o.be = true })
	if !c.BackupEligible || c.BackupState {
		t.Fatalf("registered %+v", c)
	}
	a, err := f.login(t, f.m, alice.ID, k, func(o *knobs) { o.bs = true })
	if err != nil {
		t.Fatal(err)
	}
	if !a.Credential.BackupState {
		t.Fatal("BackupState not updated")
	}
	if r, _ := f.stored(t, c.ID); !r.BackupState || !r.WebAuthn.Flags.BackupState {
		t.Fatalf("stored %+v", r)
	}
}

// TestLoginRefusals checks verdict and reason of every refusal, and that a refusal leaves the
// stored credential (sign count, last use, backup state) as it was.
func TestLoginRefusals(t *testing.T) {
	type env = loginEnv
	loginAs := func(userID string, mod func(*knobs)) func(*testing.T, env) error {
		return func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, userID, e.ka, mod)
			return err
		}
	}
	narrowed := func(t *testing.T, e env) *Manager {
		s := baseSettings()
		s.AllowedAAGUIDs = []string{aaguidB.String()}
		return e.f.manager(t, s)
	}
	tests := []struct {
		name   string
		prep   func(*testing.T, env) // successful steps before the snapshot
		act    func(*testing.T, env) error
		want   error
		reason string
	}{
		{"wrong origin", nil, loginAs(alice.ID, func(o *knobs) { o.origin = "https://evil.example.net" }), ErrInvalidResponse, "invalid_response"},
		{"sibling origin not configured", nil, loginAs(alice.ID, func(o *knobs) { o.origin = "https://app.example.com" }), ErrInvalidResponse, "invalid_response"},
		{"wrong origin discoverable", nil, loginAs("", func(o *knobs) { o.origin = "http://id.example.com" }), ErrInvalidResponse, "invalid_response"},
		{"wrong rp id", nil, loginAs(alice.ID, func(o *knobs) { o.rpID = "evil.com" }), ErrInvalidResponse, "invalid_response"},
		{"bad signature", nil, loginAs(alice.ID, func(o *knobs) { o.wrongKey = true }), ErrInvalidResponse, "invalid_response"},
		{"bad signature discoverable", nil, loginAs("", func(o *knobs) { o.wrongKey = true }), ErrInvalidResponse, "invalid_response"},
		{"wrong challenge", nil, loginAs(alice.ID, func(o *knobs) { o.challenge = b64.EncodeToString(make([]byte, 32)) }), ErrInvalidResponse, "invalid_response"},
		{"user not present", nil, loginAs(alice.ID, func(o *knobs) { o.up = false }), ErrInvalidResponse, "invalid_response"},
		{"no user verification", nil, loginAs(alice.ID, func(o *knobs) { o.uv = false }), ErrUserVerificationRequired, "user_verification_required"},
		{"no user verification discoverable", nil, loginAs("", func(o *knobs) { o.uv = false }), ErrUserVerificationRequired, "user_verification_required"},
		{"no user verification and wrong origin", nil, loginAs(alice.ID, func(o *knobs) { o.uv = false; o.origin = "https://evil.example.net" }), ErrInvalidResponse, "invalid_response"},
		{"counter goes back", loginOK(alice.ID), loginAs(alice.ID, func(o *knobs) { o.count = u32(1) }), ErrCloneWarning, "clone_warning"},
		{"counter repeats", loginOK(alice.ID), func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, alice.ID, e.ka, func(o *knobs) { o.count = u32(e.ka.count) })
			return err
		}, ErrCloneWarning, "clone_warning"},
		{"counter drops to zero", loginOK(alice.ID), loginAs("", func(o *knobs) { o.count = u32(0) }), ErrCloneWarning, "clone_warning"},
		{"backup eligibility appears", nil, loginAs(alice.ID, func(o *knobs) { o.be = true }), ErrBackupEligibilityChanged, "backup_eligibility_changed"},
		{"backup eligibility appears discoverable", nil, loginAs("", func(o *knobs) { o.be, o.bs = true, true }), ErrBackupEligibilityChanged, "backup_eligibility_changed"},
		{"backup eligibility disappears", nil, func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, bob.ID, e.kb, func(o *knobs) { o.be, o.bs = false, false })
			return err
		}, ErrBackupEligibilityChanged, "backup_eligibility_changed"},
		{"backup eligibility changed with bad signature", nil, loginAs(alice.ID, func(o *knobs) { o.be = true; o.wrongKey = true }), ErrInvalidResponse, "invalid_response"},
		{"backed up without eligibility", nil, loginAs(alice.ID, func(o *knobs) { o.bs = true }), ErrInvalidResponse, "invalid_response"},
		{"expired ceremony", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			e.f.clock.Advance(5 * time.Minute)
			return finish(t, e.f.m, id, e.ka.get(t, opts, e.f.knobs(e.ka)))
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"unknown ceremony", nil, func(t *testing.T, e env) error {
			_, opts, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			return finish(t, e.f.m, "no-such-ceremony", e.ka.get(t, opts, e.f.knobs(e.ka)))
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"registration ceremony", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			return finish(t, e.f.m, id, e.ka.get(t, opts, e.f.knobs(e.ka)))
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"malformed response", nil, func(t *testing.T, e env) error {
			id, _, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			return finish(t, e.f.m, id, []byte(`{"id":`))
		}, ErrInvalidResponse, "invalid_response"},
		{"oversized response", nil, func(t *testing.T, e env) error {
			id, _, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			return finish(t, e.f.m, id, []byte(`{"id":"`+strings.Repeat("A", maxResponse)+`"}`))
		}, ErrInvalidResponse, "invalid_response"},
		{"unknown credential discoverable", nil, func(t *testing.T, e env) error {
			k := newSoftKey(t, aaguidA)
			k.handle = e.ka.handle
			_, err := e.f.login(t, e.f.m, "", k, nil)
			return err
		}, ErrUnknownCredential, "unknown_credential"},
		{"credential not offered", nil, func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, alice.ID, e.kb, nil)
			return err
		}, ErrUnknownCredential, "unknown_credential"},
		{"unknown user handle", nil, loginAs("", func(o *knobs) { o.userHandle = make([]byte, 32) }), ErrUnknownCredential, "unknown_credential"},
		{"no user handle discoverable", nil, loginAs("", func(o *knobs) { o.noHandle = true }), ErrInvalidResponse, "invalid_response"},
		{"user handle of another user discoverable", nil, func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, "", e.ka, func(o *knobs) { o.userHandle = e.kb.handle })
			return err
		}, ErrWrongUser, "wrong_user"},
		{"user handle of another user", nil, func(t *testing.T, e env) error {
			_, err := e.f.login(t, e.f.m, alice.ID, e.ka, func(o *knobs) { o.userHandle = e.kb.handle })
			return err
		}, ErrWrongUser, "wrong_user"},
		{"credential removed after begin", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			if err := e.f.m.Remove(t.Context(), alice.ID, b64.EncodeToString(e.ka.id)); err != nil {
				t.Fatal(err)
			}
			return finish(t, e.f.m, id, e.ka.get(t, opts, e.f.knobs(e.ka)))
		}, ErrUnknownCredential, "unknown_credential"},
		{"aaguid no longer allowed at begin", nil, func(t *testing.T, e env) error {
			_, _, err := narrowed(t, e).BeginLogin(t.Context(), alice.ID)
			return err
		}, ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
		{"aaguid no longer allowed at finish", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			return finish(t, narrowed(t, e), id, e.ka.get(t, opts, e.f.knobs(e.ka)))
		}, ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
		{"aaguid no longer allowed discoverable", nil, func(t *testing.T, e env) error {
			_, err := e.f.login(t, narrowed(t, e), "", e.ka, nil)
			return err
		}, ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
		{"no credentials", nil, func(t *testing.T, e env) error {
			_, _, err := e.f.m.BeginLogin(t.Context(), "u-carol")
			return err
		}, ErrNoCredentials, "no_credentials"},
		{"store down", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginLogin(t.Context(), alice.ID)
			if err != nil {
				return err
			}
			resp := e.ka.get(t, opts, e.f.knobs(e.ka))
			e.f.st.down.Store(true)
			defer e.f.st.down.Store(false)
			return finish(t, e.f.m, id, resp)
		}, store.ErrUnavailable, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, baseSettings())
			e := env{f: f, ka: newSoftKey(t, aaguidA), kb: newSoftKey(t, aaguidB)}
			f.mustRegister(t, alice, e.ka, nil)
			f.mustRegister(t, bob, e.kb, func(o *knobs) { o.be = true })
			if tt.prep != nil {
				tt.prep(t, e)
			}
			before, _ := f.stored(t, b64.EncodeToString(e.ka.id))
			f.clock.Advance(time.Second)
			err := tt.act(t, e)
			t.Logf("error: %v", err)
			checkErr(t, err, tt.want, tt.reason)
			if tt.reason != "error" && errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("verification failure %v wraps a store error", err)
			}
			if tt.reason == "error" && errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("store failure %v reported as an invalid response", err)
			}
			if after, ok := f.stored(t, b64.EncodeToString(e.ka.id)); ok && !credEqual(after.Credential, before.Credential) {
				t.Fatalf("refused login changed the credential:\n before %+v\n after  %+v", before.Credential, after.Credential)
			}
		})
	}
}

// loginEnv is what a TestLoginRefusals case works on.
type loginEnv struct {
	f      *fixture
	ka, kb *softKey // alice's and bob's keys, both registered
}

// loginOK is a prep step: one successful login of alice's key.
func loginOK(userID string) func(*testing.T, loginEnv) {
	return func(t *testing.T, e loginEnv) {
		t.Helper()
		if _, err := e.f.login(t, e.f.m, userID, e.ka, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func finish(t *testing.T, m *Manager, id string, resp []byte) error {
	_, err := m.FinishLogin(t.Context(), id, resp)
	return err
}

func TestReplayedLoginCeremony(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	id, opts, err := f.m.BeginLogin(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp := k.get(t, opts, f.knobs(k))
	if _, err := f.m.FinishLogin(t.Context(), id, resp); err != nil {
		t.Fatal(err)
	}
	_, err = f.m.FinishLogin(t.Context(), id, resp)
	checkErr(t, err, ErrCeremonyExpired, "ceremony_expired")

	// A failed attempt uses the ceremony up too.
	id, opts, err = f.m.BeginLogin(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.m.FinishLogin(t.Context(), id, k.get(t, opts, func() knobs { o := f.knobs(k); o.wrongKey = true; return o }()))
	checkErr(t, err, ErrInvalidResponse, "invalid_response")
	_, err = f.m.FinishLogin(t.Context(), id, k.get(t, opts, f.knobs(k)))
	checkErr(t, err, ErrCeremonyExpired, "ceremony_expired")
}

func TestCeremonyLifetime(t *testing.T) {
	s := baseSettings()
	s.Timeout = time.Minute
	f := newFixture(t, s)
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	id, opts, err := f.m.BeginLogin(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			Timeout int `json:"timeout"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &o); err != nil || o.PublicKey.Timeout != 60000 {
		t.Fatalf("timeout in options = %d, %v; want 60000", o.PublicKey.Timeout, err)
	}
	cer, err := f.m.ceremonies.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Minute); !cer.Expires.Equal(want) || !cer.Session.Expires.Equal(want) {
		t.Fatalf("ceremony expires %v, session %v; want %v", cer.Expires, cer.Session.Expires, want)
	}
	f.clock.Advance(time.Minute - time.Millisecond)
	if _, err := f.m.FinishLogin(t.Context(), id, k.get(t, opts, f.knobs(k))); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
}

// TestConcurrentLogins races assertions carrying the same counter value: exactly one may pass.
func TestConcurrentLogins(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	const n = 8
	ids := make([]string, n)
	resps := make([][]byte, n)
	for i := range n {
		id, opts, err := f.m.BeginLogin(t.Context(), alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		resps[i] = k.get(t, opts, func() knobs { o := f.knobs(k); o.count = u32(7); return o }())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = f.m.FinishLogin(context.Background(), ids[i], resps[i]) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case Reason(err) != "clone_warning":
			t.Errorf("unexpected error %v (reason %q)", err, Reason(err))
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d logins with the same counter passed, want 1", ok, n)
	}
	if r, _ := f.stored(t, b64.EncodeToString(k.id)); r.SignCount != 7 {
		t.Fatalf("stored count %d, want 7", r.SignCount)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	type env struct {
		f  *fixture
		k  *softKey
		kb *softKey // registered to bob
	}
	reg := func(mod func(*knobs)) func(*testing.T, env) error {
		return func(t *testing.T, e env) error {
			_, err := e.f.register(t, e.f.m, alice, e.k, mod)
			return err
		}
	}
	tests := []struct {
		name     string
		settings func(*Settings)
		act      func(*testing.T, env) error
		want     error
		reason   string
	}{
		{"wrong origin", nil, reg(func(o *knobs) { o.origin = "https://evil.example.net" }), ErrInvalidResponse, "invalid_response"},
		{"wrong rp id", nil, reg(func(o *knobs) { o.rpID = "evil.com" }), ErrInvalidResponse, "invalid_response"},
		{"wrong challenge", nil, reg(func(o *knobs) { o.challenge = b64.EncodeToString(make([]byte, 32)) }), ErrInvalidResponse, "invalid_response"},
		{"user not present", nil, reg(func(o *knobs) { o.up = false }), ErrInvalidResponse, "invalid_response"},
		{"no user verification", nil, reg(func(o *knobs) { o.uv = false }), ErrUserVerificationRequired, "user_verification_required"},
		{"backed up without eligibility", nil, reg(func(o *knobs) { o.bs = true }), ErrInvalidResponse, "invalid_response"},
		{"id differs from attested id", nil, reg(func(o *knobs) { o.id = []byte("another-id-0123") }), ErrInvalidResponse, "invalid_response"},
		{"aaguid not allowed", func(s *Settings) { s.AllowedAAGUIDs = []string{aaguidB.String()} }, reg(nil), ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
		{"zero aaguid with an allow list", func(s *Settings) { s.AllowedAAGUIDs = []string{aaguidA.String(), aaguidB.String()} }, func(t *testing.T, e env) error {
			_, err := e.f.register(t, e.f.m, alice, newSoftKey(t, uuid.Nil), nil)
			return err
		}, ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
		{"too many at begin", func(s *Settings) { s.MaxCredentials = 1 }, func(t *testing.T, e env) error {
			e.f.mustRegister(t, alice, newSoftKey(t, aaguidA), nil)
			_, _, err := e.f.m.BeginRegistration(t.Context(), alice)
			return err
		}, ErrTooManyCredentials, "too_many_credentials"},
		{"too many at finish", func(s *Settings) { s.MaxCredentials = 1 }, func(t *testing.T, e env) error {
			id1, opts1, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			id2, opts2, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			k2 := newSoftKey(t, aaguidA)
			if _, err := e.f.m.FinishRegistration(t.Context(), alice, id2, k2.create(t, opts2, e.f.knobs(k2)), ""); err != nil {
				t.Fatal(err)
			}
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id1, e.k.create(t, opts1, e.f.knobs(e.k)), "")
			return err
		}, ErrTooManyCredentials, "too_many_credentials"},
		{"credential of another user", nil, func(t *testing.T, e env) error {
			_, err := e.f.register(t, e.f.m, alice, e.kb, nil)
			return err
		}, ErrCredentialExists, "credential_exists"},
		{"expired ceremony", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			e.f.clock.Advance(5 * time.Minute)
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, e.k.create(t, opts, e.f.knobs(e.k)), "")
			return err
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"ceremony of another user", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), bob)
			if err != nil {
				return err
			}
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, e.k.create(t, opts, e.f.knobs(e.k)), "")
			return err
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"login ceremony", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginLogin(t.Context(), "")
			if err != nil {
				return err
			}
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, e.k.create(t, opts, e.f.knobs(e.k)), "")
			return err
		}, ErrCeremonyExpired, "ceremony_expired"},
		{"malformed response", nil, func(t *testing.T, e env) error {
			id, _, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, []byte(`{"id":"AAAA","type":"public-key"}`), "")
			return err
		}, ErrInvalidResponse, "invalid_response"},
		{"name with a control character", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			resp := e.k.create(t, opts, e.f.knobs(e.k))
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, resp, "key\x00")
			// The ceremony is still there: a valid name succeeds.
			if _, err2 := e.f.m.FinishRegistration(t.Context(), alice, id, resp, "Blue key"); err2 != nil {
				t.Fatalf("after an invalid name: %v", err2)
			}
			return err
		}, ErrInvalidName, "invalid_name"},
		{"name too long", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, e.k.create(t, opts, e.f.knobs(e.k)), strings.Repeat("é", maxNameLen+1))
			return err
		}, ErrInvalidName, "invalid_name"},
		{"store down", nil, func(t *testing.T, e env) error {
			id, opts, err := e.f.m.BeginRegistration(t.Context(), alice)
			if err != nil {
				return err
			}
			resp := e.k.create(t, opts, e.f.knobs(e.k))
			e.f.st.down.Store(true)
			defer e.f.st.down.Store(false)
			_, err = e.f.m.FinishRegistration(t.Context(), alice, id, resp, "")
			return err
		}, store.ErrUnavailable, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			if tt.settings != nil {
				tt.settings(&s)
			}
			f := newFixture(t, s)
			e := env{f: f, k: newSoftKey(t, aaguidA), kb: newSoftKey(t, aaguidB)}
			f.mustRegister(t, bob, e.kb, nil)
			err := tt.act(t, e)
			t.Logf("error: %v", err)
			checkErr(t, err, tt.want, tt.reason)
			if tt.reason == "error" && errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("store failure %v reported as an invalid response", err)
			}
			if _, ok := f.stored(t, b64.EncodeToString(e.k.id)); ok && tt.reason != "invalid_name" {
				t.Fatal("refused registration stored the credential")
			}
			if r, _ := f.stored(t, b64.EncodeToString(e.kb.id)); r.UserID != bob.ID {
				t.Fatalf("bob's credential now belongs to %q", r.UserID)
			}
		})
	}
}

func TestReplayedRegistrationCeremony(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	id, opts, err := f.m.BeginRegistration(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	resp := k.create(t, opts, f.knobs(k))
	if _, err := f.m.FinishRegistration(t.Context(), alice, id, resp, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.m.FinishRegistration(t.Context(), alice, id, resp, "")
	checkErr(t, err, ErrCeremonyExpired, "ceremony_expired")
}

func TestRegistrationOptions(t *testing.T) {
	s := baseSettings()
	s.Attachment = "cross-platform"
	s.ResidentKey = "required"
	s.Attestation = "direct"
	f := newFixture(t, s)
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	_, opts, err := f.m.BeginRegistration(t.Context(), alice)
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		PublicKey struct {
			RP struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"rp"`
			User struct {
				ID          string `json:"id"`
				Name        string `json:"name"`
				DisplayName string `json:"displayName"`
			} `json:"user"`
			Exclude []struct {
				ID string `json:"id"`
			} `json:"excludeCredentials"`
			Selection struct {
				Attachment       string `json:"authenticatorAttachment"`
				RequireRK        bool   `json:"requireResidentKey"`
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			Attestation string          `json:"attestation"`
			Extensions  map[string]any  `json:"extensions"`
			Timeout     int             `json:"timeout"`
			Params      json.RawMessage `json:"pubKeyCredParams"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	p := o.PublicKey
	h, err := b64.DecodeString(p.User.ID)
	switch {
	case err != nil || len(h) != handleSize:
		t.Fatalf("user.id %q is not %d base64url bytes", p.User.ID, handleSize)
	case strings.Contains(string(h), alice.ID) || strings.Contains(string(h), alice.Name):
		t.Fatal("user.id holds the user id or name")
	case string(h) != string(k.handle):
		t.Fatal("user handle changed between registrations")
	case p.RP.ID != testRPID || p.RP.Name != "zonegate" || p.User.Name != alice.Name || p.User.DisplayName != alice.DisplayName:
		t.Fatalf("rp %+v user %+v", p.RP, p.User)
	case len(p.Exclude) != 1 || p.Exclude[0].ID != b64.EncodeToString(k.id):
		t.Fatalf("excludeCredentials = %+v", p.Exclude)
	case p.Selection.Attachment != "cross-platform" || !p.Selection.RequireRK || p.Selection.ResidentKey != "required" || p.Selection.UserVerification != "required":
		t.Fatalf("authenticatorSelection = %+v", p.Selection)
	case p.Attestation != "direct" || p.Extensions["credProps"] != true || p.Timeout != 300000 || len(p.Params) == 0:
		t.Fatalf("attestation %q extensions %v timeout %d params %s", p.Attestation, p.Extensions, p.Timeout, p.Params)
	}
	hr, err := f.m.handles.Get(t.Context(), p.User.ID)
	if err != nil || hr.UserID != alice.ID {
		t.Fatalf("reverse index of the handle = %+v, %v", hr, err)
	}
}

func TestLoginOptions(t *testing.T) {
	f := newFixture(t, baseSettings())
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	type opts struct {
		PublicKey struct {
			RPID             string            `json:"rpId"`
			Challenge        string            `json:"challenge"`
			Allow            []json.RawMessage `json:"allowCredentials"`
			UserVerification string            `json:"userVerification"`
		} `json:"publicKey"`
	}
	for _, tt := range []struct {
		user  string
		allow int
	}{{"", 0}, {alice.ID, 1}} {
		_, raw, err := f.m.BeginLogin(t.Context(), tt.user)
		if err != nil {
			t.Fatal(err)
		}
		var o opts
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		p := o.PublicKey
		if c, _ := b64.DecodeString(p.Challenge); len(c) < 16 || p.RPID != testRPID || len(p.Allow) != tt.allow || p.UserVerification != "required" {
			t.Fatalf("user %q: options %s", tt.user, raw)
		}
	}
}

func TestManage(t *testing.T) {
	f := newFixture(t, baseSettings())
	k1, k2, kb := newSoftKey(t, aaguidA), newSoftKey(t, aaguidA), newSoftKey(t, aaguidA)
	c1 := f.mustRegister(t, alice, k1, nil)
	f.clock.Advance(time.Hour)
	c2 := f.mustRegister(t, alice, k2, nil)
	cb := f.mustRegister(t, bob, kb, nil)
	ctx := t.Context()

	list, err := f.m.List(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != c1.ID || list[1].ID != c2.ID {
		t.Fatalf("List = %+v, %v", list, err)
	}

	renames := []struct {
		name, user, cred, label string
		want                    error
		reason, stored          string
	}{
		{"rename", alice.ID, c1.ID, "  Yubikey 5  ", nil, "", "Yubikey 5"},
		{"empty name is the default", alice.ID, c2.ID, " ", nil, "", DefaultName},
		{"another user's credential", alice.ID, cb.ID, "mine", ErrUnknownCredential, "unknown_credential", ""},
		{"missing credential", alice.ID, "nope", "x", ErrUnknownCredential, "unknown_credential", ""},
		{"no credential id", alice.ID, "", "x", ErrUnknownCredential, "unknown_credential", ""},
		{"control character", alice.ID, c1.ID, "a\tb", ErrInvalidName, "invalid_name", ""},
		{"invalid UTF-8", alice.ID, c1.ID, "a\xffb", ErrInvalidName, "invalid_name", ""},
	}
	for _, tt := range renames {
		t.Run(tt.name, func(t *testing.T) {
			err := f.m.Rename(ctx, tt.user, tt.cred, tt.label)
			checkErr(t, err, tt.want, tt.reason)
			if tt.stored != "" {
				if r, _ := f.stored(t, tt.cred); r.Name != tt.stored {
					t.Fatalf("name = %q, want %q", r.Name, tt.stored)
				}
			}
		})
	}
	if r, _ := f.stored(t, cb.ID); r.Name != DefaultName {
		t.Fatalf("bob's credential renamed to %q", r.Name)
	}

	err = f.m.Remove(ctx, alice.ID, cb.ID)
	checkErr(t, err, ErrUnknownCredential, "unknown_credential")
	if _, ok := f.stored(t, cb.ID); !ok {
		t.Fatal("removed another user's credential")
	}
	checkErr(t, f.m.Remove(ctx, alice.ID, "nope"), ErrUnknownCredential, "unknown_credential")
	if err := f.m.Remove(ctx, alice.ID, c1.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.login(t, f.m, "", k1, nil)
	checkErr(t, err, ErrUnknownCredential, "unknown_credential")

	if _, _, err := f.m.BeginRegistration(ctx, alice); err != nil { // a pending ceremony for Reset
		t.Fatal(err)
	}
	n, err := f.m.Reset(ctx, alice.ID)
	if err != nil || n != 1 {
		t.Fatalf("Reset = %d, %v; want 1", n, err)
	}
	if cs, _ := f.st.ListByOwner(ctx, KindCeremony, alice.ID); len(cs) != 0 {
		t.Fatalf("%d ceremonies left after Reset", len(cs))
	}
	_, _, err = f.m.BeginLogin(ctx, alice.ID)
	checkErr(t, err, ErrNoCredentials, "no_credentials")
	if list, _ := f.m.List(ctx, bob.ID); len(list) != 1 {
		t.Fatalf("bob has %d credentials after alice's reset", len(list))
	}
	// The handle stays: a new registration uses the same one.
	k3 := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k3, nil)
	if string(k3.handle) != string(k1.handle) {
		t.Fatal("user handle changed after Reset")
	}
}

func TestAMR(t *testing.T) {
	tests := []struct {
		be, up, uv bool
		want       []string
	}{
		{false, true, true, []string{"hwk", "user", "pin", "mfa"}},
		{false, true, false, []string{"hwk", "user"}},
		{true, true, true, []string{"swk", "user", "pin", "mfa"}},
		{true, true, false, []string{"swk", "user"}},
		{false, false, false, []string{"hwk"}},
	}
	for _, tt := range tests {
		a := Assertion{Credential: Credential{BackupEligible: tt.be}, UserPresent: tt.up, UserVerified: tt.uv}
		if got := a.AMR(); !slices.Equal(got, tt.want) {
			t.Errorf("BE=%v UP=%v UV=%v: AMR = %v, want %v", tt.be, tt.up, tt.uv, got, tt.want)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("boom"), "error"},
		{store.ErrUnavailable, "error"},
		{store.ErrNotFound, "error"},
	}
	for _, r := range reasons {
		tests = append(tests, struct {
			err  error
			want string
		}{errors.Join(errors.New("context"), r.err), r.reason})
	}
	for _, tt := range tests {
		if got := Reason(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Settings)
		wantErr string
	}{
		{"defaults", nil, ""},
		{"localhost over http", func(s *Settings) { s.RPID = "localhost"; s.Origins = []string{"http://localhost:9091"} }, ""},
		{"several origins", func(s *Settings) { s.Origins = []string{"https://id.example.com", "https://example.com:8443"} }, ""},
		{"all options", func(s *Settings) {
			s.UserVerification, s.Attestation, s.ResidentKey, s.Attachment = "discouraged", "indirect", "discouraged", "platform"
			s.AllowedAAGUIDs, s.MaxCredentials, s.Timeout = []string{aaguidA.String()}, 100, time.Hour
		}, ""},
		{"no rp id", func(s *Settings) { s.RPID = "" }, "rp id is empty"},
		{"ip rp id", func(s *Settings) { s.RPID = "10.0.0.1"; s.Origins = []string{"https://10.0.0.1"} }, "rp id"},
		{"rp id with scheme", func(s *Settings) { s.RPID = "https://example.com" }, "rp id"},
		{"no origins", func(s *Settings) { s.Origins = nil }, "no origins"},
		{"origin with path", func(s *Settings) { s.Origins = []string{"https://id.example.com/login"} }, `origin 1 "https://id.example.com/login": want scheme and host`},
		{"origin with trailing slash", func(s *Settings) { s.Origins = []string{"https://id.example.com/"} }, "want scheme and host"},
		{"origin with query", func(s *Settings) { s.Origins = []string{"https://id.example.com?x"} }, "want scheme and host"},
		{"relative origin", func(s *Settings) { s.Origins = []string{"id.example.com"} }, "want an http or https origin"},
		{"origin off the rp id", func(s *Settings) { s.Origins = []string{testOrigin, "https://example.net"} }, `origin 2 "https://example.net": host "example.net" is not rp id`},
		{"origin suffix trick", func(s *Settings) { s.Origins = []string{"https://badexample.com"} }, "is not rp id"},
		{"http off localhost", func(s *Settings) { s.Origins = []string{"http://id.example.com"} }, "http is only usable on localhost"},
		{"bad user verification", func(s *Settings) { s.UserVerification = "always" }, `user verification "always"`},
		{"bad attestation", func(s *Settings) { s.Attestation = "enterprise" }, `attestation "enterprise"`},
		{"bad resident key", func(s *Settings) { s.ResidentKey = "yes" }, `resident key "yes"`},
		{"bad attachment", func(s *Settings) { s.Attachment = "usb" }, `attachment "usb"`},
		{"bad aaguid", func(s *Settings) { s.AllowedAAGUIDs = []string{aaguidA.String(), "yubikey"} }, `allowed aaguid 2 "yubikey"`},
		{"negative max credentials", func(s *Settings) { s.MaxCredentials = -1 }, "max credentials -1"},
		{"too many max credentials", func(s *Settings) { s.MaxCredentials = 101 }, "max credentials 101"},
		{"short timeout", func(s *Settings) { s.Timeout = time.Second }, "timeout 1s"},
		{"long timeout", func(s *Settings) { s.Timeout = 2 * time.Hour }, "timeout 2h0m0s"},
		{"display name with newline", func(s *Settings) { s.RPDisplayName = "a\nb" }, "rp display name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSettings()
			if tt.mod != nil {
				tt.mod(&s)
			}
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				if _, err := New(newMemStore(time.Now), s, nil); err != nil {
					t.Fatalf("New = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := New(newMemStore(time.Now), s, nil); err == nil {
				t.Fatal("New accepted what Validate refused")
			}
		})
	}
}

func TestSettingsDefaults(t *testing.T) {
	m, err := New(newMemStore(time.Now), Settings{RPID: "Example.COM", Origins: []string{"HTTPS://ID.Example.com"}, AllowedAAGUIDs: []string{strings.ToUpper(aaguidA.String())}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Settings()
	if s.RPID != testRPID || s.RPDisplayName != "zonegate" || !slices.Equal(s.Origins, []string{testOrigin}) ||
		s.UserVerification != "required" || s.Attestation != "none" || s.ResidentKey != "preferred" || s.Attachment != "" ||
		!slices.Equal(s.AllowedAAGUIDs, []string{aaguidA.String()}) || s.MaxCredentials != 10 || s.Timeout != 5*time.Minute {
		t.Fatalf("Settings() = %+v", s)
	}
	if _, err := New(nil, baseSettings(), nil); err == nil {
		t.Fatal("New accepted a nil store")
	}
}

func TestBeginRegistrationInput(t *testing.T) {
	f := newFixture(t, baseSettings())
	for _, u := range []User{{}, {ID: "u-x"}, {ID: "u-x", Name: "a\x00"}} {
		if _, _, err := f.m.BeginRegistration(t.Context(), u); err == nil {
			t.Errorf("BeginRegistration(%+v) succeeded", u)
		}
	}
}

// FuzzFinishLogin feeds arbitrary bytes as the browser's response: FinishLogin must never
// panic, never succeed (the challenge is fresh), and classify every refusal.
func FuzzFinishLogin(f *testing.F) {
	clock := storetest.NewClock(t0)
	fx := &fixture{clock: clock, st: &flakyStore{Store: newMemStore(clock.Now)}}
	fx.m = fx.manager(f, baseSettings())
	k := newSoftKey(f, aaguidA)
	fx.mustRegister(f, alice, k, nil)
	_, opts, err := fx.m.BeginLogin(context.Background(), alice.ID)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds: honest and table-case responses to another ceremony, and malformed ones.
	for _, mod := range []func(*knobs){
		nil,
		func(o *knobs) { o.origin = "https://evil.example.net" },
		func(o *knobs) { o.rpID = "evil.com" },
		func(o *knobs) { o.wrongKey = true },
		func(o *knobs) { o.uv = false },
		func(o *knobs) { o.be = true },
		func(o *knobs) { o.noHandle = true },
		func(o *knobs) { o.count = u32(0) },
	} {
		o := fx.knobs(k)
		if mod != nil {
			mod(&o)
		}
		f.Add(k.get(f, opts, o))
	}
	f.Add([]byte(""))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`))
	f.Add([]byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":""}}`))
	f.Fuzz(func(t *testing.T, resp []byte) {
		user := ""
		if len(resp)%2 == 1 {
			user = alice.ID
		}
		id, _, err := fx.m.BeginLogin(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		a, err := fx.m.FinishLogin(context.Background(), id, resp)
		if err == nil {
			t.Fatalf("FinishLogin accepted %q: %+v", resp, a)
		}
		if r := Reason(err); r == "" || r == "error" {
			t.Fatalf("unclassified refusal %v (reason %q)", err, r)
		}
	})
}

// FuzzFinishRegistration feeds arbitrary bytes as the browser's registration response: it must
// never panic, never store a credential, and classify every refusal.
func FuzzFinishRegistration(f *testing.F) {
	clock := storetest.NewClock(t0)
	fx := &fixture{clock: clock, st: &flakyStore{Store: newMemStore(clock.Now)}}
	fx.m = fx.manager(f, baseSettings())
	_, opts, err := fx.m.BeginRegistration(context.Background(), alice)
	if err != nil {
		f.Fatal(err)
	}
	for _, mod := range []func(*knobs){
		nil,
		func(o *knobs) { o.origin = "https://evil.example.net" },
		func(o *knobs) { o.rpID = "evil.com" },
		func(o *knobs) { o.uv = false },
		func(o *knobs) { o.bs = true },
		func(o *knobs) { o.credProps = boolp(true) },
	} {
		k := newSoftKey(f, aaguidA)
		o := fx.knobs(k)
		if mod != nil {
			mod(&o)
		}
		f.Add(k.create(f, opts, o))
	}
	f.Add([]byte("{}"))
	f.Add([]byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`))
	f.Fuzz(func(t *testing.T, resp []byte) {
		id, _, err := fx.m.BeginRegistration(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		c, err := fx.m.FinishRegistration(context.Background(), alice, id, resp, "")
		if err == nil {
			t.Fatalf("FinishRegistration accepted %q: %+v", resp, c)
		}
		if r := Reason(err); r == "" || r == "error" {
			t.Fatalf("unclassified refusal %v (reason %q)", err, r)
		}
	})
}

// FuzzSettingsOrigins checks the rp id and origin parsing: an accepted origin is http(s) on the
// rp id or a subdomain, http only on localhost, and normalizing is idempotent.
func FuzzSettingsOrigins(f *testing.F) {
	for _, s := range [][2]string{
		{testRPID, testOrigin}, {"localhost", "http://localhost:9091"}, {testRPID, "https://example.net"},
		{testRPID, "https://badexample.com"}, {testRPID, "https://id.example.com/x"}, {"10.0.0.1", "https://10.0.0.1"},
		{"Example.COM", "HTTPS://ID.EXAMPLE.COM:8443"}, {testRPID, "https://user@id.example.com"}, {testRPID, "http://id.example.com"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, rpID, origin string) {
		s, err := Settings{RPID: rpID, Origins: []string{origin}}.withDefaults()
		if err != nil {
			return
		}
		o := s.Origins[0]
		host, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://"), ":")
		if strings.HasPrefix(host, "[") {
			host, _, _ = strings.Cut(strings.TrimPrefix(host, "["), "]")
		}
		switch {
		case !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://"):
			t.Fatalf("accepted origin %q (from %q)", o, origin)
		case host != s.RPID && !strings.HasSuffix(host, "."+s.RPID):
			t.Fatalf("origin %q host %q is off rp id %q", o, host, s.RPID)
		case strings.HasPrefix(o, "http://") && host != "localhost" && !strings.HasSuffix(host, ".localhost"):
			t.Fatalf("accepted plain http origin %q", o)
		}
		again, err := s.withDefaults()
		if err != nil || !slices.Equal(again.Origins, s.Origins) || again.RPID != s.RPID {
			t.Fatalf("normalizing %+v again gave %+v, %v", s, again, err)
		}
	})
}

// TestVerifiedLogin: with user verification only preferred, a key that did not verify its
// user signs in through BeginLogin but not through BeginVerifiedLogin, which a rule asking
// for a verified key uses.
func TestVerifiedLogin(t *testing.T) {
	s := baseSettings()
	s.UserVerification = "preferred"
	f := newFixture(t, s)
	k := newSoftKey(t, aaguidA)
	f.mustRegister(t, alice, k, nil)
	noUV := func(o *knobs) { o.uv = false }
	if a, err := f.login(t, f.m, alice.ID, k, noUV); err != nil || a.UserVerified {
		t.Fatalf("preferred, no UV: %+v %v", a, err)
	}
	id, opts, err := f.m.BeginVerifiedLogin(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	o := f.knobs(k)
	noUV(&o)
	_, err = f.m.FinishLogin(t.Context(), id, k.get(t, opts, o))
	checkErr(t, err, ErrUserVerificationRequired, "user_verification_required")
	id, opts, err = f.m.BeginVerifiedLogin(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.m.FinishLogin(t.Context(), id, k.get(t, opts, f.knobs(k)))
	if err != nil || !a.UserVerified || !slices.Contains(a.AMR(), "pin") {
		t.Fatalf("verified login: %+v %v", a, err)
	}
}

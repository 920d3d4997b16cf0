package totp

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

// t0 is 10 seconds into a 30 s and a 60 s step.
var t0 = time.Date(2030, 1, 1, 0, 0, 10, 0, time.UTC)

type fixture struct {
	m     *Manager
	clock *storetest.Clock
	st    store.Store
}

func newFixture(t testing.TB, s Settings) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := New(st, s, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, clock: clock, st: st}
}

// code returns the code of k at time at.
func code(t testing.TB, k key, at time.Time) string {
	t.Helper()
	alg, err := parseAlgorithm(k.Algorithm)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pqtotp.GenerateCodeCustom(k.Secret, at, pqtotp.ValidateOpts{
		Period: uint(k.Period / time.Second), Digits: otp.Digits(k.Digits), Algorithm: alg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pendingKey reads the secret of a pending enrollment from the store.
func (f *fixture) pendingKey(t testing.TB, id string) key {
	t.Helper()
	p, err := f.m.pending.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p.Key
}

// deviceKey reads the secret of a device from the store.
func (f *fixture) deviceKey(t testing.TB, id string) key {
	t.Helper()
	r, err := f.m.devices.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.key()
}

// enroll begins and confirms a device for user at the clock's time.
func (f *fixture) enroll(t testing.TB, user, name string) (Device, key) {
	t.Helper()
	p, err := f.m.Begin(t.Context(), user, user+"@example.com", name)
	if err != nil {
		t.Fatal(err)
	}
	k := f.pendingKey(t, p.ID)
	d, err := f.m.Confirm(t.Context(), user, p.ID, code(t, k, f.clock.Now()))
	if err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	return d, k
}

func TestVerify(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := t.Context()
	d, k := f.enroll(t, "alice", "phone")

	// The confirming code is used already.
	if _, err := f.m.Verify(ctx, "alice", code(t, k, t0)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("confirming code again: got %v, want ErrReplayed", err)
	}
	f.clock.Advance(30 * time.Second)
	c := code(t, k, f.clock.Now())
	got, err := f.m.Verify(ctx, "alice", c)
	if err != nil {
		t.Fatalf("valid code: %v", err)
	}
	if got.ID != d.ID || !got.LastUsed.Equal(f.clock.Now()) {
		t.Fatalf("got %+v, want device %s used at %v", got, d.ID, f.clock.Now())
	}
	if _, err := f.m.Verify(ctx, "alice", c); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: got %v, want ErrReplayed", err)
	}
	// Still refused at the last moment the step is within the skew.
	f.clock.Advance(49 * time.Second)
	if _, err := f.m.Verify(ctx, "alice", c); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay at the edge of the skew: got %v, want ErrReplayed", err)
	}
	// Spaces as people type them are accepted.
	f.clock.Advance(30 * time.Second)
	c = code(t, k, f.clock.Now())
	if _, err := f.m.Verify(ctx, "alice", " "+c[:3]+" "+c[3:]+" "); err != nil {
		t.Fatalf("code with spaces: %v", err)
	}
	// Other users and no devices.
	if _, err := f.m.Verify(ctx, "bob", c); !errors.Is(err, ErrNoDevices) {
		t.Fatalf("user without devices: got %v, want ErrNoDevices", err)
	}
}

func TestVerifyReasons(t *testing.T) {
	f := newFixture(t, Settings{})
	_, k := f.enroll(t, "alice", "phone")
	f.clock.Advance(10 * time.Minute)
	now := f.clock.Now()
	valid := code(t, k, now)
	wrong := fmt.Sprintf("%06d", (atoi(valid)+1)%1_000_000)
	for _, tc := range []struct {
		name string
		code string
		want error
	}{
		{"empty", "", ErrInvalidCode},
		{"wrong", wrong, ErrInvalidCode},
		{"too short", valid[:5], ErrInvalidCode},
		{"too long", valid + "0", ErrInvalidCode},
		{"letters", "12345a", ErrInvalidCode},
		{"unicode digits", "١٢٣٤٥٦", ErrInvalidCode},
		{"huge", strings.Repeat("1", 10000), ErrInvalidCode},
		{"two steps early", code(t, k, now.Add(-60*time.Second)), ErrInvalidCode},
		{"two steps late", code(t, k, now.Add(60*time.Second)), ErrInvalidCode},
		{"one step early", code(t, k, now.Add(-30*time.Second)), nil},
		{"one step late", code(t, k, now.Add(30*time.Second)), nil},
		{"current", valid, nil},
		{"current again", valid, ErrReplayed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.m.Verify(t.Context(), "alice", tc.code)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestVerifyConcurrentReplay(t *testing.T) {
	f := newFixture(t, Settings{})
	_, k := f.enroll(t, "alice", "phone")
	f.clock.Advance(5 * time.Minute)
	c := code(t, k, f.clock.Now())
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = f.m.Verify(t.Context(), "alice", c) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrReplayed):
			t.Errorf("loser: got %v, want ErrReplayed", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d requests passed with one code, want exactly 1", wins)
	}
}

func TestParameters(t *testing.T) {
	for _, s := range []Settings{
		{Digits: 8},
		{Period: time.Minute},
		{Algorithm: "SHA256"},
		{Algorithm: "sha512", Digits: 8, Period: time.Minute},
	} {
		t.Run(fmt.Sprintf("%d-%s-%s", s.Digits, s.Period, s.Algorithm), func(t *testing.T) {
			f := newFixture(t, s)
			want := f.m.Settings()
			d, k := f.enroll(t, "alice", "phone")
			if d.Digits != want.Digits || d.Period != want.Period || d.Algorithm != want.Algorithm {
				t.Fatalf("device %+v, want settings %+v", d, want)
			}
			alg, _ := parseAlgorithm(want.Algorithm)
			if got := len(k.Secret) * 5 / 8; got != int(secretSize(alg)) {
				t.Errorf("secret is %d bytes, want %d", got, secretSize(alg))
			}
			f.clock.Advance(10 * time.Minute)
			now := f.clock.Now()
			c := code(t, k, now)
			if len(c) != want.Digits {
				t.Fatalf("code %q, want %d digits", c, want.Digits)
			}
			// A code of the default parameters is not accepted.
			def := code(t, key{Secret: k.Secret, Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}, now)
			if def != c {
				if _, err := f.m.Verify(t.Context(), "alice", def); !errors.Is(err, ErrInvalidCode) {
					t.Fatalf("default-parameter code: got %v, want ErrInvalidCode", err)
				}
			}
			if _, err := f.m.Verify(t.Context(), "alice", c); err != nil {
				t.Fatalf("valid code: %v", err)
			}
			// Skew is counted in the device's periods.
			if _, err := f.m.Verify(t.Context(), "alice", code(t, k, now.Add(-want.Period))); err != nil {
				t.Fatalf("code one period early: %v", err)
			}
			if _, err := f.m.Verify(t.Context(), "alice", code(t, k, now.Add(2*want.Period))); !errors.Is(err, ErrInvalidCode) {
				t.Fatalf("code two periods late: got %v, want ErrInvalidCode", err)
			}
		})
	}
}

func TestSkewSetting(t *testing.T) {
	f := newFixture(t, Settings{Skew: 2})
	_, k := f.enroll(t, "alice", "phone")
	f.clock.Advance(10 * time.Minute)
	now := f.clock.Now()
	if _, err := f.m.Verify(t.Context(), "alice", code(t, k, now.Add(-60*time.Second))); err != nil {
		t.Fatalf("two steps early with skew 2: %v", err)
	}
	if _, err := f.m.Verify(t.Context(), "alice", code(t, k, now.Add(90*time.Second))); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("three steps late with skew 2: got %v, want ErrInvalidCode", err)
	}
}

func TestMaxDevices(t *testing.T) {
	for _, tc := range []struct {
		whenFull string
		removed  string // name of the device the third enrollment replaces; "" means refused
	}{
		{WhenFullRefuse, ""},
		{WhenFullReplaceOldest, "first"},
		{WhenFullReplaceLRU, "second"},
	} {
		t.Run(tc.whenFull, func(t *testing.T) {
			f := newFixture(t, Settings{MaxDevices: 2, WhenFull: tc.whenFull})
			ctx := t.Context()
			_, k1 := f.enroll(t, "alice", "first")
			f.clock.Advance(time.Minute)
			f.enroll(t, "alice", "second")
			// first is used after second was created: it is the oldest, second the least recently used.
			f.clock.Advance(time.Minute)
			if _, err := f.m.Verify(ctx, "alice", code(t, k1, f.clock.Now())); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(time.Minute)
			p, err := f.m.Begin(ctx, "alice", "alice", "third")
			if err != nil {
				t.Fatal(err)
			}
			k3 := f.pendingKey(t, p.ID)
			_, err = f.m.Confirm(ctx, "alice", p.ID, code(t, k3, f.clock.Now()))
			if tc.removed == "" {
				if !errors.Is(err, ErrTooManyDevices) {
					t.Fatalf("got %v, want ErrTooManyDevices", err)
				}
				if got := names(t, f, "alice"); got != "first,second" {
					t.Fatalf("devices %s, want first,second", got)
				}
				// The enrollment stays pending: after removing a device it can be confirmed.
				ds, _ := f.m.List(ctx, "alice")
				if err := f.m.Remove(ctx, "alice", ds[0].ID); err != nil {
					t.Fatal(err)
				}
				f.clock.Advance(30 * time.Second)
				if _, err := f.m.Confirm(ctx, "alice", p.ID, code(t, k3, f.clock.Now())); err != nil {
					t.Fatalf("confirming after making room: %v", err)
				}
				if got := names(t, f, "alice"); got != "second,third" {
					t.Fatalf("devices %s, want second,third", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Replace("first,second,third", tc.removed+",", "", 1)
			if got := names(t, f, "alice"); got != want {
				t.Fatalf("devices %s, want %s", got, want)
			}
		})
	}
}

func names(t testing.TB, f *fixture, user string) string {
	t.Helper()
	ds, err := f.m.List(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, d := range ds {
		ns = append(ns, d.Name)
	}
	return strings.Join(ns, ",")
}

func TestEnrollmentURIAndQRCode(t *testing.T) {
	s := Settings{Issuer: "Acme Corp", Digits: 8, Period: time.Minute, Algorithm: "SHA256", ShowSecret: true}
	f := newFixture(t, s)
	p, err := f.m.Begin(t.Context(), "u1", "alice@example.com", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if p.Secret == "" || p.Secret != f.pendingKey(t, p.ID).Secret {
		t.Fatalf("Secret %q does not match the stored one", p.Secret)
	}
	if !p.ExpiresAt.Equal(t0.Add(PendingTTL)) {
		t.Errorf("ExpiresAt %v, want %v", p.ExpiresAt, t0.Add(PendingTTL))
	}
	u, err := url.Parse(p.URI)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Acme Corp:alice@example.com" {
		t.Fatalf("URI %s: scheme %q host %q path %q", p.URI, u.Scheme, u.Host, u.Path)
	}
	q := u.Query()
	for k, want := range map[string]string{"secret": p.Secret, "issuer": "Acme Corp", "digits": "8", "period": "60", "algorithm": "SHA256"} {
		if got := q.Get(k); got != want {
			t.Errorf("query %s=%q, want %q", k, got, want)
		}
	}
	if !bytes.HasPrefix(p.QRCode, []byte("\x89PNG")) {
		t.Fatal("QR code is not a PNG")
	}
	img, format, err := image.Decode(bytes.NewReader(p.QRCode))
	if err != nil || format != "png" {
		t.Fatalf("decoding QR code: %v (format %q)", err, format)
	}
	if b := img.Bounds(); b.Dx() != qrSize || b.Dy() != qrSize {
		t.Fatalf("QR code is %v, want %dx%d", b, qrSize, qrSize)
	}
	// The QR code encodes the URI: drawing the URI gives the same pixels.
	k, err := otp.NewKeyFromURL(p.URI)
	if err != nil {
		t.Fatal(err)
	}
	want, err := k.Image(qrSize, qrSize)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), p.QRCode) {
		t.Fatal("QR code does not encode the URI")
	}
}

func TestShowSecretFalse(t *testing.T) {
	f := newFixture(t, Settings{})
	p, err := f.m.Begin(t.Context(), "u1", "alice", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if p.Secret != "" || p.URI != "" {
		t.Fatalf("secret shown: Secret %q URI %q", p.Secret, p.URI)
	}
	if _, err := png.Decode(bytes.NewReader(p.QRCode)); err != nil {
		t.Fatalf("QR code: %v", err)
	}
	secret := f.pendingKey(t, p.ID).Secret
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("enrolling", "pending", p)
	if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), p.ID) {
		t.Fatalf("log line %q: want the id and not the secret", logs.String())
	}
}

func TestConfirm(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := t.Context()
	p, err := f.m.Begin(ctx, "alice", "alice", "  phone  ")
	if err != nil {
		t.Fatal(err)
	}
	k := f.pendingKey(t, p.ID)
	wrong := fmt.Sprintf("%06d", (atoi(code(t, k, t0))+1)%1_000_000)
	if _, err := f.m.Confirm(ctx, "alice", p.ID, wrong); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("wrong code: got %v, want ErrInvalidCode", err)
	}
	if _, err := f.m.Confirm(ctx, "bob", p.ID, code(t, k, t0)); !errors.Is(err, ErrPendingExpired) {
		t.Fatalf("another user's enrollment: got %v, want ErrPendingExpired", err)
	}
	if _, err := f.m.Confirm(ctx, "alice", "nope", code(t, k, t0)); !errors.Is(err, ErrPendingExpired) {
		t.Fatalf("unknown enrollment: got %v, want ErrPendingExpired", err)
	}
	if ds, _ := f.m.List(ctx, "alice"); len(ds) != 0 {
		t.Fatalf("devices before confirmation: %+v", ds)
	}
	f.clock.Advance(5 * time.Minute)
	d, err := f.m.Confirm(ctx, "alice", p.ID, code(t, k, f.clock.Now()))
	if err != nil {
		t.Fatalf("confirming after a wrong code: %v", err)
	}
	if d.Name != "phone" || d.UserID != "alice" || !d.Created.Equal(f.clock.Now()) || !d.LastUsed.IsZero() {
		t.Fatalf("device %+v", d)
	}
	if _, err := f.m.Confirm(ctx, "alice", p.ID, code(t, k, f.clock.Now())); !errors.Is(err, ErrPendingExpired) {
		t.Fatalf("confirming twice: got %v, want ErrPendingExpired", err)
	}
}

func TestPendingExpires(t *testing.T) {
	f := newFixture(t, Settings{})
	p, err := f.m.Begin(t.Context(), "alice", "alice", "phone")
	if err != nil {
		t.Fatal(err)
	}
	k := f.pendingKey(t, p.ID)
	f.clock.Advance(PendingTTL)
	if _, err := f.m.Confirm(t.Context(), "alice", p.ID, code(t, k, f.clock.Now())); !errors.Is(err, ErrPendingExpired) {
		t.Fatalf("got %v, want ErrPendingExpired", err)
	}
}

func TestRenameRemoveReset(t *testing.T) {
	f := newFixture(t, Settings{})
	ctx := t.Context()
	d1, _ := f.enroll(t, "alice", "phone")
	f.clock.Advance(time.Second)
	d2, _ := f.enroll(t, "alice", "tablet")
	bob, _ := f.enroll(t, "bob", "phone")

	if err := f.m.Rename(ctx, "alice", d1.ID, " work phone "); err != nil {
		t.Fatal(err)
	}
	if got := names(t, f, "alice"); got != "work phone,tablet" {
		t.Fatalf("after rename: %s", got)
	}
	for _, tc := range []struct {
		name           string
		user, id, newN string
		want           error
	}{
		{"another user's device", "alice", bob.ID, "x", ErrUnknownDevice},
		{"unknown device", "alice", "nope", "x", ErrUnknownDevice},
		{"empty id", "alice", "", "x", ErrUnknownDevice},
		{"empty name", "alice", d1.ID, "  ", nil},
		{"control character", "alice", d1.ID, "a\nb", nil},
		{"too long", "alice", d1.ID, strings.Repeat("é", maxNameLen+1), nil},
	} {
		t.Run("rename "+tc.name, func(t *testing.T) {
			err := f.m.Rename(ctx, tc.user, tc.id, tc.newN)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := f.m.Remove(ctx, "alice", bob.ID); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("removing another user's device: got %v", err)
	}
	if err := f.m.Remove(ctx, "alice", d2.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Remove(ctx, "alice", d2.ID); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("removing twice: got %v", err)
	}
	if got := names(t, f, "alice"); got != "work phone" {
		t.Fatalf("after remove: %s", got)
	}
	f.enroll(t, "alice", "laptop")
	if _, err := f.m.Begin(ctx, "alice", "alice", "pending"); err != nil {
		t.Fatal(err)
	}
	n, err := f.m.Reset(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("Reset: %d, %v; want 2", n, err)
	}
	if ps, _ := f.m.pending.ListByOwner(ctx, "alice"); len(ps) != 0 {
		t.Fatalf("pending enrollments left after reset: %d", len(ps))
	}
	if _, err := f.m.Verify(ctx, "alice", "123456"); !errors.Is(err, ErrNoDevices) {
		t.Fatalf("after reset: got %v, want ErrNoDevices", err)
	}
	if got := names(t, f, "bob"); got != "phone" {
		t.Fatalf("bob's devices after alice's reset: %s", got)
	}
}

func TestBeginInput(t *testing.T) {
	f := newFixture(t, Settings{})
	for _, tc := range []struct {
		name, user, account, device, wantErr string
	}{
		{"no user", "", "alice", "phone", "no user id"},
		{"no account", "u", "", "phone", "account name is empty"},
		{"colon in account", "u", "a:b", "phone", "contains ':'"},
		{"control in account", "u", "a\x00b", "phone", "not printable"},
		{"no device name", "u", "alice", " ", "device name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.m.Begin(t.Context(), tc.user, tc.account, tc.device)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       Settings
		wantErr string
	}{
		{"defaults", Settings{}, ""},
		{"all set", Settings{Issuer: "Acme", Digits: 8, Period: time.Minute, Algorithm: "SHA512", Skew: 3, MaxDevices: 50, WhenFull: WhenFullReplaceLRU, ShowSecret: true}, ""},
		{"lowercase algorithm", Settings{Algorithm: "sha256"}, ""},
		{"digits 7", Settings{Digits: 7}, "digits 7: want 6 or 8"},
		{"negative digits", Settings{Digits: -6}, "digits -6"},
		{"period 45s", Settings{Period: 45 * time.Second}, "period 45s: want 30s or 60s"},
		{"period 30ms", Settings{Period: 30 * time.Millisecond}, "period 30ms"},
		{"algorithm MD5", Settings{Algorithm: "MD5"}, `algorithm "MD5"`},
		{"skew 4", Settings{Skew: 4}, "skew 4: want at most 3"},
		{"negative max devices", Settings{MaxDevices: -1}, "max devices -1"},
		{"too many max devices", Settings{MaxDevices: 51}, "max devices 51"},
		{"when full", Settings{WhenFull: "replace_newest"}, `when full "replace_newest"`},
		{"issuer with colon", Settings{Issuer: "a:b"}, `issuer "a:b" contains ':'`},
		{"blank issuer", Settings{Issuer: "  "}, "issuer is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			m, err := New(st, tc.s, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := m.Settings(); got.Digits == 0 || got.Period == 0 || got.Skew == 0 || got.MaxDevices == 0 || got.WhenFull == "" || got.Issuer == "" {
					t.Fatalf("defaults not filled: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "totp settings: ") {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := New(nil, Settings{}, nil); err == nil {
		t.Fatal("New with no store succeeded")
	}
}

// TestSecretsNotInErrors drives every failure path and checks no error text holds a secret or
// the submitted code.
func TestSecretsNotInErrors(t *testing.T) {
	f := newFixture(t, Settings{MaxDevices: 1})
	ctx := t.Context()
	d, k := f.enroll(t, "alice", "phone")
	p, err := f.m.Begin(ctx, "alice", "alice", "tablet")
	if err != nil {
		t.Fatal(err)
	}
	pk := f.pendingKey(t, p.ID)
	f.clock.Advance(time.Minute)
	now := f.clock.Now()
	used := code(t, k, now)
	if _, err := f.m.Verify(ctx, "alice", used); err != nil {
		t.Fatal(err)
	}
	wrong := fmt.Sprintf("%06d", (atoi(used)+1)%1_000_000)
	secrets := []string{k.Secret, pk.Secret, used, wrong, code(t, pk, now)}
	var errs []error
	add := func(_ any, err error) { errs = append(errs, err) }
	add(f.m.Verify(ctx, "alice", used))
	add(f.m.Verify(ctx, "alice", wrong))
	add(f.m.Verify(ctx, "bob", wrong))
	add(f.m.Confirm(ctx, "alice", p.ID, wrong))
	add(f.m.Confirm(ctx, "alice", p.ID, code(t, pk, now)))
	add(nil, f.m.Rename(ctx, "bob", d.ID, "x"))
	add(nil, f.m.Remove(ctx, "bob", d.ID))
	f.clock.Advance(time.Hour)
	add(f.m.Confirm(ctx, "alice", p.ID, code(t, pk, f.clock.Now())))
	for i, err := range errs {
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("case %d: error %q holds a secret or code", i, err)
			}
		}
	}
	// Nor does a Device, printed or as JSON.
	if s := fmt.Sprintf("%+v %#v", d, d); strings.Contains(s, k.Secret) {
		t.Errorf("device prints its secret: %s", s)
	}
}

// FuzzVerifyCode checks that Verify never panics on any input and accepts only a code of the
// current step or one within the skew.
func FuzzVerifyCode(f *testing.F) {
	fx := newFixture(f, Settings{})
	_, k := fx.enroll(f, "alice", "phone")
	fx.clock.Advance(time.Hour)
	now := fx.clock.Now()
	valid := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		valid[code(f, k, now.Add(d))] = true
	}
	for c := range valid {
		f.Add(c)
		f.Add(" " + c[:3] + " " + c[3:])
	}
	for _, s := range []string{"", "000000", "12345a", "١٢٣٤٥٦", "1234567", "12345678", "\x00", strings.Repeat(" ", 40),
		code(f, k, now.Add(-time.Minute)), code(f, k, now.Add(time.Minute))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_, err := fx.m.Verify(t.Context(), "alice", in)
		if err == nil {
			c, ok := normalizeCode(in, 6)
			if !ok || !valid[c] {
				t.Fatalf("accepted %q, which is not a code within the skew", in)
			}
			return
		}
		if !errors.Is(err, ErrInvalidCode) && !errors.Is(err, ErrReplayed) {
			t.Fatalf("unexpected error for %q: %v", in, err)
		}
	})
}

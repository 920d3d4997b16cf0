// Package totp enrolls and checks time-based one-time password authenticators (RFC 6238).
package totp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/zonegate/zonegate/store"
)

// Sentinel errors. Returned errors wrap them; test with errors.Is. No error text ever holds a
// secret or a submitted code.
var (
	// ErrInvalidCode means the code is malformed, wrong, or valid only outside the allowed skew.
	ErrInvalidCode = errors.New("totp: invalid code")
	// ErrReplayed means the code is valid but was already accepted once.
	ErrReplayed = errors.New("totp: code already used")
	// ErrNoDevices means the user has no TOTP device.
	ErrNoDevices = errors.New("totp: no devices enrolled")
	// ErrTooManyDevices means the user has MaxDevices devices and WhenFull is "refuse".
	ErrTooManyDevices = errors.New("totp: too many devices")
	// ErrUnknownDevice means no device with that id belongs to the user.
	ErrUnknownDevice = errors.New("totp: unknown device")
	// ErrPendingExpired means the pending enrollment is expired, already confirmed, or unknown
	// to this user: enrollment must start again.
	ErrPendingExpired = errors.New("totp: pending enrollment expired or unknown")
)

// Store kinds used by this package.
const (
	KindDevice  store.Kind = "totp_device"  // enrolled devices, owner = user id
	KindPending store.Kind = "totp_pending" // enrollments waiting for a first code, owner = user id
	KindUsed    store.Kind = "totp_used"    // accepted (device, time step) pairs, until they can no longer be valid
)

// PendingTTL is how long an enrollment waits for its confirming code.
const PendingTTL = 10 * time.Minute

// What to do when a user with MaxDevices devices confirms another one.
const (
	WhenFullRefuse        = "refuse"         // fail with ErrTooManyDevices
	WhenFullReplaceOldest = "replace_oldest" // remove the device created first
	WhenFullReplaceLRU    = "replace_lru"    // remove the device used least recently
)

const (
	qrSize        = 256 // QR code PNG width and height in pixels
	maxNameLen    = 64  // device name, in characters
	maxLabelLen   = 128 // issuer and account name, in bytes
	maxCodeInput  = 32  // longer submitted codes are rejected before any work
	maxSkew       = 3
	maxMaxDevices = 50
)

// Settings configure a Manager. The zero value of each field means its default.
type Settings struct {
	// Issuer is the name authenticator apps show above the code. Default "zonegate". It may
	// not contain ':'.
	Issuer string `json:"issuer,omitempty"`
	// Digits is the code length for new devices: 6 (default) or 8.
	Digits int `json:"digits,omitempty"`
	// Period is how long a code lasts for new devices: 30s (default) or 60s. Note that some
	// apps (older Google Authenticator) ignore anything but 6 digits, 30s and SHA1.
	Period time.Duration `json:"period,omitempty"`
	// Algorithm is the HMAC hash for new devices: "SHA1" (default), "SHA256" or "SHA512".
	Algorithm string `json:"algorithm,omitempty"`
	// Skew is how many periods either side of now a code is accepted: default 1, at most 3
	// (0 means the default).
	Skew uint `json:"skew,omitempty"`
	// MaxDevices is how many devices one user may have: default 5, at most 50.
	MaxDevices int `json:"max_devices,omitempty"`
	// WhenFull says what confirming one more device does when the user has MaxDevices:
	// "refuse" (default), "replace_oldest" (remove the one created first) or "replace_lru"
	// (remove the one used least recently).
	WhenFull string `json:"when_full,omitempty"`
	// ShowSecret lets enrollment show the secret as text (base32 and the otpauth:// URI) for
	// manual entry; otherwise only the QR code carries it.
	ShowSecret bool `json:"show_secret,omitempty"`
}

// withDefaults returns s with defaults filled in and checks it.
func (s Settings) withDefaults() (Settings, error) {
	if s.Issuer == "" {
		s.Issuer = "zonegate"
	}
	if s.Digits == 0 {
		s.Digits = 6
	}
	if s.Period == 0 {
		s.Period = 30 * time.Second
	}
	if s.Algorithm == "" {
		s.Algorithm = "SHA1"
	}
	s.Algorithm = strings.ToUpper(s.Algorithm)
	if s.Skew == 0 {
		s.Skew = 1
	}
	if s.MaxDevices == 0 {
		s.MaxDevices = 5
	}
	if s.WhenFull == "" {
		s.WhenFull = WhenFullRefuse
	}
	if err := checkLabel("issuer", s.Issuer); err != nil {
		return s, err
	}
	if s.Digits != 6 && s.Digits != 8 {
		return s, fmt.Errorf("digits %d: want 6 or 8", s.Digits)
	}
	if s.Period != 30*time.Second && s.Period != 60*time.Second {
		return s, fmt.Errorf("period %s: want 30s or 60s", s.Period)
	}
	if _, err := parseAlgorithm(s.Algorithm); err != nil {
		return s, err
	}
	if s.Skew > maxSkew {
		return s, fmt.Errorf("skew %d: want at most %d periods", s.Skew, maxSkew)
	}
	if s.MaxDevices < 0 || s.MaxDevices > maxMaxDevices {
		return s, fmt.Errorf("max devices %d: want 1 to %d", s.MaxDevices, maxMaxDevices)
	}
	switch s.WhenFull {
	case WhenFullRefuse, WhenFullReplaceOldest, WhenFullReplaceLRU:
	default:
		return s, fmt.Errorf("when full %q: want %q, %q or %q", s.WhenFull, WhenFullRefuse, WhenFullReplaceOldest, WhenFullReplaceLRU)
	}
	return s, nil
}

func parseAlgorithm(name string) (otp.Algorithm, error) {
	switch name {
	case "SHA1":
		return otp.AlgorithmSHA1, nil
	case "SHA256":
		return otp.AlgorithmSHA256, nil
	case "SHA512":
		return otp.AlgorithmSHA512, nil
	}
	return 0, fmt.Errorf("algorithm %q: want SHA1, SHA256 or SHA512", name)
}

// secretSize is the key length RFC 6238 recommends for the hash: its output size.
func secretSize(a otp.Algorithm) uint {
	switch a {
	case otp.AlgorithmSHA256:
		return 32
	case otp.AlgorithmSHA512:
		return 64
	}
	return 20
}

// checkLabel checks an issuer or account name for the otpauth:// label, where ':' separates
// the two.
func checkLabel(what, v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is empty", what)
	case len(v) > maxLabelLen:
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(v), maxLabelLen)
	case strings.Contains(v, ":"):
		return fmt.Errorf("%s %q contains ':'", what, v)
	case !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0:
		return fmt.Errorf("%s %q is not printable text", what, v)
	}
	return nil
}

// cleanName trims a device name and checks it.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", errors.New("device name is empty")
	case !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", fmt.Errorf("device name %q is not printable text", name)
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", fmt.Errorf("device name is longer than %d characters", maxNameLen)
	}
	return name, nil
}

// Device is one enrolled authenticator. It holds no secret.
type Device struct {
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	// Created is when the enrollment was confirmed.
	Created time.Time `json:"created"`
	// LastUsed is when a code from the device was last accepted by Verify; zero if never.
	LastUsed time.Time `json:"last_used,omitzero"`
	// Digits, Period and Algorithm are the parameters the device was enrolled with.
	Digits    int           `json:"digits"`
	Period    time.Duration `json:"period"`
	Algorithm string        `json:"algorithm"`
}

// lastActive is when the device was last used, or created if never used.
func (d Device) lastActive() time.Time {
	if d.LastUsed.After(d.Created) {
		return d.LastUsed
	}
	return d.Created
}

// key is a secret and the parameters to check codes with.
type key struct {
	Secret    string        `json:"secret"` // base32, as in the otpauth:// URI
	Digits    int           `json:"digits"`
	Period    time.Duration `json:"period"`
	Algorithm string        `json:"algorithm"`
}

// deviceRecord is what the store holds for a device.
// TODO: the secret is stored as is; encryption at rest is not done yet.
type deviceRecord struct {
	Device
	Secret string `json:"secret"`
}

func (r deviceRecord) key() key {
	return key{Secret: r.Secret, Digits: r.Digits, Period: r.Period, Algorithm: r.Algorithm}
}

// pendingRecord is what the store holds for an enrollment waiting for its first code.
type pendingRecord struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	DeviceName string    `json:"device_name"`
	Expires    time.Time `json:"expires"`
	Key        key       `json:"key"`
}

// Pending is a started enrollment: show QRCode (and Secret or URI, when set) to the user,
// then call Confirm with a code from the app.
type Pending struct {
	// ID names the enrollment for Confirm.
	ID         string
	DeviceName string
	ExpiresAt  time.Time
	// QRCode is a PNG image of the otpauth:// URI. It carries the secret.
	QRCode []byte
	// URI is the otpauth:// URI (it holds the secret); set only when Settings.ShowSecret.
	URI string
	// Secret is the base32 secret for manual entry; set only when Settings.ShowSecret.
	Secret string
}

// LogValue keeps the secret, URI and QR code out of logs.
func (p Pending) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", p.ID), slog.String("device_name", p.DeviceName), slog.Time("expires_at", p.ExpiresAt))
}

// Manager enrolls and checks a user's TOTP devices. It is safe for concurrent use.
type Manager struct {
	s       Settings
	now     func() time.Time
	devices store.Collection[deviceRecord]
	pending store.Collection[pendingRecord]
	used    store.Store
}

// Validate reports a setting out of range, as New would.
func (s Settings) Validate() error {
	if _, err := s.withDefaults(); err != nil {
		return fmt.Errorf("totp settings: %w", err)
	}
	return nil
}

// New returns a Manager keeping its records in st. now is the clock (nil means time.Now).
func New(st store.Store, s Settings, now func() time.Time) (*Manager, error) {
	if st == nil {
		return nil, errors.New("totp settings: no store")
	}
	s, err := s.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("totp settings: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Manager{
		s:       s,
		now:     now,
		devices: store.Collection[deviceRecord]{Store: st, Kind: KindDevice},
		pending: store.Collection[pendingRecord]{Store: st, Kind: KindPending},
		used:    st,
	}, nil
}

// Settings returns the settings in use, defaults filled in.
func (m *Manager) Settings() Settings { return m.s }

// Begin starts an enrollment for userID: a new secret, not yet usable. accountName is shown in
// the app under the issuer (usually the user's login or e-mail); deviceName labels the device
// in lists. The enrollment lasts PendingTTL.
func (m *Manager) Begin(ctx context.Context, userID, accountName, deviceName string) (Pending, error) {
	if userID == "" {
		return Pending{}, errors.New("starting TOTP enrollment: no user id")
	}
	if err := checkLabel("account name", accountName); err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: %w", userID, err)
	}
	name, err := cleanName(deviceName)
	if err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: %w", userID, err)
	}
	alg, _ := parseAlgorithm(m.s.Algorithm) // checked by New
	k, err := pqtotp.Generate(pqtotp.GenerateOpts{
		Issuer:      m.s.Issuer,
		AccountName: accountName,
		Period:      uint(m.s.Period / time.Second),
		SecretSize:  secretSize(alg),
		Digits:      otp.Digits(m.s.Digits),
		Algorithm:   alg,
	})
	if err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: generating a key: %w", userID, err)
	}
	img, err := k.Image(qrSize, qrSize)
	if err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: drawing the QR code: %w", userID, err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: encoding the QR code: %w", userID, err)
	}
	rec := pendingRecord{
		ID:         rand.Text(),
		UserID:     userID,
		DeviceName: name,
		Expires:    m.now().Add(PendingTTL),
		Key:        key{Secret: k.Secret(), Digits: m.s.Digits, Period: m.s.Period, Algorithm: m.s.Algorithm},
	}
	if err := m.pending.Create(ctx, rec.ID, userID, rec.Expires, rec); err != nil {
		return Pending{}, fmt.Errorf("starting TOTP enrollment for user %q: %w", userID, err)
	}
	p := Pending{ID: rec.ID, DeviceName: name, ExpiresAt: rec.Expires, QRCode: buf.Bytes()}
	if m.s.ShowSecret {
		p.URI = k.URL()
		p.Secret = k.Secret()
	}
	return p, nil
}

// Confirm activates the pending enrollment pendingID of userID when code is valid for its
// secret, which proves the app holds it. A wrong code leaves the enrollment pending. If the
// user already has MaxDevices devices, WhenFull decides: refuse (ErrTooManyDevices, the
// enrollment stays pending) or remove one device. The confirming code counts as used.
func (m *Manager) Confirm(ctx context.Context, userID, pendingID, code string) (Device, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("confirming TOTP enrollment for user %q: "+format, append([]any{userID}, a...)...)
	}
	if userID == "" || pendingID == "" {
		return Device{}, errf("%w", ErrPendingExpired)
	}
	now := m.now()
	p, err := m.pending.Get(ctx, pendingID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (p.UserID != userID || !now.Before(p.Expires))) {
		return Device{}, errf("%w", ErrPendingExpired)
	}
	if err != nil {
		return Device{}, errf("%w", err)
	}
	steps := m.match(code, p.Key, now)
	if len(steps) == 0 {
		return Device{}, errf("%w", ErrInvalidCode)
	}
	if m.s.WhenFull == WhenFullRefuse {
		devs, err := m.devices.ListByOwner(ctx, userID)
		if err != nil {
			return Device{}, errf("listing devices: %w", err)
		}
		if len(devs) >= m.s.MaxDevices {
			return Device{}, errf("%d of %d devices: %w", len(devs), m.s.MaxDevices, ErrTooManyDevices)
		}
	}
	// Take makes confirmation single use when two requests race.
	if _, err := m.pending.Take(ctx, pendingID); errors.Is(err, store.ErrNotFound) {
		return Device{}, errf("%w", ErrPendingExpired)
	} else if err != nil {
		return Device{}, errf("%w", err)
	}
	rec := deviceRecord{
		Device: Device{
			ID: rand.Text(), UserID: userID, Name: p.DeviceName, Created: now,
			Digits: p.Key.Digits, Period: p.Key.Period, Algorithm: p.Key.Algorithm,
		},
		Secret: p.Key.Secret,
	}
	if err := m.devices.Create(ctx, rec.ID, userID, time.Time{}, rec); err != nil {
		return Device{}, errf("storing the device: %w", err)
	}
	for _, st := range steps {
		if _, err := m.markUsed(ctx, rec.Device, st); err != nil {
			m.deleteQuietly(ctx, rec.ID)
			return Device{}, errf("%w", err)
		}
	}
	if err := m.trim(ctx, userID, rec.ID); err != nil {
		return Device{}, errf("%w", err)
	}
	return rec.Device, nil
}

// trim brings the user back to MaxDevices after newID was added, by WhenFull. Under "refuse"
// (a concurrent confirmation won the last place) it removes newID and fails.
func (m *Manager) trim(ctx context.Context, userID, newID string) error {
	recs, err := m.devices.ListByOwner(ctx, userID)
	if err != nil {
		m.deleteQuietly(ctx, newID)
		return fmt.Errorf("listing devices: %w", err)
	}
	excess := len(recs) - m.s.MaxDevices
	if excess <= 0 {
		return nil
	}
	if m.s.WhenFull == WhenFullRefuse {
		m.deleteQuietly(ctx, newID)
		return fmt.Errorf("%d of %d devices: %w", len(recs)-1, m.s.MaxDevices, ErrTooManyDevices)
	}
	others := slices.DeleteFunc(recs, func(r deviceRecord) bool { return r.ID == newID })
	slices.SortFunc(others, func(a, b deviceRecord) int {
		ta, tb := a.Created, b.Created
		if m.s.WhenFull == WhenFullReplaceLRU {
			ta, tb = a.lastActive(), b.lastActive()
		}
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, r := range others[:min(excess, len(others))] {
		if err := m.devices.Delete(ctx, r.ID); err != nil {
			return fmt.Errorf("replacing device %q: %w", r.ID, err)
		}
	}
	return nil
}

func (m *Manager) deleteQuietly(ctx context.Context, deviceID string) {
	_ = m.devices.Delete(context.WithoutCancel(ctx), deviceID)
}

// Verify checks code against userID's devices. A code is accepted once only: the (device, time
// step) it belongs to is remembered until it can no longer be valid, and of two concurrent
// requests with the same code exactly one passes. It updates the device's LastUsed and returns
// the device.
func (m *Manager) Verify(ctx context.Context, userID, code string) (Device, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("verifying TOTP code for user %q: "+format, append([]any{userID}, a...)...)
	}
	if userID == "" {
		return Device{}, errf("%w", ErrNoDevices)
	}
	recs, err := m.devices.ListByOwner(ctx, userID)
	if err != nil {
		return Device{}, errf("listing devices: %w", err)
	}
	if len(recs) == 0 {
		return Device{}, errf("%w", ErrNoDevices)
	}
	now := m.now()
	replayed := false
	for _, r := range recs {
		for _, st := range m.match(code, r.key(), now) {
			fresh, err := m.markUsed(ctx, r.Device, st)
			if err != nil {
				return Device{}, errf("%w", err)
			}
			if !fresh {
				replayed = true
				continue
			}
			nr, err := m.devices.Update(ctx, r.ID, func(d deviceRecord) (deviceRecord, time.Time, error) {
				if now.After(d.LastUsed) {
					d.LastUsed = now
				}
				return d, time.Time{}, nil
			})
			if errors.Is(err, store.ErrNotFound) {
				return Device{}, errf("device %q removed meanwhile: %w", r.ID, ErrUnknownDevice)
			}
			if err != nil {
				return Device{}, errf("recording use of device %q: %w", r.ID, err)
			}
			return nr.Device, nil
		}
	}
	if replayed {
		return Device{}, errf("%w", ErrReplayed)
	}
	return Device{}, errf("%w", ErrInvalidCode)
}

// markUsed records that the code of step was accepted for dev. It reports false if it already
// was (a replay). The record lives until no clock within the skew can reach step again, plus one
// period for clocks that differ between nodes.
func (m *Manager) markUsed(ctx context.Context, dev Device, step int64) (bool, error) {
	until := time.Unix(0, 0).Add(time.Duration(step+int64(m.s.Skew)+2) * dev.Period)
	err := m.used.Create(ctx, store.Record{
		Kind:      KindUsed,
		ID:        fmt.Sprintf("%s:%d", dev.ID, step),
		Owner:     dev.UserID,
		Value:     []byte("1"),
		ExpiresAt: until,
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("recording a used code of device %q: %w", dev.ID, err)
	}
	return true, nil
}

// match returns the time steps within the skew of now at which code is valid for k, in order
// of distance from now. The code math and the constant-time comparison are pquerna/otp's.
func (m *Manager) match(code string, k key, now time.Time) []int64 {
	c, ok := normalizeCode(code, k.Digits)
	if !ok || k.Period < time.Second {
		return nil
	}
	alg, err := parseAlgorithm(k.Algorithm)
	if err != nil {
		return nil
	}
	period := int64(k.Period / time.Second)
	opts := pqtotp.ValidateOpts{Period: uint(period), Skew: 0, Digits: otp.Digits(k.Digits), Algorithm: alg}
	cur := now.Unix() / period
	candidates := []int64{cur}
	for i := int64(1); i <= int64(m.s.Skew); i++ {
		candidates = append(candidates, cur-i, cur+i)
	}
	var steps []int64
	for _, st := range candidates {
		if st < 0 {
			continue
		}
		if ok, err := pqtotp.ValidateCustom(c, k.Secret, time.Unix(st*period, 0), opts); err == nil && ok {
			steps = append(steps, st)
		}
	}
	return steps
}

// normalizeCode accepts a code as people type it: digits, possibly with spaces around or
// between groups ("123 456"). It returns the digits if there are exactly n of them.
func normalizeCode(code string, n int) (string, bool) {
	if len(code) > maxCodeInput {
		return "", false
	}
	var b strings.Builder
	for _, r := range code {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '\t':
		default:
			return "", false
		}
	}
	if b.Len() != n {
		return "", false
	}
	return b.String(), true
}

// List returns userID's devices, oldest first.
func (m *Manager) List(ctx context.Context, userID string) ([]Device, error) {
	recs, err := m.devices.ListByOwner(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing TOTP devices of user %q: %w", userID, err)
	}
	out := make([]Device, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Device)
	}
	slices.SortFunc(out, func(a, b Device) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Rename changes the name of userID's device deviceID.
func (m *Manager) Rename(ctx context.Context, userID, deviceID, name string) error {
	name, err := cleanName(name)
	if err != nil {
		return fmt.Errorf("renaming TOTP device %q of user %q: %w", deviceID, userID, err)
	}
	if deviceID == "" {
		return fmt.Errorf("renaming TOTP device of user %q: %w", userID, ErrUnknownDevice)
	}
	_, err = m.devices.Update(ctx, deviceID, func(r deviceRecord) (deviceRecord, time.Time, error) {
		if r.UserID != userID {
			return r, time.Time{}, ErrUnknownDevice
		}
		r.Name = name
		return r, time.Time{}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = ErrUnknownDevice
	}
	if err != nil {
		return fmt.Errorf("renaming TOTP device %q of user %q: %w", deviceID, userID, err)
	}
	return nil
}

// Remove deletes userID's device deviceID.
func (m *Manager) Remove(ctx context.Context, userID, deviceID string) error {
	if deviceID == "" {
		return fmt.Errorf("removing TOTP device of user %q: %w", userID, ErrUnknownDevice)
	}
	r, err := m.devices.Get(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.UserID != userID) {
		err = ErrUnknownDevice
	}
	if err == nil {
		err = m.devices.Delete(ctx, deviceID)
	}
	if err != nil {
		return fmt.Errorf("removing TOTP device %q of user %q: %w", deviceID, userID, err)
	}
	return nil
}

// Reset removes all of userID's devices and pending enrollments (an administrator's reset) and
// says how many devices it removed.
func (m *Manager) Reset(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, errors.New("resetting TOTP devices: no user id")
	}
	if _, err := m.pending.DeleteByOwner(ctx, userID); err != nil {
		return 0, fmt.Errorf("resetting TOTP devices of user %q: pending enrollments: %w", userID, err)
	}
	n, err := m.devices.DeleteByOwner(ctx, userID)
	if err != nil {
		return n, fmt.Errorf("resetting TOTP devices of user %q: %w", userID, err)
	}
	return n, nil
}

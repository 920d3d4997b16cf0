// Package passkey registers and checks WebAuthn credentials (security keys and passkeys).
//
// The ceremonies are go-webauthn's: this package keeps their server-side state in the store
// (single use, with a lifetime), gives each user a random WebAuthn user handle, keeps the
// credentials, and adds the policy the library leaves to the relying party: refusing
// sign-count regressions (cloned authenticators), an AAGUID allow list, a per-user limit, and a
// stable reason for every refusal.
//
// About AAGUIDs: with attestation conveyance "none" (the default) nothing vouches for the AAGUID;
// the authenticator reports it itself, so an allow list keeps honest authenticators out or in,
// not a determined attacker with a software authenticator. Only attestation "direct" or
// "indirect" checked against trust anchors (not done here) would make it evidence.
package passkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/zonegate/zonegate/store"
)

// Sentinel errors. Returned errors wrap them; test with errors.Is, or map them with Reason. A
// store failure wraps the store's error (store.ErrUnavailable and so on) and none of these.
var (
	// ErrCeremonyExpired means the ceremony id is unknown, already used, expired, or belongs to
	// another user or ceremony type: the ceremony must start again.
	ErrCeremonyExpired = errors.New("passkey: ceremony expired or unknown")
	// ErrCloneWarning means the authenticator's signature counter did not advance past the
	// stored one: the credential may have been cloned. The login is refused.
	ErrCloneWarning = errors.New("passkey: signature counter did not increase (possible cloned authenticator)")
	// ErrAAGUIDNotAllowed means the authenticator model (AAGUID) is not on Settings.AllowedAAGUIDs.
	ErrAAGUIDNotAllowed = errors.New("passkey: authenticator model not allowed")
	// ErrUnknownCredential means no stored credential has the id the authenticator used, or it is
	// not one the ceremony allowed.
	ErrUnknownCredential = errors.New("passkey: unknown credential")
	// ErrUserVerificationRequired means user verification is required and the authenticator did
	// not verify the user (no PIN or biometric).
	ErrUserVerificationRequired = errors.New("passkey: user verification required")
	// ErrBackupEligibilityChanged means the authenticator reports a backup eligibility other than
	// at registration, which a genuine credential never does.
	ErrBackupEligibilityChanged = errors.New("passkey: backup eligibility changed")
	// ErrTooManyCredentials means the user already has Settings.MaxCredentials credentials.
	ErrTooManyCredentials = errors.New("passkey: too many credentials")
	// ErrNoCredentials means the user has no credential to log in with.
	ErrNoCredentials = errors.New("passkey: no credentials registered")
	// ErrWrongUser means the credential belongs to another user than the ceremony or the user
	// handle names.
	ErrWrongUser = errors.New("passkey: credential belongs to another user")
	// ErrCredentialExists means a registration presented a credential id that is already
	// registered (to this or another user).
	ErrCredentialExists = errors.New("passkey: credential already registered")
	// ErrInvalidName means a credential label is not acceptable (not printable, too long).
	ErrInvalidName = errors.New("passkey: invalid credential name")
	// ErrInvalidResponse means the browser's response failed verification: malformed, wrong
	// origin, relying party or challenge, bad signature, and so on.
	ErrInvalidResponse = errors.New("passkey: invalid response")
)

// Reason maps an error of this package to a short stable reason for logs and metrics:
// "ceremony_expired", "clone_warning", "aaguid_not_allowed", "unknown_credential",
// "user_verification_required", "backup_eligibility_changed", "too_many_credentials",
// "no_credentials", "wrong_user", "credential_exists", "invalid_name", "invalid_response" (any
// other verification failure), "" for nil, and "error" for anything else (store errors: answer
// 503).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "error"
}

var reasons = []struct {
	err    error
	reason string
}{
	{ErrCeremonyExpired, "ceremony_expired"},
	{ErrCloneWarning, "clone_warning"},
	{ErrAAGUIDNotAllowed, "aaguid_not_allowed"},
	{ErrUnknownCredential, "unknown_credential"},
	{ErrUserVerificationRequired, "user_verification_required"},
	{ErrBackupEligibilityChanged, "backup_eligibility_changed"},
	{ErrTooManyCredentials, "too_many_credentials"},
	{ErrNoCredentials, "no_credentials"},
	{ErrWrongUser, "wrong_user"},
	{ErrCredentialExists, "credential_exists"},
	{ErrInvalidName, "invalid_name"},
	{ErrInvalidResponse, "invalid_response"},
}

// Store kinds used by this package.
const (
	KindUser       store.Kind = "webauthn_user"       // user id -> the user's WebAuthn user handle
	KindHandle     store.Kind = "webauthn_handle"     // base64url user handle -> user id (reverse index), owner = user id
	KindCredential store.Kind = "webauthn_credential" // base64url credential id -> credential, owner = user id
	KindCeremony   store.Kind = "webauthn_ceremony"   // pending registration or login, single use, owner = user id ("" for discoverable logins)
)

// DefaultName is the label of a credential registered without one.
const DefaultName = "Security key"

const (
	handleSize        = 32       // bytes of a random WebAuthn user handle
	maxNameLen        = 64       // credential label, in characters
	maxDisplayNameLen = 64       // RP display name, in characters
	maxResponse       = 64 << 10 // largest browser response accepted, in bytes
	maxMaxCredentials = 100
	minTimeout        = 10 * time.Second
	maxTimeout        = time.Hour
)

const (
	purposeRegistration = "registration"
	purposeLogin        = "login"
)

// Settings configure a Manager. The zero value of each optional field means its default.
type Settings struct {
	// RPID is the relying party id: a domain, e.g. "example.com" or "localhost" (required). Every
	// origin must be on it or on a subdomain of it. Credentials are bound to it: changing it
	// orphans every registered credential.
	RPID string `json:"rp_id,omitempty"`
	// RPDisplayName is the name authenticators may show. Default "zonegate".
	RPDisplayName string `json:"rp_display_name,omitempty"`
	// Origins are the origins the IdP pages are served from, e.g. "https://id.example.com" or
	// "http://localhost:9091" (required): absolute, scheme and host[:port] only; http only on
	// localhost (browsers offer WebAuthn nowhere else without TLS).
	Origins []string `json:"origins,omitempty"`
	// UserVerification is "required" (default: a PIN or biometric every time), "preferred" or
	// "discouraged".
	UserVerification string `json:"user_verification,omitempty"`
	// Attestation is the attestation conveyance asked for: "none" (default), "indirect" or
	// "direct". Attestation statements are checked for consistency; no trust anchors are used.
	Attestation string `json:"attestation,omitempty"`
	// ResidentKey is "preferred" (default), "required" or "discouraged". Discoverable
	// credentials (resident keys) are passkeys: they allow login without a username.
	ResidentKey string `json:"resident_key,omitempty"`
	// Attachment restricts the kind of authenticator: "" (any, default), "platform" (built into
	// the device) or "cross-platform" (security keys, phones).
	Attachment string `json:"attachment,omitempty"`
	// AllowedAAGUIDs lists the authenticator models (AAGUIDs, UUID strings) that may be used;
	// empty allows any. A credential whose AAGUID is not listed is refused at registration and
	// at login (the list may have changed since). The all-zero AAGUID, which some authenticators
	// report, is refused unless listed. See the package comment: without attestation the AAGUID
	// is self-reported.
	AllowedAAGUIDs []string `json:"allowed_aaguids,omitempty"`
	// MaxCredentials is how many credentials one user may have: default 10, at most 100.
	MaxCredentials int `json:"max_credentials,omitempty"`
	// Timeout is how long a ceremony lasts, from begin to finish: default 5 minutes, 10s to 1h.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// withDefaults returns s with defaults filled in and values normalized, and checks it.
func (s Settings) withDefaults() (Settings, error) {
	if s.RPDisplayName == "" {
		s.RPDisplayName = "zonegate"
	}
	if s.UserVerification == "" {
		s.UserVerification = string(protocol.VerificationRequired)
	}
	if s.Attestation == "" {
		s.Attestation = string(protocol.PreferNoAttestation)
	}
	if s.ResidentKey == "" {
		s.ResidentKey = string(protocol.ResidentKeyRequirementPreferred)
	}
	if s.MaxCredentials == 0 {
		s.MaxCredentials = 10
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Minute
	}
	s.RPID = strings.ToLower(s.RPID)
	if s.RPID == "" {
		return s, errors.New("rp id is empty")
	}
	if err := protocol.ValidateRPID(s.RPID); err != nil {
		return s, fmt.Errorf("rp id %q: %w", s.RPID, err)
	}
	if n := utf8.RuneCountInString(s.RPDisplayName); !printable(s.RPDisplayName) || n > maxDisplayNameLen {
		return s, fmt.Errorf("rp display name %q: want printable text of at most %d characters", s.RPDisplayName, maxDisplayNameLen)
	}
	if len(s.Origins) == 0 {
		return s, errors.New("no origins")
	}
	origins := make([]string, 0, len(s.Origins))
	for i, o := range s.Origins {
		no, err := checkOrigin(o, s.RPID)
		if err != nil {
			return s, fmt.Errorf("origin %d %q: %w", i+1, o, err)
		}
		origins = append(origins, no)
	}
	s.Origins = origins
	if err := oneOf("user verification", s.UserVerification, "required", "preferred", "discouraged"); err != nil {
		return s, err
	}
	if err := oneOf("attestation", s.Attestation, "none", "indirect", "direct"); err != nil {
		return s, err
	}
	if err := oneOf("resident key", s.ResidentKey, "preferred", "required", "discouraged"); err != nil {
		return s, err
	}
	if s.Attachment != "" {
		if err := oneOf("attachment", s.Attachment, "platform", "cross-platform"); err != nil {
			return s, err
		}
	}
	aaguids := make([]string, 0, len(s.AllowedAAGUIDs))
	for i, a := range s.AllowedAAGUIDs {
		u, err := uuid.Parse(strings.TrimSpace(a))
		if err != nil {
			return s, fmt.Errorf("allowed aaguid %d %q: want a UUID like 00000000-0000-0000-0000-000000000000", i+1, a)
		}
		aaguids = append(aaguids, u.String())
	}
	s.AllowedAAGUIDs = aaguids
	if s.MaxCredentials < 1 || s.MaxCredentials > maxMaxCredentials {
		return s, fmt.Errorf("max credentials %d: want 1 to %d", s.MaxCredentials, maxMaxCredentials)
	}
	if s.Timeout < minTimeout || s.Timeout > maxTimeout {
		return s, fmt.Errorf("timeout %s: want %s to %s", s.Timeout, minTimeout, maxTimeout)
	}
	return s, nil
}

// checkOrigin checks one allowed origin and returns it in lower case.
func checkOrigin(o, rpID string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("want an http or https origin")
	case u.Host == "" || u.Hostname() == "":
		return "", errors.New("no host")
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "":
		return "", errors.New("want scheme and host[:port] only, no path, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", fmt.Errorf("host %q is not rp id %q or a subdomain of it", host, rpID)
	}
	if u.Scheme == "http" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		return "", errors.New("http is only usable on localhost; use https")
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}

func oneOf(what, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%s %q: want one of %s", what, v, strings.Join(allowed, ", "))
}

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// Validate reports a setting out of range, as New would.
func (s Settings) Validate() error {
	if _, err := s.withDefaults(); err != nil {
		return fmt.Errorf("passkey settings: %w", err)
	}
	return nil
}

// cleanName trims a credential label, defaults it, and checks it.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return DefaultName, nil
	case !printable(name):
		return "", fmt.Errorf("name %q is not printable text: %w", name, ErrInvalidName)
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", fmt.Errorf("name is longer than %d characters: %w", maxNameLen, ErrInvalidName)
	}
	return name, nil
}

// User is the account a credential is registered for.
type User struct {
	// ID is the zonegate user id (from the directory). It is never sent to the authenticator.
	ID string
	// Name is the username; authenticators show it when the user picks a passkey.
	Name string
	// DisplayName is the user's full name; default Name.
	DisplayName string
}

// Credential is one registered authenticator credential. It holds no secret.
type Credential struct {
	// ID is the credential id, base64url (raw, no padding).
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	// Name is the user-given label (default "Security key").
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// LastUsed is when the credential last signed in; zero if never.
	LastUsed time.Time `json:"last_used,omitzero"`
	// SignCount is the authenticator's signature counter at the last use (0 if it does not count).
	SignCount uint32 `json:"sign_count"`
	// AAGUID is the authenticator model, in UUID form (self-reported without attestation).
	AAGUID string `json:"aaguid"`
	// Attachment is "platform", "cross-platform" or "" as the browser reported it.
	Attachment string   `json:"attachment,omitempty"`
	Transports []string `json:"transports,omitempty"`
	// BackupEligible says the credential may be synced (a multi-device passkey); it never
	// changes. BackupState says it was backed up at the last use.
	BackupEligible bool `json:"backup_eligible"`
	BackupState    bool `json:"backup_state"`
	// Discoverable says the credential is a resident key (passkey): registered when resident
	// keys were required, or reported so by the browser (credProps).
	Discoverable bool `json:"discoverable"`
}

// Assertion is a successful login.
type Assertion struct {
	// UserID is the zonegate user id the credential belongs to.
	UserID string
	// Credential is the credential after the update (new sign count, LastUsed, BackupState).
	Credential Credential
	// UserVerified says the authenticator verified the user (PIN or biometric) this time.
	UserVerified bool
	// UserPresent says the authenticator tested for the user's presence (a touch) this time.
	UserPresent bool
}

// AMR returns the RFC 8176 authentication method references the assertion earns: "hwk" for a
// device-bound key (not backup eligible) or "swk" for a synced passkey; "user" when the user was
// present; "pin" and "mfa" when the user was verified (PIN or biometric: the authenticator does
// not say which, and either with the key makes two factors).
func (a Assertion) AMR() []string {
	amr := []string{"hwk"}
	if a.Credential.BackupEligible {
		amr[0] = "swk"
	}
	if a.UserPresent {
		amr = append(amr, "user")
	}
	if a.UserVerified {
		amr = append(amr, "pin", "mfa")
	}
	return amr
}

// credentialRecord is what the store holds for a credential.
type credentialRecord struct {
	Credential
	// WebAuthn is the library's record: public key, flags, authenticator data, attestation.
	WebAuthn webauthn.Credential `json:"webauthn"`
}

// userRecord holds a user's WebAuthn user handle.
type userRecord struct {
	UserID string `json:"user_id"`
	Handle string `json:"handle"` // base64url of handleSize random bytes
}

// handleRecord is the reverse index of a user handle.
type handleRecord struct {
	UserID string `json:"user_id"`
}

// ceremonyRecord is a pending registration or login.
type ceremonyRecord struct {
	Purpose string               `json:"purpose"`
	UserID  string               `json:"user_id,omitempty"` // "" for a discoverable login
	Expires time.Time            `json:"expires"`
	Session webauthn.SessionData `json:"session"`
}

// waUser is the library's view of a user: the random handle and the credentials it may use.
type waUser struct {
	handle      []byte
	name        string
	displayName string
	creds       []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.displayName }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// Manager registers and checks a user's WebAuthn credentials. It is safe for concurrent use.
type Manager struct {
	s          Settings
	now        func() time.Time
	wa         *webauthn.WebAuthn
	users      store.Collection[userRecord]
	handles    store.Collection[handleRecord]
	creds      store.Collection[credentialRecord]
	ceremonies store.Collection[ceremonyRecord]
}

// New returns a Manager keeping its records in st. now is the clock (nil means time.Now); it
// dates credentials and decides ceremony expiry.
func New(st store.Store, s Settings, now func() time.Time) (*Manager, error) {
	if st == nil {
		return nil, errors.New("passkey settings: no store")
	}
	s, err := s.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("passkey settings: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	rk := protocol.ResidentKeyNotRequired()
	if s.ResidentKey == string(protocol.ResidentKeyRequirementRequired) {
		rk = protocol.ResidentKeyRequired()
	}
	timeout := webauthn.TimeoutConfig{Timeout: s.Timeout, TimeoutUVD: s.Timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  s.RPID,
		RPDisplayName:         s.RPDisplayName,
		RPOrigins:             slices.Clone(s.Origins),
		AttestationPreference: protocol.ConveyancePreference(s.Attestation),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			AuthenticatorAttachment: protocol.AuthenticatorAttachment(s.Attachment),
			RequireResidentKey:      rk,
			ResidentKey:             protocol.ResidentKeyRequirement(s.ResidentKey),
			UserVerification:        protocol.UserVerificationRequirement(s.UserVerification),
		},
		// Expiry is enforced here with the injected clock; SessionData.Expires is set to match.
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey settings: %w", err)
	}
	return &Manager{
		s:          s,
		now:        now,
		wa:         wa,
		users:      store.Collection[userRecord]{Store: st, Kind: KindUser},
		handles:    store.Collection[handleRecord]{Store: st, Kind: KindHandle},
		creds:      store.Collection[credentialRecord]{Store: st, Kind: KindCredential},
		ceremonies: store.Collection[ceremonyRecord]{Store: st, Kind: KindCeremony},
	}, nil
}

// Settings returns the settings in use, defaults filled in.
func (m *Manager) Settings() Settings {
	s := m.s
	s.Origins = slices.Clone(s.Origins)
	s.AllowedAAGUIDs = slices.Clone(s.AllowedAAGUIDs)
	return s
}

var b64 = base64.RawURLEncoding

// handle returns userID's WebAuthn user handle, creating it on first use. The reverse index is
// created first, so a handle the user record names can always be resolved; a handle that lost
// a race is removed again.
func (m *Manager) handle(ctx context.Context, userID string) ([]byte, error) {
	for range 3 {
		if h, err := m.existingHandle(ctx, userID); err == nil {
			return h, nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		h := make([]byte, handleSize)
		if _, err := rand.Read(h); err != nil {
			return nil, fmt.Errorf("generating a user handle: %w", err)
		}
		hs := b64.EncodeToString(h)
		if err := m.handles.Create(ctx, hs, userID, time.Time{}, handleRecord{UserID: userID}); err != nil {
			return nil, fmt.Errorf("storing a user handle: %w", err)
		}
		err := m.users.Create(ctx, userID, userID, time.Time{}, userRecord{UserID: userID, Handle: hs})
		if err == nil {
			return h, nil
		}
		_ = m.handles.Delete(context.WithoutCancel(ctx), hs)
		if !errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("storing a user handle: %w", err)
		}
	}
	return nil, errors.New("storing a user handle: lost the race three times")
}

// existingHandle returns userID's user handle or store.ErrNotFound.
func (m *Manager) existingHandle(ctx context.Context, userID string) ([]byte, error) {
	r, err := m.users.Get(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("reading the user handle: %w", err)
	}
	h, err := b64.DecodeString(r.Handle)
	if err != nil || len(h) != handleSize || r.UserID != userID {
		return nil, fmt.Errorf("reading the user handle: corrupt %s record", KindUser)
	}
	return h, nil
}

// listRecords returns userID's credential records, oldest first.
func (m *Manager) listRecords(ctx context.Context, userID string) ([]credentialRecord, error) {
	recs, err := m.creds.ListByOwner(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	slices.SortFunc(recs, func(a, b credentialRecord) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return recs, nil
}

// aaguidAllowed says whether the allow list admits aaguid (UUID string form).
func (m *Manager) aaguidAllowed(aaguid string) bool {
	return len(m.s.AllowedAAGUIDs) == 0 || slices.Contains(m.s.AllowedAAGUIDs, strings.ToLower(aaguid))
}

// newCeremony stores the state of a begun ceremony and returns its id.
func (m *Manager) newCeremony(ctx context.Context, purpose, userID string, sess *webauthn.SessionData) (string, error) {
	exp := m.now().Add(m.s.Timeout)
	sess.Expires = exp
	id := rand.Text()
	rec := ceremonyRecord{Purpose: purpose, UserID: userID, Expires: exp, Session: *sess}
	if err := m.ceremonies.Create(ctx, id, userID, exp, rec); err != nil {
		return "", fmt.Errorf("storing the ceremony: %w", err)
	}
	return id, nil
}

// takeCeremony consumes ceremony id; anything but a live ceremony of purpose (and of userID,
// when a registration) is ErrCeremonyExpired.
func (m *Manager) takeCeremony(ctx context.Context, id, purpose string) (ceremonyRecord, error) {
	if id == "" {
		return ceremonyRecord{}, ErrCeremonyExpired
	}
	rec, err := m.ceremonies.Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, ErrCeremonyExpired
	}
	if err != nil {
		return rec, fmt.Errorf("taking the ceremony: %w", err)
	}
	if rec.Purpose != purpose || !m.now().Before(rec.Expires) {
		return rec, ErrCeremonyExpired
	}
	return rec, nil
}

// BeginRegistration starts registering a new credential for u. options is the JSON to pass,
// after base64url decoding of its binary fields, to navigator.credentials.create: the library's
// protocol.CredentialCreation ({"publicKey":{...}}). It excludes u's existing credentials and
// asks for the credProps extension. ceremonyID names the server-side state for
// FinishRegistration: single use, lasting Settings.Timeout.
func (m *Manager) BeginRegistration(ctx context.Context, u User) (ceremonyID string, options []byte, err error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("beginning passkey registration for user %q: "+format, append([]any{u.ID}, a...)...)
	}
	if u.ID == "" {
		return "", nil, errors.New("beginning passkey registration: no user id")
	}
	if strings.TrimSpace(u.Name) == "" || !printable(u.Name) {
		return "", nil, errf("user name %q is empty or not printable", u.Name)
	}
	if u.DisplayName == "" {
		u.DisplayName = u.Name
	}
	recs, err := m.listRecords(ctx, u.ID)
	if err != nil {
		return "", nil, errf("%w", err)
	}
	if len(recs) >= m.s.MaxCredentials {
		return "", nil, errf("%d of %d credentials: %w", len(recs), m.s.MaxCredentials, ErrTooManyCredentials)
	}
	h, err := m.handle(ctx, u.ID)
	if err != nil {
		return "", nil, errf("%w", err)
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(recs))
	for _, r := range recs {
		exclude = append(exclude, r.WebAuthn.Descriptor())
	}
	user := &waUser{handle: h, name: u.Name, displayName: u.DisplayName}
	creation, sess, err := m.wa.BeginRegistration(user,
		webauthn.WithExclusions(exclude),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return "", nil, errf("%w", err)
	}
	id, err := m.newCeremony(ctx, purposeRegistration, u.ID, sess)
	if err != nil {
		return "", nil, errf("%w", err)
	}
	options, err = json.Marshal(creation)
	if err != nil {
		return "", nil, errf("encoding options: %w", err)
	}
	return id, options, nil
}

// FinishRegistration verifies the browser's answer to BeginRegistration (the PublicKeyCredential
// as JSON with base64url fields, as protocol.ParseCredentialCreationResponseBody expects) and
// stores the new credential under name (trimmed; default "Security key"). The ceremony is used
// up whatever the outcome, except when name is invalid (ErrInvalidName), which is checked first.
func (m *Manager) FinishRegistration(ctx context.Context, u User, ceremonyID string, response []byte, name string) (Credential, error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("finishing passkey registration for user %q: "+format, append([]any{u.ID}, a...)...)
	}
	name, err := cleanName(name)
	if err != nil {
		return Credential{}, errf("%w", err)
	}
	cer, err := m.takeCeremony(ctx, ceremonyID, purposeRegistration)
	if err != nil {
		return Credential{}, errf("%w", err)
	}
	if u.ID == "" || cer.UserID != u.ID {
		return Credential{}, errf("ceremony of another user: %w", ErrCeremonyExpired)
	}
	h, err := m.existingHandle(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return Credential{}, errf("user handle removed: %w", ErrCeremonyExpired)
	}
	if err != nil {
		return Credential{}, errf("%w", err)
	}
	if subtle.ConstantTimeCompare(h, cer.Session.UserID) != 1 {
		return Credential{}, errf("user handle changed: %w", ErrCeremonyExpired)
	}
	if len(response) > maxResponse {
		return Credential{}, errf("response of %d bytes: %w", len(response), ErrInvalidResponse)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, errf("%w", libError(ErrInvalidResponse, err))
	}
	flags := parsed.Response.AttestationObject.AuthData.Flags
	wc, err := m.wa.CreateCredential(&waUser{handle: h, name: u.Name, displayName: u.DisplayName}, cer.Session, parsed)
	if err != nil {
		return Credential{}, errf("%w", verifyError(err, cer.Session, flags, nil))
	}
	aaguid, err := uuid.FromBytes(wc.Authenticator.AAGUID)
	if err != nil {
		return Credential{}, errf("aaguid: %w", ErrInvalidResponse)
	}
	if !m.aaguidAllowed(aaguid.String()) {
		return Credential{}, errf("aaguid %s: %w", aaguid, ErrAAGUIDNotAllowed)
	}
	recs, err := m.listRecords(ctx, u.ID)
	if err != nil {
		return Credential{}, errf("%w", err)
	}
	if len(recs) >= m.s.MaxCredentials {
		return Credential{}, errf("%d of %d credentials: %w", len(recs), m.s.MaxCredentials, ErrTooManyCredentials)
	}
	discoverable := m.s.ResidentKey == string(protocol.ResidentKeyRequirementRequired)
	if wc.Extensions.RK != nil {
		discoverable = *wc.Extensions.RK
	}
	transports := make([]string, 0, len(wc.Transport))
	for _, t := range wc.Transport {
		transports = append(transports, string(t))
	}
	wc.Authenticator.CloneWarning = false
	rec := credentialRecord{
		Credential: Credential{
			ID:             b64.EncodeToString(wc.ID),
			UserID:         u.ID,
			Name:           name,
			Created:        m.now(),
			SignCount:      wc.Authenticator.SignCount,
			AAGUID:         aaguid.String(),
			Attachment:     string(wc.Authenticator.Attachment),
			Transports:     transports,
			BackupEligible: wc.Flags.BackupEligible,
			BackupState:    wc.Flags.BackupState,
			Discoverable:   discoverable,
		},
		WebAuthn: *wc,
	}
	err = m.creds.Create(ctx, rec.ID, u.ID, time.Time{}, rec)
	if errors.Is(err, store.ErrAlreadyExists) {
		return Credential{}, errf("credential %q: %w", rec.ID, ErrCredentialExists)
	}
	if err != nil {
		return Credential{}, errf("storing credential %q: %w", rec.ID, err)
	}
	// A concurrent registration may have taken the last place meanwhile.
	recs, err = m.listRecords(ctx, u.ID)
	if err != nil {
		_ = m.creds.Delete(context.WithoutCancel(ctx), rec.ID)
		return Credential{}, errf("%w", err)
	}
	if len(recs) > m.s.MaxCredentials {
		_ = m.creds.Delete(context.WithoutCancel(ctx), rec.ID)
		return Credential{}, errf("%d of %d credentials: %w", len(recs)-1, m.s.MaxCredentials, ErrTooManyCredentials)
	}
	return rec.Credential, nil
}

// BeginLogin starts a login. With userID "" it is a discoverable login (passkey, username-less,
// conditional UI): allowCredentials is empty and the authenticator names the user. Otherwise
// allowCredentials lists userID's credentials whose model is allowed (ErrNoCredentials when the
// user has none, ErrAAGUIDNotAllowed when none is allowed). options is the JSON for
// navigator.credentials.get: the library's protocol.CredentialAssertion ({"publicKey":{...}}).
func (m *Manager) BeginLogin(ctx context.Context, userID string) (ceremonyID string, options []byte, err error) {
	return m.beginLogin(ctx, userID, protocol.UserVerificationRequirement(m.s.UserVerification))
}

// BeginVerifiedLogin is BeginLogin with user verification required for this one ceremony
// (a PIN or biometric), whatever Settings.UserVerification says: for a rule that asks for a
// verified key. FinishLogin then refuses an assertion without it (ErrUserVerificationRequired).
func (m *Manager) BeginVerifiedLogin(ctx context.Context, userID string) (ceremonyID string, options []byte, err error) {
	return m.beginLogin(ctx, userID, protocol.VerificationRequired)
}

func (m *Manager) beginLogin(ctx context.Context, userID string, req protocol.UserVerificationRequirement) (ceremonyID string, options []byte, err error) {
	errf := func(format string, a ...any) error {
		return fmt.Errorf("beginning passkey login for user %q: "+format, append([]any{userID}, a...)...)
	}
	uv := webauthn.WithUserVerification(req)
	var (
		assertion *protocol.CredentialAssertion
		sess      *webauthn.SessionData
	)
	if userID == "" {
		assertion, sess, err = m.wa.BeginDiscoverableLogin(uv)
		if err != nil {
			return "", nil, fmt.Errorf("beginning discoverable passkey login: %w", err)
		}
	} else {
		recs, err := m.listRecords(ctx, userID)
		if err != nil {
			return "", nil, errf("%w", err)
		}
		if len(recs) == 0 {
			return "", nil, errf("%w", ErrNoCredentials)
		}
		h, err := m.existingHandle(ctx, userID)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil, errf("no user handle: %w", ErrNoCredentials)
		}
		if err != nil {
			return "", nil, errf("%w", err)
		}
		user := &waUser{handle: h}
		for _, r := range recs {
			if m.aaguidAllowed(r.AAGUID) {
				user.creds = append(user.creds, r.WebAuthn)
			}
		}
		if len(user.creds) == 0 {
			return "", nil, errf("none of %d credentials: %w", len(recs), ErrAAGUIDNotAllowed)
		}
		assertion, sess, err = m.wa.BeginLogin(user, uv)
		if err != nil {
			return "", nil, errf("%w", err)
		}
	}
	id, err := m.newCeremony(ctx, purposeLogin, userID, sess)
	if err != nil {
		return "", nil, errf("%w", err)
	}
	options, err = json.Marshal(assertion)
	if err != nil {
		return "", nil, errf("encoding options: %w", err)
	}
	return id, options, nil
}

// FinishLogin checks the browser's answer to BeginLogin (the PublicKeyCredential as JSON with
// base64url fields): origin, rpId hash, challenge, signature, user verification per Settings,
// sign count, the AAGUID allow list and unchanged backup eligibility. It then records the use
// (sign count, LastUsed, backup state) by compare-and-swap and says who signed in. The ceremony
// is used up whatever the outcome.
func (m *Manager) FinishLogin(ctx context.Context, ceremonyID string, response []byte) (Assertion, error) {
	cer, err := m.takeCeremony(ctx, ceremonyID, purposeLogin)
	if err != nil {
		return Assertion{}, fmt.Errorf("finishing passkey login: %w", err)
	}
	errf := func(format string, a ...any) error {
		if cer.UserID == "" {
			return fmt.Errorf("finishing discoverable passkey login: "+format, a...)
		}
		return fmt.Errorf("finishing passkey login for user %q: "+format, append([]any{cer.UserID}, a...)...)
	}
	if len(response) > maxResponse {
		return Assertion{}, errf("response of %d bytes: %w", len(response), ErrInvalidResponse)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Assertion{}, errf("%w", libError(ErrInvalidResponse, err))
	}
	credID := b64.EncodeToString(parsed.RawID)
	userHandle := parsed.Response.UserHandle

	// Who is signing in: the ceremony's user, or the one the user handle names.
	userID := cer.UserID
	if userID == "" {
		if len(userHandle) == 0 {
			return Assertion{}, errf("no user handle in a discoverable login: %w", ErrInvalidResponse)
		}
		hr, err := m.handles.Get(ctx, b64.EncodeToString(userHandle))
		if errors.Is(err, store.ErrNotFound) {
			return Assertion{}, errf("credential %q: user handle unknown: %w", credID, ErrUnknownCredential)
		}
		if err != nil {
			return Assertion{}, errf("resolving the user handle: %w", err)
		}
		userID = hr.UserID
	} else if !slices.ContainsFunc(cer.Session.AllowedCredentialIDs, func(id []byte) bool { return bytes.Equal(id, parsed.RawID) }) {
		return Assertion{}, errf("credential %q was not offered: %w", credID, ErrUnknownCredential)
	}
	h, err := m.existingHandle(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return Assertion{}, errf("credential %q: user %q has no user handle: %w", credID, userID, ErrUnknownCredential)
	}
	if err != nil {
		return Assertion{}, errf("%w", err)
	}
	if len(userHandle) > 0 && subtle.ConstantTimeCompare(h, userHandle) != 1 {
		return Assertion{}, errf("credential %q: user handle is not user %q's: %w", credID, userID, ErrWrongUser)
	}
	rec, err := m.creds.Get(ctx, credID)
	if errors.Is(err, store.ErrNotFound) {
		return Assertion{}, errf("credential %q: %w", credID, ErrUnknownCredential)
	}
	if err != nil {
		return Assertion{}, errf("reading credential %q: %w", credID, err)
	}
	if rec.UserID != userID {
		return Assertion{}, errf("credential %q is not user %q's: %w", credID, userID, ErrWrongUser)
	}

	// The library verifies the response against this one credential.
	wc := rec.WebAuthn
	wc.Authenticator.CloneWarning = false
	user := &waUser{handle: h, creds: []webauthn.Credential{wc}}
	sess := cer.Session
	flags := parsed.Response.AuthenticatorData.Flags
	var got *webauthn.Credential
	if cer.UserID == "" {
		_, got, err = m.wa.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return user, nil }, sess, parsed)
	} else {
		// Only this credential's id is left in the allow list (it was checked above), so that a
		// credential removed since BeginLogin does not fail the others.
		sess.AllowedCredentialIDs = [][]byte{parsed.RawID}
		got, err = m.wa.ValidateLogin(user, sess, parsed)
	}
	if err != nil {
		return Assertion{}, errf("credential %q: %w", credID, verifyError(err, sess, flags, &wc.Flags.BackupEligible))
	}
	if got.Authenticator.CloneWarning {
		return Assertion{}, errf("credential %q: counter %d after %d: %w", credID, parsed.Response.AuthenticatorData.Counter, wc.Authenticator.SignCount, ErrCloneWarning)
	}
	if !m.aaguidAllowed(rec.AAGUID) {
		return Assertion{}, errf("credential %q: aaguid %s: %w", credID, rec.AAGUID, ErrAAGUIDNotAllowed)
	}

	now := m.now()
	count := parsed.Response.AuthenticatorData.Counter
	updated, err := m.creds.Update(ctx, credID, func(r credentialRecord) (credentialRecord, time.Time, error) {
		switch {
		case r.UserID != userID:
			return r, time.Time{}, ErrWrongUser
		case r.WebAuthn.Flags.BackupEligible != flags.HasBackupEligible():
			return r, time.Time{}, ErrBackupEligibilityChanged
		case (count != 0 || r.SignCount != 0) && count <= r.SignCount:
			// Another login with this counter value (or a later one) won meanwhile.
			return r, time.Time{}, ErrCloneWarning
		}
		r.SignCount = count
		r.WebAuthn.Authenticator.SignCount = count
		r.WebAuthn.Flags = got.Flags
		r.BackupState = got.Flags.BackupState
		if now.After(r.LastUsed) {
			r.LastUsed = now
		}
		return r, time.Time{}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Assertion{}, errf("credential %q removed meanwhile: %w", credID, ErrUnknownCredential)
	}
	if err != nil {
		return Assertion{}, errf("recording use of credential %q: %w", credID, err)
	}
	return Assertion{
		UserID:       userID,
		Credential:   updated.Credential,
		UserVerified: flags.HasUserVerified(),
		UserPresent:  flags.HasUserPresent(),
	}, nil
}

// verifyError maps a go-webauthn verification error to this package's sentinels. The library
// reports user verification and backup eligibility failures as generic errors; they are
// recognised by the failing flag together with the library's message for that step, so that a
// response failing an earlier check (bad origin) is not misreported. storedBE is the
// credential's backup eligibility at registration (nil when registering).
func verifyError(err error, sess webauthn.SessionData, flags protocol.AuthenticatorFlags, storedBE *bool) error {
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		return libError(ErrUnknownCredential, err)
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if sess.UserVerification == protocol.VerificationRequired && !flags.HasUserVerified() &&
			pe.Type == protocol.ErrVerification.Type && strings.Contains(pe.DevInfo, "User verification required") {
			return libError(ErrUserVerificationRequired, err)
		}
		if storedBE != nil && *storedBE != flags.HasBackupEligible() && strings.Contains(pe.Details, "Backup Eligible flag inconsistency") {
			return libError(ErrBackupEligibilityChanged, err)
		}
	}
	return libError(ErrInvalidResponse, err)
}

// libError wraps a go-webauthn error under sentinel, adding the library's developer detail
// (which step failed and why) except for a challenge mismatch, whose detail holds the expected
// challenge.
func libError(sentinel, err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe != nil && pe.DevInfo != "" && !strings.Contains(strings.ToLower(pe.Details), "challenge") {
		return fmt.Errorf("%w: %w (%s)", sentinel, err, pe.DevInfo)
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// List returns userID's credentials, oldest first.
func (m *Manager) List(ctx context.Context, userID string) ([]Credential, error) {
	recs, err := m.listRecords(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing passkeys of user %q: %w", userID, err)
	}
	out := make([]Credential, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Credential)
	}
	return out, nil
}

// Rename changes the label of userID's credential credID (trimmed; empty means "Security key").
func (m *Manager) Rename(ctx context.Context, userID, credID, name string) error {
	name, err := cleanName(name)
	if err != nil {
		return fmt.Errorf("renaming passkey %q of user %q: %w", credID, userID, err)
	}
	if credID == "" || userID == "" {
		return fmt.Errorf("renaming passkey %q of user %q: %w", credID, userID, ErrUnknownCredential)
	}
	_, err = m.creds.Update(ctx, credID, func(r credentialRecord) (credentialRecord, time.Time, error) {
		if r.UserID != userID {
			return r, time.Time{}, ErrUnknownCredential
		}
		r.Name = name
		return r, time.Time{}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = ErrUnknownCredential
	}
	if err != nil {
		return fmt.Errorf("renaming passkey %q of user %q: %w", credID, userID, err)
	}
	return nil
}

// Remove deletes userID's credential credID.
func (m *Manager) Remove(ctx context.Context, userID, credID string) error {
	if credID == "" || userID == "" {
		return fmt.Errorf("removing passkey %q of user %q: %w", credID, userID, ErrUnknownCredential)
	}
	r, err := m.creds.Get(ctx, credID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.UserID != userID) {
		err = ErrUnknownCredential
	}
	if err == nil {
		err = m.creds.Delete(ctx, credID)
	}
	if err != nil {
		return fmt.Errorf("removing passkey %q of user %q: %w", credID, userID, err)
	}
	return nil
}

// Reset removes all of userID's credentials and pending ceremonies (an administrator's reset)
// and says how many credentials it removed. The user handle stays.
func (m *Manager) Reset(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, errors.New("resetting passkeys: no user id")
	}
	if _, err := m.ceremonies.DeleteByOwner(ctx, userID); err != nil {
		return 0, fmt.Errorf("resetting passkeys of user %q: pending ceremonies: %w", userID, err)
	}
	n, err := m.creds.DeleteByOwner(ctx, userID)
	if err != nil {
		return n, fmt.Errorf("resetting passkeys of user %q: %w", userID, err)
	}
	return n, nil
}

package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/zonegate/zonegate/store"
)

// Store kinds the registry and the webhook use.
const (
	kindDevice     store.Kind = "device"             // id -> Device, owner-indexed by Device.Owner
	kindSerial     store.Kind = "device_serial"      // serial -> serialEntry
	kindWebhookSig store.Kind = "device_webhook_sig" // accepted webhook signatures, until stale
)

// Compliance is a device's compliance state as its MDM reports it.
type Compliance string

// Compliance states.
const (
	Compliant    Compliance = "compliant"
	NonCompliant Compliance = "noncompliant"
	Unknown      Compliance = "unknown"
)

// Valid reports whether c is one of the three states.
func (c Compliance) Valid() bool {
	return c == Compliant || c == NonCompliant || c == Unknown
}

// SuspendReason says who suspended a device.
type SuspendReason string

// Suspension reasons.
const (
	// SuspendedByCompliance is a suspension the registry set when the device turned
	// non-compliant; turning compliant again lifts it.
	SuspendedByCompliance SuspendReason = "compliance"
	// SuspendedByAdmin is a suspension an administrator set; only Unsuspend lifts it.
	SuspendedByAdmin SuspendReason = "admin"
)

// Trust is a device's trust level, as policy sees it.
type Trust string

// Trust levels.
const (
	Trusted    Trust = "TRUSTED"
	NotTrusted Trust = "NOT_TRUSTED"
	// TrustUnknown is neither: an unregistered device, or one not managed or of unknown compliance.
	TrustUnknown Trust = "UNKNOWN"
)

// Device is one registered device and its posture.
type Device struct {
	// ID is the device id (from the client certificate, the MDM, or an administrator).
	ID string `json:"id"`
	// Owner is the id of the user the device belongs to; may be empty.
	Owner string `json:"owner,omitempty"`
	// Platform is a free-form OS name ("macOS", "Windows", "iOS").
	Platform string `json:"platform,omitempty"`
	// Serial is the hardware serial number; the registry indexes it (FindBySerial).
	Serial string `json:"serial,omitempty"`
	// Source says where the record came from ("mdm", "admin", ...).
	Source string `json:"source,omitempty"`
	// Managed is true when an MDM manages the device.
	Managed bool `json:"managed"`
	// Compliance is the last reported compliance state.
	Compliance Compliance `json:"compliance"`
	// ComplianceSince is when Compliance took its current value.
	ComplianceSince time.Time `json:"compliance_since"`
	// Suspended devices are NOT_TRUSTED whatever their compliance.
	Suspended bool `json:"suspended"`
	// SuspendedBy says why a suspended device is suspended; empty when not suspended.
	SuspendedBy SuspendReason `json:"suspended_by,omitempty"`
	// Created and Updated are set by the registry.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Trust returns the device's trust level: TRUSTED when registered, managed, compliant and not
// suspended; NOT_TRUSTED when suspended or non-compliant; UNKNOWN otherwise, and for nil (a
// device the registry does not know).
func (d *Device) Trust() Trust {
	switch {
	case d == nil:
		return TrustUnknown
	case d.Suspended || d.Compliance == NonCompliant:
		return NotTrusted
	case !d.Created.IsZero() && d.Managed && d.Compliance == Compliant:
		return Trusted
	default:
		return TrustUnknown
	}
}

// Limits on what the registry stores.
const (
	maxIDLen       = 256
	maxPlatformLen = 64
	maxSourceLen   = 64
)

// validID reports whether s can be a device id, serial or owner: 1 to 256 bytes of printable
// UTF-8 without spaces.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == utf8.RuneError {
			return false
		}
	}
	return true
}

// validText reports whether s is short printable UTF-8 (spaces allowed); empty is valid.
func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == utf8.RuneError {
			return false
		}
	}
	return true
}

// ErrInvalid is wrapped by the registry's errors about a device value it refuses to store.
var ErrInvalid = errors.New("device: invalid")

// errSerialConflict means a serial-only report names a serial that is another device's id.
var errSerialConflict = errors.New("device: the serial is the id of a device with another serial")

func checkDevice(d Device) error {
	switch {
	case !validID(d.ID):
		return fmt.Errorf("%w: id must be 1 to %d printable characters without spaces", ErrInvalid, maxIDLen)
	case d.Owner != "" && !validID(d.Owner):
		return fmt.Errorf("device %q: %w: owner must be at most %d printable characters without spaces", d.ID, ErrInvalid, maxIDLen)
	case d.Serial != "" && !validID(d.Serial):
		return fmt.Errorf("device %q: %w: serial must be at most %d printable characters without spaces", d.ID, ErrInvalid, maxIDLen)
	case !validText(d.Platform, maxPlatformLen):
		return fmt.Errorf("device %q: %w: platform must be at most %d printable characters", d.ID, ErrInvalid, maxPlatformLen)
	case !validText(d.Source, maxSourceLen):
		return fmt.Errorf("device %q: %w: source must be at most %d printable characters", d.ID, ErrInvalid, maxSourceLen)
	case d.Compliance != "" && !d.Compliance.Valid():
		return fmt.Errorf("device %q: %w: compliance %q (want compliant, noncompliant or unknown)", d.ID, ErrInvalid, d.Compliance)
	}
	return nil
}

// serialEntry is the value of a serial index record.
type serialEntry struct {
	DeviceID string `json:"device_id"`
}

// Registry keeps devices in the store. It is safe for concurrent use; everything it knows is
// in the store, so every gateway sharing the store sees the same devices.
type Registry struct {
	st      store.Store
	devices store.Collection[Device]
	serials store.Collection[serialEntry]
	now     func() time.Time
	log     *slog.Logger

	mu       sync.Mutex
	onChange []func(ctx context.Context, before, after Device)
}

// NewRegistry returns a registry on st. now defaults to time.Now and log to a discarding logger.
func NewRegistry(st store.Store, now func() time.Time, log *slog.Logger) *Registry {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		st:      st,
		devices: store.Collection[Device]{Store: st, Kind: kindDevice},
		serials: store.Collection[serialEntry]{Store: st, Kind: kindSerial},
		now:     now,
		log:     log,
	}
}

// OnChange registers fn to run after a device's compliance or suspension changes, including its
// creation (before is then the zero Device) and its deletion (after is then a zero Device with
// only the ID). Callbacks run synchronously, in registration order, with the caller's context.
func (r *Registry) OnChange(fn func(ctx context.Context, before, after Device)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onChange = append(r.onChange, fn)
}

// Get returns the device with id; an error wrapping store.ErrNotFound if there is none.
func (r *Registry) Get(ctx context.Context, id string) (*Device, error) {
	if !validID(id) {
		return nil, fmt.Errorf("getting a device: invalid id: %w", store.ErrNotFound)
	}
	d, err := r.devices.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("getting device %q: %w", id, err)
	}
	return &d, nil
}

// List returns the devices of owner, ordered by id.
func (r *Registry) List(ctx context.Context, owner string) ([]Device, error) {
	ds, err := r.devices.ListByOwner(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("listing the devices of %q: %w", owner, err)
	}
	slices.SortFunc(ds, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return ds, nil
}

// FindBySerial returns the device whose serial is serial; an error wrapping store.ErrNotFound if
// there is none.
func (r *Registry) FindBySerial(ctx context.Context, serial string) (*Device, error) {
	if !validID(serial) {
		return nil, fmt.Errorf("finding a device by serial: invalid serial: %w", store.ErrNotFound)
	}
	e, err := r.serials.Get(ctx, serial)
	if err != nil {
		return nil, fmt.Errorf("finding the device with serial %q: %w", serial, err)
	}
	d, err := r.devices.Get(ctx, e.DeviceID)
	if err != nil {
		return nil, fmt.Errorf("finding the device with serial %q: %w", serial, err)
	}
	if d.Serial != serial { // a stale index entry: the device's serial changed
		return nil, fmt.Errorf("finding the device with serial %q: %w", serial, store.ErrNotFound)
	}
	return &d, nil
}

// Register creates a device; an error wrapping store.ErrAlreadyExists if the id is taken. Only
// the descriptive fields (ID, Owner, Platform, Serial, Source, Managed) and Compliance (default
// unknown) are taken from d; a non-compliant device starts suspended.
func (r *Registry) Register(ctx context.Context, d Device) (*Device, error) {
	if err := checkDevice(d); err != nil {
		return nil, fmt.Errorf("registering a device: %w", err)
	}
	nd := Device{ID: d.ID}
	copyDescription(&nd, d)
	out, err := r.create(ctx, nd, d.Source)
	if err != nil {
		return nil, fmt.Errorf("registering device %q: %w", d.ID, err)
	}
	return out, nil
}

// Put creates the device or updates its descriptive fields and, when d.Compliance is set, its
// compliance. Suspension is left to Suspend and Unsuspend (and to the compliance rules).
func (r *Registry) Put(ctx context.Context, d Device) (*Device, error) {
	if err := checkDevice(d); err != nil {
		return nil, fmt.Errorf("storing a device: %w", err)
	}
	out, err := r.upsert(ctx, d.ID, d.Source, func(cur *Device) error {
		copyDescription(cur, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing device %q: %w", d.ID, err)
	}
	return out, nil
}

func copyDescription(dst *Device, src Device) {
	dst.Owner, dst.Platform, dst.Serial, dst.Source, dst.Managed = src.Owner, src.Platform, src.Serial, src.Source, src.Managed
	if src.Compliance != "" {
		dst.Compliance = src.Compliance
	}
}

// SetCompliance records a device's compliance, reported by source. The device must exist.
func (r *Registry) SetCompliance(ctx context.Context, id string, c Compliance, source string) (*Device, error) {
	if !c.Valid() {
		return nil, fmt.Errorf("setting the compliance of device %q: %w: %q (want compliant, noncompliant or unknown)", id, ErrInvalid, c)
	}
	out, err := r.update(ctx, id, source, func(d *Device) error {
		d.Compliance = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("setting the compliance of device %q: %w", id, err)
	}
	return out, nil
}

// Suspend suspends a device as an administrator: compliance does not lift it, only Unsuspend.
func (r *Registry) Suspend(ctx context.Context, id string) (*Device, error) {
	out, err := r.update(ctx, id, "admin", func(d *Device) error {
		d.Suspended, d.SuspendedBy = true, SuspendedByAdmin
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("suspending device %q: %w", id, err)
	}
	return out, nil
}

// Unsuspend lifts a device's suspension. A device that is still non-compliant stays suspended,
// now for compliance, so a compliant report lifts it.
func (r *Registry) Unsuspend(ctx context.Context, id string) (*Device, error) {
	out, err := r.update(ctx, id, "admin", func(d *Device) error {
		d.Suspended, d.SuspendedBy = false, ""
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lifting the suspension of device %q: %w", id, err)
	}
	return out, nil
}

// Delete removes a device and its serial index entry. Deleting a missing device is not an error.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return nil
	}
	d, err := r.devices.Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting device %q: %w", id, err)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "device deleted", slog.String("device", id), slog.String("source", "admin"))
	r.notify(ctx, d, Device{ID: id})
	if d.Serial != "" {
		if err := r.dropSerial(ctx, d.Serial, id); err != nil {
			return fmt.Errorf("deleting device %q: %w", id, err)
		}
	}
	return nil
}

// update changes an existing device with fn.
func (r *Registry) update(ctx context.Context, id, source string, fn func(*Device) error) (*Device, error) {
	if !validID(id) {
		return nil, fmt.Errorf("invalid id: %w", store.ErrNotFound)
	}
	before, after, err := r.write(ctx, id, fn)
	if err != nil {
		return nil, err
	}
	return r.after(ctx, source, before, after)
}

// upsert changes the device with fn, creating it (from the zero Device with the id) if missing.
func (r *Registry) upsert(ctx context.Context, id, source string, fn func(*Device) error) (*Device, error) {
	for range 5 {
		before, after, err := r.write(ctx, id, fn)
		if err == nil {
			return r.after(ctx, source, before, after)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		d := Device{ID: id}
		if err := fn(&d); err != nil {
			return nil, err
		}
		out, err := r.create(ctx, d, source)
		if !errors.Is(err, store.ErrAlreadyExists) {
			return out, err
		}
		// Another writer created it first: update theirs.
	}
	return nil, fmt.Errorf("too much contention: %w", store.ErrUnavailable)
}

// create stores a new device and runs the change rules.
func (r *Registry) create(ctx context.Context, d Device, source string) (*Device, error) {
	now := r.now()
	d.Created = now
	settle(nil, &d, now)
	if err := checkDevice(d); err != nil {
		return nil, err
	}
	if err := r.devices.Create(ctx, d.ID, d.Owner, time.Time{}, d); err != nil {
		return nil, err
	}
	return r.after(ctx, source, Device{}, d)
}

// write applies fn to the stored device under compare-and-swap and runs the change rules.
func (r *Registry) write(ctx context.Context, id string, fn func(*Device) error) (before, after Device, err error) {
	_, err = r.st.Update(ctx, kindDevice, id, func(rec store.Record) (store.Record, error) {
		var d Device
		if err := json.Unmarshal(rec.Value, &d); err != nil {
			return rec, fmt.Errorf("decoding a %s record: %w", kindDevice, err)
		}
		before = d
		if err := fn(&d); err != nil {
			return rec, err
		}
		d.ID = id
		settle(&before, &d, r.now())
		if err := checkDevice(d); err != nil {
			return rec, err
		}
		b, err := json.Marshal(d)
		if err != nil {
			return rec, fmt.Errorf("encoding a %s record: %w", kindDevice, err)
		}
		rec.Value, rec.Owner = b, d.Owner
		after = d
		return rec, nil
	})
	return before, after, err
}

// settle enforces the posture rules on d, the new value of before (nil for a new device):
// compliance defaults to unknown and its time is kept current; non-compliant means suspended;
// compliant again lifts a suspension the non-compliance caused.
func settle(before, d *Device, now time.Time) {
	if d.Compliance == "" {
		d.Compliance = Unknown
	}
	if before == nil || before.Compliance != d.Compliance {
		d.ComplianceSince = now
	}
	switch {
	case d.Compliance == NonCompliant && !d.Suspended:
		d.Suspended, d.SuspendedBy = true, SuspendedByCompliance
	case d.Compliance == Compliant && d.Suspended && d.SuspendedBy == SuspendedByCompliance:
		d.Suspended, d.SuspendedBy = false, ""
	case d.Suspended && d.SuspendedBy == "":
		d.SuspendedBy = SuspendedByAdmin // a suspension nobody explained is an administrator's
	case !d.Suspended:
		d.SuspendedBy = ""
	}
	if before != nil && *before == *d {
		return // nothing changed: keep Updated
	}
	d.Updated = now
}

// after logs a write, keeps the serial index and runs the callbacks.
func (r *Registry) after(ctx context.Context, source string, before, after Device) (*Device, error) {
	r.logChange(ctx, source, before, after)
	if before.Compliance != after.Compliance || before.Suspended != after.Suspended {
		r.notify(ctx, before, after)
	}
	if before.Serial != "" && before.Serial != after.Serial {
		if err := r.dropSerial(ctx, before.Serial, after.ID); err != nil {
			return nil, err
		}
	}
	if after.Serial != "" {
		if err := r.indexSerial(ctx, after.Serial, after.ID); err != nil {
			return nil, err
		}
	}
	return &after, nil
}

func (r *Registry) notify(ctx context.Context, before, after Device) {
	r.mu.Lock()
	fns := slices.Clone(r.onChange)
	r.mu.Unlock()
	for _, fn := range fns {
		fn(ctx, before, after)
	}
}

// logChange logs one line naming every field that changed, old → new.
func (r *Registry) logChange(ctx context.Context, source string, before, after Device) {
	attrs := []slog.Attr{slog.String("device", after.ID), slog.String("source", source)}
	n := len(attrs)
	diff := func(field, old, new string) {
		if old != new {
			attrs = append(attrs, slog.String(field, old+" → "+new))
		}
	}
	diff("owner", before.Owner, after.Owner)
	diff("platform", before.Platform, after.Platform)
	diff("serial", before.Serial, after.Serial)
	diff("managed", fmt.Sprint(before.Managed), fmt.Sprint(after.Managed))
	diff("compliance", string(before.Compliance), string(after.Compliance))
	diff("suspended", suspension(before), suspension(after))
	switch {
	case before.ID == "":
		r.log.LogAttrs(ctx, slog.LevelInfo, "device registered", attrs...)
	case len(attrs) > n:
		r.log.LogAttrs(ctx, slog.LevelInfo, "device changed", attrs...)
	default:
		r.log.LogAttrs(ctx, slog.LevelDebug, "device unchanged", attrs...)
	}
}

func suspension(d Device) string {
	if !d.Suspended {
		return "no"
	}
	return "by " + string(d.SuspendedBy)
}

// indexSerial points the serial index at id, writing only when it points elsewhere.
func (r *Registry) indexSerial(ctx context.Context, serial, id string) error {
	if e, err := r.serials.Get(ctx, serial); err == nil && e.DeviceID == id {
		return nil
	}
	for range 5 {
		_, err := r.serials.Update(ctx, serial, func(e serialEntry) (serialEntry, time.Time, error) {
			e.DeviceID = id
			return e, time.Time{}, nil
		})
		if !errors.Is(err, store.ErrNotFound) {
			if err != nil {
				return fmt.Errorf("indexing serial %q: %w", serial, err)
			}
			return nil
		}
		err = r.serials.Create(ctx, serial, "", time.Time{}, serialEntry{DeviceID: id})
		if !errors.Is(err, store.ErrAlreadyExists) {
			if err != nil {
				return fmt.Errorf("indexing serial %q: %w", serial, err)
			}
			return nil
		}
	}
	return fmt.Errorf("indexing serial %q: too much contention: %w", serial, store.ErrUnavailable)
}

// dropSerial removes the serial index entry if it still points at id.
func (r *Registry) dropSerial(ctx context.Context, serial, id string) error {
	e, err := r.serials.Get(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unindexing serial %q: %w", serial, err)
	}
	if e.DeviceID != id {
		return nil // another device holds the serial now
	}
	if err := r.serials.Delete(ctx, serial); err != nil {
		return fmt.Errorf("unindexing serial %q: %w", serial, err)
	}
	return nil
}

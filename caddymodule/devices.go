package caddymodule

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/store"
)

// DevicesConfig makes the gates identify devices and read their posture.
type DevicesConfig struct {
	// IDFrom is the field of the client certificate (verified by Caddy's tls client_auth) that
	// holds the device id: san_uri, san_dns, cn or serial.
	IDFrom string `json:"id_from,omitempty"`
	// IDPrefix is the id's prefix in that field (e.g. "urn:device:udid:"); it is stripped.
	IDPrefix string `json:"id_prefix,omitempty"`
	// WebhookSecrets verify the MDM compliance webhook (HMAC-SHA256), served by the IdP's site
	// at /api/v1/devices/compliance; more than one lets a secret rotate. {env.NAME} and
	// {file./path} work. Without a secret there is no webhook.
	WebhookSecrets []string `json:"webhook_secrets,omitempty"`
	// CacheTTL is how long a node reuses a device read from the registry; a change made on
	// this node is seen at once, one made on another node within this time. Default 1s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
}

// webhookPath is where the IdP's site serves the MDM compliance webhook.
const webhookPath = "/api/v1/devices/compliance"

// devices is the app's device posture: identity, registry and a short cache.
type devices struct {
	id      device.CertIdentity
	cookie  device.CookieIdentity // browsers registered by a rule's register_device
	reg     *device.Registry
	webhook *device.Webhook // nil: no webhook
	ttl     time.Duration

	mu    sync.RWMutex
	cache map[string]cachedDevice

	// endSessions ends a user's sessions started from a device; set once the app has sessions.
	endSessions func(ctx context.Context, owner, deviceID string) (int, error)
}

type cachedDevice struct {
	d     policy.Device
	until time.Time
}

func newDevices(cfg *DevicesConfig, st store.Store, cookieKey []byte, logger *slog.Logger) (*devices, error) {
	d := &devices{
		cookie: device.CookieIdentity{Key: cookieKey},
		id:     device.CertIdentity{Field: device.IDField(cfg.IDFrom), Prefix: cfg.IDPrefix},
		reg:    device.NewRegistry(st, time.Now, logger),
		ttl:    time.Duration(cfg.CacheTTL),
		cache:  make(map[string]cachedDevice),
	}
	if d.ttl == 0 {
		d.ttl = time.Second
	}
	if err := d.id.Validate(); err != nil {
		return nil, fmt.Errorf("zonegate devices: %w", err)
	}
	// A change on this node is seen at once; other nodes see it within the cache TTL.
	d.reg.OnChange(func(_ context.Context, _, after device.Device) { d.forget(after.ID) })
	// A device that falls out of compliance (or is suspended) loses its sessions: signing in
	// again is needed once it is trusted again. (The revocations reach every node at once.)
	d.reg.OnChange(func(ctx context.Context, before, after device.Device) {
		if !after.Suspended || before.Suspended || after.Owner == "" || d.endSessions == nil {
			return
		}
		n, err := d.endSessions(ctx, after.Owner, after.ID)
		if err != nil {
			logger.Error("ending the sessions of a suspended device", "device", after.ID, "error", err)
			return
		}
		logger.Info("ended the sessions of a suspended device", "device", after.ID, "owner", after.Owner, "sessions", n)
	})
	if len(cfg.WebhookSecrets) > 0 {
		repl := caddy.NewReplacer()
		var secrets [][]byte
		for i, s := range cfg.WebhookSecrets {
			v := repl.ReplaceKnown(s, "")
			if v == "" {
				return nil, fmt.Errorf("zonegate devices: webhook secret %d is empty once its placeholders are replaced", i+1)
			}
			secrets = append(secrets, []byte(v))
		}
		d.webhook = &device.Webhook{Registry: d.reg, Secrets: secrets, Log: logger}
		if err := d.webhook.Validate(); err != nil {
			return nil, fmt.Errorf("zonegate devices: webhook: %w", err)
		}
	}
	return d, nil
}

// identify names the request's device: its verified client certificate, or else a device
// cookie issued to userID ("" before the user is known). owner is the cookie's user ("" for
// a certificate).
func (d *devices) identify(r *http.Request, userID string) (id, owner string, ok bool) {
	if id, ok := d.id.FromRequest(r); ok {
		return id, "", true
	}
	return d.cookie.FromRequest(r, userID)
}

// deviceID is the gate's DeviceID: the device a session is started from.
func (d *devices) deviceID(r *http.Request, userID string) (string, bool) {
	id, _, ok := d.identify(r, userID)
	return id, ok
}

// register registers the browser as a device of userID and gives it the device cookie.
func (d *devices) register(w http.ResponseWriter, r *http.Request, userID string) error {
	id := device.NewCookieDeviceID()
	if _, err := d.reg.Register(r.Context(), device.Device{ID: id, Owner: userID, Source: "browser"}); err != nil {
		return err
	}
	return d.cookie.Issue(w, r, id, userID)
}

// posture is the gate's device resolver: what the policy knows about the request's device.
func (d *devices) posture(r *http.Request, userID string) (policy.Device, error) {
	id, owner, ok := d.identify(r, userID)
	if !ok {
		return policy.Device{Trust: string(device.TrustUnknown)}, nil
	}
	now := time.Now()
	d.mu.RLock()
	c, hit := d.cache[id]
	d.mu.RUnlock()
	if hit && now.Before(c.until) {
		return c.d, nil
	}
	dev, err := d.reg.Get(r.Context(), id)
	var pd policy.Device
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && owner != "" && dev.Owner != owner:
		// A certificate for a device nobody registered, or a cookie of a device deleted or
		// given to someone else since.
		pd = policy.Device{Trust: string(device.TrustUnknown)}
	case err != nil:
		return policy.Device{}, err
	default:
		pd = policy.Device{
			Known:     true,
			Managed:   dev.Managed,
			Compliant: dev.Compliance == device.Compliant && !dev.Suspended,
			Trust:     string(dev.Trust()),
			Platform:  dev.Platform,
		}
	}
	d.mu.Lock()
	if len(d.cache) > 1<<14 {
		clear(d.cache)
	}
	d.cache[id] = cachedDevice{d: pd, until: now.Add(d.ttl)}
	d.mu.Unlock()
	return pd, nil
}

func (d *devices) forget(id string) {
	d.mu.Lock()
	delete(d.cache, id)
	d.mu.Unlock()
}

// deviceEvents are the system-log events of a registry change: registration, a compliance
// change, suspension and its end.
func deviceEvents(before, after device.Device) []audit.Event {
	base := func(typ, outcome, reason string) audit.Event {
		return audit.Event{
			Type: typ, Outcome: outcome, Reason: reason, Device: after.ID,
			Actor:   audit.Actor{Type: audit.ActorSystem, Name: after.Source},
			Targets: []audit.Target{{ID: after.ID, Type: "device", Name: after.Platform}},
			Details: map[string]string{"owner": after.Owner, "compliance": string(after.Compliance), "trust": string(after.Trust())},
		}
	}
	var out []audit.Event
	if before.ID == "" {
		out = append(out, base("device.enrollment.create", audit.OutcomeSuccess, ""))
	}
	if before.ID != "" && before.Compliance != after.Compliance {
		out = append(out, base("device.compliance.change", audit.OutcomeSuccess, string(before.Compliance)+" -> "+string(after.Compliance)))
	}
	switch {
	case after.Suspended && !before.Suspended:
		out = append(out, base("device.lifecycle.suspend", audit.OutcomeSuccess, string(after.SuspendedBy)))
	case !after.Suspended && before.Suspended:
		out = append(out, base("device.lifecycle.unsuspend", audit.OutcomeSuccess, ""))
	}
	return out
}

// deviceCookieKey derives the device cookies' key from the session cookie key, so the two
// kinds of cookie cannot stand in for each other.
func deviceCookieKey(cookieKey []byte) []byte {
	m := hmac.New(sha256.New, cookieKey)
	m.Write([]byte("zonegate device cookie key"))
	return m.Sum(nil)
}

// idpDeviceID is the IdP's device identity: a client certificate on the issuer's site (device
// cookies belong to the gates' hosts). Nil without devices.
func (a *App) idpDeviceID() func(r *http.Request) (string, bool) {
	if a.devices == nil {
		return nil
	}
	return a.devices.id.FromRequest
}

// deviceTrust is the trust level of a registered device for the IdP's device_trust claim.
// Nil without devices.
func (a *App) deviceTrust() func(ctx context.Context, id string) string {
	if a.devices == nil {
		return nil
	}
	return func(ctx context.Context, id string) string {
		dev, err := a.devices.reg.Get(ctx, id)
		if err != nil {
			return string(device.TrustUnknown)
		}
		return string(dev.Trust())
	}
}

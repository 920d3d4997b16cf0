package device

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/zonegate/zonegate/internal/hmacsig"
	"github.com/zonegate/zonegate/store"
)

// Webhook protocol constants (see the package documentation for the contract).
const (
	// HeaderTimestamp carries the request's unix time in seconds.
	HeaderTimestamp = "X-Zonegate-Timestamp"
	// HeaderSignature carries "v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">".
	HeaderSignature = "X-Zonegate-Signature"
	// DefaultMaxSkew is how far a timestamp may be from the gateway's clock by default.
	DefaultMaxSkew = 5 * time.Minute
	// MaxWebhookBody is the largest body the webhook reads.
	MaxWebhookBody = 64 << 10
	// SourceMDM is the Source of devices the webhook creates.
	SourceMDM = "mdm"
	// minSecretLen is the shortest HMAC secret Validate accepts.
	minSecretLen = 16
	// maxSignatures bounds the entries of a signature header.
	maxSignatures = 8
)

// Webhook receives compliance reports from an MDM. It is an http.Handler; see the package
// documentation for the request and the responses.
type Webhook struct {
	// Registry receives the reports and shares its store for replay protection. Required.
	Registry *Registry
	// Secrets are the HMAC-SHA256 keys; a signature made with any of them verifies, so a new
	// secret can be added before the MDM switches to it. At least one is required.
	Secrets [][]byte
	// MaxSkew is how far the timestamp may be from Now, either way. Default 5 minutes.
	MaxSkew time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives rejections (never the secrets or signatures); default discards.
	Log *slog.Logger
}

// Validate checks the configuration.
func (h *Webhook) Validate() error {
	if h.Registry == nil {
		return errors.New("device webhook: no registry")
	}
	if len(h.Secrets) == 0 {
		return errors.New("device webhook: no secret")
	}
	for i, s := range h.Secrets {
		if len(s) < minSecretLen {
			return fmt.Errorf("device webhook: secret %d is %d bytes, want at least %d", i+1, len(s), minSecretLen)
		}
	}
	if h.MaxSkew < 0 {
		return fmt.Errorf("device webhook: negative max skew %s", h.MaxSkew)
	}
	return nil
}

// event is the webhook's JSON body.
type event struct {
	DeviceID   string     `json:"device_id"`
	Serial     string     `json:"serial"`
	Compliance Compliance `json:"compliance"`
	Platform   *string    `json:"platform"`
	Managed    *bool      `json:"managed"`
	User       *string    `json:"user"`
}

// ServeHTTP verifies and applies one compliance report.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(ctx, w, r, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.fail(ctx, w, r, http.StatusUnsupportedMediaType, "content type must be application/json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.fail(ctx, w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxWebhookBody))
			return
		}
		h.fail(ctx, w, r, http.StatusBadRequest, "reading the body failed")
		return
	}

	// Authenticate before looking at the body.
	tsHeader, sigHeader := r.Header.Values(HeaderTimestamp), r.Header.Values(HeaderSignature)
	if len(tsHeader) != 1 || len(sigHeader) != 1 {
		h.fail(ctx, w, r, http.StatusUnauthorized, "missing signature or timestamp header")
		return
	}
	ts, err := parseTimestamp(tsHeader[0])
	if err != nil {
		h.fail(ctx, w, r, http.StatusUnauthorized, "malformed timestamp")
		return
	}
	sigs, err := parseSignatureHeader(sigHeader[0])
	if err != nil {
		h.fail(ctx, w, r, http.StatusUnauthorized, "malformed signature")
		return
	}
	if len(h.Secrets) == 0 {
		h.log().LogAttrs(ctx, slog.LevelError, "mdm webhook has no secret configured; refusing every report")
	}
	mac, ok := verify(h.Secrets, tsHeader[0], body, sigs)
	if !ok {
		h.fail(ctx, w, r, http.StatusUnauthorized, "bad signature")
		return
	}
	now, skew := h.now(), h.maxSkew()
	sent := time.Unix(ts, 0)
	if d := now.Sub(sent); d > skew || d < -skew {
		h.fail(ctx, w, r, http.StatusUnauthorized, "stale timestamp")
		return
	}

	ev, err := parseEvent(body)
	if err != nil {
		h.fail(ctx, w, r, http.StatusBadRequest, err.Error())
		return
	}
	if h.Registry == nil {
		h.fail(ctx, w, r, http.StatusServiceUnavailable, "no device registry")
		return
	}

	// Remember the signature until its timestamp goes stale; Create is atomic, so of two
	// copies racing on any node one wins.
	st := h.Registry.st
	replayID := hex.EncodeToString(mac)
	err = st.Create(ctx, store.Record{Kind: kindWebhookSig, ID: replayID, ExpiresAt: sent.Add(skew + time.Second)})
	switch {
	case errors.Is(err, store.ErrAlreadyExists):
		h.fail(ctx, w, r, http.StatusConflict, "replayed request")
		return
	case err != nil:
		h.log().LogAttrs(ctx, slog.LevelError, "mdm webhook: recording the signature failed", slog.String("error", err.Error()))
		h.fail(ctx, w, r, http.StatusServiceUnavailable, "store unavailable")
		return
	}

	d, err := h.Registry.report(ctx, ev)
	if err != nil {
		// Let the MDM retry the same request.
		if derr := st.Delete(context.WithoutCancel(ctx), kindWebhookSig, replayID); derr != nil {
			h.log().LogAttrs(ctx, slog.LevelWarn, "mdm webhook: forgetting the signature of a failed report failed", slog.String("error", derr.Error()))
		}
		switch {
		case errors.Is(err, errSerialConflict):
			h.fail(ctx, w, r, http.StatusConflict, "the serial is the id of a device with another serial; send device_id")
		case errors.Is(err, ErrInvalid):
			h.fail(ctx, w, r, http.StatusBadRequest, "invalid device fields")
		default:
			h.log().LogAttrs(ctx, slog.LevelError, "mdm webhook: applying a report failed", slog.String("error", err.Error()))
			h.fail(ctx, w, r, http.StatusServiceUnavailable, "store unavailable")
		}
		return
	}
	h.log().LogAttrs(ctx, slog.LevelDebug, "mdm webhook: report applied", slog.String("device", d.ID), slog.String("compliance", string(d.Compliance)))
	w.WriteHeader(http.StatusNoContent)
}

func (h *Webhook) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Webhook) maxSkew() time.Duration {
	if h.MaxSkew > 0 {
		return h.MaxSkew
	}
	return DefaultMaxSkew
}

func (h *Webhook) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.New(slog.DiscardHandler)
}

// fail answers with a JSON error and logs the rejection (without headers or body).
func (h *Webhook) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, code int, msg string) {
	level := slog.LevelWarn
	if code == http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	h.log().LogAttrs(ctx, level, "mdm webhook: request refused", slog.Int("status", code), slog.String("reason", msg), slog.String("remote", r.RemoteAddr))
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// The signature scheme is shared with the event hooks (internal/hmacsig).
var (
	parseTimestamp       = hmacsig.ParseTimestamp
	parseSignatureHeader = hmacsig.ParseHeader
	sign                 = hmacsig.MAC
	verify               = hmacsig.Match
)

// parseEvent decodes and checks a report. Error messages are safe to return to the caller.
func parseEvent(body []byte) (event, error) {
	var ev event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return event{}, fmt.Errorf("bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return event{}, errors.New("bad JSON: data after the object")
	}
	switch {
	case ev.DeviceID == "" && ev.Serial == "":
		return event{}, errors.New("device_id or serial is required")
	case ev.DeviceID != "" && !validID(ev.DeviceID):
		return event{}, fmt.Errorf("device_id must be 1 to %d printable characters without spaces", maxIDLen)
	case ev.Serial != "" && !validID(ev.Serial):
		return event{}, fmt.Errorf("serial must be 1 to %d printable characters without spaces", maxIDLen)
	case ev.Compliance == "":
		return event{}, errors.New("compliance is required")
	case !ev.Compliance.Valid():
		return event{}, errors.New("compliance must be compliant, noncompliant or unknown")
	case ev.Platform != nil && !validText(*ev.Platform, maxPlatformLen):
		return event{}, fmt.Errorf("platform must be at most %d printable characters", maxPlatformLen)
	case ev.User != nil && *ev.User != "" && !validID(*ev.User):
		return event{}, fmt.Errorf("user must be at most %d printable characters without spaces", maxIDLen)
	}
	return ev, nil
}

// report applies an MDM report: the device named by device_id, else the one holding the
// serial, else a new device whose id is the serial.
func (r *Registry) report(ctx context.Context, ev event) (*Device, error) {
	id, serialOnly := ev.DeviceID, false
	if id == "" {
		d, err := r.FindBySerial(ctx, ev.Serial)
		switch {
		case err == nil:
			id = d.ID
		case errors.Is(err, store.ErrNotFound):
			id, serialOnly = ev.Serial, true
		default:
			return nil, err
		}
	}
	out, err := r.upsert(ctx, id, SourceMDM, func(d *Device) error {
		if serialOnly && d.Serial != "" && d.Serial != ev.Serial {
			return errSerialConflict
		}
		if d.Source == "" {
			d.Source = SourceMDM
		}
		if ev.Serial != "" {
			d.Serial = ev.Serial
		}
		if ev.Platform != nil {
			d.Platform = *ev.Platform
		}
		if ev.Managed != nil {
			d.Managed = *ev.Managed
		}
		if ev.User != nil {
			d.Owner = *ev.User
		}
		d.Compliance = ev.Compliance
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("applying the MDM report for device %q: %w", id, err)
	}
	return out, nil
}

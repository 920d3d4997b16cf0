package audit

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Severity values.
const (
	SeverityInfo  = "INFO"
	SeverityWarn  = "WARN"
	SeverityError = "ERROR"
)

// Outcome values.
const (
	OutcomeSuccess   = "SUCCESS"
	OutcomeFailure   = "FAILURE"
	OutcomeAllow     = "ALLOW"
	OutcomeDeny      = "DENY"
	OutcomeChallenge = "CHALLENGE"
	OutcomeSkipped   = "SKIPPED"
	OutcomeUnknown   = "UNKNOWN"
)

// Actor types.
const (
	ActorUser       = "user"
	ActorClient     = "client"
	ActorAdminToken = "admin_token"
	ActorSystem     = "system"
	ActorDevice     = "device"
)

// TypeDeliveryAbandon is the type of the event recorded when a hook delivery is given up.
const TypeDeliveryAbandon = "event_hook.delivery.abandon"

// Limits Record applies so one event cannot bloat the store: longer strings are cut (at a UTF-8
// boundary), extra targets, zones and details are left out.
const (
	maxFieldLen = 1024
	maxTargets  = 16
	maxZones    = 32
	maxDetails  = 32
)

// Actor is who (or what) did something.
type Actor struct {
	// ID is the stable identifier: a user id, a client id, a token id.
	ID string `json:"id,omitempty"`
	// Type is one of "user", "client", "admin_token", "system", "device".
	Type string `json:"type,omitempty"`
	// Name is for display: a username, a client name.
	Name string `json:"name,omitempty"`
}

// Target is what an event was done to (an application, a user, a device, a hook).
type Target struct {
	// ID is the target's stable identifier.
	ID string `json:"id,omitempty"`
	// Type says what the target is: "app", "user", "device", "event_hook", ...
	Type string `json:"type,omitempty"`
	// Name is for display.
	Name string `json:"name,omitempty"`
}

// Event is one entry of the system log.
type Event struct {
	// ID is set by Record: time-sortable and unique (see the package documentation).
	ID string `json:"id"`
	// Time is when it happened; Record sets it to now if zero. Stored in UTC.
	Time time.Time `json:"time"`
	// Type names what happened, dotted: "user.session.start", "policy.evaluate_sign_on",
	// "application.access.deny", "device.compliance.change", "system.api_token.use".
	Type string `json:"type"`
	// Severity is "INFO" (default), "WARN" or "ERROR".
	Severity string `json:"severity"`
	// Actor is who acted.
	Actor Actor `json:"actor"`
	// Targets are what was acted on.
	Targets []Target `json:"targets,omitempty"`
	// ClientIP is the client address the gateway believed.
	ClientIP string `json:"clientIp,omitempty"`
	// Zones are the network zones ClientIP is in.
	Zones []string `json:"zones,omitempty"`
	// Device is the device id, if known.
	Device string `json:"device,omitempty"`
	// Outcome is "SUCCESS", "FAILURE", "ALLOW", "DENY", "CHALLENGE", "SKIPPED" or "UNKNOWN"
	// (default; also what an unrecognised value becomes).
	Outcome string `json:"outcome"`
	// Reason says why the outcome is what it is (a policy rule, an error).
	Reason string `json:"reason,omitempty"`
	// RequestID ties the event to an HTTP request.
	RequestID string `json:"requestId,omitempty"`
	// Message is a human summary.
	Message string `json:"message,omitempty"`
	// Details holds small extra facts. Never secrets.
	Details map[string]string `json:"details,omitempty"`
}

// idTimeLayout is the time part of an event id: fixed width, so ids sort by time.
const idTimeLayout = "20060102T150405.000000000Z"

// idLen is the length of an event id: time, '-', 8 hex digits.
const idLen = len(idTimeLayout) + 1 + 8

// minTime and maxTime bound the times an id can carry (4-digit years).
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)
)

// newID returns the id of an event at t (UTC) with the given suffix.
func newID(t time.Time, suffix uint32) string {
	var buf [idLen]byte
	b := t.AppendFormat(buf[:0], idTimeLayout)
	b = append(b, '-')
	var s [4]byte
	binary.BigEndian.PutUint32(s[:], suffix)
	b = hex.AppendEncode(b, s[:])
	return string(b)
}

// randomUint32 returns a random number from crypto/rand.
func randomUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// parseID returns the time an event id carries, or an error if s is not an event id.
func parseID(s string) (time.Time, error) {
	if len(s) != idLen || s[len(idTimeLayout)] != '-' {
		return time.Time{}, errors.New("not an event id")
	}
	for i := len(idTimeLayout) + 1; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return time.Time{}, errors.New("not an event id")
		}
	}
	t, err := time.Parse(idTimeLayout, s[:len(idTimeLayout)])
	if err != nil {
		return time.Time{}, errors.New("not an event id")
	}
	return t, nil
}

// bucket is the store owner of the events of t's hour.
func bucket(t time.Time) string {
	var buf [12]byte
	return string(t.UTC().AppendFormat(append(buf[:0], "h:"...), "2006010215"))
}

// normalize fills Record's defaults, cuts oversized fields and copies the slices and map, so
// the caller may reuse them.
func normalize(e *Event, now time.Time) {
	if e.Time.IsZero() || e.Time.Before(minTime) || e.Time.After(maxTime) {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	switch s := strings.ToUpper(e.Severity); s {
	case SeverityInfo, SeverityWarn, SeverityError:
		e.Severity = s
	default:
		e.Severity = SeverityInfo
	}
	switch o := strings.ToUpper(e.Outcome); o {
	case OutcomeSuccess, OutcomeFailure, OutcomeAllow, OutcomeDeny, OutcomeChallenge, OutcomeSkipped:
		e.Outcome = o
	default:
		e.Outcome = OutcomeUnknown
	}
	e.Type = clip(e.Type)
	e.Actor = Actor{ID: clip(e.Actor.ID), Type: clip(e.Actor.Type), Name: clip(e.Actor.Name)}
	if len(e.Targets) > 0 {
		ts := make([]Target, min(len(e.Targets), maxTargets))
		for i := range ts {
			t := e.Targets[i]
			ts[i] = Target{ID: clip(t.ID), Type: clip(t.Type), Name: clip(t.Name)}
		}
		e.Targets = ts
	} else {
		e.Targets = nil
	}
	if len(e.Zones) > 0 {
		zs := make([]string, min(len(e.Zones), maxZones))
		for i := range zs {
			zs[i] = clip(e.Zones[i])
		}
		e.Zones = zs
	} else {
		e.Zones = nil
	}
	e.ClientIP = clip(e.ClientIP)
	e.Device = clip(e.Device)
	e.Reason = clip(e.Reason)
	e.RequestID = clip(e.RequestID)
	e.Message = clip(e.Message)
	if len(e.Details) > 0 {
		d := make(map[string]string, min(len(e.Details), maxDetails))
		if len(e.Details) <= maxDetails {
			for k, v := range e.Details {
				d[clip(k)] = clip(v)
			}
		} else {
			// Keep the same details every time: the first ones in key order.
			for _, k := range slices.Sorted(maps.Keys(e.Details))[:maxDetails] {
				d[clip(k)] = clip(e.Details[k])
			}
		}
		e.Details = d
	} else {
		e.Details = nil
	}
}

// clip cuts s to maxFieldLen bytes at a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= maxFieldLen {
		return s
	}
	i := maxFieldLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// matchType reports whether typ matches pattern: exact, or a prefix when the pattern ends in
// "." ("user.session.") or "*" ("user.session.*" is the prefix "user.session.").
func matchType(pattern, typ string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(typ, p)
	}
	if strings.HasSuffix(pattern, ".") {
		return strings.HasPrefix(typ, pattern)
	}
	return pattern == typ
}

// matchAny reports whether typ matches one of patterns.
func matchAny(patterns []string, typ string) bool {
	for _, p := range patterns {
		if matchType(p, typ) {
			return true
		}
	}
	return false
}

// maxPatternLen bounds a type pattern.
const maxPatternLen = 128

// checkPattern validates an event type pattern: 1 to 128 characters of a-z, A-Z, 0-9, '.', '_'
// and '-', optionally ending in '*'.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty event type")
	}
	if len(p) > maxPatternLen {
		return fmt.Errorf("event type %q...: longer than %d characters", p[:32], maxPatternLen)
	}
	body := strings.TrimSuffix(p, "*")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("event type %q: only letters, digits, '.', '_' and '-', with an optional '*' at the end", p)
		}
	}
	return nil
}

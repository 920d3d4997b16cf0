package policy

import "strings"

// Device is what the gate knows about the device a request comes from.
type Device struct {
	// Known is true when a device was identified (client certificate or device cookie) and is
	// registered. Managed, Compliant and Platform count only when it is.
	Known bool
	// Managed is true when the device is managed.
	Managed bool
	// Compliant is true when the device meets the compliance policy.
	Compliant bool
	// Trust is the device's trust level: "TRUSTED", "NOT_TRUSTED" or "UNKNOWN" (empty means
	// UNKNOWN), compared exactly. Any other value satisfies none of the trust conditions.
	Trust string
	// Platform is the device's platform, e.g. "windows", "macos", "ios", "android", "linux";
	// compared without regard to case.
	Platform string
}

// deviceMask is a set of device conditions, one bit per word of [RuleDef.Device].
type deviceMask uint8

const (
	devRegistered deviceMask = 1 << iota
	devManaged
	devCompliant
	devTrusted
	devNotTrusted
	devUnknown
)

// deviceWords maps each word of [RuleDef.Device] to its bit.
var deviceWords = map[string]deviceMask{
	"registered":  devRegistered,
	"managed":     devManaged,
	"compliant":   devCompliant,
	"trusted":     devTrusted,
	"not_trusted": devNotTrusted,
	"unknown":     devUnknown,
}

// deviceOrder lists the bits in the order they are checked and named.
var deviceOrder = [...]struct {
	bit  deviceMask
	word string
}{
	{devRegistered, "registered"},
	{devManaged, "managed"},
	{devCompliant, "compliant"},
	{devTrusted, "trusted"},
	{devNotTrusted, "not_trusted"},
	{devUnknown, "unknown"},
}

// state returns the device conditions that hold for d.
func (d *Device) state() deviceMask {
	var m deviceMask
	if d.Known {
		m |= devRegistered
		if d.Managed {
			m |= devManaged
		}
		if d.Compliant {
			m |= devCompliant
		}
	}
	switch d.Trust {
	case "TRUSTED":
		m |= devTrusted
	case "NOT_TRUSTED":
		m |= devNotTrusted
	case "UNKNOWN", "":
		m |= devUnknown
	}
	return m
}

// deviceHolds reports whether the rule's device and platform conditions hold for d.
func (r *rule) deviceHolds(d *Device) bool {
	if r.device != 0 && r.device&^d.state() != 0 {
		return false
	}
	return r.platformHolds(d)
}

func (r *rule) platformHolds(d *Device) bool {
	return len(r.platforms) == 0 || d.Known && containsFold(r.platforms, d.Platform)
}

// words names the device conditions in m, in check order.
func (m deviceMask) words() []string {
	var out []string
	for _, o := range deviceOrder {
		if m&o.bit != 0 {
			out = append(out, o.word)
		}
	}
	return out
}

// describe summarises d for a sentence, e.g. "registered, managed, trust NOT_TRUSTED".
func (d *Device) describe() string {
	var parts []string
	if !d.Known {
		parts = append(parts, "not registered")
	} else {
		parts = append(parts, "registered")
		if d.Managed {
			parts = append(parts, "managed")
		}
		if d.Compliant {
			parts = append(parts, "compliant")
		}
	}
	trust := d.Trust
	if trust == "" {
		trust = "UNKNOWN"
	}
	parts = append(parts, "trust "+quoteOdd(trust))
	if d.Known && d.Platform != "" {
		parts = append(parts, "platform "+quoteOdd(d.Platform))
	}
	return strings.Join(parts, ", ")
}

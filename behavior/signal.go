package behavior

import (
	"fmt"
	"strings"
)

// Signal names one kind of unusual sign-in that a policy rule can ask one more factor for.
type Signal string

// The signals, as Okta's behavior detection names them.
const (
	// NewDevice: the sign-in's device id is not in the user's history (or is unknown).
	NewDevice Signal = "new_device"
	// NewIP: the sign-in's address is not in the user's history (or is unknown).
	NewIP Signal = "new_ip"
	// NewCountry: the sign-in's country is not in the user's history (or is unknown).
	NewCountry Signal = "new_country"
	// ImpossibleTravel: the distance from the last located sign-in cannot have been covered
	// in the time between them at MaxSpeedKMH.
	ImpossibleTravel Signal = "impossible_travel"
)

// signals lists every Signal in the order error messages and Assessment use.
var signals = [...]Signal{NewDevice, NewIP, NewCountry, ImpossibleTravel}

// Signals returns every signal, in a fixed order.
func Signals() []Signal { return append([]Signal(nil), signals[:]...) }

// index returns s's position in signals, or -1 if s is not a signal.
func (s Signal) index() int {
	switch s {
	case NewDevice:
		return 0
	case NewIP:
		return 1
	case NewCountry:
		return 2
	case ImpossibleTravel:
		return 3
	}
	return -1
}

// ParseSignal reads a signal name as a Caddyfile writes it ("new_device"; case and the spaces
// around it do not matter). The error names the valid ones.
func ParseSignal(s string) (Signal, error) {
	sig := Signal(strings.ToLower(strings.TrimSpace(s)))
	if sig.index() < 0 {
		names := make([]string, len(signals))
		for i, v := range signals {
			names[i] = string(v)
		}
		return "", fmt.Errorf("unknown behavior signal %q: want one of %s", s, strings.Join(names, ", "))
	}
	return sig, nil
}

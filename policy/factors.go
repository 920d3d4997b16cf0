package policy

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Requirement is what a rule needs from the sign-in: it comes with an OutcomeStepUp, and with
// an OutcomeAuthenticate from a rule that has one, so the gate can ask for it at sign-in.
type Requirement struct {
	// Factors is the rule's [RuleDef.Factors], lower case. It is shared with the policy and
	// must not be modified.
	Factors []string
	// MaxAge is the rule's [RuleDef.Within]: how old the sign-in may be at most; 0 is any age.
	MaxAge time.Duration
}

// factorMask is a set of authentication factors: what a rule needs, or what a sign-in has.
type factorMask uint8

const (
	facPassword factorMask = 1 << iota // amr "pwd"
	facOTP                             // amr "otp"
	facWebAuthn                        // amr "hwk" or "swk"
	facMFA                             // amr "mfa" in a sign-in; "any_mfa" in a rule
	facUV                              // amr "pin": a security key verified its user (PIN or biometric)

	facDistinct = facPassword | facOTP | facWebAuthn
)

// factorWords maps each word of [RuleDef.Factors] to its bit.
var factorWords = map[string]factorMask{
	"password":           facPassword,
	"otp":                facOTP,
	"webauthn":           facWebAuthn,
	"phishing_resistant": facWebAuthn,
	"any_mfa":            facMFA,
	"user_verified":      facWebAuthn | facUV,
}

func compileFactors(r *rule, rd RuleDef) error {
	if len(rd.Factors) == 0 && rd.Within == 0 {
		return nil
	}
	if rd.Within < 0 {
		return fmt.Errorf("negative within %v", rd.Within)
	}
	if rd.Action != Allow || rd.Auth != AuthUser {
		return errors.New("factors and within need an allow that needs a user (not a deny, not auth none)")
	}
	r.stepUp = true
	r.need.MaxAge = rd.Within
	for _, w := range rd.Factors {
		lw := strings.ToLower(w)
		bit, ok := factorWords[lw]
		if !ok {
			return fmt.Errorf("unknown factor %q (want password, otp, webauthn, any_mfa, phishing_resistant or user_verified)", w)
		}
		r.factors |= bit
		r.need.Factors = append(r.need.Factors, lw)
	}
	return nil
}

// amrFactors returns the factors a sign-in with these amr values has. It does not allocate.
func amrFactors(amr []string) factorMask {
	var m factorMask
	for _, s := range amr {
		switch s {
		case "pwd":
			m |= facPassword
		case "otp":
			m |= facOTP
		case "hwk", "swk":
			m |= facWebAuthn
		case "mfa":
			m |= facMFA
		case "pin":
			m |= facUV
		}
	}
	return m
}

// factorsHold reports whether a sign-in with factors have meets need.
func factorsHold(need, have factorMask) bool {
	if need&(facDistinct|facUV)&^have != 0 {
		return false
	}
	if need&facMFA != 0 && have&facMFA == 0 && bits.OnesCount8(uint8(have&facDistinct)) < 2 {
		return false
	}
	return true
}

// fresh reports whether f's sign-in is at most within old. A zero Now or AuthTime fails closed
// when within is set; a sign-in time after Now counts as fresh.
func fresh(f *Facts, within time.Duration) bool {
	if within == 0 {
		return true
	}
	if f.Now.IsZero() || f.AuthTime.IsZero() {
		return false
	}
	return f.Now.Sub(f.AuthTime) <= within
}

// signInHolds reports whether the signed-in user's sign-in meets the rule's factors and
// freshness.
func (r *rule) signInHolds(f *Facts) bool {
	return !r.stepUp || factorsHold(r.factors, amrFactors(f.AMR)) && fresh(f, r.need.MaxAge)
}

// stepUpMiss is signInHolds explaining itself, or nil.
func (r *rule) stepUpMiss(f *Facts) *Miss {
	if !r.stepUp {
		return nil
	}
	if !factorsHold(r.factors, amrFactors(f.AMR)) {
		return &Miss{Cond: CondFactors, Want: clone(r.need.Factors), Got: clone(f.AMR),
			Why: fmt.Sprintf("factors: sign-in has %s, rule needs %s", listOrNone(f.AMR), list(r.need.Factors))}
	}
	if !fresh(f, r.need.MaxAge) {
		want := []string{shortDuration(r.need.MaxAge)}
		if f.Now.IsZero() || f.AuthTime.IsZero() {
			return &Miss{Cond: CondFreshness, Want: want,
				Why: fmt.Sprintf("freshness: sign-in time unknown, rule needs within %s", want[0])}
		}
		age := shortDuration(f.Now.Sub(f.AuthTime))
		return &Miss{Cond: CondFreshness, Want: want, Got: []string{age},
			Why: fmt.Sprintf("freshness: signed in %s ago, rule needs within %s", age, want[0])}
	}
	return nil
}

// shortDuration formats d as time.Duration does, without zero minutes and seconds at the end:
// "12m", "1h", "1h30m", "5m0.5s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

package idp

import (
	"slices"
	"strings"
)

// The acr values this IdP understands: the factor words of a gate's policy rules. A client
// (or the gate, on behalf of a rule) asks for them with acr_values; the sign-in then takes
// the user through those factors, enrolling a missing security key on the way when it can.
const (
	acrPassword          = "password"
	acrOTP               = "otp"
	acrWebAuthn          = "webauthn"
	acrPhishingResistant = "phishing_resistant"
	acrAnyMFA            = "any_mfa"
	acrUserVerified      = "user_verified" // a security key that verified its user
)

// acrValuesSupported is what discovery advertises.
var acrValuesSupported = []string{acrPassword, acrOTP, acrWebAuthn, acrPhishingResistant, acrAnyMFA, acrUserVerified}

// RFC 8176 amr values of the WebAuthn factor.
const (
	amrHardwareKey = "hwk"
	amrSoftwareKey = "swk"
	amrUser        = "user"
	amrPIN         = "pin"
)

// knownACRValues keeps the acr values this IdP understands, lower case, without repeats.
func knownACRValues(vs []string) []string {
	var out []string
	for _, v := range vs {
		v = strings.ToLower(v)
		if slices.Contains(acrValuesSupported, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// factorSet is what a sign-in has proven, or what a request needs.
type factorSet struct {
	password, otp, webauthn bool
	// mfa: two factors were proven (amr "mfa": a password and a code, or a security key that
	// verified its user).
	mfa bool
	// uv: a security key verified its user (amr "pin").
	uv bool
}

func amrSet(amr []string) factorSet {
	var f factorSet
	for _, v := range amr {
		switch v {
		case amrPassword:
			f.password = true
		case amrOTP:
			f.otp = true
		case amrHardwareKey, amrSoftwareKey:
			f.webauthn = true
		case amrMFA:
			f.mfa = true
		case amrPIN:
			f.uv = true
		}
	}
	return f
}

func acrSet(acr []string) factorSet {
	var f factorSet
	for _, v := range acr {
		switch v {
		case acrPassword:
			f.password = true
		case acrOTP:
			f.otp = true
		case acrWebAuthn, acrPhishingResistant:
			f.webauthn = true
		case acrAnyMFA:
			f.mfa = true
		case acrUserVerified:
			f.webauthn, f.uv = true, true
		}
	}
	return f
}

// distinct counts the distinct factors proven.
func (f factorSet) distinct() int {
	n := 0
	for _, b := range []bool{f.password, f.otp, f.webauthn} {
		if b {
			n++
		}
	}
	return n
}

// twoFactors reports whether the sign-in counts as multi-factor.
func (f factorSet) twoFactors() bool { return f.mfa || f.distinct() >= 2 }

// missing returns what need asks for that have lacks (mfa only when have is single-factor).
func (need factorSet) missing(have factorSet) factorSet {
	return factorSet{
		password: need.password && !have.password,
		otp:      need.otp && !have.otp,
		webauthn: need.webauthn && !have.webauthn,
		mfa:      need.mfa && !have.twoFactors(),
		uv:       need.uv && !have.uv,
	}
}

func (f factorSet) empty() bool { return f == factorSet{} }

// acrFor is the acr claim of a sign-in with these amr values: the strongest of the values
// above that it meets.
func acrFor(amr []string) string {
	f := amrSet(amr)
	switch {
	case f.webauthn:
		return acrPhishingResistant
	case f.twoFactors():
		return acrAnyMFA
	case f.otp:
		return acrOTP
	case f.password:
		return acrPassword
	}
	return ""
}

// withMFA returns amr plus "mfa" when the factors in it make two, without repeats.
func withMFA(amr []string) []string {
	out := make([]string, 0, len(amr)+1)
	for _, v := range amr {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if !slices.Contains(out, amrMFA) && amrSet(out).distinct() >= 2 {
		out = append(out, amrMFA)
	}
	return out
}

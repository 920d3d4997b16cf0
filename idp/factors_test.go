package idp

import (
	"slices"
	"testing"
)

func TestKnownACRValues(t *testing.T) {
	got := knownACRValues([]string{"Phishing_Resistant", "urn:mace:incommon:iap:silver", "otp", "otp", "", "user_verified"})
	if want := []string{"phishing_resistant", "otp", "user_verified"}; !slices.Equal(got, want) {
		t.Errorf("knownACRValues = %v, want %v", got, want)
	}
}

func TestFactorsMissing(t *testing.T) {
	tests := []struct {
		name string
		acr  []string
		amr  []string
		want factorSet
	}{
		{"nothing asked", nil, []string{"pwd"}, factorSet{}},
		{"key asked, password only", []string{"phishing_resistant"}, []string{"pwd"}, factorSet{webauthn: true}},
		{"webauthn word", []string{"webauthn"}, []string{"pwd", "otp", "mfa"}, factorSet{webauthn: true}},
		{"key asked, synced passkey", []string{"phishing_resistant"}, []string{"swk", "user", "pin", "mfa"}, factorSet{}},
		{"any_mfa, password only", []string{"any_mfa"}, []string{"pwd"}, factorSet{mfa: true}},
		{"any_mfa, password and code", []string{"any_mfa"}, []string{"pwd", "otp"}, factorSet{}},
		{"any_mfa, verified key alone", []string{"any_mfa"}, []string{"hwk", "user", "pin", "mfa"}, factorSet{}},
		{"any_mfa, key without verification", []string{"any_mfa"}, []string{"hwk", "user"}, factorSet{mfa: true}},
		{"otp asked, key given", []string{"otp"}, []string{"pwd", "hwk", "mfa"}, factorSet{otp: true}},
		{"password asked, passkey given", []string{"password"}, []string{"hwk", "mfa"}, factorSet{password: true}},
		{"everything", []string{"password", "otp", "webauthn"}, []string{"pwd", "otp", "hwk"}, factorSet{}},
		{"verified key asked, key without verification", []string{"user_verified"}, []string{"pwd", "hwk", "user"}, factorSet{uv: true}},
		{"verified key asked, verified key", []string{"user_verified"}, []string{"hwk", "user", "pin", "mfa"}, factorSet{}},
		{"verified key asked, password only", []string{"user_verified"}, []string{"pwd"}, factorSet{webauthn: true, uv: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acrSet(tt.acr).missing(amrSet(tt.amr)); got != tt.want {
				t.Errorf("missing = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestACRFor(t *testing.T) {
	tests := []struct {
		amr  []string
		want string
	}{
		{nil, ""},
		{[]string{"pwd"}, "password"},
		{[]string{"otp"}, "otp"},
		{[]string{"pwd", "otp", "mfa"}, "any_mfa"},
		{[]string{"pwd", "hwk", "mfa"}, "phishing_resistant"},
		{[]string{"swk", "user"}, "phishing_resistant"},
	}
	for _, tt := range tests {
		if got := acrFor(tt.amr); got != tt.want {
			t.Errorf("acrFor(%v) = %q, want %q", tt.amr, got, tt.want)
		}
	}
}

func TestWithMFA(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"pwd"}, []string{"pwd"}},
		{[]string{"pwd", "otp"}, []string{"pwd", "otp", "mfa"}},
		{[]string{"pwd", "hwk", "user", "pin", "mfa"}, []string{"pwd", "hwk", "user", "pin", "mfa"}},
		{[]string{"pwd", "pwd", "hwk"}, []string{"pwd", "hwk", "mfa"}},
	}
	for _, tt := range tests {
		if got := withMFA(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("withMFA(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

package policy

import (
	"strings"
	"testing"
)

// TestBehaviorRule: a behavior rule asks a flagged sign-in for one more factor, lets the same
// sign-in through once it has it, and is passed over by an unflagged sign-in; an anonymous
// client is sent to sign in; an unknown signal is a compile error.
func TestBehaviorRule(t *testing.T) {
	p := mustCompile(t, Def{Rules: []RuleDef{
		{Name: "unusual", Action: Allow, Behavior: []string{"NEW_COUNTRY", "impossible_travel"}, Factors: []string{"any_mfa"}},
		{Name: "staff", Action: Allow, Groups: []string{"staff"}},
	}})
	tests := []struct {
		name     string
		f        Facts
		outcome  Outcome
		rule     string
		whyMatch string
	}{
		{"anonymous", Facts{}, OutcomeAuthenticate, "unusual", ""},
		{"flagged, password only", Facts{Authenticated: true, User: "bob", Groups: []string{"staff"}, AMR: []string{"pwd"}, Behavior: []string{"impossible_travel"}},
			OutcomeStepUp, "unusual", ""},
		{"flagged, two factors", Facts{Authenticated: true, User: "bob", Groups: []string{"staff"}, AMR: []string{"pwd", "otp", "mfa"}, Behavior: []string{"new_country"}},
			OutcomeAllow, "unusual", ""},
		{"flagged with another signal", Facts{Authenticated: true, User: "bob", Groups: []string{"staff"}, AMR: []string{"pwd"}, Behavior: []string{"new_ip"}},
			OutcomeAllow, "staff", "behavior: the sign-in was flagged with none of [new_country impossible_travel] (flagged: [new_ip])"},
		{"not flagged", Facts{Authenticated: true, User: "bob", Groups: []string{"staff"}, AMR: []string{"pwd"}},
			OutcomeAllow, "staff", "(flagged: none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&tt.f)
			if d.Outcome != tt.outcome || d.RuleName != tt.rule {
				t.Fatalf("decision %v, want %v by %q", d, tt.outcome, tt.rule)
			}
			if d.Outcome == OutcomeAuthenticate && len(d.Need.Factors) != 0 {
				t.Fatalf("an anonymous client is asked for %v before anything is flagged", d.Need.Factors)
			}
			if tt.whyMatch == "" {
				return
			}
			_, steps := p.Trace(&tt.f)
			if len(steps) == 0 || steps[0].Miss == nil || steps[0].Miss.Cond != CondBehavior || !strings.Contains(steps[0].Miss.Why, tt.whyMatch) {
				t.Fatalf("trace %+v, want a behavior miss saying %q", steps, tt.whyMatch)
			}
		})
	}
	if _, err := Compile(Def{Rules: []RuleDef{{Action: Allow, Behavior: []string{"new_planet"}}}}, testZones); err == nil || !strings.Contains(err.Error(), `unknown behavior "new_planet"`) {
		t.Errorf("unknown behavior: %v", err)
	}
}

func TestRegisterDeviceRule(t *testing.T) {
	p := mustCompile(t, Def{Rules: []RuleDef{
		{Name: "plant", Action: Allow, Device: []string{"registered"}, Paths: []string{"/plant/*"}},
		{Name: "register", Action: Allow, RegisterDevice: true, Groups: []string{"staff"}},
	}})
	bob := Facts{Authenticated: true, User: "bob", Groups: []string{"staff"}, Path: "/app"}
	if d := p.Evaluate(&bob); d.Outcome != OutcomeAllow || !d.RegisterDevice || d.RuleName != "register" {
		t.Errorf("staff page: %v register %v, want allow asking to register the device", d, d.RegisterDevice)
	}
	bob.Path, bob.Device = "/plant/x", Device{Known: true, Trust: "UNKNOWN"}
	if d := p.Evaluate(&bob); d.Outcome != OutcomeAllow || d.RegisterDevice || d.RuleName != "plant" {
		t.Errorf("plant page from a registered device: %v register %v", d, d.RegisterDevice)
	}
	if _, err := Compile(Def{Rules: []RuleDef{{Action: Deny, RegisterDevice: true}}}, testZones); err == nil || !strings.Contains(err.Error(), "register_device needs an allow") {
		t.Errorf("register_device on a deny: %v", err)
	}
}

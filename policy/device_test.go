package policy

import (
	"slices"
	"strings"
	"testing"
)

// deviceDef is a policy with device conditions; the comments give each rule's index. Its words,
// platforms and paths come from the fuzz pools, so it also seeds the fuzz targets.
func deviceDef() Def {
	return Def{
		Name: "devices",
		Rules: []RuleDef{
			/* 0 */ {Name: "untrusted", Action: Deny, Device: []string{"NOT_TRUSTED"}},
			/* 1 */ {Name: "kiosk", Action: Allow, Auth: AuthNone, Device: []string{"registered"}, Platforms: []string{"windows", "MacOS"}, Paths: []string{"/static/*"}},
			/* 2 */ {Name: "managed admins", Action: Allow, Device: []string{"Managed", "compliant"}, Groups: []string{"admins"}, Paths: []string{"/admin/*"}},
			/* 3 */ {Name: "no admin", Action: Deny, Paths: []string{"/admin/*"}},
			/* 4 */ {Name: "trusted api", Action: Allow, Device: []string{"trusted"}, Methods: []string{"GET"}, Paths: []string{"/api/*"}},
			/* 5 */ {Name: "unknown health", Action: Allow, Auth: AuthNone, Device: []string{"unknown"}, Paths: []string{"/healthz"}},
			/* 6 */ {Name: "linux in office", Action: Allow, Zones: []string{"office"}, Platforms: []string{"linux"}, Paths: []string{"/esign/*"}},
		},
	}
}

// on returns f coming from device d.
func on(d Device, f Facts) Facts {
	f.Device = d
	return f
}

type deviceCase struct {
	name    string
	facts   Facts
	outcome Outcome
	reason  Reason
	rule    int
}

// deviceCases are deviceDef's table cases. Their trust levels are in fuzzTrust.
func deviceCases() []deviceCase {
	var (
		none       = Device{}
		compliant  = Device{Known: true, Managed: true, Compliant: true, Trust: "UNKNOWN", Platform: "windows"}
		notTrusted = Device{Known: true, Managed: true, Compliant: true, Trust: "NOT_TRUSTED", Platform: "windows"}
		win        = Device{Known: true, Platform: "windows"}
		linux      = Device{Known: true, Platform: "linux"}
	)
	return []deviceCase{
		{"not trusted device denied anonymously", on(notTrusted, anon(atHome, "GET", "/static/x")), OutcomeDeny, ReasonRuleDeny, 0},
		{"not trusted device denied for admins", on(notTrusted, user(inOffice, "ann", admins, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 0},
		{"not trusted needs no registration", on(Device{Trust: "NOT_TRUSTED"}, anon(atHome, "GET", "/healthz")), OutcomeDeny, ReasonRuleDeny, 0},
		{"registered windows kiosk is public", on(win, anon(atHome, "GET", "/static/app.js")), OutcomeAllow, ReasonRuleAllow, 1},
		{"platform ignores case", on(Device{Known: true, Platform: "macOS"}, anon(atHome, "GET", "/static/app.js")), OutcomeAllow, ReasonRuleAllow, 1},
		{"no device, no kiosk", on(none, anon(atHome, "GET", "/static/app.js")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"platform of an unregistered device does not count", on(Device{Platform: "windows"}, anon(atHome, "GET", "/static/app.js")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"linux is not a kiosk platform", on(linux, anon(atHome, "GET", "/static/app.js")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"anonymous on a managed compliant device must sign in", on(compliant, anon(atHome, "GET", "/admin/x")), OutcomeAuthenticate, ReasonAuthRequired, 2},
		{"anonymous on a non-compliant device denied admin", on(Device{Known: true, Managed: true}, anon(atHome, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 3},
		{"admin on a managed compliant device allowed", on(compliant, user(atHome, "ann", admins, "GET", "/admin/x")), OutcomeAllow, ReasonRuleAllow, 2},
		{"managed and compliant need a registered device", on(Device{Managed: true, Compliant: true}, user(atHome, "ann", admins, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 3},
		{"compliant but unmanaged", on(Device{Known: true, Compliant: true}, user(atHome, "ann", admins, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 3},
		{"managed but not compliant", on(Device{Known: true, Managed: true}, user(atHome, "ann", admins, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 3},
		{"staff on a compliant device denied admin", on(compliant, user(atHome, "sam", staff, "GET", "/admin/x")), OutcomeDeny, ReasonRuleDeny, 3},
		{"trusted device may GET the API", on(Device{Trust: "TRUSTED"}, user(atHome, "sam", staff, "GET", "/api/x")), OutcomeAllow, ReasonRuleAllow, 4},
		{"anonymous on a trusted device must sign in", on(Device{Trust: "TRUSTED"}, anon(atHome, "GET", "/api/x")), OutcomeAuthenticate, ReasonAuthRequired, 4},
		{"trust level compared exactly", on(Device{Known: true, Trust: "trusted"}, user(atHome, "sam", staff, "GET", "/api/x")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"trust level with a space is not trusted", on(Device{Known: true, Trust: " TRUSTED"}, user(atHome, "sam", staff, "GET", "/api/x")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"unknown trust may not use the API", on(compliant, user(atHome, "sam", staff, "GET", "/api/x")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"empty trust is unknown", on(none, anon(atHome, "GET", "/healthz")), OutcomeAllow, ReasonRuleAllow, 5},
		{"UNKNOWN trust is unknown", on(Device{Known: true, Trust: "UNKNOWN"}, anon(atHome, "GET", "/healthz")), OutcomeAllow, ReasonRuleAllow, 5},
		{"trusted is not unknown", on(Device{Trust: "TRUSTED"}, anon(atHome, "GET", "/healthz")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"lower-case unknown is not a trust level", on(Device{Trust: "unknown"}, anon(atHome, "GET", "/healthz")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"odd trust level meets no trust condition", on(Device{Known: true, Trust: "SOMETIMES"}, anon(atHome, "GET", "/healthz")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"linux in office must sign in", on(linux, anon(inOffice, "GET", "/esign/x")), OutcomeAuthenticate, ReasonAuthRequired, 6},
		{"linux in office allowed", on(linux, user(inOffice, "sam", staff, "GET", "/esign/x")), OutcomeAllow, ReasonRuleAllow, 6},
		{"platform case ignored for a rule", on(Device{Known: true, Platform: "LINUX"}, user(inOffice, "sam", staff, "GET", "/esign/x")), OutcomeAllow, ReasonRuleAllow, 6},
		{"windows in office refused", on(win, user(inOffice, "sam", staff, "GET", "/esign/x")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"linux at home refused", on(linux, user(atHome, "sam", staff, "GET", "/esign/x")), OutcomeDeny, ReasonDefaultDeny, -1},
		{"unregistered linux refused", on(Device{Platform: "linux"}, user(inOffice, "sam", staff, "GET", "/esign/x")), OutcomeDeny, ReasonDefaultDeny, -1},
	}
}

func TestEvaluateDevice(t *testing.T) {
	def := deviceDef()
	p := mustCompile(t, def)
	for _, tt := range deviceCases() {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&tt.facts)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
			if ref := refEvaluate(def, &tt.facts); !sameDecision(ref, d) {
				t.Errorf("reference evaluator disagrees: %+v", ref)
			}
			if tt.rule >= 0 && d.RuleName != def.Rules[tt.rule].Name {
				t.Errorf("RuleName = %q, want %q", d.RuleName, def.Rules[tt.rule].Name)
			}
			if td, _ := p.Trace(&tt.facts); !sameDecision(td, d) {
				t.Errorf("Trace = %v", td)
			}
		})
	}
}

// TestDeviceBeforeMethods checks that device conditions are checked right after zones.
func TestDeviceBeforeMethods(t *testing.T) {
	p := mustCompile(t, Def{Rules: []RuleDef{
		{Action: Allow, Zones: []string{"office"}, Device: []string{"compliant"}, Methods: []string{"POST"}},
		{Action: Allow, Device: []string{"registered"}, Platforms: []string{"linux"}, Paths: []string{"/x"}},
	}})
	f := anon(atHome, "GET", "/")
	_, steps := p.Trace(&f)
	if got := []Cond{steps[0].Miss.Cond, steps[1].Miss.Cond}; !slices.Equal(got, []Cond{CondZones, CondDevice}) {
		t.Errorf("at home, no device: misses %v", got)
	}
	f = on(Device{Known: true}, user(inOffice, "u", nil, "GET", "/"))
	_, steps = p.Trace(&f)
	if got := []Cond{steps[0].Miss.Cond, steps[1].Miss.Cond}; !slices.Equal(got, []Cond{CondDevice, CondPlatform}) {
		t.Errorf("in office, registered device: misses %v", got)
	}
}

func TestTraceDevice(t *testing.T) {
	def := Def{Rules: []RuleDef{
		{Name: "compliant only", Action: Allow, Device: []string{"compliant"}, Methods: []string{"POST"}},
		{Name: "desktops", Action: Allow, Platforms: []string{"windows", "macos"}, Methods: []string{"POST"}},
		{Name: "trusted", Action: Allow, Device: []string{"registered", "trusted"}},
		{Name: "not trusted", Action: Allow, Device: []string{"not_trusted"}},
		{Name: "unknown", Action: Allow, Device: []string{"Unknown"}},
	}}
	tests := []struct {
		name    string
		facts   Facts
		outcome Outcome
		rule    int
		cond    Cond
		lines   []string
	}{
		{
			name:  "registered, managed, not trusted",
			facts: on(Device{Known: true, Managed: true, Trust: "NOT_TRUSTED"}, user(atHome, "u", nil, "GET", "/")), outcome: OutcomeAllow, rule: 3,
			lines: []string{
				`device: not compliant (device: registered, managed, trust NOT_TRUSTED)`,
				`platform: "" is none of [windows macos]`,
				`device: not trusted (device: registered, managed, trust NOT_TRUSTED)`,
				"match",
			},
		},
		{
			name:  "no device",
			facts: anon(atHome, "GET", "/"), outcome: OutcomeAuthenticate, rule: 4, cond: CondSignIn,
			lines: []string{
				`device: no registered device`,
				`platform: no registered device`,
				`device: no registered device`,
				`device: trust is not NOT_TRUSTED (device: not registered, trust UNKNOWN)`,
				`user needed: the rule allows signed-in users only and the request is not signed in`,
			},
		},
		{
			name:  "wrong platform, then trusted",
			facts: on(Device{Known: true, Compliant: true, Trust: "TRUSTED", Platform: "linux"}, user(atHome, "u", nil, "GET", "/")), outcome: OutcomeAllow, rule: 2,
			lines: []string{
				`method: GET is not one of [POST]`,
				`platform: "linux" is none of [windows macos]`,
				"match",
			},
		},
		{
			name:  "odd trust level",
			facts: on(Device{Known: true, Trust: "SOME TIMES", Platform: "Windows"}, user(atHome, "u", nil, "GET", "/")), outcome: OutcomeDeny, rule: -1,
			lines: []string{
				`device: not compliant (device: registered, trust "SOME TIMES", platform Windows)`,
				`method: GET is not one of [POST]`,
				`device: not trusted (device: registered, trust "SOME TIMES", platform Windows)`,
				`device: trust is not NOT_TRUSTED (device: registered, trust "SOME TIMES", platform Windows)`,
				`device: trust is not UNKNOWN (device: registered, trust "SOME TIMES", platform Windows)`,
			},
		},
	}
	p := mustCompile(t, def)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, steps := p.Trace(&tt.facts)
			if !sameDecision(d, p.Evaluate(&tt.facts)) {
				t.Fatalf("Trace = %v, Evaluate = %v", d, p.Evaluate(&tt.facts))
			}
			if d.Outcome != tt.outcome || d.Rule != tt.rule {
				t.Fatalf("decision %v (rule index %d), want %v at rule index %d", d, d.Rule, tt.outcome, tt.rule)
			}
			if got := stepLines(steps); !slices.Equal(got, tt.lines) {
				t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.lines, "\n"))
			}
			if tt.cond != 0 && steps[len(steps)-1].Miss.Cond != tt.cond {
				t.Errorf("last step %+v, want cond %v", steps[len(steps)-1], tt.cond)
			}
		})
	}

	// Want and Got.
	f := on(Device{Known: true, Managed: true, Trust: "NOT_TRUSTED"}, user(atHome, "u", nil, "GET", "/"))
	_, steps := p.Trace(&f)
	checks := []Miss{
		{Cond: CondDevice, Want: []string{"compliant"}, Got: []string{"registered", "managed", "not_trusted"}},
		{Cond: CondPlatform, Want: []string{"windows", "macos"}, Got: []string{""}},
		{Cond: CondDevice, Want: []string{"registered", "trusted"}, Got: []string{"registered", "managed", "not_trusted"}},
	}
	f = anon(atHome, "GET", "/")
	_, anonSteps := p.Trace(&f)
	checks = append(checks,
		Miss{Cond: CondDevice, Want: []string{"not_trusted"}, Got: []string{"unknown"}},
		Miss{Cond: CondPlatform, Want: []string{"windows", "macos"}, Got: nil})
	misses := []*Miss{steps[0].Miss, steps[1].Miss, steps[2].Miss, anonSteps[3].Miss, anonSteps[1].Miss}
	for i, w := range checks {
		m := misses[i]
		if m.Cond != w.Cond || !slices.Equal(m.Want, w.Want) || !slices.Equal(m.Got, w.Got) || (w.Got == nil) != (m.Got == nil) {
			t.Errorf("miss %d: %+v, want %+v", i, m, w)
		}
	}
	// The words are lower-cased as compiled.
	if got := anonSteps[4].Miss; got.Cond != CondSignIn {
		t.Errorf("last anonymous step %+v", got)
	}
	p2 := mustCompile(t, Def{Rules: []RuleDef{{Action: Allow, Device: []string{"Unknown", "REGISTERED"}}}})
	f = on(Device{Trust: "TRUSTED"}, user(atHome, "u", nil, "GET", "/"))
	if _, st := p2.Trace(&f); !slices.Equal(st[0].Miss.Want, []string{"unknown", "registered"}) || st[0].Miss.Why != "device: no registered device" {
		t.Errorf("miss %+v", st[0].Miss)
	}
}

func TestCompileDevice(t *testing.T) {
	// Contradictory or repeated words are accepted; such a rule never matches.
	p := mustCompile(t, Def{Rules: []RuleDef{
		{Name: "never", Action: Allow, Auth: AuthNone, Device: []string{"trusted", "NOT_TRUSTED", "trusted"}},
		{Name: "any", Action: Allow, Auth: AuthNone, Device: []string{"Registered"}, Platforms: []string{"Windows"}},
	}})
	for _, trust := range []string{"", "TRUSTED", "NOT_TRUSTED"} {
		f := on(Device{Known: true, Trust: trust, Platform: "windows"}, anon(atHome, "GET", "/"))
		if d := p.Evaluate(&f); d.Outcome != OutcomeAllow || d.Rule != 1 {
			t.Errorf("trust %q: %v", trust, d)
		}
	}
	// Compile keeps its own copies.
	def := Def{Rules: []RuleDef{{Action: Allow, Auth: AuthNone, Platforms: []string{"linux"}}}}
	p = mustCompile(t, def)
	def.Rules[0].Platforms[0] = "windows"
	f := on(Device{Known: true, Platform: "linux"}, anon(atHome, "GET", "/"))
	if d := p.Evaluate(&f); d.Outcome != OutcomeAllow {
		t.Errorf("after changing the Def: %v", d)
	}
}

func TestEvaluateDeviceAllocs(t *testing.T) {
	p := mustCompile(t, deviceDef())
	for _, tt := range deviceCases() {
		if n := testing.AllocsPerRun(100, func() { p.Evaluate(&tt.facts) }); n != 0 {
			t.Errorf("%s: Evaluate allocates %v times", tt.name, n)
		}
	}
}

func BenchmarkEvaluateDevice(b *testing.B) {
	p := mustCompile(b, deviceDef())
	f := on(Device{Known: true, Platform: "Linux", Trust: "UNKNOWN"}, user(inOffice, "sam", staff, "GET", "/esign/x"))
	if d := p.Evaluate(&f); d.Outcome != OutcomeAllow || d.Rule != 6 {
		b.Fatalf("unexpected decision %v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(&f)
	}
}

package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// factorDef has one rule per factor word and a freshness rule; the comments give each rule's
// index. It is expressible with the fuzz pools, so it seeds the fuzz corpus.
func factorDef() Def {
	return Def{
		Name: "factors",
		Rules: []RuleDef{
			/* 0 */ {Name: "password", Action: Allow, Paths: []string{"/api/*"}, Factors: []string{"password"}},
			/* 1 */ {Name: "otp", Action: Allow, Paths: []string{"/admin/*"}, Factors: []string{"OTP"}},
			/* 2 */ {Name: "webauthn", Action: Allow, Paths: []string{"/esign/*"}, Factors: []string{"webauthn"}},
			/* 3 */ {Name: "phishing resistant", Action: Allow, Paths: []string{"/static/*"}, Factors: []string{"phishing_resistant"}},
			/* 4 */ {Name: "mfa", Action: Allow, Paths: []string{"/healthz"}, Factors: []string{"any_mfa"}},
			/* 5 */ {Name: "fresh", Action: Allow, Paths: []string{"/favicon.ico"}, Within: 5 * time.Minute},
			/* 6 */ {Name: "staff", Action: Allow, Groups: []string{"staff"}, Paths: []string{"/"}, Factors: []string{"any_mfa"}, Within: time.Hour},
			/* 7 */ {Name: "rest", Action: Deny, Paths: []string{"/"}},
		},
	}
}

// signedIn is a staff user at fuzzNow whose sign-in has amr and is age old (fuzzAgeNoAuthTime:
// no sign-in time; fuzzAgeNoNow: no evaluation time).
func signedIn(p string, age time.Duration, amr ...string) Facts {
	f := user(atHome, "sam", staff, "GET", p)
	f.AMR, f.Now = amr, fuzzNow
	switch age {
	case fuzzAgeNoAuthTime:
	case fuzzAgeNoNow:
		f.Now, f.AuthTime = time.Time{}, fuzzNow.Add(-time.Minute)
	default:
		f.AuthTime = fuzzNow.Add(-age)
	}
	return f
}

type factorCase struct {
	name    string
	facts   Facts
	outcome Outcome
	reason  Reason
	rule    int
	need    Requirement
}

func factorCases() []factorCase {
	m := time.Minute
	needPwd := Requirement{Factors: []string{"password"}}
	needOTP := Requirement{Factors: []string{"otp"}}
	needWA := Requirement{Factors: []string{"webauthn"}}
	needPR := Requirement{Factors: []string{"phishing_resistant"}}
	needMFA := Requirement{Factors: []string{"any_mfa"}}
	needFresh := Requirement{MaxAge: 5 * m}
	needStaff := Requirement{Factors: []string{"any_mfa"}, MaxAge: time.Hour}
	noStaff := signedIn("/", m, "pwd")
	noStaff.Groups = nil
	return []factorCase{
		{"password present", signedIn("/api/x", m, "pwd"), OutcomeAllow, ReasonRuleAllow, 0, Requirement{}},
		{"password missing", signedIn("/api/x", m, "otp", "hwk"), OutcomeStepUp, ReasonStepUpRequired, 0, needPwd},
		{"otp present", signedIn("/admin/x", m, "pwd", "otp"), OutcomeAllow, ReasonRuleAllow, 1, Requirement{}},
		{"otp missing", signedIn("/admin/x", m, "pwd"), OutcomeStepUp, ReasonStepUpRequired, 1, needOTP},
		{"webauthn by hwk", signedIn("/esign/x", m, "hwk"), OutcomeAllow, ReasonRuleAllow, 2, Requirement{}},
		{"webauthn by swk", signedIn("/esign/x", m, "swk"), OutcomeAllow, ReasonRuleAllow, 2, Requirement{}},
		{"webauthn missing", signedIn("/esign/x", m, "pwd", "otp", "mfa"), OutcomeStepUp, ReasonStepUpRequired, 2, needWA},
		{"phishing resistant by hwk", signedIn("/static/x", m, "hwk"), OutcomeAllow, ReasonRuleAllow, 3, Requirement{}},
		{"phishing resistant missing", signedIn("/static/x", m, "pwd", "otp"), OutcomeStepUp, ReasonStepUpRequired, 3, needPR},
		{"any_mfa by mfa", signedIn("/healthz", m, "mfa"), OutcomeAllow, ReasonRuleAllow, 4, Requirement{}},
		{"any_mfa by pwd and otp", signedIn("/healthz", m, "pwd", "otp"), OutcomeAllow, ReasonRuleAllow, 4, Requirement{}},
		{"any_mfa by otp and swk", signedIn("/healthz", m, "otp", "swk"), OutcomeAllow, ReasonRuleAllow, 4, Requirement{}},
		{"any_mfa: hwk and swk are one factor", signedIn("/healthz", m, "hwk", "swk"), OutcomeStepUp, ReasonStepUpRequired, 4, needMFA},
		{"any_mfa: password alone", signedIn("/healthz", m, "pwd"), OutcomeStepUp, ReasonStepUpRequired, 4, needMFA},
		{"any_mfa: no amr", signedIn("/healthz", m), OutcomeStepUp, ReasonStepUpRequired, 4, needMFA},
		{"fresh: 1m", signedIn("/favicon.ico", m), OutcomeAllow, ReasonRuleAllow, 5, Requirement{}},
		{"fresh: exactly 5m", signedIn("/favicon.ico", 5*m), OutcomeAllow, ReasonRuleAllow, 5, Requirement{}},
		{"stale: 5m and 1ns", signedIn("/favicon.ico", 5*m+1), OutcomeStepUp, ReasonStepUpRequired, 5, needFresh},
		{"stale: no sign-in time", signedIn("/favicon.ico", fuzzAgeNoAuthTime), OutcomeStepUp, ReasonStepUpRequired, 5, needFresh},
		{"stale: no evaluation time", signedIn("/favicon.ico", fuzzAgeNoNow), OutcomeStepUp, ReasonStepUpRequired, 5, needFresh},
		{"fresh: sign-in in the future", signedIn("/favicon.ico", -m), OutcomeAllow, ReasonRuleAllow, 5, Requirement{}},
		{"group and factors", signedIn("/", 5*m, "mfa"), OutcomeAllow, ReasonRuleAllow, 6, Requirement{}},
		{"group holds, factor missing", signedIn("/", 5*m, "pwd"), OutcomeStepUp, ReasonStepUpRequired, 6, needStaff},
		{"group holds, too old", signedIn("/", 61*m, "mfa"), OutcomeStepUp, ReasonStepUpRequired, 6, needStaff},
		{"group fails: falls through, no step-up", noStaff, OutcomeDeny, ReasonRuleDeny, 7, Requirement{}},
		{"anonymous asked for the password", anon(atHome, "GET", "/api/x"), OutcomeAuthenticate, ReasonAuthRequired, 0, needPwd},
		{"anonymous asked for a fresh sign-in", anon(atHome, "GET", "/favicon.ico"), OutcomeAuthenticate, ReasonAuthRequired, 5, needFresh},
		{"anonymous asked for both", anon(atHome, "GET", "/"), OutcomeAuthenticate, ReasonAuthRequired, 6, needStaff},
	}
}

func TestFactors(t *testing.T) {
	def := factorDef()
	p := mustCompile(t, def)
	for _, tt := range factorCases() {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&tt.facts)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule || d.RuleName != def.Rules[tt.rule].Name {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
			if !sameNeed(d.Need, tt.need) {
				t.Errorf("Need = %+v, want %+v", d.Need, tt.need)
			}
			if ref := refEvaluate(def, &tt.facts); !sameDecision(ref, d) {
				t.Errorf("reference evaluator disagrees: %+v", ref)
			}
			td, steps := p.TraceWith(&tt.facts, traceOpts)
			if !sameDecision(td, d) {
				t.Errorf("Trace = %+v", td)
			}
			checkSteps(t, def, &tt.facts, td, steps)
		})
	}
}

func TestFactorsNeedIsShared(t *testing.T) {
	p := mustCompile(t, factorDef())
	f := signedIn("/api/x", time.Minute)
	a, b := p.Evaluate(&f), p.Evaluate(&f)
	if len(a.Need.Factors) != 1 || &a.Need.Factors[0] != &b.Need.Factors[0] {
		t.Errorf("Need.Factors not shared between decisions: %p %p", a.Need.Factors, b.Need.Factors)
	}
	if s := a.String(); s != `step_up (step_up_required: rule 1 "password")` {
		t.Errorf("String = %q", s)
	}
}

func TestFactorsCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		rule RuleDef
		err  string
	}{
		{"unknown factor", RuleDef{Action: Allow, Factors: []string{"sms"}},
			`policy "p": rule 1: unknown factor "sms" (want password, otp, webauthn, any_mfa, phishing_resistant or user_verified)`},
		{"empty factor", RuleDef{Action: Allow, Factors: []string{""}}, `unknown factor ""`},
		{"factors on a deny", RuleDef{Name: "d", Action: Deny, Factors: []string{"otp"}},
			`policy "p": rule 1 ("d"): factors and within need an allow that needs a user (not a deny, not auth none)`},
		{"within on a deny", RuleDef{Action: Deny, Within: time.Minute}, "factors and within need an allow"},
		{"factors on auth none", RuleDef{Action: Allow, Auth: AuthNone, Factors: []string{"otp"}}, "factors and within need an allow"},
		{"within on auth none", RuleDef{Action: Allow, Auth: AuthNone, Within: time.Minute}, "factors and within need an allow"},
		{"negative within", RuleDef{Action: Allow, Within: -time.Second}, `policy "p": rule 1: negative within -1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(Def{Name: "p", Rules: []RuleDef{tt.rule}}, testZones)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Compile error %v, want %q", err, tt.err)
			}
		})
	}
	// Factor words are matched without regard to case, and Need has them in lower case.
	p := mustCompile(t, Def{Rules: []RuleDef{{Action: Allow, Factors: []string{"WebAuthn", "Any_MFA"}}}})
	f := signedIn("/", time.Minute, "pwd")
	if d := p.Evaluate(&f); d.Outcome != OutcomeStepUp || !slices.Equal(d.Need.Factors, []string{"webauthn", "any_mfa"}) {
		t.Errorf("Evaluate = %+v", d)
	}
}

func TestFactorsTrace(t *testing.T) {
	p := mustCompile(t, factorDef())
	tests := []struct {
		facts Facts
		cond  Cond
		why   string
	}{
		{signedIn("/admin/x", time.Minute, "pwd"), CondFactors, `factors: sign-in has [pwd], rule needs [otp]`},
		{signedIn("/healthz", time.Minute), CondFactors, `factors: sign-in has none, rule needs [any_mfa]`},
		{signedIn("/favicon.ico", 12*time.Minute), CondFreshness, `freshness: signed in 12m ago, rule needs within 5m`},
		{signedIn("/favicon.ico", fuzzAgeNoAuthTime), CondFreshness, `freshness: sign-in time unknown, rule needs within 5m`},
		{signedIn("/", 90*time.Minute, "mfa"), CondFreshness, `freshness: signed in 1h30m ago, rule needs within 1h`},
	}
	for _, tt := range tests {
		d, steps := p.TraceWith(&tt.facts, traceOpts)
		last := steps[len(steps)-1]
		if d.Outcome != OutcomeStepUp || last.Matched || last.Miss.Cond != tt.cond || last.Miss.Why != tt.why {
			t.Errorf("%s: %v, last step %+v", tt.facts.Path, d, last.Miss)
		}
	}
}

func TestFactorsEvaluateDoesNotAllocate(t *testing.T) {
	p := mustCompile(t, factorDef())
	for _, f := range []Facts{
		signedIn("/healthz", time.Minute, "pwd", "otp"),
		signedIn("/", 61*time.Minute, "mfa", "hwk"),
		signedIn("/esign/x", time.Minute, "pwd"),
		anon(atHome, "GET", "/"),
	} {
		if n := testing.AllocsPerRun(100, func() { p.Evaluate(&f) }); n != 0 {
			t.Errorf("%s: %v allocs per Evaluate", f.Path, n)
		}
	}
}

func BenchmarkEvaluateFactors(b *testing.B) {
	p := mustCompile(b, factorDef())
	f := signedIn("/", 5*time.Minute, "pwd", "otp", "hwk")
	b.ReportAllocs()
	for b.Loop() {
		p.Evaluate(&f)
	}
}

func TestUserVerifiedFactor(t *testing.T) {
	p := mustCompile(t, Def{Rules: []RuleDef{{Name: "sign", Action: Allow, Factors: []string{"user_verified"}}}})
	tests := []struct {
		amr     []string
		outcome Outcome
	}{
		{[]string{"pwd", "hwk", "user", "pin", "mfa"}, OutcomeAllow},
		{[]string{"swk", "user", "pin", "mfa"}, OutcomeAllow},
		{[]string{"pwd", "hwk", "user"}, OutcomeStepUp}, // a key that did not verify its user
		{[]string{"pwd", "otp", "mfa"}, OutcomeStepUp},  // no key
		{[]string{"pin"}, OutcomeStepUp},                // "pin" without a key
	}
	for _, tt := range tests {
		if d := p.Evaluate(&Facts{Authenticated: true, User: "u", AMR: tt.amr}); d.Outcome != tt.outcome {
			t.Errorf("amr %v: %v, want %v", tt.amr, d, tt.outcome)
		}
	}
}

package policy

import (
	"slices"
	"strings"
	"testing"
)

// testZoneName names testZones' indexes, as (*zones.Table).Name does.
func testZoneName(i int) string {
	for name, j := range testZones {
		if j == i {
			return name
		}
	}
	return ""
}

var traceOpts = TraceOptions{ZoneName: testZoneName}

// stepLines renders steps as "match" or the miss's sentence, one per rule tried.
func stepLines(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		if s.Matched {
			out[i] = "match"
		} else {
			out[i] = s.Miss.Why
		}
	}
	return out
}

func TestTrace(t *testing.T) {
	longPath := "/assets/" + strings.Repeat("x", MaxGlobPath) + ".css"
	tests := []struct {
		name    string
		def     Def // appDef when empty
		facts   Facts
		outcome Outcome
		rule    int
		cond    Cond // of the last step, 0 when it matched or the default decided
		lines   []string
	}{
		{
			name: "zones, paths, then a deny", facts: user(atHome, "ann", admins, "GET", "/admin/users"),
			outcome: OutcomeDeny, rule: 3, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: none)`,
				`path: "/admin/users" matches none of [/healthz]`,
				`zone: client is in none of [office vpn] (client zones: none)`,
				"match",
			},
		},
		{
			name: "client zones are named", facts: user(inVPN, "sam", staff, "GET", "/healthz"),
			outcome: OutcomeAllow, rule: 1, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: [vpn])`,
				"match",
			},
		},
		{
			name: "method", facts: anon(inOffice, "POST", "/healthz"),
			outcome: OutcomeDeny, rule: -1, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: [office])`,
				`method: POST is not one of [GET HEAD]`,
				`path: "/healthz" matches none of [/admin/*]`,
				`path: "/healthz" matches none of [/admin/*]`,
				`path: "/healthz" matches none of [/esign/*]`,
				`path: "/healthz" matches none of [/esign/*]`,
				`method: POST is not one of [GET]`,
				`path: "/healthz" matches none of [/static/* /favicon.ico /assets/*.css]`,
			},
		},
		{
			name: "group", facts: user(inOffice, "bob", staff, "GET", "/admin/x"),
			outcome: OutcomeDeny, rule: 3, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: [office])`,
				`path: "/admin/x" matches none of [/healthz]`,
				`group: user bob is in none of [admins] (user groups: [staff])`,
				"match",
			},
		},
		{
			name: "group, user without groups", facts: user(inOffice, "nobody", nil, "GET", "/esign/doc"),
			outcome: OutcomeDeny, rule: -1, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: [office])`,
				`path: "/esign/doc" matches none of [/healthz]`,
				`path: "/esign/doc" matches none of [/admin/*]`,
				`path: "/esign/doc" matches none of [/admin/*]`,
				`group: user nobody is in none of [contractors] (user groups: none)`,
				`group: user nobody is in none of [staff admins] (user groups: none)`,
				`path: "/esign/doc" matches none of [/api/*]`,
				`path: "/esign/doc" matches none of [/static/* /favicon.ico /assets/*.css]`,
			},
		},
		{
			name: "user needed for a group rule", facts: anon(inOffice, "GET", "/admin/users"),
			outcome: OutcomeAuthenticate, rule: 2, cond: CondSignIn, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: [office])`,
				`path: "/admin/users" matches none of [/healthz]`,
				`user needed: the rule names users/groups and the request is not signed in`,
			},
		},
		{
			name: "user needed for an allow", facts: anon(atHome, "GET", "/api/v1"),
			outcome: OutcomeAuthenticate, rule: 6, cond: CondSignIn, lines: []string{
				`zone: client is in none of [blocked-ish] (client zones: none)`,
				`path: "/api/v1" matches none of [/healthz]`,
				`zone: client is in none of [office vpn] (client zones: none)`,
				`path: "/api/v1" matches none of [/admin/*]`,
				`path: "/api/v1" matches none of [/esign/*]`,
				`zone: client is in none of [office vpn] (client zones: none)`,
				`user needed: the rule allows signed-in users only and the request is not signed in`,
			},
		},
		{
			name:  "glob patterns are shown folded",
			def:   Def{Rules: []RuleDef{{Action: Allow, Auth: AuthNone, Paths: []string{"/Files/*.PDF", "/Docs/*", "/Exact"}}}},
			facts: anon(atHome, "GET", "/files/a/b.pdf"), outcome: OutcomeDeny, rule: -1, lines: []string{
				`path: "/files/a/b.pdf" matches none of [/files/*.pdf /Docs/* /Exact]`,
			},
		},
		{
			name: "too long for a glob", def: Def{Rules: []RuleDef{{Action: Allow, Auth: AuthNone, Paths: []string{"/assets/*.css"}}}},
			facts: anon(atHome, "GET", longPath), outcome: OutcomeDeny, rule: -1, lines: []string{
				`path: "` + longPath + `" matches none of [/assets/*.css] (the path is longer than 1024 bytes, so an allow rule's glob patterns do not match it)`,
			},
		},
		{
			name:  "not_zone",
			def:   Def{Rules: []RuleDef{{Name: "outside", Action: Allow, NotZones: []string{"blocked-ish", "vpn"}}}},
			facts: user(inBlocked.With(0), "ann", nil, "GET", "/"), outcome: OutcomeDeny, rule: -1, lines: []string{
				`not_zone: client is in [blocked-ish], which the rule excludes`,
			},
		},
		{
			name: "user, then not_group, then an unnamed rule matches",
			def: Def{Rules: []RuleDef{
				{Name: "alice only", Action: Allow, Users: []string{"alice"}},
				{Name: "no guests", Action: Allow, NotGroups: []string{"guests", "temps"}},
				{Action: Deny},
			}},
			facts: user(atHome, "eve", []string{"staff", "temps", "guests", "temps"}, "GET", "/"), outcome: OutcomeDeny, rule: 2, lines: []string{
				`user: eve is not one of [alice]`,
				`not_group: user eve is in [temps guests], which the rule excludes`,
				"match",
			},
		},
		{
			name:  "odd names are quoted",
			def:   Def{Rules: []RuleDef{{Action: Allow, Users: []string{"a b"}}, {Action: Allow, Methods: []string{"GET"}}}},
			facts: user(atHome, "", nil, "", "/"), outcome: OutcomeDeny, rule: -1, lines: []string{
				`user: "" is not one of ["a b"]`,
				`method: "" is not one of [GET]`,
			},
		},
		{
			name:  "default allow needs a user",
			def:   Def{Rules: []RuleDef{{Action: Deny, Methods: []string{"DELETE"}}}, Default: Allow},
			facts: anon(atHome, "GET", "/"), outcome: OutcomeAuthenticate, rule: -1, lines: []string{
				`method: GET is not one of [DELETE]`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := tt.def
			if def.Rules == nil {
				def = appDef()
			}
			p := mustCompile(t, def)
			d, steps := p.TraceWith(&tt.facts, traceOpts)
			if !sameDecision(d, p.Evaluate(&tt.facts)) {
				t.Fatalf("Trace = %v, Evaluate = %v", d, p.Evaluate(&tt.facts))
			}
			if d.Outcome != tt.outcome || d.Rule != tt.rule {
				t.Fatalf("decision %v (rule index %d), want %v at rule index %d", d, d.Rule, tt.outcome, tt.rule)
			}
			if got := stepLines(steps); !slices.Equal(got, tt.lines) {
				t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.lines, "\n"))
			}
			if d.Rule < 0 {
				return
			}
			last := steps[len(steps)-1]
			if tt.cond == 0 && (!last.Matched || last.Miss != nil) || tt.cond != 0 && (last.Matched || last.Miss == nil || last.Miss.Cond != tt.cond) {
				t.Errorf("last step %+v, want cond %v", last, tt.cond)
			}
		})
	}
}

func TestTraceTypedMiss(t *testing.T) {
	p := mustCompile(t, appDef())
	f := user(inVPN.With(2), "bob", []string{"staff", "x"}, "PUT", "/esign/a")
	_, steps := p.TraceWith(&f, traceOpts)
	if len(steps) != 1 || !steps[0].Matched || steps[0].Miss != nil || steps[0].Name != "blocked" || steps[0].Action != Deny {
		t.Fatalf("steps %+v, want only rule 0 matching", steps)
	}

	f = user(inVPN, "bob", []string{"staff", "x"}, "PUT", "/esign/a")
	_, steps = p.TraceWith(&f, traceOpts)
	checks := map[int]Miss{
		0: {Cond: CondZones, Want: []string{"blocked-ish"}, Got: []string{"vpn"}},
		1: {Cond: CondMethods, Want: []string{"GET", "HEAD"}, Got: []string{"PUT"}},
		2: {Cond: CondPaths, Want: []string{"/admin/*"}, Got: []string{"/esign/a"}},
		4: {Cond: CondGroups, Want: []string{"contractors"}, Got: []string{"staff", "x"}},
		5: {Cond: CondMethods, Want: []string{"GET", "POST"}, Got: []string{"PUT"}},
	}
	for i, w := range checks {
		m := steps[i].Miss
		if m == nil || m.Cond != w.Cond || !slices.Equal(m.Want, w.Want) || !slices.Equal(m.Got, w.Got) {
			t.Errorf("step %d: %+v, want %+v", i, m, w)
		}
		if !strings.HasPrefix(m.String(), w.Cond.String()+": ") {
			t.Errorf("step %d: sentence %q does not start with %q", i, m, w.Cond)
		}
	}
}

func TestTraceZoneNamesFallBack(t *testing.T) {
	p := mustCompile(t, Def{Rules: []RuleDef{{Action: Allow, Zones: []string{"vpn"}}}})
	f := user(inBlocked, "u", nil, "GET", "/")
	_, steps := p.Trace(&f)
	if got, want := steps[0].Miss.Why, "zone: client is in none of [zone#1] (client zones: [zone#2])"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, steps = p.TraceWith(&f, TraceOptions{ZoneName: func(i int) string {
		if i == 1 {
			return "vpn"
		}
		return ""
	}})
	if got, want := steps[0].Miss.Why, "zone: client is in none of [vpn] (client zones: [zone#2])"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTraceNil(t *testing.T) {
	var p *Policy
	if d, steps := p.Trace(&Facts{}); d.Outcome != OutcomeDeny || d.Rule != -1 || steps != nil {
		t.Errorf("nil policy: %v %v", d, steps)
	}
	allowAll := mustCompile(t, Def{Default: Allow, DefaultAuth: AuthNone})
	if d, steps := allowAll.Trace(nil); d.Outcome != OutcomeDeny || d.Rule != -1 || steps != nil {
		t.Errorf("nil facts: %v %v", d, steps)
	}
	if d, steps := allowAll.Trace(&Facts{}); d.Outcome != OutcomeAllow || len(steps) != 0 {
		t.Errorf("no rules: %v %v", d, steps)
	}
}

func TestCondString(t *testing.T) {
	var got []string
	for c := CondZones; c <= CondFreshness+1; c++ {
		got = append(got, c.String())
	}
	want := []string{"zone", "not_zone", "device", "platform", "method", "path", "user needed", "user", "group", "not_group", "behavior", "factors", "freshness", "Cond(14)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzTrace checks that Trace decides as Evaluate does and that its steps agree with a
// reference written from the Def: every rule before the deciding one misses, on the condition
// the reference finds first, with the rule's own values.
func FuzzTrace(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, rules []byte, ctl, dev, auth byte, user, groups, method, p, platform string) {
		def := fuzzDef(rules, ctl)
		pol, err := Compile(def, testZones)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		facts := fuzzFacts(ctl, dev, auth, user, groups, method, p, platform)
		d, steps := pol.TraceWith(&facts, traceOpts)
		if want := pol.Evaluate(&facts); !sameDecision(d, want) {
			t.Fatalf("Trace = %+v, Evaluate = %+v\nfacts %+v\ndef %+v", d, want, facts, def)
		}
		checkSteps(t, def, &facts, d, steps)
	})
}

// checkSteps checks a trace's steps against the reference functions of fuzz_test.go.
func checkSteps(t *testing.T, def Def, f *Facts, d Decision, steps []Step) {
	t.Helper()
	n := len(def.Rules)
	if d.Rule >= 0 {
		n = d.Rule + 1
	}
	if len(steps) != n {
		t.Fatalf("%d steps for %v over %d rules", len(steps), d, len(def.Rules))
	}
	for i, s := range steps {
		r := def.Rules[i]
		name := r.Name
		if name == "" {
			name = defaultRuleName(i)
		}
		if s.Rule != i || s.Name != name || s.Action != r.Action {
			t.Fatalf("step %d is %+v for rule %+v", i, s, r)
		}
		deciding := i == d.Rule
		want := refFirstMiss(r, f)
		switch {
		case s.Matched:
			if !deciding || s.Miss != nil || want != 0 || d.Outcome == OutcomeAuthenticate {
				t.Fatalf("step %d matched: %+v, decision %v, reference miss %v", i, s, d, want)
			}
		case s.Miss == nil:
			t.Fatalf("step %d neither matched nor missed", i)
		case s.Miss.Cond != want:
			t.Fatalf("step %d missed on %v (%s), reference says %v", i, s.Miss.Cond, s.Miss.Why, want)
		case (s.Miss.Cond == CondSignIn || s.Miss.Cond == CondFactors || s.Miss.Cond == CondFreshness) != deciding:
			t.Fatalf("step %d: %v, deciding %v", i, s.Miss.Cond, deciding)
		default:
			checkMissValues(t, i, r, f, s.Miss)
		}
	}
}

// refFirstMiss is the first condition of r that fails for f in Evaluate's order, CondSignIn
// when an anonymous client meets the request conditions of a rule that needs a user, or 0.
func refFirstMiss(r RuleDef, f *Facts) Cond {
	one := func(c RuleDef) bool { return refRequestHolds(c, f) }
	switch {
	case !one(RuleDef{Action: r.Action, Zones: r.Zones}):
		return CondZones
	case !one(RuleDef{Action: r.Action, NotZones: r.NotZones}):
		return CondNotZones
	case !one(RuleDef{Action: r.Action, Device: r.Device}):
		return CondDevice
	case !one(RuleDef{Action: r.Action, Platforms: r.Platforms}):
		return CondPlatform
	case !one(RuleDef{Action: r.Action, Methods: r.Methods}):
		return CondMethods
	case !one(RuleDef{Action: r.Action, Paths: r.Paths}):
		return CondPaths
	}
	hasSubject := len(r.Users)+len(r.Groups)+len(r.NotGroups) > 0
	if !f.Authenticated {
		if hasSubject || r.Action == Allow && r.Auth == AuthUser {
			return CondSignIn
		}
		return 0
	}
	subj := func(c RuleDef) bool { return refSubjectHolds(c, f) }
	switch {
	case !subj(RuleDef{Users: r.Users}):
		return CondUsers
	case !subj(RuleDef{Groups: r.Groups}):
		return CondGroups
	case !subj(RuleDef{NotGroups: r.NotGroups}):
		return CondNotGroups
	case !refFactorsHold(r, f):
		return CondFactors
	case !refFresh(r, f):
		return CondFreshness
	}
	return 0
}

// checkMissValues checks a miss's Want and Got against the rule as written.
func checkMissValues(t *testing.T, i int, r RuleDef, f *Facts, m *Miss) {
	t.Helper()
	sameSet := func(a, b []string) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(slices.Compact(a), slices.Compact(b))
	}
	var want []string
	switch m.Cond {
	case CondZones:
		want = r.Zones
	case CondNotZones:
		want = r.NotZones
	case CondDevice:
		for _, w := range r.Device {
			want = append(want, strings.ToLower(w))
		}
	case CondPlatform:
		want = r.Platforms
	case CondMethods:
		for _, s := range r.Methods {
			want = append(want, strings.ToUpper(s))
		}
	case CondPaths:
		for _, s := range r.Paths {
			if strings.ContainsAny(strings.TrimSuffix(s, "*"), `*?[\`) {
				s = refFold(s)
			}
			want = append(want, s)
		}
	case CondUsers:
		want = r.Users
	case CondGroups:
		want = r.Groups
	case CondNotGroups:
		want = r.NotGroups
	case CondFactors:
		want = refNeed(r).Factors
	case CondFreshness:
		want = []string{shortDuration(r.Within)}
	}
	if !sameSet(m.Want, want) {
		t.Fatalf("step %d: %v wants %q, rule has %q", i, m.Cond, m.Want, want)
	}
	for _, g := range m.Got {
		var ok bool
		switch m.Cond {
		case CondZones:
			ok = f.Zones.Has(testZones[g])
		case CondNotZones:
			ok = f.Zones.Has(testZones[g]) && slices.Contains(r.NotZones, g)
		case CondDevice:
			ok = refDeviceWord(g, &f.Device)
		case CondPlatform:
			ok = f.Device.Known && g == f.Device.Platform
		case CondMethods:
			ok = g == f.Method
		case CondPaths:
			ok = g == f.Path
		case CondUsers:
			ok = g == f.User
		case CondGroups:
			ok = slices.Contains(f.Groups, g)
		case CondNotGroups:
			ok = slices.Contains(f.Groups, g) && slices.Contains(r.NotGroups, g)
		case CondFactors:
			ok = slices.Contains(f.AMR, g)
		case CondFreshness:
			ok = g == shortDuration(f.Now.Sub(f.AuthTime))
		}
		if !ok {
			t.Fatalf("step %d: %v got %q, which the request does not have (%+v)", i, m.Cond, g, f)
		}
	}
	if m.Cond == CondDevice {
		// Got is every device word that holds, so the missing one is not among them.
		var holds []string
		for _, w := range fuzzDevice {
			if refDeviceWord(w, &f.Device) {
				holds = append(holds, strings.ToLower(w))
			}
		}
		if !sameSet(m.Got, holds) {
			t.Fatalf("step %d: device got %q, want %q", i, m.Got, holds)
		}
	}
	if m.Cond == CondPlatform && f.Device.Known && len(m.Got) != 1 {
		t.Fatalf("step %d: platform got %q for a registered device", i, m.Got)
	}
	if m.Cond == CondNotZones || m.Cond == CondNotGroups || m.Cond == CondMethods || m.Cond == CondPaths || m.Cond == CondUsers {
		if len(m.Got) == 0 {
			t.Fatalf("step %d: %v with nothing got", i, m.Cond)
		}
	}
	if !strings.HasPrefix(m.Why, m.Cond.String()+": ") {
		t.Fatalf("step %d: sentence %q does not start with %q", i, m.Why, m.Cond)
	}
}

// BenchmarkTrace100Rules measures what a trace costs (it is for tools, not for every request).
func BenchmarkTrace100Rules(b *testing.B) {
	p := benchPolicy(b, 100)
	f := user(inOffice, "sam", []string{"users", "staff"}, "GET", "/Reports/Q3-Summary.html")
	b.ReportAllocs()
	for b.Loop() {
		p.TraceWith(&f, traceOpts)
	}
}

package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// Pools the fuzz targets build rules from. appDef's and deviceDef's rules are all expressible
// with them.
var (
	fuzzZones    = []string{"office", "vpn", "blocked-ish"}
	fuzzUsers    = []string{"alice", "bob", "Alice"}
	fuzzGroups   = []string{"admins", "staff", "contractors"}
	fuzzMethods  = []string{"GET", "head", "POST", "DELETE"}
	fuzzDevice   = []string{"registered", "Managed", "compliant", "trusted", "NOT_TRUSTED", "unknown"}
	fuzzPlatform = []string{"windows", "MacOS", "linux"}
	// fuzzTrust are the trust levels fuzzFacts picks from; the last ones satisfy no trust word.
	fuzzTrust = []string{"", "UNKNOWN", "TRUSTED", "NOT_TRUSTED", "trusted", "unknown", "SOMETIMES", " TRUSTED"}
	fuzzPaths = []string{
		"/admin/*", "/api/*", "/esign/*", "/healthz", "/static/*", "/favicon.ico", "/assets/*.css", "/",
		"/*", "/API", "/a/?", "/[a-c]*/x", `/files/\*`, "/ÄRGER/*", "/\u212Aelvin", "/esign/*/sign",
	}
	fuzzFactors = []string{"password", "OTP", "webauthn", "any_mfa", "phishing_resistant"}
	fuzzWithin  = []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour}
	// fuzzAMR are the amr values fuzzFacts picks from.
	fuzzAMR = []string{"pwd", "otp", "hwk", "swk", "mfa"}
	// fuzzNow is the evaluation time of fuzzFacts; fuzzAges are the sign-in ages it picks from.
	// fuzzAgeNoAuthTime leaves AuthTime zero, fuzzAgeNoNow leaves Now zero.
	fuzzNow  = time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	fuzzAges = []time.Duration{fuzzAgeNoAuthTime, 0, time.Minute, 5 * time.Minute, 5*time.Minute + 1, 61 * time.Minute, -time.Minute, fuzzAgeNoNow}
)

const (
	fuzzAgeNoAuthTime = time.Duration(-1 << 62)
	fuzzAgeNoNow      = time.Duration(-1<<62 + 1)
)

const fuzzRuleBytes = 8

// fuzzDef builds up to 8 rules from b, fuzzRuleBytes bytes each:
//
//	0: bit 0 action, bit 1 auth, bit 2 named, bits 3-5 platforms
//	1: bits 0-2 zones, bits 3-5 not-zones
//	2: bits 0-2 users, bits 3-5 groups
//	3: bits 0-2 not-groups, bits 3-6 methods
//	4-5: paths (16 bits)
//	6: bits 0-5 device words
//	7: bits 0-4 factors, bits 5-6 within (both dropped unless the rule is an Allow with AuthUser)
//
// and the default from ctl bits 4 (Allow) and 5 (AuthNone).
func fuzzDef(b []byte, ctl byte) Def {
	pick := func(pool []string, bits int) []string {
		var out []string
		for i, s := range pool {
			if bits&(1<<i) != 0 {
				out = append(out, s)
			}
		}
		return out
	}
	def := Def{Name: "fuzz", Default: Action(ctl >> 4 & 1), DefaultAuth: Auth(ctl >> 5 & 1)}
	for i := 0; len(b) >= fuzzRuleBytes && i < 8; i++ {
		r := RuleDef{
			Action:    Action(b[0] & 1),
			Auth:      Auth(b[0] >> 1 & 1),
			Zones:     pick(fuzzZones, int(b[1])),
			NotZones:  pick(fuzzZones, int(b[1]>>3)),
			Users:     pick(fuzzUsers, int(b[2])),
			Groups:    pick(fuzzGroups, int(b[2]>>3)),
			NotGroups: pick(fuzzGroups, int(b[3])),
			Methods:   pick(fuzzMethods, int(b[3]>>3)),
			Paths:     pick(fuzzPaths, int(b[4])|int(b[5])<<8),
			Device:    pick(fuzzDevice, int(b[6])),
			Platforms: pick(fuzzPlatform, int(b[0]>>3)),
		}
		if b[0]&4 != 0 {
			r.Name = fmt.Sprintf("r%d", i)
		}
		if r.Action == Allow && r.Auth == AuthNone && len(r.Users)+len(r.Groups)+len(r.NotGroups) > 0 {
			r.Auth = AuthUser // Compile refuses this combination
		}
		if r.Action == Allow && r.Auth == AuthUser { // Compile refuses factors elsewhere
			r.Factors = pick(fuzzFactors, int(b[7]))
			r.Within = fuzzWithin[b[7]>>5&3]
		}
		def.Rules = append(def.Rules, r)
		b = b[fuzzRuleBytes:]
	}
	return def
}

// encodeDef is the inverse of fuzzDef for rules built from the pools, to seed the corpus.
func encodeDef(t testing.TB, def Def) ([]byte, byte) {
	bits := func(pool, list []string) int {
		n := 0
		for _, s := range list {
			i := slices.Index(pool, s)
			if i < 0 {
				t.Fatalf("%q is not in the fuzz pools", s)
			}
			n |= 1 << i
		}
		return n
	}
	var b []byte
	for _, r := range def.Rules {
		p := bits(fuzzPaths, r.Paths)
		b = append(b,
			byte(r.Action)|byte(r.Auth)<<1|4|byte(bits(fuzzPlatform, r.Platforms))<<3,
			byte(bits(fuzzZones, r.Zones)|bits(fuzzZones, r.NotZones)<<3),
			byte(bits(fuzzUsers, r.Users)|bits(fuzzGroups, r.Groups)<<3),
			byte(bits(fuzzGroups, r.NotGroups)|bits(fuzzMethods, r.Methods)<<3),
			byte(p), byte(p>>8), byte(bits(fuzzDevice, r.Device)),
			byte(bits(fuzzFactors, r.Factors)|slices.Index(fuzzWithin, r.Within)<<5))
	}
	return b, byte(def.Default)<<4 | byte(def.DefaultAuth)<<5
}

// fuzzFacts builds facts from ctl (bits 0-2 zones, bit 3 authenticated), dev (bit 0 known, bit
// 1 managed, bit 2 compliant, bits 3-5 trust from fuzzTrust) and strings. A path starting with
// "!" is made longer than MaxGlobPath. auth gives the sign-in: bits 0-4 AMR from fuzzAMR, bits
// 5-7 its age from fuzzAges.
func fuzzFacts(ctl, dev, auth byte, user, groups, method, p, platform string) Facts {
	f := Facts{Authenticated: ctl&8 != 0, User: user, Method: method, Path: p, Now: fuzzNow}
	for i, s := range fuzzAMR {
		if auth&(1<<i) != 0 {
			f.AMR = append(f.AMR, s)
		}
	}
	switch age := fuzzAges[auth>>5]; age {
	case fuzzAgeNoAuthTime:
	case fuzzAgeNoNow:
		f.Now, f.AuthTime = time.Time{}, fuzzNow.Add(-time.Minute)
	default:
		f.AuthTime = fuzzNow.Add(-age)
	}
	f.Device = Device{Known: dev&1 != 0, Managed: dev&2 != 0, Compliant: dev&4 != 0,
		Trust: fuzzTrust[dev>>3&7], Platform: platform}
	for i := range 3 {
		if ctl&(1<<i) != 0 {
			f.Zones = f.Zones.With(i)
		}
	}
	if groups != "" {
		f.Groups = strings.Split(groups, ",")
	}
	if strings.HasPrefix(p, "!") {
		f.Path = "/" + strings.Repeat("a/", MaxGlobPath/2) + p[1:]
	}
	return f
}

// encodeFacts is the inverse of fuzzFacts for facts built from the pools, to seed the corpus.
func encodeFacts(t testing.TB, defCtl byte, fa Facts) (ctl, dev, auth byte) {
	for _, s := range fa.AMR {
		i := slices.Index(fuzzAMR, s)
		if i < 0 {
			t.Fatalf("amr %q is not in the fuzz pool", s)
		}
		auth |= 1 << i
	}
	age := fuzzAgeNoAuthTime
	switch {
	case fa.Now.IsZero() && !fa.AuthTime.IsZero():
		age = fuzzAgeNoNow
	case !fa.AuthTime.IsZero():
		age = fa.Now.Sub(fa.AuthTime)
	}
	i := slices.Index(fuzzAges, age)
	if i < 0 || !fa.Now.IsZero() && !fa.Now.Equal(fuzzNow) {
		t.Fatalf("sign-in time %v at %v is not in the fuzz pool", fa.AuthTime, fa.Now)
	}
	auth |= byte(i) << 5
	ctl = defCtl
	for i := range 3 {
		if fa.Zones.Has(i) {
			ctl |= 1 << i
		}
	}
	if fa.Authenticated {
		ctl |= 8
	}
	d := fa.Device
	trust := slices.Index(fuzzTrust, d.Trust)
	if trust < 0 {
		t.Fatalf("trust %q is not in the fuzz pool", d.Trust)
	}
	for i, b := range []bool{d.Known, d.Managed, d.Compliant} {
		if b {
			dev |= 1 << i
		}
	}
	return ctl, dev | byte(trust)<<3, auth
}

func FuzzEvaluate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, rules []byte, ctl, dev, auth byte, user, groups, method, p, platform string) {
		def := fuzzDef(rules, ctl)
		pol, err := Compile(def, testZones)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		facts := fuzzFacts(ctl, dev, auth, user, groups, method, p, platform)
		got := pol.Evaluate(&facts)
		if want := refEvaluate(def, &facts); !sameDecision(got, want) {
			t.Fatalf("Evaluate = %+v, reference = %+v\nfacts %+v\ndef %+v", got, want, facts, def)
		}
		checkInvariants(t, def, &facts, got)
	})
}

// addSeeds seeds FuzzEvaluate and FuzzTrace from the table tests' policies and facts.
func addSeeds(f *testing.F) {
	for _, def := range []Def{appDef(), deviceDef(), factorDef()} {
		rules, defCtl := encodeDef(f, def)
		for _, tc := range seedFacts() {
			ctl, dev, auth := encodeFacts(f, defCtl, tc)
			f.Add(rules, ctl, dev, auth, tc.User, strings.Join(tc.Groups, ","), tc.Method, tc.Path, tc.Device.Platform)
		}
	}
	f.Add([]byte{1, 0, 0, 0, 0xff, 0xff, 0, 0}, byte(0x18), byte(0), byte(0), "bob", "admins,staff", "GET", "/\u212A/ärger", "")
	f.Add([]byte{2, 7, 8, 0, 0, 0, 0, 0, 3, 0, 0x10, 0, 1, 0, 0, 0}, byte(0x30), byte(0), byte(0), "", "", "", "/API", "")
	f.Add([]byte{1, 0x38, 0x3f, 0x3f, 0, 0, 0, 0}, byte(0x0f), byte(0), byte(0), "alice", "contractors", "GET", "/", "")
	f.Add([]byte{0x0f, 0, 0, 0, 0, 0, 0x3f, 0, 0x3b, 0, 0, 0, 0, 0, 0x07, 0}, byte(0x10), byte(0x17), byte(0), "", "", "", "/", "WINDOWS")
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0x48, 1, 0, 0, 0, 0, 0, 0, 0x22}, byte(0x08), byte(0), byte(0x64), "", "", "", "/", "")
}

// seedFacts are facts from the table tests, to seed the fuzz corpus.
func seedFacts() []Facts {
	out := []Facts{
		user(inOffice, "ann", admins, "GET", "/ADMIN/users"),
		user(inOffice, "cal", contractors, "GET", "/esign/doc/1"),
		anon(inOffice, "GET", "/esign/doc/1"),
		anon(atHome, "GET", "/Assets/Site.CSS"),
		anon(inBlocked, "HEAD", "/healthz"),
		anon(atHome, "GET", "!x.css"),
		user(inVPN, "alice", []string{"staff"}, "post", "/esign/x/SIGN"),
		user(atHome, "nobody", nil, "DELETE", "/api/x"),
	}
	for _, tc := range deviceCases() {
		out = append(out, tc.facts)
	}
	for _, tc := range factorCases() {
		out = append(out, tc.facts)
	}
	return out
}

// checkInvariants checks properties any decision must have, independently of the reference.
func checkInvariants(t *testing.T, def Def, f *Facts, d Decision) {
	t.Helper()
	if d.Rule < -1 || d.Rule >= len(def.Rules) {
		t.Fatalf("rule index %d out of range", d.Rule)
	}
	if d.Outcome == OutcomeAuthenticate && f.Authenticated {
		t.Fatalf("authenticate for an authenticated user: %v", d)
	}
	if d.Outcome == OutcomeStepUp && !f.Authenticated {
		t.Fatalf("step up for an anonymous client: %v", d)
	}
	wantNeed := Requirement{}
	if d.Rule >= 0 && (d.Outcome == OutcomeStepUp || d.Outcome == OutcomeAuthenticate) {
		wantNeed = refNeed(def.Rules[d.Rule])
	}
	if !sameNeed(d.Need, wantNeed) {
		t.Fatalf("%v needs %+v, want %+v", d, d.Need, wantNeed)
	}
	if d.Outcome == OutcomeStepUp {
		r := def.Rules[d.Rule]
		if r.Action != Allow || !refRequestHolds(r, f) || !refSubjectHolds(r, f) || refSignInHolds(r, f) {
			t.Fatalf("%v from a rule that does not fit it", d)
		}
	}
	wantReason := map[Outcome][2]Reason{ // by rule, by default
		OutcomeAllow:        {ReasonRuleAllow, ReasonDefaultAllow},
		OutcomeDeny:         {ReasonRuleDeny, ReasonDefaultDeny},
		OutcomeAuthenticate: {ReasonAuthRequired, ReasonAuthRequired},
		OutcomeStepUp:       {ReasonStepUpRequired, "(none)"},
	}[d.Outcome]
	if d.Rule >= 0 && d.Reason != wantReason[0] || d.Rule < 0 && d.Reason != wantReason[1] {
		t.Fatalf("reason %q does not fit %v", d.Reason, d)
	}
	// No rule before the deciding one (all rules, for the default) may have matched.
	last := d.Rule
	if last < 0 {
		last = len(def.Rules)
	}
	for j := range last {
		if refMayMatch(def.Rules[j], f) {
			t.Fatalf("%v, but rule index %d may match earlier", d, j)
		}
	}
	if d.Rule >= 0 {
		r := def.Rules[d.Rule]
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("rule %d", d.Rule+1)
		}
		if d.RuleName != name {
			t.Fatalf("RuleName %q, want %q", d.RuleName, name)
		}
		if !refMayMatch(r, f) {
			t.Fatalf("%v, but that rule cannot match", d)
		}
	} else if d.RuleName != "" {
		t.Fatalf("default decision names rule %q", d.RuleName)
	}
	if d.Outcome != OutcomeAllow {
		return
	}
	if d.Rule < 0 {
		if def.Default != Allow || !f.Authenticated && def.DefaultAuth != AuthNone {
			t.Fatalf("default allow from a default of %v/%v", def.Default, def.DefaultAuth)
		}
		return
	}
	// An Allow names an Allow rule whose every condition holds for this client.
	r := def.Rules[d.Rule]
	if r.Action != Allow || !refRequestHolds(r, f) {
		t.Fatalf("%v from a rule that does not allow this request", d)
	}
	if f.Authenticated && !refSubjectHolds(r, f) {
		t.Fatalf("%v though the user does not fit the rule", d)
	}
	if f.Authenticated && !refSignInHolds(r, f) {
		t.Fatalf("%v though the sign-in does not meet the rule's factors or freshness", d)
	}
	if !f.Authenticated && (r.Auth != AuthNone || len(r.Users)+len(r.Groups)+len(r.NotGroups) > 0) {
		t.Fatalf("%v for an anonymous client from a rule that needs a user", d)
	}
}

// refEvaluate is a naive evaluator written straight from the rules in the package
// documentation, working on the Def rather than the compiled Policy.
func refEvaluate(def Def, f *Facts) Decision {
	for i, r := range def.Rules {
		if !refRequestHolds(r, f) {
			continue
		}
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("rule %d", i+1)
		}
		hasSubject := len(r.Users) > 0 || len(r.Groups) > 0 || len(r.NotGroups) > 0
		if !f.Authenticated {
			if hasSubject || (r.Action == Allow && r.Auth == AuthUser) {
				return Decision{OutcomeAuthenticate, ReasonAuthRequired, i, name, refNeed(r), false}
			}
		} else if !refSubjectHolds(r, f) {
			continue
		} else if !refSignInHolds(r, f) {
			return Decision{OutcomeStepUp, ReasonStepUpRequired, i, name, refNeed(r), false}
		}
		if r.Action == Allow {
			return Decision{OutcomeAllow, ReasonRuleAllow, i, name, Requirement{}, r.RegisterDevice}
		}
		return Decision{OutcomeDeny, ReasonRuleDeny, i, name, Requirement{}, false}
	}
	if def.Default == Allow {
		if !f.Authenticated && def.DefaultAuth == AuthUser {
			return Decision{OutcomeAuthenticate, ReasonAuthRequired, -1, "", Requirement{}, false}
		}
		return Decision{OutcomeAllow, ReasonDefaultAllow, -1, "", Requirement{}, false}
	}
	return Decision{OutcomeDeny, ReasonDefaultDeny, -1, "", Requirement{}, false}
}

// refNeed is what rule r needs from the sign-in, as RuleDef.Factors and Within document.
func refNeed(r RuleDef) Requirement {
	var need Requirement
	for _, w := range r.Factors {
		need.Factors = append(need.Factors, strings.ToLower(w))
	}
	need.MaxAge = r.Within
	return need
}

// refFactorsHold reports whether the sign-in in f has every factor r needs.
func refFactorsHold(r RuleDef, f *Facts) bool {
	has := func(amr ...string) bool {
		for _, a := range amr {
			if slices.Contains(f.AMR, a) {
				return true
			}
		}
		return false
	}
	for _, w := range r.Factors {
		var ok bool
		switch strings.ToLower(w) {
		case "password":
			ok = has("pwd")
		case "otp":
			ok = has("otp")
		case "webauthn", "phishing_resistant":
			ok = has("hwk", "swk")
		case "any_mfa":
			n := 0
			for _, b := range []bool{has("pwd"), has("otp"), has("hwk", "swk")} {
				if b {
					n++
				}
			}
			ok = has("mfa") || n >= 2
		default:
			panic("unknown factor " + w)
		}
		if !ok {
			return false
		}
	}
	return true
}

// refFresh reports whether the sign-in in f is recent enough for r.
func refFresh(r RuleDef, f *Facts) bool {
	if r.Within == 0 {
		return true
	}
	return !f.Now.IsZero() && !f.AuthTime.IsZero() && !f.Now.After(f.AuthTime.Add(r.Within))
}

func refSignInHolds(r RuleDef, f *Facts) bool { return refFactorsHold(r, f) && refFresh(r, f) }

// sameNeed compares requirements, telling a nil factor list from an empty one.
func sameNeed(a, b Requirement) bool {
	return a.MaxAge == b.MaxAge && slices.Equal(a.Factors, b.Factors) && (a.Factors == nil) == (b.Factors == nil)
}

// sameDecision compares decisions field by field (Decision is not comparable).
func sameDecision(a, b Decision) bool {
	return a.Outcome == b.Outcome && a.Reason == b.Reason && a.Rule == b.Rule && a.RuleName == b.RuleName && sameNeed(a.Need, b.Need)
}

// refMayMatch reports whether rule r matches f as far as can be known: for an anonymous client
// the user and group conditions are unknown, so only the request conditions count.
func refMayMatch(r RuleDef, f *Facts) bool {
	if !refRequestHolds(r, f) {
		return false
	}
	return !f.Authenticated || refSubjectHolds(r, f)
}

func refRequestHolds(r RuleDef, f *Facts) bool {
	if len(r.Zones) > 0 {
		in := false
		for _, z := range r.Zones {
			if f.Zones.Has(testZones[z]) {
				in = true
			}
		}
		if !in {
			return false
		}
	}
	for _, z := range r.NotZones {
		if f.Zones.Has(testZones[z]) {
			return false
		}
	}
	for _, w := range r.Device {
		if !refDeviceWord(w, &f.Device) {
			return false
		}
	}
	if len(r.Platforms) > 0 {
		ok := false
		for _, pl := range r.Platforms {
			if f.Device.Known && strings.EqualFold(pl, f.Device.Platform) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.Methods) > 0 {
		ok := false
		for _, m := range r.Methods {
			if strings.EqualFold(m, f.Method) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.Paths) > 0 {
		ok := false
		for _, p := range r.Paths {
			if refPathMatch(r.Action, p, f.Path) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// refDeviceWord reports whether device condition w holds for d, as RuleDef.Device documents.
func refDeviceWord(w string, d *Device) bool {
	switch strings.ToLower(w) {
	case "registered":
		return d.Known
	case "managed":
		return d.Known && d.Managed
	case "compliant":
		return d.Known && d.Compliant
	case "trusted":
		return d.Trust == "TRUSTED"
	case "not_trusted":
		return d.Trust == "NOT_TRUSTED"
	case "unknown":
		return d.Trust == "UNKNOWN" || d.Trust == ""
	}
	panic("unknown device word " + w)
}

func refSubjectHolds(r RuleDef, f *Facts) bool {
	if len(r.Users) > 0 && !slices.Contains(r.Users, f.User) {
		return false
	}
	for _, g := range r.NotGroups {
		if slices.Contains(f.Groups, g) {
			return false
		}
	}
	if len(r.Groups) > 0 {
		for _, g := range r.Groups {
			if slices.Contains(f.Groups, g) {
				return true
			}
		}
		return false
	}
	return true
}

func refPathMatch(action Action, pattern, p string) bool {
	if !strings.ContainsAny(pattern, `*?[\`) {
		return strings.EqualFold(pattern, p)
	}
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok && !strings.ContainsAny(prefix, `*?[\`) {
		// Some leading run of p's runes equals prefix under case folding.
		for i := range p {
			if strings.EqualFold(p[:i], prefix) {
				return true
			}
		}
		return strings.EqualFold(p, prefix)
	}
	folded := refFold(p)
	if len(folded) > MaxGlobPath {
		return action == Deny
	}
	m, err := path.Match(refFold(pattern), folded)
	return err == nil && m
}

// refFold replaces each rune with the lowest rune of its case-folding orbit (lower case for ASCII
// letters), leaving bytes that are not UTF-8 as they are.
func refFold(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteByte(s[0])
			s = s[1:]
			continue
		}
		orbit := []rune{r}
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			orbit = append(orbit, o)
		}
		c := slices.Min(orbit)
		if c < utf8.RuneSelf {
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
		s = s[n:]
	}
	return b.String()
}

package policy

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/zonegate/zonegate/zones"
)

// zoneMap is a ZoneIndex for tests.
type zoneMap map[string]int

func (z zoneMap) Index(name string) (int, bool) {
	i, ok := z[name]
	return i, ok
}

var testZones = zoneMap{"office": 0, "vpn": 1, "blocked-ish": 2}

var (
	inOffice  = zones.Match{}.With(0)
	inVPN     = zones.Match{}.With(1)
	inBlocked = zones.Match{}.With(2)
	atHome    = zones.Match{}
)

// appDef is a realistic policy; the comments give each rule's index.
func appDef() Def {
	return Def{
		Name: "app",
		Rules: []RuleDef{
			/* 0 */ {Name: "blocked", Action: Deny, Zones: []string{"blocked-ish"}},
			/* 1 */ {Name: "health", Action: Allow, Auth: AuthNone, Methods: []string{"GET", "head"}, Paths: []string{"/healthz"}},
			/* 2 */ {Name: "admins on site", Action: Allow, Groups: []string{"admins"}, Zones: []string{"office", "vpn"}, Paths: []string{"/admin/*"}},
			/* 3 */ {Name: "no admin", Action: Deny, Paths: []string{"/admin/*"}},
			/* 4 */ {Name: "contractors", Action: Deny, Groups: []string{"contractors"}, Paths: []string{"/esign/*"}},
			/* 5 */ {Name: "esign", Action: Allow, Groups: []string{"staff", "admins"}, Zones: []string{"office", "vpn"}, Methods: []string{"GET", "POST"}, Paths: []string{"/esign/*"}},
			/* 6 */ {Action: Allow, Methods: []string{"GET"}, Paths: []string{"/api/*"}, NotZones: []string{"blocked-ish"}},
			/* 7 */ {Name: "static", Action: Allow, Auth: AuthNone, Paths: []string{"/static/*", "/favicon.ico", "/assets/*.css"}},
		},
	}
}

func mustCompile(t testing.TB, def Def) *Policy {
	t.Helper()
	p, err := Compile(def, testZones)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func anon(z zones.Match, method, p string) Facts {
	return Facts{Zones: z, Method: method, Path: p}
}

func user(z zones.Match, name string, groups []string, method, p string) Facts {
	return Facts{Zones: z, Authenticated: true, User: name, Groups: groups, Method: method, Path: p}
}

var (
	admins      = []string{"admins", "staff"}
	staff       = []string{"staff"}
	contractors = []string{"contractors", "staff"}
)

func TestEvaluate(t *testing.T) {
	p := mustCompile(t, appDef())
	tests := []struct {
		name    string
		facts   Facts
		outcome Outcome
		reason  Reason
		rule    int
	}{
		{"blocked zone denies the anonymous", anon(inBlocked, "GET", "/static/app.js"), OutcomeDeny, ReasonRuleDeny, 0},
		{"blocked zone denies admins", user(inBlocked.With(0), "ann", admins, "GET", "/admin/x"), OutcomeDeny, ReasonRuleDeny, 0},
		{"health check is public", anon(atHome, "GET", "/healthz"), OutcomeAllow, ReasonRuleAllow, 1},
		{"method matches without case", anon(atHome, "HEAD", "/healthz"), OutcomeAllow, ReasonRuleAllow, 1},
		{"health check by POST falls to default", anon(atHome, "POST", "/healthz"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"anonymous in office asked to sign in for admin", anon(inOffice, "GET", "/admin/users"), OutcomeAuthenticate, ReasonAuthRequired, 2},
		{"anonymous at home denied admin", anon(atHome, "GET", "/admin/users"), OutcomeDeny, ReasonRuleDeny, 3},
		{"admin in office allowed", user(inOffice, "ann", admins, "GET", "/admin/users"), OutcomeAllow, ReasonRuleAllow, 2},
		{"admin on VPN allowed, path case ignored", user(inVPN, "ann", admins, "GET", "/ADMIN/Users"), OutcomeAllow, ReasonRuleAllow, 2},
		{"admin at home denied", user(atHome, "ann", admins, "GET", "/admin/users"), OutcomeDeny, ReasonRuleDeny, 3},
		{"staff denied admin", user(inOffice, "sam", staff, "GET", "/admin/x"), OutcomeDeny, ReasonRuleDeny, 3},
		{"upper-case path hits the admin deny rule", user(inOffice, "sam", staff, "GET", "/ADMIN/x"), OutcomeDeny, ReasonRuleDeny, 3},
		{"upper-case path hits the admin deny rule anonymously", anon(atHome, "GET", "/ADMIN/x"), OutcomeDeny, ReasonRuleDeny, 3},
		{"prefix needs its slash", user(inOffice, "ann", admins, "GET", "/admin"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"prefix matches bare directory", user(inOffice, "ann", admins, "GET", "/admin/"), OutcomeAllow, ReasonRuleAllow, 2},
		{"contractors denied esign", user(inOffice, "cal", contractors, "GET", "/esign/doc/1"), OutcomeDeny, ReasonRuleDeny, 4},
		{"anonymous must sign in before a subject deny rule", anon(inOffice, "GET", "/esign/doc/1"), OutcomeAuthenticate, ReasonAuthRequired, 4},
		{"staff on VPN may sign", user(inVPN, "sam", staff, "POST", "/esign/doc/1"), OutcomeAllow, ReasonRuleAllow, 5},
		{"staff at home may not sign", user(atHome, "sam", staff, "GET", "/esign/doc/1"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"staff may not DELETE", user(inOffice, "sam", staff, "DELETE", "/esign/doc/1"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"user without groups may not sign", user(inOffice, "nobody", nil, "GET", "/esign/doc/1"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"anonymous asked to sign in for the API", anon(atHome, "GET", "/api/v1/items"), OutcomeAuthenticate, ReasonAuthRequired, 6},
		{"any user may GET the API", user(atHome, "nobody", nil, "GET", "/api/v1/items"), OutcomeAllow, ReasonRuleAllow, 6},
		{"API POST falls to default", user(atHome, "nobody", nil, "POST", "/api/v1/items"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"static is public", anon(atHome, "GET", "/static/app.js"), OutcomeAllow, ReasonRuleAllow, 7},
		{"exact path", anon(atHome, "GET", "/FAVICON.ico"), OutcomeAllow, ReasonRuleAllow, 7},
		{"glob path ignores case", anon(atHome, "GET", "/Assets/Site.CSS"), OutcomeAllow, ReasonRuleAllow, 7},
		{"glob star does not cross a slash", anon(atHome, "GET", "/assets/sub/site.css"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"nothing matches", anon(inOffice, "GET", "/"), OutcomeDeny, ReasonDefaultDeny, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&tt.facts)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
			if ref := refEvaluate(appDef(), &tt.facts); !sameDecision(ref, d) {
				t.Errorf("reference evaluator disagrees: %+v", ref)
			}
			wantName := ""
			if tt.rule >= 0 {
				wantName = appDef().Rules[tt.rule].Name
				if wantName == "" {
					wantName = defaultRuleName(tt.rule)
				}
			}
			if d.RuleName != wantName {
				t.Errorf("RuleName = %q, want %q", d.RuleName, wantName)
			}
		})
	}
}

func TestEvaluateDefaults(t *testing.T) {
	rules := []RuleDef{{Name: "deny api", Paths: []string{"/api/*"}}}
	tests := []struct {
		name    string
		def     Def
		facts   Facts
		outcome Outcome
		reason  Reason
		rule    int
	}{
		{"default deny", Def{Rules: rules}, user(atHome, "u", nil, "GET", "/x"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"default allow needs a user", Def{Rules: rules, Default: Allow}, anon(atHome, "GET", "/x"), OutcomeAuthenticate, ReasonAuthRequired, -1},
		{"default allow for a user", Def{Rules: rules, Default: Allow}, user(atHome, "u", nil, "GET", "/x"), OutcomeAllow, ReasonDefaultAllow, -1},
		{"default allow for anyone", Def{Rules: rules, Default: Allow, DefaultAuth: AuthNone}, anon(atHome, "GET", "/x"), OutcomeAllow, ReasonDefaultAllow, -1},
		{"rule before default", Def{Rules: rules, Default: Allow, DefaultAuth: AuthNone}, anon(atHome, "GET", "/api/x"), OutcomeDeny, ReasonRuleDeny, 0},
		{"no rules", Def{}, anon(atHome, "GET", "/"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"DefaultAuth ignored for a default deny", Def{DefaultAuth: AuthNone}, anon(atHome, "GET", "/"), OutcomeDeny, ReasonDefaultDeny, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustCompile(t, tt.def).Evaluate(&tt.facts)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
		})
	}
}

func TestEvaluateSubjects(t *testing.T) {
	def := Def{Rules: []RuleDef{
		/* 0 */ {Name: "not bob", Action: Deny, Users: []string{"bob"}},
		/* 1 */ {Name: "not guests", Action: Allow, NotGroups: []string{"guests"}, Paths: []string{"/app/*"}},
	}}
	p := mustCompile(t, def)
	tests := []struct {
		name    string
		facts   Facts
		outcome Outcome
		reason  Reason
		rule    int
	}{
		{"named user denied", user(atHome, "bob", nil, "GET", "/app/x"), OutcomeDeny, ReasonRuleDeny, 0},
		{"user names are case-sensitive", user(atHome, "Bob", nil, "GET", "/app/x"), OutcomeAllow, ReasonRuleAllow, 1},
		{"excluded group falls through", user(atHome, "eve", []string{"staff", "guests"}, "GET", "/app/x"), OutcomeDeny, ReasonDefaultDeny, -1},
		{"anonymous must sign in for a user rule", anon(atHome, "GET", "/other"), OutcomeAuthenticate, ReasonAuthRequired, 0},
		{"user and groups ignored when not authenticated", Facts{User: "alice", Path: "/app/x"}, OutcomeAuthenticate, ReasonAuthRequired, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(&tt.facts)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
		})
	}
}

func TestEvaluateNil(t *testing.T) {
	var p *Policy
	if d := p.Evaluate(&Facts{}); d.Outcome != OutcomeDeny || d.Rule != -1 {
		t.Errorf("nil policy: %v", d)
	}
	allowAll := mustCompile(t, Def{Default: Allow, DefaultAuth: AuthNone})
	if d := allowAll.Evaluate(nil); d.Outcome != OutcomeDeny || d.Rule != -1 {
		t.Errorf("nil facts: %v", d)
	}
}

func TestPathPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		path    string
		want    bool
	}{
		{"/api/*", "/api/", true},
		{"/api/*", "/api/x/y", true},
		{"/api/*", "/api", false},
		{"/api/*", "/apix", false},
		{"/api/*", "/API/X", true},
		{"/api*", "/api", true},
		{"/api*", "/apix/y", true},
		{"/*", "/", true},
		{"/*", "/a/b", true},
		{"/api", "/api", true},
		{"/api", "/Api", true},
		{"/api", "/api/", false},
		{"/files/*.pdf", "/files/a.pdf", true},
		{"/files/*.pdf", "/FILES/A.PDF", true},
		{"/files/*.pdf", "/files/a/b.pdf", false},
		{"/v?/x", "/v1/x", true},
		{"/v?/x", "/v12/x", false},
		{"/[a-c]*/x", "/B/x", true},
		{"/[a-c]*/x", "/d/x", false},
		{`/files/\*`, "/files/*", true},
		{`/files/\*`, "/files/x", false},
		{"/api/**", "/api/x", true},
		{"/api/**", "/api/x/y", false},
		// Unicode simple folding, as strings.EqualFold: Kelvin sign, long s, umlaut.
		{"/kelvin", "/\u212Aelvin", true},
		{"/k*/x", "/\u212A/x", true},
		{"/ärger/*", "/ÄRGER/x", true},
		{"/äRGER/*.txt", "/ärger/A.TXT", true},
		{"/s*", "/\u017F", true},
		// Not valid UTF-8: bytes compare as they are.
		{"/a/*", "/a/\xff", true},
		{"/a/*.x", "/a/\xff.x", true},
		{"/a/*.x", "/a/\xfe.y", false},
	}
	for _, tt := range tests {
		pt, err := compilePattern(tt.pattern)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tt.pattern, err)
		}
		for _, action := range []Action{Allow, Deny} {
			r := rule{action: action, paths: []pattern{pt}}
			var fb foldBuf
			if got := r.pathHolds(tt.path, &fb); got != tt.want {
				t.Errorf("pattern %q (%v), path %q: got %v, want %v", tt.pattern, action, tt.path, got, tt.want)
			}
		}
	}
}

// TestLongPathFailsClosed checks that a path too long to fold for a glob is taken to match a
// Deny rule's glob and not to match an Allow rule's glob.
func TestLongPathFailsClosed(t *testing.T) {
	denyFirst := mustCompile(t, Def{Rules: []RuleDef{
		{Name: "no exe", Action: Deny, Paths: []string{"/files/*.exe"}},
		{Name: "public", Action: Allow, Auth: AuthNone, Paths: []string{"/*"}},
	}})
	allowOnly := mustCompile(t, Def{Rules: []RuleDef{
		{Name: "pdfs", Action: Allow, Auth: AuthNone, Paths: []string{"/files/*.pdf"}},
	}})
	fits := func(suffix string) string { // exactly MaxGlobPath bytes
		return "/files/" + strings.Repeat("a", MaxGlobPath-len("/files/")-len(suffix)) + suffix
	}
	tooLong := func(suffix string) string { return "/files/a" + fits(suffix)[len("/files/"):] }
	if len(fits(".pdf")) != MaxGlobPath || len(tooLong(".pdf")) != MaxGlobPath+1 {
		t.Fatal("bad test paths")
	}
	tests := []struct {
		name    string
		p       *Policy
		path    string
		outcome Outcome
		reason  Reason
		rule    int
	}{
		{"deny glob, short path, no match", denyFirst, "/files/a.txt", OutcomeAllow, ReasonRuleAllow, 1},
		{"deny glob, path at the limit, no match", denyFirst, fits(".txt"), OutcomeAllow, ReasonRuleAllow, 1},
		{"deny glob, path at the limit, match", denyFirst, fits(".EXE"), OutcomeDeny, ReasonRuleDeny, 0},
		{"deny glob, path over the limit, taken to match", denyFirst, tooLong(".txt"), OutcomeDeny, ReasonRuleDeny, 0},
		{"allow glob, short path, match", allowOnly, "/files/a.pdf", OutcomeAllow, ReasonRuleAllow, 0},
		{"allow glob, path at the limit, match", allowOnly, fits(".pdf"), OutcomeAllow, ReasonRuleAllow, 0},
		{"allow glob, path over the limit, taken not to match", allowOnly, tooLong(".pdf"), OutcomeDeny, ReasonDefaultDeny, -1},
		// The Kelvin sign folds to one byte, so this path fits once folded.
		{"limit counts folded bytes", allowOnly, "/files/" + strings.Repeat("\u212A", (MaxGlobPath-len("/files/.pdf"))/3) + ".pdf", OutcomeAllow, ReasonRuleAllow, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := anon(atHome, "GET", tt.path)
			d := tt.p.Evaluate(&f)
			if d.Outcome != tt.outcome || d.Reason != tt.reason || d.Rule != tt.rule {
				t.Fatalf("Evaluate = %v (rule index %d), want %v %s rule index %d", d, d.Rule, tt.outcome, tt.reason, tt.rule)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		def  Def
		zi   ZoneIndex
		want string
		is   error
	}{
		{
			name: "unknown zone, named rule",
			def:  Def{Name: "app", Rules: []RuleDef{{}, {Name: "plant floor", Action: Allow, Zones: []string{"office", "plant"}}}},
			want: `policy "app": rule 2 ("plant floor"): unknown zone "plant"`,
		},
		{
			name: "unknown excluded zone, unnamed rule",
			def:  Def{Name: "app", Rules: []RuleDef{{NotZones: []string{"home"}}}},
			want: `policy "app": rule 1: unknown zone "home"`,
		},
		{
			name: "zone without an index",
			def:  Def{Name: "app", Rules: []RuleDef{{Zones: []string{"office"}}}},
			zi:   ZoneIndex(nil),
			want: `policy "app": rule 1: unknown zone "office"`,
		},
		{
			name: "zone index out of range",
			def:  Def{Name: "app", Rules: []RuleDef{{Zones: []string{"far"}}}},
			zi:   zoneMap{"far": zones.MaxZones},
			want: `policy "app": rule 1: zone "far": index 256 out of range`,
		},
		{
			name: "bad glob",
			def:  Def{Name: "app", Rules: []RuleDef{{Name: "files", Paths: []string{"/ok", "/a/["}}}},
			want: `policy "app": rule 1 ("files"): bad path pattern "/a/[": syntax error in pattern`,
			is:   path.ErrBadPattern,
		},
		{
			name: "bad glob after a valid one",
			def:  Def{Name: "app", Rules: []RuleDef{{Paths: []string{"/a*/[]"}}}},
			want: `policy "app": rule 1: bad path pattern "/a*/[]": syntax error in pattern`,
			is:   path.ErrBadPattern,
		},
		{
			name: "trailing backslash",
			def:  Def{Name: "app", Rules: []RuleDef{{Paths: []string{`/a\`}}}},
			want: `policy "app": rule 1: bad path pattern "/a\\": syntax error in pattern`,
			is:   path.ErrBadPattern,
		},
		{
			name: "relative path pattern",
			def:  Def{Name: "app", Rules: []RuleDef{{Paths: []string{"api/*"}}}},
			want: `policy "app": rule 1: path pattern "api/*" does not start with "/"`,
		},
		{
			name: "empty path pattern",
			def:  Def{Name: "app", Rules: []RuleDef{{Paths: []string{""}}}},
			want: `policy "app": rule 1: path pattern "" does not start with "/"`,
		},
		{
			name: "method with a space",
			def:  Def{Name: "app", Rules: []RuleDef{{Methods: []string{"GET", "GE T"}}}},
			want: `policy "app": rule 1: bad method "GE T": not an HTTP token`,
		},
		{
			name: "empty method",
			def:  Def{Name: "app", Rules: []RuleDef{{Methods: []string{""}}}},
			want: `policy "app": rule 1: bad method "": not an HTTP token`,
		},
		{
			name: "method with a separator",
			def:  Def{Name: "app", Rules: []RuleDef{{Methods: []string{"GET/"}}}},
			want: `policy "app": rule 1: bad method "GET/": not an HTTP token`,
		},
		{
			name: "anyone allowed, but only some users",
			def:  Def{Name: "app", Rules: []RuleDef{{Name: "open", Action: Allow, Auth: AuthNone, Groups: []string{"staff"}}}},
			want: `policy "app": rule 1 ("open"): an allow with auth none cannot have user or group conditions`,
		},
		{
			name: "anyone allowed, but not some users",
			def:  Def{Name: "app", Rules: []RuleDef{{Action: Allow, Auth: AuthNone, Users: []string{"bob"}}}},
			want: `policy "app": rule 1: an allow with auth none cannot have user or group conditions`,
		},
		{
			name: "anyone allowed, but not some groups",
			def:  Def{Name: "app", Rules: []RuleDef{{Action: Allow, Auth: AuthNone, NotGroups: []string{"guests"}}}},
			want: `policy "app": rule 1: an allow with auth none cannot have user or group conditions`,
		},
		{
			name: "empty user name",
			def:  Def{Name: "app", Rules: []RuleDef{{Users: []string{"alice", ""}}}},
			want: `policy "app": rule 1: empty user name`,
		},
		{
			name: "empty group name",
			def:  Def{Name: "app", Rules: []RuleDef{{NotGroups: []string{""}}}},
			want: `policy "app": rule 1: empty group name`,
		},
		{
			name: "unknown device condition",
			def:  Def{Name: "p", Rules: []RuleDef{{}, {Name: "x", Device: []string{"managed", "compliance"}}}},
			want: `policy "p": rule 2 ("x"): unknown device condition "compliance" (want registered, managed, compliant, trusted, not_trusted or unknown)`,
		},
		{
			name: "empty device condition",
			def:  Def{Name: "app", Rules: []RuleDef{{Device: []string{""}}}},
			want: `policy "app": rule 1: unknown device condition "" (want registered, managed, compliant, trusted, not_trusted or unknown)`,
		},
		{
			name: "empty platform",
			def:  Def{Name: "app", Rules: []RuleDef{{Platforms: []string{"linux", ""}}}},
			want: `policy "app": rule 1: empty platform name`,
		},
		{
			name: "unknown action",
			def:  Def{Name: "app", Rules: []RuleDef{{Action: 2}}},
			want: `policy "app": rule 1: unknown action 2`,
		},
		{
			name: "unknown auth",
			def:  Def{Name: "app", Rules: []RuleDef{{Action: Allow, Auth: -1}}},
			want: `policy "app": rule 1: unknown auth -1`,
		},
		{
			name: "unknown default action",
			def:  Def{Name: "app", Default: 9},
			want: `policy "app": default: unknown action 9`,
		},
		{
			name: "unknown default auth",
			def:  Def{Name: "app", Default: Allow, DefaultAuth: 5},
			want: `policy "app": default: unknown auth 5`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zi := tt.zi
			if zi == nil && tt.name != "zone without an index" {
				zi = testZones
			}
			p, err := Compile(tt.def, zi)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want error %q", p, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	def := Def{Name: "ok", Rules: []RuleDef{
		{Action: Deny, Auth: AuthNone, Groups: []string{"guests"}}, // Auth is ignored for Deny
		{Action: Allow, Methods: []string{"propfind", "M-SEARCH", "X_Y~1!"}},
		{Action: Allow, Auth: AuthNone, Zones: []string{"office"}, Paths: []string{"/", "/*", "/a/[^/]x", `/b/\?`}},
	}}
	p, err := Compile(def, testZones)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "ok" {
		t.Errorf("Name() = %q", p.Name())
	}
	if got := p.rules[1].methods; strings.Join(got, ",") != "PROPFIND,M-SEARCH,X_Y~1!" {
		t.Errorf("methods = %q", got)
	}
	if p.rules[0].name != "rule 1" {
		t.Errorf("default name = %q", p.rules[0].name)
	}
	// Compile keeps its own copies.
	def.Rules[1].Methods[0] = "DELETE"
	f := user(atHome, "u", nil, "PROPFIND", "/")
	if d := p.Evaluate(&f); d.Outcome != OutcomeAllow || d.Rule != 1 {
		t.Errorf("after changing the Def: %v", d)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Decision{Outcome: OutcomeDeny, Reason: ReasonRuleDeny, Rule: 1, RuleName: "contractors"}.String(), `deny (rule_deny: rule 2 "contractors")`},
		{Decision{Outcome: OutcomeAllow, Reason: ReasonRuleAllow, Rule: 0, RuleName: "rule 1"}.String(), `allow (rule_allow: rule 1)`},
		{Decision{Outcome: OutcomeAuthenticate, Reason: ReasonAuthRequired, Rule: -1}.String(), `authenticate (authentication_required)`},
		{Decision{Outcome: OutcomeDeny, Reason: ReasonDefaultDeny, Rule: -1}.String(), `deny (default_deny)`},
		{Outcome(7).String(), "Outcome(7)"},
		{Allow.String() + " " + Deny.String() + " " + Action(3).String(), "allow deny Action(3)"},
		{AuthUser.String() + " " + AuthNone.String() + " " + Auth(3).String(), "user none Auth(3)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	p := mustCompile(t, appDef())
	f := user(inOffice, "cal", contractors, "GET", "/esign/x")
	if got, want := p.Evaluate(&f).String(), `deny (rule_deny: rule 5 "contractors")`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEvaluateAllocs(t *testing.T) {
	p := mustCompile(t, appDef())
	facts := []Facts{
		user(inOffice, "ann", admins, "GET", "/ADMIN/users"),
		anon(atHome, "GET", "/Assets/"+strings.Repeat("Long", 40)+".CSS"),
		anon(atHome, "GET", "/assets/"+strings.Repeat("x", 2*MaxGlobPath)),
		user(atHome, "sam", staff, "POST", "/nothing/here"),
	}
	for _, f := range facts {
		if n := testing.AllocsPerRun(100, func() { p.Evaluate(&f) }); n != 0 {
			t.Errorf("Evaluate(%q) allocates %v times", f.Path, n)
		}
	}
}

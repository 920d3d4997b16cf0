// Package policy decides a request from ordered rules: first match wins, deny by default.
package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/zonegate/zonegate/zones"
)

// Action is what a rule, or a policy's default, does with a request it matches.
type Action int

const (
	// Deny refuses the request. It is the zero value, so a forgotten action denies.
	Deny Action = iota
	// Allow lets the request through (see [Auth] for what it needs).
	Allow
)

// String returns "deny" or "allow".
func (a Action) String() string {
	switch a {
	case Deny:
		return "deny"
	case Allow:
		return "allow"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Auth is what an Allow needs to know about the client before it allows.
type Auth int

const (
	// AuthUser needs a signed-in user. It is the zero value, so a forgotten setting asks for one.
	AuthUser Auth = iota
	// AuthNone allows anyone, even anonymous clients.
	AuthNone
)

// String returns "user" or "none".
func (a Auth) String() string {
	switch a {
	case AuthUser:
		return "user"
	case AuthNone:
		return "none"
	}
	return fmt.Sprintf("Auth(%d)", int(a))
}

// RuleDef is one rule as configured. A rule matches a request when every non-empty condition
// holds; empty conditions hold for every request.
type RuleDef struct {
	// Name appears in decisions, logs and errors. Default: "rule N", N counting from 1.
	Name string
	// Action is what the rule does when it matches. Default: Deny.
	Action Action
	// Auth is what an Allow needs: AuthUser (default) or AuthNone. Ignored for Deny. AuthNone
	// cannot be combined with Users, Groups or NotGroups.
	Auth Auth

	// Zones holds when the client is in at least one of these zones.
	Zones []string
	// NotZones holds when the client is in none of these zones.
	NotZones []string

	// Device holds when every one of these holds for the device the request comes from (see
	// [Device]): "registered" (a registered device was identified), "managed" (registered and
	// managed), "compliant" (registered and compliant), "trusted" (trust level TRUSTED),
	// "not_trusted" (trust level NOT_TRUSTED) or "unknown" (trust level UNKNOWN or empty). The
	// words are matched without regard to case. Like zones, device conditions are request
	// conditions: they need no signed-in user.
	Device []string
	// Platforms holds when a registered device was identified and its platform is one of these
	// (e.g. "windows", "macos"), without regard to case.
	Platforms []string

	// Users holds when the signed-in username is one of these (exact, case-sensitive).
	Users []string
	// Groups holds when the signed-in user is in at least one of these groups (exact).
	Groups []string
	// NotGroups holds when the signed-in user is in none of these groups (exact).
	NotGroups []string
	// Behavior holds when the session's sign-in was flagged with at least one of these
	// signals ([Facts.Behavior]): "new_device", "new_ip", "new_country" or
	// "impossible_travel", lower case. Like users and groups, it needs a signed-in user.
	// Typically a rule with Behavior asks for one more factor before the rule that allows.
	// Its OutcomeAuthenticate for an anonymous client carries no Need: the factors are asked
	// for by a step-up once a sign-in is flagged, not of every sign-in.
	Behavior []string
	// RegisterDevice makes an Allow of this rule ask the gate to register the browser as a
	// device of the signed-in user (a device cookie) when no device was identified, so later
	// rules can ask for "device registered". Only with Action Allow.
	RegisterDevice bool

	// Methods holds when the HTTP method is one of these. Each must be an RFC 7230 token; they
	// are compared without regard to case.
	Methods []string
	// Paths holds when the request path matches one of these patterns, without regard to case.
	// Every pattern starts with "/". A pattern whose only wildcard is a final "*" is a prefix:
	// "/api/*" matches "/api/" and "/api/x/y" but not "/api". A pattern with any other wildcard
	// ("*", "?", "[...]", "\") uses path.Match syntax, where "*" does not cross "/": "/files/*.pdf"
	// matches "/files/a.pdf" but not "/files/a/b.pdf". Anything else must equal the path.
	//
	// A glob pattern is matched against a case-folded copy of the path in a fixed buffer of
	// [MaxGlobPath] bytes. A longer path fails closed: a Deny rule's glob is taken to match it
	// and an Allow rule's glob is taken not to.
	Paths []string

	// Factors is what an Allow needs from the sign-in, all of them (see [Facts.AMR]):
	// "password" (amr "pwd"), "otp" ("otp"), "webauthn" ("hwk" or "swk"), "phishing_resistant"
	// (webauthn: "hwk" or "swk") or "any_mfa" ("mfa", or two distinct factors among password,
	// otp and webauthn). The words are matched without regard to case. Only an Allow with
	// AuthUser may have Factors or Within. A signed-in user whose sign-in lacks a factor gets
	// OutcomeStepUp when the rule otherwise matches.
	Factors []string
	// Within is how old the sign-in may be at most (Facts.Now - Facts.AuthTime); 0 is any age.
	// A signed-in user whose sign-in is older gets OutcomeStepUp when the rule otherwise
	// matches. It must not be negative.
	Within time.Duration
}

// Def is a policy as configured: ordered rules and a default for requests no rule matches.
type Def struct {
	// Name identifies the policy in errors and logs.
	Name string
	// Rules are tried in order; the first that matches decides.
	Rules []RuleDef
	// Default is what happens when no rule matches. Default: Deny.
	Default Action
	// DefaultAuth is what a default Allow needs. Default: AuthUser.
	DefaultAuth Auth
}

// ZoneIndex resolves zone names to the indexes used in a [zones.Match]; *zones.Table satisfies
// it.
type ZoneIndex interface {
	Index(name string) (int, bool)
}

// Policy is a compiled, immutable [Def]. It is safe for concurrent use.
type Policy struct {
	name        string
	rules       []rule
	def         Action
	globs       bool // some rule has a glob path pattern, so Evaluate needs a fold buffer
	defaultUser bool // the default is an Allow that needs a user
}

// Name returns the policy's name as given in its Def.
func (p *Policy) Name() string { return p.name }

type rule struct {
	name       string
	action     Action
	needUser   bool // an Allow with AuthUser
	hasSubject bool // Users, Groups or NotGroups are set

	hasZones    bool
	hasNotZones bool
	zones       zones.Match
	notZones    zones.Match

	device    deviceMask // every bit must be set in the device's state; 0 when no condition
	devWords  []string   // the Device words, lower case, as given (for Trace)
	platforms []string
	behavior  []string // lower case, from behaviorWords
	// registerDevice: an Allow asks the gate to register the browser (RuleDef.RegisterDevice).
	registerDevice bool

	users     []string
	groups    []string
	notGroups []string
	methods   []string // upper-case
	paths     []pattern

	stepUp  bool       // Factors or Within is set: the sign-in is checked (an Allow with AuthUser)
	factors factorMask // every factor the rule needs
	need    Requirement
}

type patternKind uint8

const (
	patExact  patternKind = iota // s equals the path (case-folded)
	patPrefix                    // s is a prefix of the path (case-folded)
	patGlob                      // s is a case-folded path.Match pattern
)

type pattern struct {
	kind patternKind
	s    string
}

// Compile checks def, resolves its zone names with zi (which may be nil when no rule names a
// zone) and returns the policy. Errors name the policy, the rule and the problem, e.g.
// `policy "app": rule 2 ("plant floor"): unknown zone "plant"`.
func Compile(def Def, zi ZoneIndex) (*Policy, error) {
	if err := checkAction(def.Default); err != nil {
		return nil, fmt.Errorf("policy %q: default: %w", def.Name, err)
	}
	if err := checkAuth(def.DefaultAuth); err != nil {
		return nil, fmt.Errorf("policy %q: default: %w", def.Name, err)
	}
	p := &Policy{
		name:        def.Name,
		rules:       make([]rule, 0, len(def.Rules)),
		def:         def.Default,
		defaultUser: def.Default == Allow && def.DefaultAuth == AuthUser,
	}
	for i, rd := range def.Rules {
		r, err := compileRule(rd, zi)
		if err != nil {
			where := fmt.Sprintf("rule %d", i+1)
			if rd.Name != "" {
				where += fmt.Sprintf(" (%q)", rd.Name)
			}
			return nil, fmt.Errorf("policy %q: %s: %w", def.Name, where, err)
		}
		if r.name == "" {
			r.name = defaultRuleName(i)
		}
		for _, pt := range r.paths {
			if pt.kind == patGlob {
				p.globs = true
			}
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

func defaultRuleName(i int) string { return fmt.Sprintf("rule %d", i+1) }

func checkAction(a Action) error {
	if a != Deny && a != Allow {
		return fmt.Errorf("unknown action %d", int(a))
	}
	return nil
}

func checkAuth(a Auth) error {
	if a != AuthUser && a != AuthNone {
		return fmt.Errorf("unknown auth %d", int(a))
	}
	return nil
}

func compileRule(rd RuleDef, zi ZoneIndex) (rule, error) {
	r := rule{name: rd.Name, action: rd.Action}
	if err := checkAction(rd.Action); err != nil {
		return r, err
	}
	if err := checkAuth(rd.Auth); err != nil {
		return r, err
	}
	r.hasSubject = len(rd.Users) > 0 || len(rd.Groups) > 0 || len(rd.NotGroups) > 0 || len(rd.Behavior) > 0
	if rd.Action == Allow && rd.Auth == AuthNone && r.hasSubject {
		return r, errors.New("an allow with auth none cannot have user or group conditions")
	}
	r.needUser = rd.Action == Allow && rd.Auth == AuthUser

	var err error
	if r.zones, err = resolveZones(rd.Zones, zi); err != nil {
		return r, err
	}
	if r.notZones, err = resolveZones(rd.NotZones, zi); err != nil {
		return r, err
	}
	r.hasZones, r.hasNotZones = len(rd.Zones) > 0, len(rd.NotZones) > 0

	for _, w := range rd.Device {
		lw := strings.ToLower(w)
		bit, ok := deviceWords[lw]
		if !ok {
			return r, fmt.Errorf("unknown device condition %q (want registered, managed, compliant, trusted, not_trusted or unknown)", w)
		}
		r.device |= bit
		r.devWords = append(r.devWords, lw)
	}
	if r.platforms, err = names("platform", rd.Platforms); err != nil {
		return r, err
	}

	if r.users, err = names("user", rd.Users); err != nil {
		return r, err
	}
	if r.groups, err = names("group", rd.Groups); err != nil {
		return r, err
	}
	if r.notGroups, err = names("group", rd.NotGroups); err != nil {
		return r, err
	}
	if rd.RegisterDevice && rd.Action != Allow {
		return r, errors.New("register_device needs an allow")
	}
	r.registerDevice = rd.RegisterDevice
	for _, w := range rd.Behavior {
		lw := strings.ToLower(w)
		if !slices.Contains(behaviorWords, lw) {
			return r, fmt.Errorf("unknown behavior %q (want new_device, new_ip, new_country or impossible_travel)", w)
		}
		r.behavior = append(r.behavior, lw)
	}
	for _, m := range rd.Methods {
		if !isToken(m) {
			return r, fmt.Errorf("bad method %q: not an HTTP token", m)
		}
		r.methods = append(r.methods, strings.ToUpper(m))
	}
	for _, s := range rd.Paths {
		pt, err := compilePattern(s)
		if err != nil {
			return r, err
		}
		r.paths = append(r.paths, pt)
	}
	if err := compileFactors(&r, rd); err != nil {
		return r, err
	}
	return r, nil
}

func resolveZones(list []string, zi ZoneIndex) (zones.Match, error) {
	var m zones.Match
	for _, name := range list {
		if zi == nil {
			return m, fmt.Errorf("unknown zone %q", name)
		}
		i, ok := zi.Index(name)
		if !ok {
			return m, fmt.Errorf("unknown zone %q", name)
		}
		if i < 0 || i >= zones.MaxZones {
			return m, fmt.Errorf("zone %q: index %d out of range", name, i)
		}
		m = m.With(i)
	}
	return m, nil
}

// names copies a list of user or group names, refusing empty ones.
func names(kind string, list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		if s == "" {
			return nil, fmt.Errorf("empty %s name", kind)
		}
		out[i] = s
	}
	return out, nil
}

// isToken reports whether s is an RFC 7230 token (1*tchar).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func compilePattern(s string) (pattern, error) {
	if !strings.HasPrefix(s, "/") {
		return pattern{}, fmt.Errorf("path pattern %q does not start with \"/\"", s)
	}
	meta := strings.IndexAny(s, `*?[\`)
	switch {
	case meta < 0:
		return pattern{kind: patExact, s: s}, nil
	case meta == len(s)-1 && s[meta] == '*': // the only wildcard is the final "*"
		return pattern{kind: patPrefix, s: s[:meta]}, nil
	}
	folded := foldString(s)
	if _, err := path.Match(s, ""); err != nil {
		return pattern{}, fmt.Errorf("bad path pattern %q: %w", s, err)
	}
	if _, err := path.Match(folded, ""); err != nil {
		return pattern{}, fmt.Errorf("bad path pattern %q after case folding: %w", s, err)
	}
	return pattern{kind: patGlob, s: folded}, nil
}

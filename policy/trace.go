package policy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/zonegate/zonegate/zones"
)

// Cond names one kind of rule condition, for a [Miss].
type Cond int

// The conditions a [Miss] can name, in the order Evaluate checks them.
const (
	// CondZones: the client is in none of the rule's zones.
	CondZones Cond = iota + 1
	// CondNotZones: the client is in a zone the rule excludes.
	CondNotZones
	// CondDevice: a device condition of the rule does not hold for the request's device.
	CondDevice
	// CondPlatform: no registered device was identified, or its platform is not one of the
	// rule's.
	CondPlatform
	// CondMethods: the request method is not one of the rule's.
	CondMethods
	// CondPaths: the request path matches none of the rule's patterns.
	CondPaths
	// CondSignIn: the request is anonymous and the rule needs to know the user (it names users
	// or groups, or it is an Allow that needs a user). The rule decides OutcomeAuthenticate.
	CondSignIn
	// CondUsers: the signed-in user is not one of the rule's users.
	CondUsers
	// CondGroups: the signed-in user is in none of the rule's groups.
	CondGroups
	// CondNotGroups: the signed-in user is in a group the rule excludes.
	CondNotGroups
	// CondBehavior: the session's sign-in was flagged with none of the rule's behavior signals.
	CondBehavior
	// CondFactors: the sign-in lacks a factor the rule needs. The rule decides OutcomeStepUp.
	CondFactors
	// CondFreshness: the sign-in is older than the rule's Within (or its time is unknown). The
	// rule decides OutcomeStepUp.
	CondFreshness
)

// String returns the condition's name as written in a Caddyfile rule ("zone", "not_zone",
// "device", "platform", "method", "path", "user", "group", "not_group", "factors",
// "freshness"), or "user needed" for CondSignIn.
func (c Cond) String() string {
	switch c {
	case CondZones:
		return "zone"
	case CondNotZones:
		return "not_zone"
	case CondDevice:
		return "device"
	case CondPlatform:
		return "platform"
	case CondMethods:
		return "method"
	case CondPaths:
		return "path"
	case CondSignIn:
		return "user needed"
	case CondUsers:
		return "user"
	case CondGroups:
		return "group"
	case CondNotGroups:
		return "not_group"
	case CondBehavior:
		return "behavior"
	case CondFactors:
		return "factors"
	case CondFreshness:
		return "freshness"
	}
	return fmt.Sprintf("Cond(%d)", int(c))
}

// Miss is the first condition of a rule that did not hold for a request, or, for an
// anonymous request, the user the rule needs to know (CondSignIn).
type Miss struct {
	// Cond is the condition.
	Cond Cond
	// Want is what the condition asks for: the rule's zones (CondZones, CondNotZones), device
	// words (lower case), platforms, methods (upper case), path patterns (glob patterns
	// case-folded, as compiled), users, groups, not-groups, factors (lower case; CondFactors) or
	// the rule's Within (one duration, e.g. "5m"; CondFreshness). Nil for CondSignIn.
	Want []string
	// Got is what the request had that the condition looked at: every zone of the client
	// (CondZones), the excluded zones the client is in (CondNotZones), the device words that
	// hold for the device (CondDevice, in the order registered, managed, compliant, trusted,
	// not_trusted, unknown), the device's platform (CondPlatform; nil when no registered device
	// was identified), the method, the path, the username, every group of the user (CondGroups)
	// or the excluded groups the user is in (CondNotGroups), the session's amr values
	// (CondFactors) or the sign-in's age (CondFreshness; nil when Now or AuthTime is zero). Nil
	// for CondSignIn.
	Got []string
	// Why says it in a sentence that starts with the condition's name, e.g.
	// `zone: client is in none of [office vpn] (client zones: [lab])`.
	Why string
}

// String returns m.Why.
func (m *Miss) String() string { return m.Why }

// Step is one rule's part in a traced decision.
type Step struct {
	// Rule is the rule's 0-based index.
	Rule int
	// Name is the rule's name ("rule N" for an unnamed rule, N counting from 1).
	Name string
	// Action is what the rule does when it matches.
	Action Action
	// Matched is true when every condition of the rule held: this rule decided, by its Action.
	Matched bool
	// Miss says why the rule did not match, or, when its Cond is CondSignIn, why this rule
	// decided OutcomeAuthenticate, or, when it is CondFactors or CondFreshness, why this rule
	// decided OutcomeStepUp. Nil when Matched.
	Miss *Miss
}

// TraceOptions configures [Policy.TraceWith].
type TraceOptions struct {
	// ZoneName names zone index i in the sentences, e.g. (*zones.Table).Name. Nil, or an
	// empty name, gives "zone#i".
	ZoneName func(i int) string
}

// Trace decides f as [Policy.Evaluate] does and explains how: one Step for each rule tried, in
// order, up to and including the deciding rule (every rule when the default decides). Zones
// are named by index; use TraceWith to name them. It allocates, so it is meant for tools and
// debug logs, not for every request.
func (p *Policy) Trace(f *Facts) (Decision, []Step) {
	return p.TraceWith(f, TraceOptions{})
}

// TraceWith is [Policy.Trace] with options. The Decision is always the one Evaluate returns
// for f. A nil policy or nil facts deny with no steps.
func (p *Policy) TraceWith(f *Facts, o TraceOptions) (Decision, []Step) {
	if p == nil || f == nil {
		return Decision{Outcome: OutcomeDeny, Reason: ReasonDefaultDeny, Rule: -1}, nil
	}
	var fb *foldBuf
	if p.globs {
		fb = new(foldBuf)
	}
	steps := make([]Step, 0, len(p.rules))
	for i := range p.rules {
		r := &p.rules[i]
		st := Step{Rule: i, Name: r.name, Action: r.action}
		if m := r.requestMiss(f, fb, &o); m != nil {
			st.Miss = m
			steps = append(steps, st)
			continue
		}
		if !f.Authenticated {
			if r.hasSubject || r.needUser {
				st.Miss = r.signInMiss()
				steps = append(steps, st)
				return Decision{Outcome: OutcomeAuthenticate, Reason: ReasonAuthRequired, Rule: i, RuleName: r.name, Need: r.need}, steps
			}
		} else if m := r.subjectMiss(f); m != nil {
			st.Miss = m
			steps = append(steps, st)
			continue
		} else if m := r.stepUpMiss(f); m != nil {
			st.Miss = m
			steps = append(steps, st)
			return Decision{Outcome: OutcomeStepUp, Reason: ReasonStepUpRequired, Rule: i, RuleName: r.name, Need: r.need}, steps
		}
		st.Matched = true
		steps = append(steps, st)
		if r.action == Allow {
			return Decision{Outcome: OutcomeAllow, Reason: ReasonRuleAllow, Rule: i, RuleName: r.name, RegisterDevice: r.registerDevice}, steps
		}
		return Decision{Outcome: OutcomeDeny, Reason: ReasonRuleDeny, Rule: i, RuleName: r.name}, steps
	}
	if p.def != Allow {
		return Decision{Outcome: OutcomeDeny, Reason: ReasonDefaultDeny, Rule: -1}, steps
	}
	if p.defaultUser && !f.Authenticated {
		return Decision{Outcome: OutcomeAuthenticate, Reason: ReasonAuthRequired, Rule: -1}, steps
	}
	return Decision{Outcome: OutcomeAllow, Reason: ReasonDefaultAllow, Rule: -1}, steps
}

// requestMiss is requestHolds explaining itself: the first request condition that does not
// hold, or nil. It checks the conditions in requestHolds' order with the same helpers.
func (r *rule) requestMiss(f *Facts, fb *foldBuf, o *TraceOptions) *Miss {
	if r.hasZones && !f.Zones.Intersects(r.zones) {
		want, got := o.zoneNames(r.zones), o.zoneNames(f.Zones)
		return &Miss{Cond: CondZones, Want: want, Got: got,
			Why: fmt.Sprintf("zone: client is in none of %s (client zones: %s)", list(want), listOrNone(got))}
	}
	if r.hasNotZones && f.Zones.Intersects(r.notZones) {
		want, got := o.zoneNames(r.notZones), o.zoneNames(intersection(f.Zones, r.notZones))
		return &Miss{Cond: CondNotZones, Want: want, Got: got,
			Why: fmt.Sprintf("not_zone: client is in %s, which the rule excludes", list(got))}
	}
	if m := r.deviceMiss(&f.Device); m != nil {
		return m
	}
	if len(r.methods) > 0 && !containsFold(r.methods, f.Method) {
		return &Miss{Cond: CondMethods, Want: clone(r.methods), Got: []string{f.Method},
			Why: fmt.Sprintf("method: %s is not one of %s", quoteOdd(f.Method), list(r.methods))}
	}
	if len(r.paths) > 0 && !r.pathHolds(f.Path, fb) {
		want := make([]string, len(r.paths))
		globs := false
		for i, pt := range r.paths {
			want[i] = pt.String()
			globs = globs || pt.kind == patGlob
		}
		why := fmt.Sprintf("path: %q matches none of %s", f.Path, list(want))
		if globs && fb != nil && fb.state < 0 {
			why += fmt.Sprintf(" (the path is longer than %d bytes, so an allow rule's glob patterns do not match it)", MaxGlobPath)
		}
		return &Miss{Cond: CondPaths, Want: want, Got: []string{f.Path}, Why: why}
	}
	return nil
}

// deviceMiss explains the first of the rule's device and platform conditions that does not
// hold for d, or returns nil. The device words are checked in the order of [deviceOrder].
func (r *rule) deviceMiss(d *Device) *Miss {
	if st := d.state(); r.device&^st != 0 {
		var why string
		for _, o := range deviceOrder {
			if r.device&o.bit == 0 || st&o.bit != 0 {
				continue
			}
			switch {
			case o.bit&(devRegistered|devManaged|devCompliant) != 0 && !d.Known:
				why = "device: no registered device"
			case o.bit == devNotTrusted:
				why = "device: trust is not NOT_TRUSTED (device: " + d.describe() + ")"
			case o.bit == devUnknown:
				why = "device: trust is not UNKNOWN (device: " + d.describe() + ")"
			default:
				why = "device: not " + o.word + " (device: " + d.describe() + ")"
			}
			break
		}
		return &Miss{Cond: CondDevice, Want: clone(r.devWords), Got: st.words(), Why: why}
	}
	if !r.platformHolds(d) {
		if !d.Known {
			return &Miss{Cond: CondPlatform, Want: clone(r.platforms),
				Why: "platform: no registered device"}
		}
		return &Miss{Cond: CondPlatform, Want: clone(r.platforms), Got: []string{d.Platform},
			Why: fmt.Sprintf("platform: %q is none of %s", d.Platform, list(r.platforms))}
	}
	return nil
}

// subjectMiss is subjectHolds explaining itself: the first condition on the signed-in user that
// does not hold, or nil.
func (r *rule) subjectMiss(f *Facts) *Miss {
	if len(r.users) > 0 && !contains(r.users, f.User) {
		return &Miss{Cond: CondUsers, Want: clone(r.users), Got: []string{f.User},
			Why: fmt.Sprintf("user: %s is not one of %s", quoteOdd(f.User), list(r.users))}
	}
	if len(r.groups) > 0 && !containsAny(r.groups, f.Groups) {
		return &Miss{Cond: CondGroups, Want: clone(r.groups), Got: clone(f.Groups),
			Why: fmt.Sprintf("group: user %s is in none of %s (user groups: %s)", quoteOdd(f.User), list(r.groups), listOrNone(f.Groups))}
	}
	if len(r.notGroups) > 0 && containsAny(r.notGroups, f.Groups) {
		var in []string
		for _, g := range f.Groups {
			if contains(r.notGroups, g) && !contains(in, g) {
				in = append(in, g)
			}
		}
		return &Miss{Cond: CondNotGroups, Want: clone(r.notGroups), Got: in,
			Why: fmt.Sprintf("not_group: user %s is in %s, which the rule excludes", quoteOdd(f.User), list(in))}
	}
	if len(r.behavior) > 0 && !containsAny(r.behavior, f.Behavior) {
		return &Miss{Cond: CondBehavior, Want: clone(r.behavior), Got: clone(f.Behavior),
			Why: fmt.Sprintf("behavior: the sign-in was flagged with none of %s (flagged: %s)", list(r.behavior), listOrNone(f.Behavior))}
	}
	return nil
}

// signInMiss explains why an anonymous request that meets the rule's request conditions is
// asked to sign in.
func (r *rule) signInMiss() *Miss {
	why := "user needed: the rule names users/groups and the request is not signed in"
	if !r.hasSubject {
		why = "user needed: the rule allows signed-in users only and the request is not signed in"
	}
	return &Miss{Cond: CondSignIn, Why: why}
}

// String returns the pattern as it matches: an exact path, a prefix with its "*", or a
// case-folded glob.
func (pt pattern) String() string {
	if pt.kind == patPrefix {
		return pt.s + "*"
	}
	return pt.s
}

// zoneNames names the zones in m, in index order.
func (o *TraceOptions) zoneNames(m zones.Match) []string {
	var out []string
	for i := range zones.MaxZones {
		if !m.Has(i) {
			continue
		}
		name := ""
		if o.ZoneName != nil {
			name = o.ZoneName(i)
		}
		if name == "" {
			name = "zone#" + strconv.Itoa(i)
		}
		out = append(out, name)
	}
	return out
}

func intersection(a, b zones.Match) zones.Match {
	var m zones.Match
	for i := range zones.MaxZones {
		if a.Has(i) && b.Has(i) {
			m = m.With(i)
		}
	}
	return m
}

func clone(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// list formats names as [a b c], quoting any that is empty or has spaces or brackets so the
// list stays readable.
func list(names []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteOdd(s))
	}
	b.WriteByte(']')
	return b.String()
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return list(names)
}

// quoteOdd returns s as is when it is a plain word, quoted otherwise (empty, spaces, brackets,
// quotes, control or non-ASCII characters), so a sentence cannot be misread.
func quoteOdd(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '"' || c == ',' {
			return strconv.Quote(s)
		}
	}
	return s
}

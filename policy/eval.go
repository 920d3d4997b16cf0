package policy

import (
	"fmt"
	"path"
	"strings"
	"time"
	"unsafe"

	"github.com/zonegate/zonegate/zones"
)

// Facts is what the gateway knows about one request.
type Facts struct {
	// Zones are the network zones the client address is in.
	Zones zones.Match
	// Device is what is known about the device the request comes from; the zero value is no
	// identified device.
	Device Device
	// Authenticated is true when the request carries a valid session; User and Groups are
	// ignored otherwise.
	Authenticated bool
	// User is the signed-in username.
	User string
	// Groups are the signed-in user's groups.
	Groups []string
	// Method is the HTTP method.
	Method string
	// Path is the request path, already cleaned by the caller (path.Clean).
	Path string
	// AMR are the session's authentication method references (RFC 8176), e.g. "pwd", "otp",
	// "hwk", "swk", "mfa"; compared exactly. See [RuleDef.Factors].
	AMR []string
	// AuthTime is when the user last proved the factors in AMR. The zero time fails every
	// freshness condition ([RuleDef.Within]).
	AuthTime time.Time
	// Behavior are the signals the session's sign-in was flagged with ("new_device",
	// "new_ip", "new_country", "impossible_travel"); see [RuleDef.Behavior].
	Behavior []string
	// Now is the evaluation time, given by the caller (Evaluate never reads the clock). The
	// zero time fails every freshness condition.
	Now time.Time
}

// Outcome is what the gateway should do with a request.
type Outcome int

const (
	// OutcomeDeny refuses the request. It is the zero value.
	OutcomeDeny Outcome = iota
	// OutcomeAllow lets the request through.
	OutcomeAllow
	// OutcomeAuthenticate sends the client to sign in; the request is decided again once the
	// user is known.
	OutcomeAuthenticate
	// OutcomeStepUp sends a signed-in user to sign in again: the deciding rule needs factors
	// the sign-in lacks, or a more recent sign-in ([Decision.Need] says what).
	OutcomeStepUp
)

// String returns "deny", "allow", "authenticate" or "step_up".
func (o Outcome) String() string {
	switch o {
	case OutcomeDeny:
		return "deny"
	case OutcomeAllow:
		return "allow"
	case OutcomeAuthenticate:
		return "authenticate"
	case OutcomeStepUp:
		return "step_up"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Reason says why a decision was made; it reaches the audit and debug logs.
type Reason string

// The reasons Evaluate gives.
const (
	// ReasonRuleAllow: a rule matched and allows.
	ReasonRuleAllow Reason = "rule_allow"
	// ReasonRuleDeny: a rule matched and denies.
	ReasonRuleDeny Reason = "rule_deny"
	// ReasonAuthRequired: the first rule that may match (or a default Allow) needs to know the
	// user.
	ReasonAuthRequired Reason = "authentication_required"
	// ReasonDefaultAllow: no rule matched and the default allows.
	ReasonDefaultAllow Reason = "default_allow"
	// ReasonDefaultDeny: no rule matched and the default denies.
	ReasonDefaultDeny Reason = "default_deny"
	// ReasonStepUpRequired: a rule matched a signed-in user but needs factors the sign-in lacks
	// or a more recent sign-in.
	ReasonStepUpRequired Reason = "step_up_required"
)

// Decision is the result of evaluating a policy for one request.
type Decision struct {
	// Outcome is what to do.
	Outcome Outcome
	// Reason is why.
	Reason Reason
	// Rule is the 0-based index of the deciding rule, or -1 for the policy's default.
	Rule int
	// RuleName is the deciding rule's name, or "" for the default.
	RuleName string
	// Need is what the deciding rule needs from the sign-in, for an OutcomeStepUp and for an
	// OutcomeAuthenticate from a rule with Factors or Within; the zero Requirement otherwise.
	Need Requirement
	// RegisterDevice is set on an OutcomeAllow by a rule with RegisterDevice: the gate should
	// register the browser as a device of the user when no device was identified.
	RegisterDevice bool
}

// String describes the decision for logs, e.g. `deny (rule_deny: rule 2 "contractors")` or
// `allow (default_allow)`. The rule number counts from 1; an unnamed rule's default name is
// left out.
func (d Decision) String() string {
	if d.Rule < 0 {
		return fmt.Sprintf("%s (%s)", d.Outcome, d.Reason)
	}
	if d.RuleName == "" || d.RuleName == defaultRuleName(d.Rule) {
		return fmt.Sprintf("%s (%s: rule %d)", d.Outcome, d.Reason, d.Rule+1)
	}
	return fmt.Sprintf("%s (%s: rule %d %q)", d.Outcome, d.Reason, d.Rule+1, d.RuleName)
}

// Evaluate decides the request described by f. Rules are tried in order and the first that
// matches decides:
//
//   - For a signed-in user (f.Authenticated), a rule matches when all its conditions hold; an
//     Allow allows (whatever its Auth) and a Deny denies.
//   - For an anonymous client, a rule whose request conditions (Zones, NotZones, Device,
//     Platforms, Methods, Paths, checked in that order) hold decides OutcomeAuthenticate when
//     it has user or group conditions (Allow or Deny: it cannot be known to match until the
//     user is known) or when it is an Allow that needs a user. Otherwise a Deny denies and an
//     Allow with AuthNone allows. A rule whose request conditions fail is skipped.
//   - A rule with Factors or Within that matches a signed-in user (all its other conditions
//     hold) but whose sign-in lacks a factor or is too old decides OutcomeStepUp, with
//     ReasonStepUpRequired and Decision.Need; it does not fall through to later rules. Its
//     OutcomeAuthenticate for an anonymous client carries Need too.
//   - When no rule matches, the default decides: a default Allow that needs a user gives
//     OutcomeAuthenticate to an anonymous client.
//
// A nil policy or nil facts deny. Evaluate does not allocate and is safe for concurrent use.
func (p *Policy) Evaluate(f *Facts) Decision {
	if p == nil || f == nil {
		return Decision{Outcome: OutcomeDeny, Reason: ReasonDefaultDeny, Rule: -1}
	}
	if p.globs {
		var fb foldBuf
		return p.evaluate(f, &fb)
	}
	return p.evaluate(f, nil)
}

func (p *Policy) evaluate(f *Facts, fb *foldBuf) Decision {
	for i := range p.rules {
		r := &p.rules[i]
		if !r.requestHolds(f, fb) {
			continue
		}
		if !f.Authenticated {
			if r.hasSubject || r.needUser {
				need := r.need
				if len(r.behavior) > 0 {
					// Whether the sign-in will be flagged is not known yet: ask for the
					// factors only if it is (a step-up then).
					need = Requirement{}
				}
				return Decision{Outcome: OutcomeAuthenticate, Reason: ReasonAuthRequired, Rule: i, RuleName: r.name, Need: need}
			}
		} else if !r.subjectHolds(f) {
			continue
		} else if !r.signInHolds(f) {
			return Decision{Outcome: OutcomeStepUp, Reason: ReasonStepUpRequired, Rule: i, RuleName: r.name, Need: r.need}
		}
		if r.action == Allow {
			return Decision{Outcome: OutcomeAllow, Reason: ReasonRuleAllow, Rule: i, RuleName: r.name, RegisterDevice: r.registerDevice}
		}
		return Decision{Outcome: OutcomeDeny, Reason: ReasonRuleDeny, Rule: i, RuleName: r.name}
	}
	if p.def != Allow {
		return Decision{Outcome: OutcomeDeny, Reason: ReasonDefaultDeny, Rule: -1}
	}
	if p.defaultUser && !f.Authenticated {
		return Decision{Outcome: OutcomeAuthenticate, Reason: ReasonAuthRequired, Rule: -1}
	}
	return Decision{Outcome: OutcomeAllow, Reason: ReasonDefaultAllow, Rule: -1}
}

// requestHolds reports whether the conditions on the request (not on the user) hold.
func (r *rule) requestHolds(f *Facts, fb *foldBuf) bool {
	if r.hasZones && !f.Zones.Intersects(r.zones) {
		return false
	}
	if r.hasNotZones && f.Zones.Intersects(r.notZones) {
		return false
	}
	if !r.deviceHolds(&f.Device) {
		return false
	}
	if len(r.methods) > 0 && !containsFold(r.methods, f.Method) {
		return false
	}
	if len(r.paths) > 0 && !r.pathHolds(f.Path, fb) {
		return false
	}
	return true
}

// subjectHolds reports whether the conditions on the signed-in user hold.
func (r *rule) subjectHolds(f *Facts) bool {
	if len(r.users) > 0 && !contains(r.users, f.User) {
		return false
	}
	if len(r.groups) > 0 && !containsAny(r.groups, f.Groups) {
		return false
	}
	if len(r.notGroups) > 0 && containsAny(r.notGroups, f.Groups) {
		return false
	}
	if len(r.behavior) > 0 && !containsAny(r.behavior, f.Behavior) {
		return false
	}
	return true
}

// behaviorWords are the signals a rule's Behavior may name.
var behaviorWords = []string{"new_device", "new_ip", "new_country", "impossible_travel"}

func (r *rule) pathHolds(p string, fb *foldBuf) bool {
	for _, pt := range r.paths {
		switch pt.kind {
		case patExact:
			if strings.EqualFold(p, pt.s) {
				return true
			}
		case patPrefix:
			if hasPrefixFold(p, pt.s) {
				return true
			}
		case patGlob:
			folded, ok := fb.fold(p)
			if !ok {
				// Too long to fold: fail closed, towards denying.
				if r.action == Deny {
					return true
				}
				continue
			}
			// The pattern was checked by Compile, so Match cannot fail.
			if m, _ := path.Match(pt.s, folded); m {
				return true
			}
		}
	}
	return false
}

// foldBuf holds the request path case-folded, computed on first use during one Evaluate.
type foldBuf struct {
	state int8 // 0: not yet folded, 1: folded, -1: too long
	n     int
	buf   [MaxGlobPath]byte
}

// fold returns p case-folded, or false when it does not fit in the buffer. The string shares
// memory with fb and must not outlive it.
func (fb *foldBuf) fold(p string) (string, bool) {
	if fb.state == 0 {
		n, ok := foldInto(fb.buf[:], p)
		fb.n = n
		fb.state = 1
		if !ok {
			fb.state = -1
		}
	}
	if fb.state < 0 {
		return "", false
	}
	// A string view of the buffer, without copying: the buffer stays on Evaluate's stack and is
	// never written again during this Evaluate, and path.Match does not keep its argument.
	return unsafe.String(&fb.buf[0], fb.n), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func containsAny(list, of []string) bool {
	for _, s := range of {
		if contains(list, s) {
			return true
		}
	}
	return false
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/zonegate/zonegate/caddymodule"
	"github.com/zonegate/zonegate/policy"
)

const policyCheckUsage = `usage: zonegate policy check --config <Caddyfile> --site <host> --path <path>
                             [--user <name>] [--groups <g1,g2>] [--ip <address>] [--method <METHOD>]

Decides one request as the zonegate_gate of a site would, without running anything, and
explains the decision rule by rule: why each rule before the deciding one did not match.

  --config   the Caddyfile (a path ending in .json is read as Caddy JSON)
  --site     the protected site's host as in the Caddyfile, e.g. app.example.com
             (a URL or host:port works; :port names a site without a host)
  --path     the request path, e.g. /reports (cleaned as the gate cleans it)
  --user     the signed-in user; without it the request is anonymous. Groups come from
             the users file of the config, unless --groups gives them
  --groups   the user's groups, comma-separated (for an external issuer, or to try
             groups the users file does not give); --groups "" means none
  --ip       the client address, which places it in zones; without it, no zone
  --method   the HTTP method (default GET)

Relative paths in the config (the users file) are read from the current directory, as
caddy run reads them.

Exit status:
  0  allowed (or a path the gate serves itself, under /.zonegate/)
  1  denied (by a rule, the default or a blocklist zone)
  2  would ask to sign in
  3  usage or config error`

// Exit codes of policy check.
const (
	exitAllow  = 0
	exitDeny   = 1
	exitSignIn = 2
	exitUsage  = 3
)

// policyCommand runs `zonegate policy <subcommand>` and returns the exit code.
func policyCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, policyCheckUsage)
			return 0
		}
		fmt.Fprintln(stderr, policyCheckUsage)
		return exitUsage
	}
	return policyCheck(args[1:], stdout, stderr)
}

// policyCheck runs `zonegate policy check` and returns the exit code.
func policyCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, policyCheckUsage) }
	var req caddymodule.CheckRequest
	fs.StringVar(&req.Config, "config", "", "the Caddyfile")
	fs.StringVar(&req.Site, "site", "", "the protected site's host")
	fs.StringVar(&req.User, "user", "", "the signed-in user (anonymous without it)")
	groups := fs.String("groups", "", "the user's groups, comma-separated")
	fs.StringVar(&req.IP, "ip", "", "the client address")
	fs.StringVar(&req.Method, "method", "GET", "the HTTP method")
	fs.StringVar(&req.Path, "path", "", "the request path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return exitUsage
	}
	fs.Visit(func(f *flag.Flag) { req.GroupsSet = req.GroupsSet || f.Name == "groups" })
	if req.GroupsSet {
		for _, g := range strings.Split(*groups, ",") {
			if g = strings.TrimSpace(g); g != "" {
				req.Groups = append(req.Groups, g)
			}
		}
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"--config", req.Config}, {"--site", req.Site}, {"--path", req.Path}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if fs.NArg() > 0 || len(missing) > 0 {
		if len(missing) > 0 {
			fmt.Fprintf(stderr, "zonegate policy check: missing %s\n", strings.Join(missing, ", "))
		} else {
			fmt.Fprintf(stderr, "zonegate policy check: unexpected argument %q\n", fs.Arg(0))
		}
		fs.Usage()
		return exitUsage
	}
	res, err := caddymodule.CheckPolicy(req)
	if err != nil {
		fmt.Fprintln(stderr, "zonegate policy check:", err)
		return exitUsage
	}
	return printCheck(stdout, res)
}

// printCheck prints the result and returns the exit code for it.
func printCheck(w io.Writer, res *caddymodule.CheckResult) int {
	fmt.Fprintf(w, "site      %s (gate policy %q, url %s)\n", res.Site, res.Policy, res.GateURL)
	if res.RawPath != res.Path {
		fmt.Fprintf(w, "request   %s %s (as given: %s)\n", res.Method, res.Path, res.RawPath)
	} else {
		fmt.Fprintf(w, "request   %s %s\n", res.Method, res.Path)
	}
	if res.Authenticated {
		fmt.Fprintf(w, "user      %s, groups %s (%s)\n", res.User, listOrNone(res.Groups), res.GroupsFrom)
	} else {
		fmt.Fprintln(w, "user      anonymous (not signed in)")
	}
	if res.IP.IsValid() {
		fmt.Fprintf(w, "client    %s, zones %s\n", res.IP, listOrNone(res.Zones))
	} else {
		fmt.Fprintln(w, "client    no IP given, so in no zone")
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note      %s\n", n)
	}
	fmt.Fprintln(w)

	switch {
	case res.BlockedBy != "":
		fmt.Fprintf(w, "decision  DENY: the client is in the blocklist zone %q, denied before sign-in and before any rule (reason %s)\n",
			res.BlockedBy, res.Decision.Reason)
		return exitDeny
	case res.Reserved:
		fmt.Fprintf(w, "decision  served by the gate itself: %s* paths (sign-in callback, logout) are not decided by the policy\n", "/.zonegate/")
		return exitAllow
	}

	fmt.Fprintf(w, "rules of policy %q, first match wins:\n", res.Policy)
	if len(res.Steps) == 0 {
		fmt.Fprintln(w, "  (no rules)")
	}
	for _, s := range res.Steps {
		label := fmt.Sprintf("%s (%s)", ruleLabel(s.Rule, s.Name), s.Action)
		switch {
		case s.Matched:
			fmt.Fprintf(w, "  ✓ %s: matched\n", label)
		case s.Miss.Cond == policy.CondSignIn:
			fmt.Fprintf(w, "  ? %s: %s\n", label, s.Miss.Why)
		default:
			fmt.Fprintf(w, "  ✗ %s: %s\n", label, s.Miss.Why)
		}
	}
	fmt.Fprintln(w)

	d := res.Decision
	by := "the policy's default (no rule matched)"
	if d.Rule >= 0 {
		by = ruleLabel(d.Rule, d.RuleName)
	}
	switch d.Outcome {
	case policy.OutcomeAllow:
		fmt.Fprintf(w, "decision  ALLOW by %s (reason %s)\n", by, d.Reason)
		return exitAllow
	case policy.OutcomeAuthenticate:
		fmt.Fprintf(w, "decision  SIGN IN: would ask to sign in, since %s needs to know the user (reason %s)\n", by, d.Reason)
		return exitSignIn
	case policy.OutcomeStepUp:
		fmt.Fprintf(w, "decision  SIGN IN AGAIN: %s needs factors %s within %s (reason %s); the check does not know how the user signed in, so it counts no factors\n",
			by, listOrNone(d.Need.Factors), d.Need.MaxAge, d.Reason)
		return exitSignIn
	default:
		fmt.Fprintf(w, "decision  DENY by %s (reason %s)\n", by, d.Reason)
		return exitDeny
	}
}

// ruleLabel names a rule as policy.Decision.String does: `rule 2 "admins"`, or `rule 2` for an
// unnamed rule.
func ruleLabel(i int, name string) string {
	if name == "" || name == fmt.Sprintf("rule %d", i+1) {
		return fmt.Sprintf("rule %d", i+1)
	}
	return fmt.Sprintf("rule %d %q", i+1, name)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return "[" + strings.Join(s, " ") + "]"
}

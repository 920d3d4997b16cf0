package caddymodule

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/zones"
)

const checkConfig = "testdata/check/Caddyfile"

// checkPolicies compiles the policies of testdata/check/Caddyfile the way the app does, for the
// test to decide each request again with policy.Evaluate.
func checkPolicies(t *testing.T) (*zones.Table, map[string]*policy.Policy) {
	t.Helper()
	src, err := os.ReadFile(checkConfig)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := adapt(t, string(src))
	var cfg struct {
		Apps struct {
			Zonegate App `json:"zonegate"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	var defs []zones.Def
	for _, z := range cfg.Apps.Zonegate.Zones {
		defs = append(defs, zones.Def{Name: z.Name, Blocklist: z.Blocklist, Entries: z.Entries})
	}
	table, err := zones.Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	pols := map[string]*policy.Policy{}
	for _, pc := range cfg.Apps.Zonegate.Policies {
		def, err := pc.def()
		if err != nil {
			t.Fatal(err)
		}
		if pols[pc.Name], err = policy.Compile(def, table); err != nil {
			t.Fatal(err)
		}
	}
	return table, pols
}

func TestCheckPolicy(t *testing.T) {
	table, pols := checkPolicies(t)
	type want struct {
		site, policy string
		user         string
		groups       []string
		zones        []string
		path         string
		outcome      policy.Outcome
		rule         int    // -1: the default (or the blocklist, or a reserved path)
		blocked      string // the blocklist zone
		reserved     bool
		lastWhy      string // the last step's miss, when it has one
		note         string // a substring of a note
	}
	tests := []struct {
		name string
		req  CheckRequest
		want want
	}{
		{"anonymous public page", CheckRequest{Site: "app.example.com", Path: "/public/x"},
			want{site: "app.example.com", policy: "app", path: "/public/x", outcome: policy.OutcomeAllow, rule: 0}},
		{"anonymous in the office asked to sign in for admin", CheckRequest{Site: "app.example.com", IP: "10.1.2.3", Path: "/admin/x"},
			want{site: "app.example.com", policy: "app", zones: []string{"office"}, path: "/admin/x", outcome: policy.OutcomeAuthenticate, rule: 1,
				lastWhy: "user needed: the rule names users/groups and the request is not signed in"}},
		{"admin in the office, path cleaned", CheckRequest{Site: "app.example.com", User: "alice", IP: "10.1.2.3", Path: "/ADMIN/../admin/x"},
			want{site: "app.example.com", policy: "app", user: "alice", groups: []string{"admins"}, zones: []string{"office"}, path: "/admin/x", outcome: policy.OutcomeAllow, rule: 1}},
		{"admin on the VPN, dot segments", CheckRequest{Site: "app.example.com", User: "Alice", IP: "100.64.0.9", Path: "/public/../admin/./x"},
			want{site: "app.example.com", policy: "app", user: "alice", groups: []string{"admins"}, zones: []string{"vpn"}, path: "/admin/x", outcome: policy.OutcomeAllow, rule: 1}},
		{"admin in the lab denied", CheckRequest{Site: "app.example.com", User: "alice", IP: "192.168.50.7", Path: "/admin/x"},
			want{site: "app.example.com", policy: "app", user: "alice", groups: []string{"admins"}, zones: []string{"lab"}, path: "/admin/x", outcome: policy.OutcomeDeny, rule: 2}},
		{"staff denied admin index, trailing slash kept", CheckRequest{Site: "app.example.com", User: "bob", IP: "10.0.0.1", Path: "/admin/x/.."},
			want{site: "app.example.com", policy: "app", user: "bob", groups: []string{"staff"}, zones: []string{"office"}, path: "/admin/", outcome: policy.OutcomeDeny, rule: 2}},
		{"bare /admin is not under /admin/*", CheckRequest{Site: "app.example.com", User: "alice", IP: "10.0.0.1", Path: "/admin"},
			want{site: "app.example.com", policy: "app", user: "alice", groups: []string{"admins"}, zones: []string{"office"}, path: "/admin", outcome: policy.OutcomeDeny, rule: -1,
				lastWhy: `path: "/admin" matches none of [/reports /reports/*]`}},
		{"staff read reports", CheckRequest{Site: "app.example.com", User: "bob", Path: "//reports//"},
			want{site: "app.example.com", policy: "app", user: "bob", groups: []string{"staff"}, path: "/reports/", outcome: policy.OutcomeAllow, rule: 3}},
		{"staff may not POST reports", CheckRequest{Site: "app.example.com", User: "bob", Method: "POST", Path: "/reports"},
			want{site: "app.example.com", policy: "app", user: "bob", groups: []string{"staff"}, path: "/reports", outcome: policy.OutcomeDeny, rule: -1,
				lastWhy: "method: POST is not one of [GET HEAD]"}},
		{"user without groups", CheckRequest{Site: "app.example.com", User: "dave", Path: "/reports"},
			want{site: "app.example.com", policy: "app", user: "dave", path: "/reports", outcome: policy.OutcomeDeny, rule: -1,
				lastWhy: "group: user dave is in none of [staff admins] (user groups: none)"}},
		{"query and escapes", CheckRequest{Site: "app.example.com", User: "bob", Path: "/%72eports/q3?x=/admin/"},
			want{site: "app.example.com", policy: "app", user: "bob", groups: []string{"staff"}, path: "/reports/q3", outcome: policy.OutcomeAllow, rule: 3}},
		{"groups given: no users file lookup", CheckRequest{Site: "app.example.com", User: "Zed", Groups: []string{"admins"}, GroupsSet: true, IP: "10.9.9.9", Path: "/admin/x"},
			want{site: "app.example.com", policy: "app", user: "zed", groups: []string{"admins"}, zones: []string{"office"}, path: "/admin/x", outcome: policy.OutcomeAllow, rule: 1}},
		{"groups given empty", CheckRequest{Site: "app.example.com", User: "alice", GroupsSet: true, IP: "10.9.9.9", Path: "/admin/x"},
			want{site: "app.example.com", policy: "app", user: "alice", zones: []string{"office"}, path: "/admin/x", outcome: policy.OutcomeDeny, rule: 2}},
		{"disabled user noted", CheckRequest{Site: "app.example.com", User: "carol", Path: "/reports"},
			want{site: "app.example.com", policy: "app", user: "carol", groups: []string{"staff"}, path: "/reports", outcome: policy.OutcomeAllow, rule: 3, note: "disabled"}},
		{"blocklist before any rule", CheckRequest{Site: "app.example.com", User: "alice", IP: "203.0.113.9", Path: "/public/x"},
			want{site: "app.example.com", policy: "app", user: "alice", groups: []string{"admins"}, zones: []string{"blocked"}, path: "/public/x", outcome: policy.OutcomeDeny, rule: -1, blocked: "blocked"}},
		{"blocklist before the gate's pages", CheckRequest{Site: "app.example.com", IP: "203.0.113.9", Path: "/.zonegate/callback"},
			want{site: "app.example.com", policy: "app", zones: []string{"blocked"}, path: "/.zonegate/callback", outcome: policy.OutcomeDeny, rule: -1, blocked: "blocked"}},
		{"the gate's own pages", CheckRequest{Site: "app.example.com", Path: "/x/../.zonegate/logout"},
			want{site: "app.example.com", policy: "app", path: "/.zonegate/logout", rule: -1, reserved: true}},
		{"site as a URL with a port", CheckRequest{Site: "https://APP.example.com:443", Path: "/favicon.ico"},
			want{site: "app.example.com", policy: "app", path: "/favicon.ico", outcome: policy.OutcomeAllow, rule: 0}},
		{"wildcard site, api route", CheckRequest{Site: "api.tools.example.com", Path: "/api/items"},
			want{site: "*.tools.example.com", policy: "api", path: "/api/items", outcome: policy.OutcomeAuthenticate, rule: 0}},
		{"wildcard site, api route by user", CheckRequest{Site: "x.tools.example.com", User: "bob", Method: "DELETE", Path: "/API/items"},
			want{site: "*.tools.example.com", policy: "api", user: "bob", groups: []string{"staff"}, path: "/API/items", outcome: policy.OutcomeDeny, rule: -1}},
		{"wildcard site, other route", CheckRequest{Site: "wiki.tools.example.com", Path: "/page"},
			want{site: "*.tools.example.com", policy: "wiki", path: "/page", outcome: policy.OutcomeAuthenticate, rule: -1}},
		{"wildcard site, other route by user", CheckRequest{Site: "wiki.tools.example.com", User: "dave", Path: "/page"},
			want{site: "*.tools.example.com", policy: "wiki", user: "dave", path: "/page", outcome: policy.OutcomeAllow, rule: -1}},
		{"site without a host", CheckRequest{Site: ":9095", User: "bob", Path: "/"},
			want{site: ":9095", policy: "wiki", user: "bob", groups: []string{"staff"}, path: "/", outcome: policy.OutcomeAllow, rule: -1}},
		{"external issuer with groups given", CheckRequest{Site: "ext.example.com", User: "Okta.User", Groups: []string{"staff"}, GroupsSet: true, Path: "/reports"},
			want{site: "ext.example.com", policy: "app", user: "Okta.User", groups: []string{"staff"}, path: "/reports", outcome: policy.OutcomeAllow, rule: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Config = checkConfig
			res, err := CheckPolicy(req)
			if err != nil {
				t.Fatalf("CheckPolicy: %v", err)
			}
			w := tt.want
			if res.Site != w.site || res.Policy != w.policy || res.User != w.user || !slices.Equal(res.Groups, w.groups) ||
				!slices.Equal(res.Zones, w.zones) || res.Path != w.path || res.Authenticated != (req.User != "") {
				t.Fatalf("got site %q policy %q user %q groups %q zones %q path %q authenticated %v\nwant %+v",
					res.Site, res.Policy, res.User, res.Groups, res.Zones, res.Path, res.Authenticated, w)
			}
			if res.BlockedBy != w.blocked || res.Reserved != w.reserved {
				t.Fatalf("blocked %q reserved %v, want %q %v", res.BlockedBy, res.Reserved, w.blocked, w.reserved)
			}
			if w.note != "" && !strings.Contains(strings.Join(res.Notes, "\n"), w.note) {
				t.Errorf("notes %q, want one with %q", res.Notes, w.note)
			}
			if w.reserved {
				if len(res.Steps) != 0 {
					t.Errorf("steps for a reserved path: %+v", res.Steps)
				}
				return
			}
			d := res.Decision
			if d.Outcome != w.outcome || d.Rule != w.rule {
				t.Fatalf("decision %v (rule index %d), want %v at %d", d, d.Rule, w.outcome, w.rule)
			}
			// What the gate would decide: its blocklist check, then policy.Evaluate on the facts
			// it builds (zones of the IP, the cleaned path), computed here independently.
			zm := table.Lookup(res.IP)
			if name, blocked := table.Blocked(zm); blocked {
				if name != w.blocked || d.Reason != ReasonBlocklist || len(res.Steps) != 0 {
					t.Fatalf("blocklist %q: decision %v, steps %d", name, d, len(res.Steps))
				}
				return
			}
			f := policy.Facts{Zones: zm, Authenticated: req.User != "", User: w.user, Groups: w.groups, Method: res.Method, Path: w.path}
			if ev := pols[w.policy].Evaluate(&f); ev.Outcome != d.Outcome || ev.Reason != d.Reason || ev.Rule != d.Rule ||
				ev.RuleName != d.RuleName || ev.Need.MaxAge != d.Need.MaxAge || !slices.Equal(ev.Need.Factors, d.Need.Factors) {
				t.Fatalf("check decided %v, policy.Evaluate %v", d, ev)
			}
			if w.lastWhy != "" {
				last := res.Steps[len(res.Steps)-1]
				if last.Miss == nil || last.Miss.Why != w.lastWhy {
					t.Errorf("last step %+v, want %q", last.Miss, w.lastWhy)
				}
			}
		})
	}
}

func TestCheckPolicyErrors(t *testing.T) {
	dir := t.TempDir()
	noApp := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(noApp, []byte("example.com {\n\trespond hi\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noGates := filepath.Join(dir, "nogates.caddyfile")
	if err := os.WriteFile(noGates, []byte("{\n\tzonegate {\n\t\tpolicy p {\n\t\t\tdefault deny\n\t\t}\n\t}\n}\nexample.com {\n\trespond hi\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badJSON, []byte(`{"apps": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	const sites = "sites with gates: *.tools.example.com, :9095, app.example.com, ext.example.com"
	tests := []struct {
		name string
		req  CheckRequest
		want string
	}{
		{"unknown site", CheckRequest{Site: "nope.example.com", Path: "/"}, "unknown site nope.example.com (" + sites + ")"},
		{"wildcard is one label", CheckRequest{Site: "a.b.tools.example.com", Path: "/"}, "unknown site a.b.tools.example.com"},
		{"site without a gate", CheckRequest{Site: "static.example.com", Path: "/"}, "site static.example.com has no zonegate_gate (" + sites + ")"},
		{"the IdP's site has no gate", CheckRequest{Site: "localhost", Path: "/"}, "site localhost has no zonegate_gate"},
		{"unknown port", CheckRequest{Site: ":9999", Path: "/"}, "unknown site :9999"},
		{"a gated host on another port", CheckRequest{Site: "app.example.com:8443", Path: "/"}, "site app.example.com:8443 has no zonegate_gate"},
		{"the IdP's site on its port", CheckRequest{Site: "http://localhost:9091", Path: "/"}, "site localhost:9091 has no zonegate_gate"},
		{"unknown user", CheckRequest{Site: "app.example.com", User: "mallory", Path: "/"}, `unknown user "mallory": not in the users file "testdata/check/users.yaml"`},
		{"external issuer needs groups", CheckRequest{Site: "ext.example.com", User: "alice", Path: "/"}, "site ext.example.com signs users in through the issuer https://idp.example.org: give the user's groups (--groups)"},
		{"groups without a user", CheckRequest{Site: "app.example.com", Groups: []string{"admins"}, GroupsSet: true, Path: "/"}, "groups were given without a user"},
		{"bad IP", CheckRequest{Site: "app.example.com", IP: "10.1.2", Path: "/"}, `client IP "10.1.2"`},
		{"relative path", CheckRequest{Site: "app.example.com", Path: "admin"}, `path "admin" does not start with /`},
		{"no path", CheckRequest{Site: "app.example.com"}, "no path given"},
		{"no site", CheckRequest{Path: "/"}, "no site given"},
		{"missing config", CheckRequest{Config: filepath.Join(dir, "missing"), Site: "a", Path: "/"}, "reading the config"},
		{"bad Caddyfile", CheckRequest{Config: "check_test.go", Site: "a", Path: "/"}, `adapting "check_test.go"`},
		{"bad JSON", CheckRequest{Config: badJSON, Site: "a", Path: "/"}, "reading the config"},
		{"no zonegate app", CheckRequest{Config: noApp, Site: "example.com", Path: "/"}, "has no zonegate app"},
		{"no gates", CheckRequest{Config: noGates, Site: "example.com", Path: "/"}, "the config has no zonegate_gate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			if req.Config == "" {
				req.Config = checkConfig
			}
			res, err := CheckPolicy(req)
			if err == nil {
				t.Fatalf("no error; result %+v", res)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestCheckPolicyRoutes covers choosing among several gates of one site by route matchers.
func TestCheckPolicyRoutes(t *testing.T) {
	const caddyfile = `{
	zonegate {
		issuer http://localhost:9091
		policy open {
			default allow anyone
		}
		policy closed {
		}
	}
}
app.example.com {
	@posts method POST
	handle @posts {
		zonegate_gate closed {
			url https://app.example.com
		}
	}
	@internal remote_ip 10.0.0.0/8
	handle @internal {
		zonegate_gate open {
			url https://app.example.com
		}
	}
	handle_path /legacy/* {
		zonegate_gate open {
			url https://app.example.com
		}
	}
	handle /only/* {
		zonegate_gate closed {
			url https://app.example.com
		}
	}
}
other.example.com {
	handle /gated/* {
		zonegate_gate closed {
			url https://other.example.com
		}
	}
	respond "ungated"
}
`
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, site, method, path string
		policy, note, err        string
	}{
		{"method matcher", "app.example.com", "POST", "/only/x", "closed", "", ""},
		{"unknown matcher is assumed", "app.example.com", "GET", "/x", "open", `assuming the gate with policy "open" (route matchers: remote_ip`, ""},
		{"unknown matcher comes first", "app.example.com", "GET", "/only/x", "closed", `the gate with policy "open" (route matchers: remote_ip {"ranges":["10.0.0.0/8"]}) comes first`, ""},
		{"rewrite before the gate", "app.example.com", "GET", "/legacy/x", "open", "a rewrite may run before the gate", ""},
		{"a path no gate handles", "other.example.com", "GET", "/public", "", "", `no zonegate_gate of site other.example.com handles GET /public, so it would reach the site ungated (gates: the gate with policy "closed" (route matchers: path ["/gated/*"]))`},
		{"a path a gate handles", "other.example.com", "GET", "/GATED/x", "closed", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := CheckPolicy(CheckRequest{Config: path, Site: tt.site, Method: tt.method, Path: tt.path})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Policy != tt.policy {
				t.Errorf("policy %q, want %q", res.Policy, tt.policy)
			}
			notes := strings.Join(res.Notes, "\n")
			if tt.note == "" && notes != "" || !strings.Contains(notes, tt.note) {
				t.Errorf("notes %q, want %q", notes, tt.note)
			}
		})
	}
}

func TestParseSite(t *testing.T) {
	tests := []struct{ in, host, port string }{
		{"app.example.com", "app.example.com", ""},
		{"App.Example.COM.", "app.example.com", ""},
		{"https://app.example.com/x", "app.example.com", ""},
		{"https://app.example.com:8443", "app.example.com", "8443"},
		{"app.example.com:8443", "app.example.com", "8443"},
		{":9095", "", "9095"},
		{"[::1]", "::1", ""},
		{"[::1]:80", "::1", "80"},
	}
	for _, tt := range tests {
		s, err := parseSite(tt.in)
		if err != nil || s.host != tt.host || s.port != tt.port {
			t.Errorf("parseSite(%q) = %+v, %v; want %q %q", tt.in, s, err, tt.host, tt.port)
		}
	}
	for _, bad := range []string{"", "  ", "https://", ":"} {
		if s, err := parseSite(bad); err == nil {
			t.Errorf("parseSite(%q) = %+v, want an error", bad, s)
		}
	}
}

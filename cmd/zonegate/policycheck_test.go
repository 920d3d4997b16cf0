package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zonegate/zonegate/directory"
)

// writeCheckConfig writes a Caddyfile and its users file to a temporary directory and returns
// the Caddyfile's path.
func writeCheckConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := directory.HashPassword("not-a-real-password")
	if err != nil {
		t.Fatal(err)
	}
	users := "users:\n" +
		"  alice:\n    password: \"" + hash + "\"\n    groups: [admins]\n" +
		"  bob:\n    password: \"" + hash + "\"\n    groups: [staff]\n"
	usersPath := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(usersPath, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	caddyfile := `{
	zonegate {
		issuer http://localhost:9091
		users "` + usersPath + `"
		zone office 10.0.0.0/8
		zone blocked {
			blocklist
			203.0.113.0/24
		}
		policy app {
			rule public {
				allow anyone
				path /public/*
			}
			rule admins {
				allow
				zone office
				group admins
				path /admin/*
			}
			rule no-admin {
				deny
				path /admin/*
			}
			default allow
		}
	}
}
app.example.com {
	zonegate_gate app {
		url https://app.example.com
	}
	respond "app"
}
`
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyCheckOutput(t *testing.T) {
	config := writeCheckConfig(t)
	tests := []struct {
		name string
		args []string
		code int
		want string // the whole output
	}{
		{
			name: "allow",
			args: []string{"--user", "alice", "--ip", "10.1.2.3", "--path", "/ADMIN/../admin/x"},
			code: 0,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /admin/x (as given: /ADMIN/../admin/x)
user      alice, groups [admins] (users file USERS)
client    10.1.2.3, zones [office]

rules of policy "app", first match wins:
  ✗ rule 1 "public" (allow): path: "/admin/x" matches none of [/public/*]
  ✓ rule 2 "admins" (allow): matched

decision  ALLOW by rule 2 "admins" (reason rule_allow)
`,
		},
		{
			name: "deny",
			args: []string{"--user", "bob", "--ip", "10.1.2.3", "--method", "POST", "--path", "/admin/"},
			code: 1,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   POST /admin/
user      bob, groups [staff] (users file USERS)
client    10.1.2.3, zones [office]

rules of policy "app", first match wins:
  ✗ rule 1 "public" (allow): path: "/admin/" matches none of [/public/*]
  ✗ rule 2 "admins" (allow): group: user bob is in none of [admins] (user groups: [staff])
  ✓ rule 3 "no-admin" (deny): matched

decision  DENY by rule 3 "no-admin" (reason rule_deny)
`,
		},
		{
			name: "sign in by a rule",
			args: []string{"--ip", "10.1.2.3", "--path", "/admin/x"},
			code: 2,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /admin/x
user      anonymous (not signed in)
client    10.1.2.3, zones [office]

rules of policy "app", first match wins:
  ✗ rule 1 "public" (allow): path: "/admin/x" matches none of [/public/*]
  ? rule 2 "admins" (allow): user needed: the rule names users/groups and the request is not signed in

decision  SIGN IN: would ask to sign in, since rule 2 "admins" needs to know the user (reason authentication_required)
`,
		},
		{
			name: "sign in by the default",
			args: []string{"--path", "/home"},
			code: 2,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /home
user      anonymous (not signed in)
client    no IP given, so in no zone

rules of policy "app", first match wins:
  ✗ rule 1 "public" (allow): path: "/home" matches none of [/public/*]
  ✗ rule 2 "admins" (allow): zone: client is in none of [office] (client zones: none)
  ✗ rule 3 "no-admin" (deny): path: "/home" matches none of [/admin/*]

decision  SIGN IN: would ask to sign in, since the policy's default (no rule matched) needs to know the user (reason authentication_required)
`,
		},
		{
			name: "blocklist",
			args: []string{"--user", "alice", "--groups", "", "--ip", "203.0.113.7", "--path", "/public/x"},
			code: 1,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /public/x
user      alice, groups none (given)
client    203.0.113.7, zones [blocked]

decision  DENY: the client is in the blocklist zone "blocked", denied before sign-in and before any rule (reason blocklist_zone)
`,
		},
		{
			name: "gate's own page",
			args: []string{"--path", "/.zonegate/logout"},
			code: 0,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /.zonegate/logout
user      anonymous (not signed in)
client    no IP given, so in no zone

decision  served by the gate itself: /.zonegate/* paths (sign-in callback, logout) are not decided by the policy
`,
		},
		{
			name: "groups given",
			args: []string{"--user", "carl", "--groups", "staff, admins", "--ip", "10.0.0.1", "--path", "/public/x"},
			code: 0,
			want: `site      app.example.com (gate policy "app", url https://app.example.com)
request   GET /public/x
user      carl, groups [staff admins] (given)
client    10.0.0.1, zones [office]

rules of policy "app", first match wins:
  ✓ rule 1 "public" (allow): matched

decision  ALLOW by rule 1 "public" (reason rule_allow)
`,
		},
	}
	usersPath := filepath.Join(filepath.Dir(config), "users.yaml")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"check", "--config", config, "--site", "app.example.com"}, tt.args...)
			code := policyCommand(args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			if want := strings.ReplaceAll(tt.want, "USERS", usersPath); out.String() != want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
			}
			if errb.Len() != 0 {
				t.Errorf("stderr: %q", errb.String())
			}
		})
	}
}

func TestPolicyCheckErrors(t *testing.T) {
	config := writeCheckConfig(t)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no subcommand", nil, 3, "usage: zonegate policy check"},
		{"unknown subcommand", []string{"lint"}, 3, "usage: zonegate policy check"},
		{"help", []string{"check", "--help"}, 0, "Exit status:"},
		{"missing flags", []string{"check", "--user", "alice"}, 3, "missing --config, --site, --path"},
		{"extra argument", []string{"check", "--config", config, "--site", "app.example.com", "--path", "/", "extra"}, 3, `unexpected argument "extra"`},
		{"bad flag", []string{"check", "--sight", "x"}, 3, "flag provided but not defined: -sight"},
		{"unknown site", []string{"check", "--config", config, "--site", "other.example.com", "--path", "/"}, 3, "unknown site other.example.com (sites with gates: app.example.com)"},
		{"unknown user", []string{"check", "--config", config, "--site", "app.example.com", "--user", "mallory", "--path", "/"}, 3, `unknown user "mallory"`},
		{"bad ip", []string{"check", "--config", config, "--site", "app.example.com", "--ip", "nope", "--path", "/"}, 3, `client IP "nope"`},
		{"missing config", []string{"check", "--config", config + ".missing", "--site", "a", "--path", "/"}, 3, "reading the config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := policyCommand(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), tt.want)
			}
			if tt.code != 0 && out.Len() != 0 {
				t.Errorf("stdout %q on an error", out.String())
			}
		})
	}
	var out, errb bytes.Buffer
	if code := policyCommand([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: zonegate policy check") {
		t.Errorf("help: code %d, stdout %q", code, out.String())
	}
}

package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of the golden adapt files")

const separator = "\n----------\n"

// TestAdaptGolden adapts each testdata/adapt/*.caddyfiletest (a Caddyfile, a separator line,
// the expected JSON) and compares, as Caddy's own caddyfile_adapt tests do.
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, found := strings.Cut(string(raw), separator)
			if !found && !*update {
				t.Fatalf("%s has no separator line", f)
			}
			got, warnings := adapt(t, strings.TrimRight(input, "\n")+"\n")
			for _, w := range warnings {
				t.Errorf("warning: %s:%d: %s", w.File, w.Line, w.Message)
			}
			if *update {
				if err := os.WriteFile(f, []byte(input+separator+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

func adapt(t *testing.T, input string) (string, []caddyconfig.Warning) {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String(), warnings
}

// TestAdaptErrors checks that a bad Caddyfile is refused with the file, the line and what is
// wrong.
func TestAdaptErrors(t *testing.T) {
	const global = "{\n\tzonegate {\n\t\tissuer http://localhost:9091\n\t\tusers u.yaml\n\t\tpolicy p {\n\t\t\tdefault deny\n\t\t}\n\t}\n}\n"
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "{\n\tzonegate {\n\t\tisuer x\n\t}\n}\n", `@3@unknown zonegate option "isuer"`},
		{"rule without action", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule r {\n\t\t\t\tpath /x\n\t\t\t}\n\t\t}\n\t}\n}\n", `@6@rule 1: no action`},
		{"two actions", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow\n\t\t\t\tdeny\n\t\t\t}\n\t\t}\n\t}\n}\n", `@6@rule 1: more than one action`},
		{"unknown condition", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow\n\t\t\t\tgroups admins\n\t\t\t}\n\t\t}\n\t}\n}\n", `@6@rule 1: unknown condition "groups"`},
		{"bad allow", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow everybody\n\t\t\t}\n\t\t}\n\t}\n}\n", `@5@rule 1: allow takes user or anyone, then factors`},
		{"bad default", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\tdefault maybe\n\t\t}\n\t}\n}\n", `@4@default takes deny, or allow [user|anyone]`},
		{"duplicate policy", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t}\n\t\tpolicy p {\n\t\t}\n\t}\n}\n", `@6@policy "p" is defined twice`},
		{"client without redirect", "{\n\tzonegate {\n\t\tclient app {\n\t\t\tsecret s\n\t\t}\n\t}\n}\n", `@5@client "app": no redirect_uri`},
		{"bad duration", "{\n\tzonegate {\n\t\tsession {\n\t\t\tidle_timeout soon\n\t\t}\n\t}\n}\n", `@4@session idle_timeout: "soon" is not a positive duration`},
		{"idle longer than absolute", "{\n\tzonegate {\n\t\tsession {\n\t\t\tidle_timeout 2h\n\t\t\tabsolute_timeout 1h\n\t\t}\n\t}\n}\n", `session idle_timeout is longer than absolute_timeout`},
		{"unknown storage", "{\n\tzonegate {\n\t\tstorage etcd\n\t}\n}\n", `@3@unknown storage "etcd" (use bolt or redis)`},
		{"gate unknown policy", global + "http://localhost:9090 {\n\tzonegate_gate nope {\n\t\turl http://localhost:9090\n\t}\n}\n", `@13@zonegate_gate: unknown policy "nope" (defined: p)`},
		{"gate without url", global + "http://localhost:9090 {\n\tzonegate_gate p\n}\n", `@11@zonegate_gate: no url`},
		{"gate bad url", global + "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl localhost:9090/app\n\t}\n}\n", `must be the site's absolute base URL`},
		{"gate without option", "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl http://localhost:9090\n\t}\n}\n", `@4@zonegate_gate needs the global zonegate option`},
		{"gate bad preset", global + "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl http://localhost:9090\n\t\theaders nginx\n\t}\n}\n", `@13@unknown header preset "nginx"`},
		{"gate bad header", global + "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl http://localhost:9090\n\t\theader role X-Role\n\t}\n}\n", `@13@unknown identity header "role"`},
		{"bad zone entry", "{\n\tzonegate {\n\t\tzone office 10.0.0.0/8 {\n\t\t\t192.168.1.1/16\n\t\t}\n\t}\n}\n", `@4@zone "office": `},
		{"bad zone range", "{\n\tzonegate {\n\t\tzone lab 10.0.0.9-10.0.0.1\n\t}\n}\n", `@3@zone "lab": `},
		{"duplicate zone", "{\n\tzonegate {\n\t\tzone a 10.0.0.0/8\n\t\tzone a 11.0.0.0/8\n\t}\n}\n", `zone "a" is defined twice`},
		{"rule names unknown zone", "{\n\tzonegate {\n\t\tzone office 10.0.0.0/8\n\t\tpolicy p {\n\t\t\trule r {\n\t\t\t\tallow\n\t\t\t\tzone ofice\n\t\t\t}\n\t\t}\n\t}\n}\n", `unknown zone "ofice" (policy at line 4)`},
		{"bad path pattern", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tdeny\n\t\t\t\tpath admin/*\n\t\t\t}\n\t\t}\n\t}\n}\n", `(policy at line 3)`},
		{"oidc without client_id", global + "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl http://localhost:9090\n\t\toidc {\n\t\t\tissuer https://idp.example.com\n\t\t}\n\t}\n}\n", `@15@oidc needs issuer and client_id`},
		{"oidc unknown option", global + "http://localhost:9090 {\n\tzonegate_gate p {\n\t\turl http://localhost:9090\n\t\toidc {\n\t\t\tissuer_url https://idp.example.com\n\t\t}\n\t}\n}\n", `@14@unknown oidc option "issuer_url"`},
		{"redis without target", "{\n\tzonegate {\n\t\tstorage redis {\n\t\t\tkey_prefix zg:\n\t\t}\n\t}\n}\n", `@5@storage redis needs exactly one of`},
		{"redis two targets", "{\n\tzonegate {\n\t\tstorage redis redis://a:6379 {\n\t\t\tcluster b:6379\n\t\t}\n\t}\n}\n", `storage redis needs exactly one of`},
		{"client unknown policy", "{\n\tzonegate {\n\t\tclient app {\n\t\t\tredirect_uri https://app.example.com/cb\n\t\t\tpolicy nope\n\t\t}\n\t}\n}\n", `client "app": unknown policy "nope"`},
		{"client bad auth method", "{\n\tzonegate {\n\t\tclient app {\n\t\t\tauth_method tls_client_auth\n\t\t}\n\t}\n}\n", `@4@auth_method "tls_client_auth"`},
		{"country without database", "{\n\tzonegate {\n\t\tzone eu {\n\t\t\tcountry DE FR\n\t\t}\n\t}\n}\n", `zone "eu" names countries or ASNs: add geoip`},
		{"bad asn", "{\n\tzonegate {\n\t\tzone cloud {\n\t\t\tasn AS0\n\t\t}\n\t}\n}\n", `@4@zone "cloud": asn "AS0"`},
		{"empty zone", "{\n\tzonegate {\n\t\tzone nothing {\n\t\t\tblocklist\n\t\t}\n\t}\n}\n", `zone "nothing": no addresses, countries, ASNs or lists`},
		{"brute force bad rate", "{\n\tzonegate {\n\t\tbrute_force {\n\t\t\tuser 20 per 15m\n\t\t}\n\t}\n}\n", `@4@brute_force user: "20" is not <count>/<window>`},
		{"brute force wrong word", "{\n\tzonegate {\n\t\tbrute_force {\n\t\t\tuser 20/15m block 1h\n\t\t}\n\t}\n}\n", `@4@brute_force user: want lockout <duration>, got "block"`},
		{"brute force unknown", "{\n\tzonegate {\n\t\tbrute_force {\n\t\t\tip 5/1m\n\t\t}\n\t}\n}\n", `@4@unknown brute_force option "ip"`},
		{"device rule without devices", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow\n\t\t\t\tdevice compliant\n\t\t\t}\n\t\t}\n\t}\n}\n", `rule 1: device conditions need the devices option`},
		{"devices without id_from", "{\n\tzonegate {\n\t\tdevices {\n\t\t\tmdm_webhook_secret s\n\t\t}\n\t}\n}\n", `@5@devices needs id_from`},
		{"devices bad field", "{\n\tzonegate {\n\t\tdevices {\n\t\t\tid_from subject\n\t\t}\n\t}\n}\n", `@4@id_from "subject"`},
		{"unknown device word", "{\n\tzonegate {\n\t\tdevices {\n\t\t\tid_from cn\n\t\t}\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow\n\t\t\t\tdevice compliance\n\t\t\t}\n\t\t}\n\t}\n}\n", `unknown device condition "compliance"`},
		{"totp bad digits", "{\n\tzonegate {\n\t\ttotp {\n\t\t\tdigits 7\n\t\t}\n\t}\n}\n", `totp settings`},
		{"totp unknown option", "{\n\tzonegate {\n\t\ttotp {\n\t\t\tlength 6\n\t\t}\n\t}\n}\n", `@4@unknown totp option "length"`},
		{"webauthn unknown option", "{\n\tzonegate {\n\t\twebauthn {\n\t\t\trp localhost\n\t\t}\n\t}\n}\n", `@4@unknown webauthn option "rp"`},
		{"webauthn bad verification", "{\n\tzonegate {\n\t\twebauthn {\n\t\t\tuser_verification always\n\t\t}\n\t}\n}\n", `@4@webauthn user_verification: passkey settings: user verification "always"`},
		{"webauthn origin off the rp", "{\n\tzonegate {\n\t\tissuer https://id.example.com\n\t\twebauthn {\n\t\t\torigins https://evil.example.net\n\t\t}\n\t}\n}\n", `evil.example.net`},
		{"webauthn twice", "{\n\tzonegate {\n\t\twebauthn\n\t\twebauthn\n\t}\n}\n", `@4@webauthn: set more than once`},
		{"audit hook short secret", "{\n\tzonegate {\n\t\taudit {\n\t\t\thook siem https://siem.example.com/in {\n\t\t\t\tsecret short\n\t\t\t\tevents user.session.*\n\t\t\t}\n\t\t}\n\t}\n}\n", `audit hook siem (line 4)`},
		{"audit hook no events", "{\n\tzonegate {\n\t\taudit {\n\t\t\thook siem https://siem.example.com/in {\n\t\t\t\tsecret {env.HOOK_SECRET}\n\t\t\t}\n\t\t}\n\t}\n}\n", `audit hook siem (line 4)`},
		{"audit unknown", "{\n\tzonegate {\n\t\taudit {\n\t\t\tkeep 90d\n\t\t}\n\t}\n}\n", `@4@unknown audit option "keep"`},
		{"within without duration", "{\n\tzonegate {\n\t\tpolicy p {\n\t\t\trule {\n\t\t\t\tallow otp within\n\t\t\t}\n\t\t}\n\t}\n}\n", `@5@rule 1: within needs a duration`},
		{"idp with args", global + "http://localhost:9091 {\n\tzonegate_idp extra\n}\n", `@11@zonegate_idp takes no arguments`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(tc.input), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapted without error; want %q", tc.want)
			}
			// A want of "@N@message" means: the message, at line N of the file.
			want, line := tc.want, ""
			if strings.HasPrefix(want, "@") {
				parts := strings.SplitN(want[1:], "@", 2)
				line, want = parts[0], parts[1]
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q\nwant it to contain %q", err, want)
			}
			if line != "" && !strings.HasSuffix(err.Error(), "at Caddyfile:"+line) {
				t.Fatalf("error %q\nwant it to name Caddyfile:%s", err, line)
			}
		})
	}
}

// TestExampleIsGolden keeps the golden copy of the README's demo config in step with it.
func TestExampleIsGolden(t *testing.T) {
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("testdata/adapt/example.caddyfiletest")
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := strings.Cut(string(golden), separator)
	if strings.TrimSpace(input) != strings.TrimSpace(string(example)) {
		t.Fatal("testdata/adapt/example.caddyfiletest does not start with Caddyfile.example: copy it and run go test ./caddymodule -update")
	}
}

package idp

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/zones"
)

const (
	adminClientID = "admin-console"
	adminRedirect = "https://admin.example.com/cb"
	officeIP      = "10.1.2.3"
	homeIP        = "203.0.113.9"
	testIPHeader  = "X-Test-Client-IP"
)

// withSignOnPolicy adds the admin console, which only admins in the office may sign in to;
// the browser's address comes from a test header.
func withSignOnPolicy(t testing.TB) envOption {
	t.Helper()
	table, err := zones.Compile([]zones.Def{{Name: "office", Entries: []string{"10.1.0.0/16"}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile(policy.Def{
		Name: "admin-console",
		Rules: []policy.RuleDef{
			{Name: "admins in the office", Action: policy.Allow, Zones: []string{"office"}, Groups: []string{"admins"}},
		},
		Default: policy.Deny,
	}, table)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) {
		c.Zones = table
		c.ClientIP = func(r *http.Request) netip.Addr {
			a, _ := netip.ParseAddr(r.Header.Get(testIPHeader))
			return a
		}
		c.Clients = append(c.Clients, Client{ID: adminClientID, Secret: "admin-secret", RedirectURIs: []string{adminRedirect}, Policy: pol})
	}
}

// fromIP is a transport that says the browser is at ip.
type fromIP string

func (ip fromIP) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(testIPHeader, string(ip))
	return http.DefaultTransport.RoundTrip(r)
}

func (e *env) browserAt(ip string) *browser { return newBrowser(e.t, e.issuer, fromIP(ip)) }

func (e *env) adminRP() *rp {
	return newRP(e.t, context.Background(), e.issuer, adminClientID, "admin-secret", adminRedirect)
}

func TestSignOnPolicy(t *testing.T) {
	e := newEnv(t, withSignOnPolicy(t))
	tests := []struct {
		name, ip, user, password string
		wantCode                 bool
		wantLog                  string
	}{
		{"admin in the office", officeIP, "alice", "alice-password", true, ""},
		{"admin elsewhere", homeIP, "alice", "alice-password", false, `decision="deny (default_deny)" reason=default_deny rule=0`},
		{"non-admin in the office", officeIP, "bob", "bob-password", false, `user=bob policy=admin-console decision="deny (default_deny)"`},
		{"no address", "", "alice", "alice-password", false, `user=alice policy=admin-console decision="deny (default_deny)"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.adminRP()
			f := r.start()
			b := e.browserAt(tc.ip)
			p := b.submitLogin(b.get(f.url), tc.user, tc.password)
			if tc.wantCode {
				r.exchange(r.code(p, f), f)
				return
			}
			q := redirectedTo(t, p, adminRedirect)
			if q.Get("error") != "access_denied" || q.Get("state") != f.state || q.Get("code") != "" {
				t.Errorf("redirect %v, want error=access_denied with the state and no code", q)
			}
			desc := strings.ToLower(q.Get("error_description"))
			for _, leak := range []string{"policy", "rule", "zone", "group", "office", "admin"} {
				if strings.Contains(desc, leak) {
					t.Errorf("error_description %q tells the browser why", desc)
				}
			}
			if !strings.Contains(e.logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q", tc.wantLog)
			}
			// The user is still signed in to the IdP: a client without a policy works.
			w := e.webRP()
			wf := w.start()
			w.exchange(w.code(b.get(wf.url), wf), wf)
		})
	}
	if !strings.Contains(e.logs.String(), `msg="idp: sign-in refused by the client's sign-on policy" client_id=admin-console`) {
		t.Error("denial not logged at info")
	}
}

// The policy also decides when the single-sign-on session completes the request silently.
func TestSignOnPolicySSO(t *testing.T) {
	e := newEnv(t, withSignOnPolicy(t))
	// alice signs in to an unrestricted app at home, then opens the admin console.
	b := e.browserAt(homeIP)
	w := e.webRP()
	b.signIn(w, w.start(), "alice", "alice-password")
	r := e.adminRP()
	f := r.start()
	p := b.get(f.url)
	if isLoginForm(p) {
		t.Fatal("SSO showed the form")
	}
	if q := redirectedTo(t, p, adminRedirect); q.Get("error") != "access_denied" {
		t.Fatalf("admin console from home over SSO: %v", q)
	}
	// From the office the same session gets a code without the form.
	office := e.browserAt(officeIP)
	office.signIn(w, w.start(), "alice", "alice-password")
	f = r.start()
	r.exchange(r.code(office.get(f.url), f), f)
	// prompt=none is denied the same way.
	f = r.start()
	if q := redirectedTo(t, b.get(f.url+"&prompt=none"), adminRedirect); q.Get("error") != "access_denied" {
		t.Errorf("prompt=none from home: %v", q)
	}
}

// Without Config.ClientIP the peer address decides; a client without a policy is not
// affected by the zones.
func TestSignOnPolicyPeerAddress(t *testing.T) {
	table, err := zones.Compile([]zones.Def{{Name: "office", Entries: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile(policy.Def{Name: "p", Rules: []policy.RuleDef{{Action: policy.Allow, Zones: []string{"office"}}}}, table)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.Zones = table
		c.Clients = append(c.Clients, Client{ID: adminClientID, Secret: "admin-secret", RedirectURIs: []string{adminRedirect}, Policy: pol})
	})
	r := e.adminRP()
	f := r.start()
	r.exchange(e.browser().signIn(r, f, "bob", "bob-password"), f)
}

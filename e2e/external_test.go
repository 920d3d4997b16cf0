package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGateOnExternalIdP runs two zonegate processes: one is only an identity provider (as Okta
// or Entra ID would be), the other has no embedded IdP and protects an app with a gate that
// signs people in through the first over the network.
func TestGateOnExternalIdP(t *testing.T) {
	root := repoRoot(t)
	idpDir, gateDir := t.TempDir(), t.TempDir()
	users, err := os.ReadFile(filepath.Join(root, "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(idpDir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	idpPort, gatePort, echoPort := freePort(t), freePort(t), freePort(t)
	idpURL := "http://localhost:" + strconv.Itoa(idpPort)
	gateURL := "http://localhost:" + strconv.Itoa(gatePort)

	idpConfig := `{
	admin off
	zonegate {
		issuer ` + idpURL + `
		users ` + filepath.Join(idpDir, "users.yaml") + `
		storage bolt ` + filepath.Join(idpDir, "idp.db") + `
		client partner-gate {
			secret {env.PARTNER_GATE_SECRET}
			redirect_uri ` + gateURL + `/.zonegate/callback
		}
	}
}

` + idpURL + ` {
	zonegate_idp
}
`
	gateConfig := `{
	admin off
	zonegate {
		storage bolt ` + filepath.Join(gateDir, "gate.db") + `
		zone lab 127.0.0.0/8 ::1
		policy partners {
			rule {
				allow
				zone lab
				group admins
			}
		}
	}
}

` + gateURL + ` {
	zonegate_gate partners {
		url ` + gateURL + `
		headers oauth2-proxy
		oidc {
			issuer ` + idpURL + `
			client_id partner-gate
			client_secret {env.PARTNER_GATE_SECRET}
		}
	}
	reverse_proxy 127.0.0.1:` + strconv.Itoa(echoPort) + `
}

http://:` + strconv.Itoa(echoPort) + ` {
	bind 127.0.0.1
	zonegate_echo
}
`
	t.Setenv("PARTNER_GATE_SECRET", "a-long-partner-secret-from-the-environment")
	startGateway(t, idpDir, idpConfig, idpURL+"/.well-known/openid-configuration")
	gw := startGateway(t, gateDir, gateConfig, gateURL+"/.zonegate/logout")

	c := newClient(t)
	page := c.follow(gateURL + "/headers?via=okta")
	if !strings.HasPrefix(page.url.String(), idpURL+"/") {
		t.Fatalf("the gate did not send the browser to the external issuer: %s (%d)", page.url, page.status)
	}
	final := c.followFrom(c.submitForm(page, map[string][]string{"username": {"alice"}, "password": {"alice-demo-pass"}}))
	if final.url.String() != gateURL+"/headers?via=okta" {
		t.Fatalf("landed on %s, want %s/headers?via=okta\ntrace:\n%s", final.url, gateURL, strings.Join(c.trace, "\n"))
	}
	got := headersJSON(t, final)
	if got["X-Auth-Request-User"] != "alice" || got["X-Auth-Request-Groups"] != "admins" || got["X-Auth-Request-Email"] != "alice@example.com" {
		t.Errorf("identity headers from the external issuer: %v", got)
	}
	if _, ok := got["X-Zonegate-Assertion"]; ok {
		t.Error("a gate without an embedded IdP sent an assertion it has no key for")
	}
	// Bob is not an admin: the external issuer signs him in, the gate's policy refuses him.
	c2 := newClient(t)
	page = c2.follow(gateURL + "/headers")
	if r := c2.followFrom(c2.submitForm(page, map[string][]string{"username": {"bob"}, "password": {"bob-demo-pass"}})); r.status != 403 {
		t.Errorf("bob through the external issuer: %d, want 403", r.status)
	}
	if strings.Contains(gw.logs(), "a-long-partner-secret") {
		t.Error("the client secret reached the log")
	}
}

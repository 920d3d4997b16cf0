package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBrowserRegisteredAsDevice: a rule with register_device gives a signed-in browser a
// device cookie; from then on the browser is a registered device for that user (a plant page
// that needs one opens), and the same cookie in another user's browser counts for nothing.
func TestBrowserRegisteredAsDevice(t *testing.T) {
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	idpPort, gatePort, echoPort := freePort(t), freePort(t), freePort(t)
	idpURL, gateURL := "http://localhost:"+strconv.Itoa(idpPort), "http://localhost:"+strconv.Itoa(gatePort)
	cfg := `{
	admin off
	zonegate {
		issuer ` + idpURL + `
		users ` + filepath.Join(dir, "users.yaml") + `
		storage bolt ` + filepath.Join(dir, "z.db") + `
		devices {
			id_from cn
		}
		policy p {
			rule plant {
				allow
				device registered
				path /plant/*
			}
			rule plant-elsewhere {
				deny
				path /plant/*
			}
			rule everyone {
				allow
				register_device
			}
		}
	}
}

` + idpURL + ` {
	zonegate_idp
}

` + gateURL + ` {
	zonegate_gate p {
		url ` + gateURL + `
	}
	reverse_proxy 127.0.0.1:` + strconv.Itoa(echoPort) + `
}

http://:` + strconv.Itoa(echoPort) + ` {
	bind 127.0.0.1
	zonegate_echo
}
`
	startGateway(t, dir, cfg, idpURL+"/healthz", gateURL+"/.zonegate/logout")
	signIn := func(user, pass string) *client {
		c := newClient(t)
		r := c.followFrom(c.login(c.follow(gateURL+"/headers"), user, pass))
		if r.status != http.StatusOK {
			t.Fatalf("%s's sign-in: %d", user, r.status)
		}
		return c
	}

	bob := newClient(t)
	if r := bob.do("GET", gateURL+"/plant/headers", nil); r.status != http.StatusForbidden {
		t.Fatalf("the plant page without a device: %d, want 403", r.status)
	}
	bob = signIn("bob", "bob-demo-pass")
	ck := bob.cookie(gateURL, "zonegate_device")
	if ck == nil || ck.Value == "" {
		t.Fatal("no device cookie after a register_device rule allowed bob")
	}
	r := bob.do("GET", gateURL+"/plant/headers", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"X-Device-Trust": "UNKNOWN"`) {
		t.Fatalf("bob's plant page from his registered browser: %d\n%s", r.status, r.body)
	}

	// alice with bob's device cookie: not a device of hers.
	alice := signIn("alice", "alice-demo-pass")
	if own := alice.cookie(gateURL, "zonegate_device"); own == nil || own.Value == ck.Value {
		t.Fatal("alice's browser did not get a device cookie of its own")
	}
	u, _ := http.NewRequest("GET", gateURL, nil)
	alice.jar.SetCookies(u.URL, []*http.Cookie{{Name: "zonegate_device", Value: ck.Value, Path: "/"}})
	if r := alice.do("GET", gateURL+"/plant/headers", nil); r.status != http.StatusForbidden {
		t.Fatalf("alice with bob's device cookie: %d, want 403", r.status)
	}
}

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAccountLockoutThroughTheBinary configures the sign-in limits in the Caddyfile: three
// wrong passwords lock alice, the right one then fails exactly like a wrong one, the lock
// lifts after the configured time, and every sign-in answer carries the rate-limit headers.
func TestAccountLockoutThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	idpPort, gatePort := freePort(t), freePort(t)
	idpURL, gateURL := "http://localhost:"+strconv.Itoa(idpPort), "http://localhost:"+strconv.Itoa(gatePort)
	cfg := `{
	admin off
	zonegate {
		issuer ` + idpURL + `
		users ` + filepath.Join(dir, "users.yaml") + `
		storage bolt ` + filepath.Join(dir, "z.db") + `
		brute_force {
			user 3/1m lockout 3s
			address 50/1m
		}
		policy p {
			default allow
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
	respond "signed in"
}
`
	startGateway(t, dir, cfg, idpURL+"/healthz", gateURL+"/.zonegate/logout")
	c := newClient(t)
	attempt := func(password string) response {
		page := c.follow(gateURL + "/")
		if !strings.Contains(page.body, `name="password"`) {
			t.Fatalf("no sign-in form (status %d at %s)", page.status, page.url)
		}
		return c.submitForm(page, map[string][]string{"username": {"alice"}, "password": {password}})
	}
	var remaining []string
	var wrong response
	for range 3 {
		wrong = attempt("wrong-password")
		if wrong.status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", wrong.status)
		}
		remaining = append(remaining, wrong.header.Get("X-Rate-Limit-Remaining"))
		if wrong.header.Get("X-Rate-Limit-Limit") != "50" || wrong.header.Get("X-Rate-Limit-Reset") == "" {
			t.Fatalf("rate-limit headers: %v", wrong.header)
		}
	}
	if remaining[0] == remaining[2] {
		t.Errorf("X-Rate-Limit-Remaining does not count down: %v", remaining)
	}
	locked := attempt("alice-demo-pass")
	if locked.status != wrong.status || !strings.Contains(locked.body, "Invalid username or password") || strings.Contains(strings.ToLower(locked.body), "locked") {
		t.Fatalf("right password while locked: %d\n%s", locked.status, locked.body)
	}
	time.Sleep(3100 * time.Millisecond)
	final := c.followFrom(attempt("alice-demo-pass"))
	if final.status != http.StatusOK || final.body != "signed in" {
		t.Fatalf("after the lockout: %d %q", final.status, final.body)
	}
}

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestListZoneBlocksAndReloads keeps a Tor-exit-style list in a file: an address on it is
// refused before sign-in, and an address added to the file while the gateway runs is refused
// too once the file is re-read, with no reload of the config.
func TestListZoneBlocksAndReloads(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "exits.txt")
	if err := os.WriteFile(list, []byte("# exit nodes\n198.51.100.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	gate, idp := freePort(t), freePort(t)
	gateURL := "http://localhost:" + strconv.Itoa(gate)
	cfg := `{
	admin off
	servers {
		trusted_proxies static 127.0.0.0/8
	}
	zonegate {
		issuer http://localhost:` + strconv.Itoa(idp) + `
		users ` + filepath.Join(dir, "users.yaml") + `
		storage bolt ` + filepath.Join(dir, "z.db") + `
		geoip {
			reload 200ms
		}
		zone tor {
			blocklist
			list ` + list + `
		}
		policy p {
			rule {
				allow anyone
				path /public/*
			}
		}
	}
}

http://localhost:` + strconv.Itoa(idp) + ` {
	zonegate_idp
}

http://localhost:` + strconv.Itoa(gate) + ` {
	zonegate_gate p {
		url ` + gateURL + `
	}
	respond "public page"
}
`
	startGateway(t, dir, cfg, gateURL+"/public/x")
	from := func(ip string) int {
		req, _ := http.NewRequest("GET", gateURL+"/public/x", nil)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := from("198.51.100.20"); s != http.StatusForbidden {
		t.Fatalf("listed address: %d, want 403", s)
	}
	if s := from("203.0.113.77"); s != http.StatusOK {
		t.Fatalf("unlisted address: %d, want 200", s)
	}
	if err := os.WriteFile(list+".new", []byte("# exit nodes\n198.51.100.0/24\n203.0.113.77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(list+".new", list); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for from("203.0.113.77") != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("an address added to the list file was not refused within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

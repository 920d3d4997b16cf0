package e2e

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// writeCityDB writes a small GeoIP2-City-shaped database: each prefix with a country and a
// location.
func writeCityDB(t *testing.T, path string, nets map[string][3]string) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", IncludeReservedNetworks: true, RecordSize: 28})
	if err != nil {
		t.Fatal(err)
	}
	for prefix, v := range nets {
		_, ipnet, err := net.ParseCIDR(prefix)
		if err != nil {
			t.Fatal(err)
		}
		lat, _ := strconv.ParseFloat(v[1], 64)
		lon, _ := strconv.ParseFloat(v[2], 64)
		rec := mmdbtype.Map{
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String(v[0])},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(20)},
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestImpossibleTravelAsksForAnotherFactor is the behavior acceptance through the
// binary: bob has signed in from Berlin before; a sign-in from Berlin again passes with the
// password, but a sign-in from New York minutes later is flagged impossible_travel (the reason
// with the distance and speed in the log) and the rule asks it for a code, which bob does not
// have, so he is stopped. Addresses come through X-Forwarded-For from a trusted proxy.
func TestImpossibleTravelAsksForAnotherFactor(t *testing.T) {
	dir := t.TempDir()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	const berlin, newYork = "198.51.100.7", "192.0.2.9"
	writeCityDB(t, filepath.Join(dir, "city.mmdb"), map[string][3]string{
		"198.51.100.0/24": {"DE", "52.52", "13.40"},
		"192.0.2.0/24":    {"US", "40.71", "-74.01"},
	})
	idpPort, gatePort, echoPort := freePort(t), freePort(t), freePort(t)
	idpURL, gateURL := "http://localhost:"+strconv.Itoa(idpPort), "http://localhost:"+strconv.Itoa(gatePort)
	config := func(rules string) string {
		return `{
	admin off
	servers {
		trusted_proxies static 127.0.0.0/8 ::1
	}
	zonegate {
		issuer ` + idpURL + `
		users ` + filepath.Join(dir, "users.yaml") + `
		storage bolt ` + filepath.Join(dir, "z.db") + `
		geoip {
			country_db ` + filepath.Join(dir, "city.mmdb") + `
		}
		behavior {
			max_speed 900
		}
		policy p {
` + rules + `
			rule everyone {
				allow
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
	}
	signIn := func(from string) response {
		c := newClient(t)
		xff := "X-Forwarded-For: " + from
		page := c.follow(gateURL+"/headers", xff)
		if !strings.Contains(page.body, `name="password"`) {
			t.Fatalf("no sign-in form (%d at %s)", page.status, page.url)
		}
		r := c.submitForm(page, url.Values{"username": {"bob"}, "password": {"bob-demo-pass"}})
		for i := 0; i < 10 && r.status >= 300 && r.status < 400; i++ {
			next, err := r.url.Parse(r.location())
			if err != nil {
				t.Fatal(err)
			}
			r = c.do("GET", next.String(), nil, xff)
		}
		return r
	}

	// Before any rule looks at behavior, bob's sign-ins from Berlin fill his history.
	g := startGateway(t, dir, config(""), idpURL+"/healthz", gateURL+"/.zonegate/logout")
	if r := signIn(berlin); r.status != http.StatusOK || !strings.Contains(r.body, `"bob"`) {
		t.Fatalf("bob from Berlin: %d\n%s", r.status, r.body)
	}
	g.stop()

	g = startGateway(t, dir, config(`			rule unusual-travel {
				allow otp
				behavior impossible_travel
			}`), idpURL+"/healthz", gateURL+"/.zonegate/logout")
	if r := signIn(berlin); r.status != http.StatusOK || !strings.Contains(r.body, `"bob"`) {
		t.Fatalf("bob from Berlin again: %d\n%s", r.status, r.body)
	}
	// From New York minutes later: signed in with the password, then sent straight back to
	// the IdP for a stronger sign-in (a step-up asking for a code).
	r := signIn(newYork)
	if !strings.HasPrefix(r.url.String(), idpURL+"/") || !strings.Contains(r.body, `name="password"`) {
		t.Fatalf("bob from New York minutes later: %d at %s, want the IdP asking again\n%s", r.status, r.url, r.body)
	}
	stepUp := false
	for _, line := range strings.Split(g.logs(), "\n") {
		if strings.Contains(line, "step_up (") && strings.Contains(line, "unusual-travel") {
			stepUp = true
		}
	}
	if !stepUp {
		t.Error("no step_up decision by the unusual-travel rule in the log")
	}
	logs := g.logs()
	if !strings.Contains(logs, `"signal":"impossible_travel"`) || !strings.Contains(logs, "from DE to US") || !strings.Contains(logs, "> 900 km/h") {
		t.Errorf("the flagged sign-in and its reason are not in the log:\n%s", logs)
	}
}

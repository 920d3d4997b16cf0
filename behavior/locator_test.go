package behavior

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/zonegate/zonegate/internal/syncbuf"
	"github.com/zonegate/zonegate/store/storetest"
)

// geoNet is one network of a test database: a country (or none) and a location (or none).
type geoNet struct {
	prefix  string
	country string
	loc     Location
}

func (g geoNet) record() mmdbtype.Map {
	rec := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}}
	if g.country != "" {
		rec["country"] = mmdbtype.Map{
			"iso_code":   mmdbtype.String(g.country),
			"geoname_id": mmdbtype.Uint32(2921044),
			"names":      mmdbtype.Map{"en": mmdbtype.String("Somewhere " + g.country)},
		}
		// Where the network is registered is not where the user is.
		rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String("ZZ")}
	}
	if g.loc.Known {
		rec["location"] = mmdbtype.Map{
			"latitude":        mmdbtype.Float64(g.loc.Lat),
			"longitude":       mmdbtype.Float64(g.loc.Lon),
			"accuracy_radius": mmdbtype.Uint16(20),
			"time_zone":       mmdbtype.String("Europe/Berlin"),
		}
	}
	return rec
}

// writeDB writes a database of type dbType holding nets to path, through a temporary file
// renamed over it, as geoipupdate does.
func writeDB(t testing.TB, path, dbType string, nets []geoNet) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true, RecordSize: 28})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.prefix)
		if err != nil {
			t.Fatalf("test network %q: %v", n.prefix, err)
		}
		if err := tree.Insert(ipnet, n.record()); err != nil {
			t.Fatalf("inserting %s: %v", n.prefix, err)
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

var cityNets = []geoNet{
	{prefix: "192.0.2.0/24", country: "DE", loc: berlin},
	{prefix: "198.51.100.0/24", country: "fr", loc: paris},
	{prefix: "203.0.113.0/24", country: "US"},                               // a country only
	{prefix: "10.0.0.0/8", loc: amsterdam},                                  // a location only
	{prefix: "100.64.0.0/10", loc: Location{Lat: 95, Lon: 10, Known: true}}, // out of range
	{prefix: "2001:db8:de::/48", country: "DE", loc: potsdam},
	{prefix: "2001:db8:f0::/48", country: "US", loc: newYork},
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	city := filepath.Join(dir, "city.mmdb")
	writeDB(t, city, "GeoLite2-City", cityNets)
	l, err := OpenLocatorWith(city, LocatorOptions{CheckEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []struct {
		ip      string
		country string
		loc     Location
	}{
		{"192.0.2.1", "DE", berlin},
		{"::ffff:192.0.2.1", "DE", berlin},
		{"198.51.100.200", "FR", paris},
		{"203.0.113.5", "US", Location{}},
		{"10.1.2.3", "", amsterdam},
		{"100.64.0.1", "", Location{}},
		{"192.0.3.1", "", Location{}},
		{"2001:db8:de::1", "DE", potsdam},
		{"2001:db8:de::1%eth0", "DE", potsdam},
		{"2001:db8:f0:1::9", "US", newYork},
		{"2001:db8:f1::1", "", Location{}},
	}
	for _, c := range cases {
		cc, loc := l.Locate(netip.MustParseAddr(c.ip))
		if cc != c.country || loc != c.loc {
			t.Errorf("Locate(%s) = %q, %+v; want %q, %+v", c.ip, cc, loc, c.country, c.loc)
		}
	}
	if cc, loc := l.Locate(netip.Addr{}); cc != "" || loc.Known {
		t.Errorf("Locate(invalid) = %q, %+v", cc, loc)
	}

	// A Country database gives the country only.
	country := filepath.Join(dir, "country.mmdb")
	writeDB(t, country, "GeoLite2-Country", []geoNet{{prefix: "192.0.2.0/24", country: "DE"}})
	lc, err := OpenLocator(country)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if cc, loc := lc.Locate(netip.MustParseAddr("192.0.2.9")); cc != "DE" || loc.Known {
		t.Errorf("Country database: %q, %+v; want DE and no location", cc, loc)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if cc, loc := l.Locate(netip.MustParseAddr("192.0.2.1")); cc != "" || loc.Known {
		t.Errorf("Locate after Close = %q, %+v; want nothing", cc, loc)
	}
	if err := l.Reload(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Reload after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenLocatorErrors(t *testing.T) {
	dir := t.TempDir()
	asn := filepath.Join(dir, "asn.mmdb")
	writeDB(t, asn, "GeoLite2-ASN", []geoNet{{prefix: "192.0.2.0/24"}})
	junk := filepath.Join(dir, "junk.mmdb")
	if err := os.WriteFile(junk, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.mmdb")
	cases := []struct {
		path string
		err  string
	}{
		{asn, `opening the location database "` + asn + `": database type "GeoLite2-ASN": want a City or Country database`},
		{junk, `opening the location database "` + junk + `": not a MaxMind database: `},
		{empty, `opening the location database "` + empty + `": file is empty`},
		{missing, `opening the location database "` + missing + `": open: no such file or directory`},
		{dir, `opening the location database "` + dir + `": not a regular file (d---------)`},
	}
	for _, c := range cases {
		l, err := OpenLocator(c.path)
		if err == nil {
			l.Close()
			t.Errorf("OpenLocator(%s) succeeded", c.path)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("OpenLocator(%s): %v, want %q", filepath.Base(c.path), err, c.err)
		}
	}
	if _, err := OpenLocator(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestLocatorReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "city.mmdb")
	writeDB(t, path, "GeoIP2-City", cityNets)
	clock := storetest.NewClock(t0)
	var logs syncbuf.Buffer
	l, err := OpenLocatorWith(path, LocatorOptions{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:de::1")
	check := func(step string, addr netip.Addr, wantCC string, wantLoc Location) {
		t.Helper()
		if cc, loc := l.Locate(addr); cc != wantCC || loc != wantLoc {
			t.Errorf("%s: Locate(%s) = %q, %+v; want %q, %+v", step, addr, cc, loc, wantCC, wantLoc)
		}
	}
	if err := l.Reload(); err != nil {
		t.Errorf("Reload of an unchanged file: %v", err)
	}

	// The file replaced: Reload reads it.
	writeDB(t, path, "GeoIP2-City", []geoNet{
		{prefix: "192.0.2.0/24", country: "FR", loc: paris},
		{prefix: "2001:db8:de::/48", country: "NL", loc: amsterdam},
	})
	check("replaced, before Reload", v4, "DE", berlin)
	if err := l.Reload(); err != nil {
		t.Fatal(err)
	}
	check("replaced", v4, "FR", paris)
	check("replaced", v6, "NL", amsterdam)

	// A bad file keeps the database read before; Reload says why until the file changes.
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := l.Reload()
		if err == nil || !strings.Contains(err.Error(), `reloading the location database "`+path+`": not a MaxMind database`) {
			t.Errorf("Reload of a bad file: %v", err)
		}
	}
	check("bad file", v4, "FR", paris)

	// Locate looks at the file by itself once CheckEvery has passed, not before.
	writeDB(t, path, "GeoIP2-City", []geoNet{{prefix: "192.0.2.0/24", country: "US", loc: newYork}})
	clock.Advance(59 * time.Second)
	check("59s later", v4, "FR", paris)
	l.wg.Wait()
	check("59s later", v4, "FR", paris)
	clock.Advance(time.Second)
	l.Locate(v4) // starts the look
	l.wg.Wait()
	check("a minute later", v4, "US", newYork)
	check("a minute later", v6, "", Location{})
	if err := l.Reload(); err != nil {
		t.Errorf("Reload after the background reload: %v", err)
	}

	// A file that disappears keeps the database; the error is logged once.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		clock.Advance(time.Minute)
		l.Locate(v4)
		l.wg.Wait()
	}
	check("file removed", v4, "US", newYork)
	if err := l.Reload(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Reload of a removed file: %v", err)
	}
	out := logs.String()
	if n := strings.Count(out, "location database not reloaded"); n != 1 {
		t.Errorf("logged the failed reload %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, "location database reloaded"); n != 2 {
		t.Errorf("logged %d reloads, want 2 (one by Reload, one by Locate):\n%s", n, out)
	}
}

// TestLocatorWithHistory is the acceptance case end to end: addresses located by the database,
// Berlin then New York ten minutes later.
func TestLocatorWithHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "city.mmdb")
	writeDB(t, path, "GeoLite2-City", cityNets)
	l, err := OpenLocator(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	signIn := func(addr string) SignIn {
		ip := netip.MustParseAddr(addr)
		cc, loc := l.Locate(ip)
		return SignIn{IP: ip, Country: cc, Location: loc, Device: "d-1"}
	}
	f := newFixture(t, Config{})
	ctx := context.Background()
	f.record(t, "alice", signIn("192.0.2.10"))
	f.clock.Advance(10 * time.Minute)
	a, err := f.h.Assess(ctx, "alice", signIn("2001:db8:f0::1"))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Any(NewDevice, NewCountry, ImpossibleTravel); !ok || s != NewCountry {
		t.Errorf("Any = %q, %v; want new_country", s, ok)
	}
	if v := a.Verdict(ImpossibleTravel); !v.Matched || v.Reason != "6,385 km in 10m0s from DE to US = 38,310 km/h > 900 km/h" {
		t.Errorf("impossible_travel: %+v", v)
	}
	a, err = f.h.Assess(ctx, "alice", signIn("2001:db8:de::1")) // Potsdam
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Any(NewDevice, NewCountry, ImpossibleTravel); ok {
		t.Errorf("Berlin then Potsdam: %s matched: %+v", s, a.Verdict(s))
	}
}

func BenchmarkLocate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "city.mmdb")
	writeDB(b, path, "GeoLite2-City", cityNets)
	l, err := OpenLocator(path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		if cc, _ := l.Locate(ip); cc != "DE" {
			b.Fatal(cc)
		}
	}
}

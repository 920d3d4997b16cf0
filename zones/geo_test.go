package zones

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"
)

// geoNet is one network of a test database: a City-like record (country and subdivisions) or
// an ASN record (asn > 0). A record with neither has only a continent.
type geoNet struct {
	prefix  string
	country string
	subs    []string
	asn     uint32
}

func (g geoNet) record() mmdbtype.Map {
	rec := mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}}
	if g.country != "" {
		rec["country"] = mmdbtype.Map{
			"iso_code":   mmdbtype.String(g.country),
			"geoname_id": mmdbtype.Uint32(2921044),
			"names":      mmdbtype.Map{"en": mmdbtype.String("Somewhere " + g.country)},
		}
		rec["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String("ZZ")}
	}
	if len(g.subs) > 0 {
		var subs mmdbtype.Slice
		for _, s := range g.subs {
			subs = append(subs, mmdbtype.Map{"iso_code": mmdbtype.String(s)})
		}
		rec["subdivisions"] = subs
	}
	if g.asn != 0 {
		rec = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(g.asn),
			"autonomous_system_organization": mmdbtype.String(fmt.Sprintf("AS %d Ltd", g.asn)),
		}
	}
	return rec
}

// writeDB writes a MaxMind database of nets (later nets replace earlier ones where they
// overlap) to path, through a temporary file renamed over it, as geoipupdate does.
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
	writeAtomically(t, path, func(f *os.File) error {
		_, err := tree.WriteTo(f)
		return err
	})
}

// writeAtomically writes a new file and renames it to path.
func writeAtomically(t testing.TB, path string, write func(*os.File) error) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if err := write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// writeText writes a file in place (truncating it), as an editor or "cat > file" does.
func writeText(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

var cityNets = []geoNet{
	{prefix: "192.0.2.0/24", country: "DE", subs: []string{"BY"}},
	{prefix: "198.51.100.0/24", country: "DE", subs: []string{"BE"}},
	{prefix: "203.0.113.0/25", country: "FR", subs: []string{"IDF", "75"}},
	{prefix: "203.0.113.128/25", country: "US"},
	{prefix: "100.64.0.0/16", country: "GB", subs: []string{"ENG", "LND"}},
	{prefix: "100.65.0.0/16", country: "GB", subs: []string{"SCT"}},
	{prefix: "10.0.0.0/8"}, // a continent only
	{prefix: "2001:db8:de::/48", country: "DE", subs: []string{"BY"}},
	{prefix: "2001:db8:f0::/48", country: "FR"},
	{prefix: "2001:db8:f0:1::/64", country: "us"},
}

var asnNets = []geoNet{
	{prefix: "192.0.2.0/25", asn: 64500},
	{prefix: "192.0.2.128/25", asn: 64501},
	{prefix: "198.51.100.0/24", asn: 64502},
	{prefix: "2001:db8:de::/56", asn: 64500},
	{prefix: "10.0.0.0/8", asn: 4200000000},
}

// testSources writes the city and ASN databases into a new directory and returns Sources for
// them (no reloads) and the directory.
func testSources(t testing.TB) (Sources, string) {
	t.Helper()
	dir := t.TempDir()
	src := Sources{CountryDB: filepath.Join(dir, "city.mmdb"), ASNDB: filepath.Join(dir, "asn.mmdb"), Reload: -1}
	writeDB(t, src.CountryDB, "GeoLite2-City", cityNets)
	writeDB(t, src.ASNDB, "GeoLite2-ASN", asnNets)
	return src, dir
}

func TestLookupGeo(t *testing.T) {
	src, dir := testSources(t)
	tor := filepath.Join(dir, "tor-exits.txt")
	writeText(t, tor, "# Tor exit nodes\n192.0.2.200\n2001:db8:de::7 # inline comment\n\n203.0.113.64-203.0.113.70\n")
	defs := []Def{
		{Name: "office", Entries: []string{"10.1.0.0/16"}},
		{Name: "de", Countries: []string{"DE"}},
		{Name: "bavaria", Countries: []string{"DE-BY"}},
		{Name: "eu", Countries: []string{"de", " fr "}},
		{Name: "cloud", ASNs: []uint32{64500}},
		{Name: "tor", Blocklist: true, Lists: []string{tor}},
		{Name: "sanctioned", Blocklist: true, Countries: []string{"US"}},
		{Name: "badasn", Blocklist: true, ASNs: []uint32{64502}},
		{Name: "london", Countries: []string{"GB-LND", "fr-75"}},
		{Name: "mixed", Entries: []string{"203.0.113.200/32"}, Countries: []string{"DE-BE"}, ASNs: []uint32{64501, 4200000000}, Lists: []string{tor}},
	}
	tab, err := CompileWith(defs, src)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	cases := []struct {
		ip      string
		zones   []string
		blocked string
	}{
		{"192.0.2.1", []string{"de", "bavaria", "eu", "cloud"}, ""},
		{"::ffff:192.0.2.1", []string{"de", "bavaria", "eu", "cloud"}, ""},
		{"192.0.2.127", []string{"de", "bavaria", "eu", "cloud"}, ""},
		{"192.0.2.128", []string{"de", "bavaria", "eu", "mixed"}, ""},
		{"192.0.2.200", []string{"de", "bavaria", "eu", "tor", "mixed"}, "tor"},
		{"192.0.2.255", []string{"de", "bavaria", "eu", "mixed"}, ""},
		{"192.0.1.255", nil, ""},
		{"192.0.3.0", nil, ""},
		{"198.51.100.9", []string{"de", "eu", "badasn", "mixed"}, "badasn"},
		{"203.0.113.1", []string{"eu", "london"}, ""},
		{"203.0.113.64", []string{"eu", "tor", "london", "mixed"}, "tor"},
		{"203.0.113.70", []string{"eu", "tor", "london", "mixed"}, "tor"},
		{"203.0.113.71", []string{"eu", "london"}, ""},
		{"203.0.113.127", []string{"eu", "london"}, ""},
		{"203.0.113.128", []string{"sanctioned"}, "sanctioned"},
		{"203.0.113.200", []string{"sanctioned", "mixed"}, "sanctioned"},
		{"100.64.1.1", []string{"london"}, ""},
		{"100.65.1.1", nil, ""},
		// A record without a country is in no country zone; its ASN still counts.
		{"10.0.0.1", []string{"mixed"}, ""},
		{"10.1.2.3", []string{"office", "mixed"}, ""},
		{"2001:db8:de::1", []string{"de", "bavaria", "eu", "cloud"}, ""},
		{"2001:db8:de::7", []string{"de", "bavaria", "eu", "cloud", "tor", "mixed"}, "tor"},
		{"2001:db8:de:100::", []string{"de", "bavaria", "eu"}, ""},
		{"2001:db8:f0::1", []string{"eu"}, ""},
		// Lower case in the database too.
		{"2001:db8:f0:1::1", []string{"sanctioned"}, "sanctioned"},
		{"2001:db8:f0:2::", []string{"eu"}, ""},
		{"2001:db8:f1::", nil, ""},
		// Aliases of the IPv4 data in IPv6 are in no country or ASN zone.
		{"2002:c000:0201::1", nil, ""},
		{"::192.0.2.1", nil, ""},
		{"2001:0:c000:201::1", nil, ""},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		m := tab.Lookup(ip)
		if got := tab.Names(m); !slices.Equal(got, c.zones) {
			t.Errorf("Lookup(%s): zones %q; want %q", c.ip, got, c.zones)
		}
		name, ok := tab.Blocked(m)
		if name != c.blocked || ok != (c.blocked != "") {
			t.Errorf("Lookup(%s): Blocked = %q, %v; want %q", c.ip, name, ok, c.blocked)
		}
	}
	checkLayout(t, tab.dyn.cur.Load())

	var sink Match
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("::ffff:10.1.2.3"),
		netip.MustParseAddr("2001:db8:de::7"), {}}
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			sink = sink.Union(tab.Lookup(ip))
		}
	}); n != 0 {
		t.Errorf("Lookup allocates %v times per run", n)
	}
}

// TestCompileWithStatic checks that zones with only entries need no Sources and give a table
// that does not reload.
func TestCompileWithStatic(t *testing.T) {
	tab, err := CompileWith(lookupDefs, Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if tab.dyn != nil {
		t.Error("static zones: the table reloads")
	}
	ref, _ := Compile(lookupDefs)
	for _, s := range []string{"10.8.0.9", "2001:db8:1:666::1", "198.51.100.7", "8.8.8.8"} {
		ip := netip.MustParseAddr(s)
		if got, want := tab.Lookup(ip), ref.Lookup(ip); got != want {
			t.Errorf("Lookup(%s) = %q; Compile's table says %q", s, tab.Names(got), ref.Names(want))
		}
	}
	if err := tab.Close(); err != nil {
		t.Error(err)
	}
	var nilTab *Table
	if err := nilTab.Close(); err != nil {
		t.Error(err)
	}
}

func TestCompileWithErrors(t *testing.T) {
	src, dir := testSources(t)
	countryOnly := filepath.Join(dir, "country.mmdb")
	writeDB(t, countryOnly, "GeoLite2-Country", []geoNet{{prefix: "192.0.2.0/24", country: "DE"}})
	garbage := filepath.Join(dir, "garbage.mmdb")
	writeText(t, garbage, "not a database\n")
	missing := filepath.Join(dir, "missing.txt")
	badList := filepath.Join(dir, "bad.txt")
	writeText(t, badList, "192.0.2.1\n# fine so far\n\n10.0.0/8\n")
	empty := filepath.Join(dir, "empty.txt")
	writeText(t, empty, "")
	good := filepath.Join(dir, "good.txt")
	writeText(t, good, "192.0.2.1\n")
	with := func(f func(*Sources)) Sources {
		s := src
		f(&s)
		return s
	}
	cases := []struct {
		name string
		defs []Def
		src  Sources
		err  string
	}{
		{"countries without database", []Def{{Name: "a", Entries: []string{"10.0.0.1"}}, {Name: "eu", Countries: []string{"DE"}}},
			Sources{}, `zone "eu": countries need a country database (Sources.CountryDB)`},
		{"ASNs without database", []Def{{Name: "cloud", ASNs: []uint32{64500}}},
			with(func(s *Sources) { s.ASNDB = "" }), `zone "cloud": ASNs need an ASN database (Sources.ASNDB)`},
		{"country code too long", []Def{{Name: "eu", Countries: []string{"DE", "DEU"}}}, src,
			`zone "eu": country 2 ("DEU"): want an ISO 3166-1 alpha-2 country code such as "DE" or an ISO 3166-2 region such as "DE-BY"`},
		{"country code digits", []Def{{Name: "eu", Countries: []string{"D1"}}}, src, `zone "eu": country 1 ("D1"): want an ISO`},
		{"region too long", []Def{{Name: "eu", Countries: []string{"DE-BAVA"}}}, src, `zone "eu": country 1 ("DE-BAVA"): want an ISO`},
		{"region empty", []Def{{Name: "eu", Countries: []string{"DE-"}}}, src, `zone "eu": country 1 ("DE-"): want an ISO`},
		{"empty country", []Def{{Name: "eu", Countries: []string{" "}}}, src, `zone "eu": country 1 (""): want an ISO`},
		{"ASN 0", []Def{{Name: "cloud", ASNs: []uint32{0}}}, src, `zone "cloud": ASN 1: 0 is not an AS number`},
		{"empty list name", []Def{{Name: "tor", Lists: []string{" "}}}, src, `zone "tor": list 1: empty file name`},
		{"list missing", []Def{{Name: "tor", Lists: []string{good, missing}}}, src,
			`zone "tor": list file "` + missing + `": open: no such file or directory`},
		{"list bad line", []Def{{Name: "ok", Lists: []string{good}}, {Name: "tor", Lists: []string{badList}}}, src,
			`zone "tor": list file "` + badList + `": line 4 ("10.0.0/8"): bad CIDR: netip.ParsePrefix("10.0.0/8"): ParseAddr("10.0.0"): IPv4 address too short`},
		{"list empty", []Def{{Name: "tor", Lists: []string{empty}}}, src,
			`zone "tor": list file "` + empty + `": file is empty (to list no address on purpose, write a comment line)`},
		{"list is a directory", []Def{{Name: "tor", Lists: []string{dir}}}, src,
			`zone "tor": list file "` + dir + `": is a directory`},
		{"country database missing", []Def{{Name: "eu", Countries: []string{"DE"}}},
			with(func(s *Sources) { s.CountryDB = missing }), `country database "` + missing + `": open: no such file or directory`},
		{"country database garbage", []Def{{Name: "eu", Countries: []string{"DE"}}},
			with(func(s *Sources) { s.CountryDB = garbage }), `country database "` + garbage + `": error opening database: invalid MaxMind DB file`},
		{"ASN database missing", []Def{{Name: "cloud", ASNs: []uint32{1}}},
			with(func(s *Sources) { s.ASNDB = missing }), `ASN database "` + missing + `": open: no such file or directory`},
		{"regions need a city database", []Def{{Name: "by", Countries: []string{"DE-BY"}}},
			with(func(s *Sources) { s.CountryDB = countryOnly }),
			`country database "` + countryOnly + `": no network has a region (subdivisions); regions need a City database`},
		{"ASN database as country database", []Def{{Name: "eu", Countries: []string{"DE"}}},
			with(func(s *Sources) { s.CountryDB = s.ASNDB }),
			`country database "` + src.ASNDB + `": no network has a country (country.iso_code); is it a GeoIP2 or GeoLite2 City or Country database?`},
		{"country database as ASN database", []Def{{Name: "cloud", ASNs: []uint32{64500}}},
			with(func(s *Sources) { s.ASNDB = s.CountryDB }),
			`ASN database "` + src.CountryDB + `": no network has an AS number (autonomous_system_number); is it a GeoLite2-ASN database?`},
		// Static checks come first.
		{"no entries", []Def{{Name: "office"}}, src, `zone "office": no entries`},
		{"bad entry", []Def{{Name: "office", Entries: []string{"10.0.0.1/8"}, Lists: []string{missing}}}, src,
			`zone "office": entry 1 ("10.0.0.1/8"): host bits set, did you mean 10.0.0.0/8`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, err := CompileWith(c.defs, c.src)
			if err == nil {
				tab.Close()
				t.Fatalf("CompileWith succeeded; want error %q", c.err)
			}
			if !strings.HasPrefix(err.Error(), c.err) {
				t.Fatalf("CompileWith error:\n got %q\nwant %q", err, c.err)
			}
		})
	}
}

func TestCompileRefusesDynamicZones(t *testing.T) {
	for _, c := range []struct {
		def Def
		err string
	}{
		{Def{Name: "eu", Countries: []string{"DE"}}, `zone "eu": countries need CompileWith`},
		{Def{Name: "cloud", Entries: []string{"10.0.0.0/8"}, ASNs: []uint32{64500}}, `zone "cloud": ASNs need CompileWith`},
		{Def{Name: "tor", Lists: []string{"/nonexistent"}}, `zone "tor": list files need CompileWith`},
		{Def{Name: "eu", Countries: []string{"GER"}}, `zone "eu": country 1 ("GER"): want an ISO`},
	} {
		_, err := Compile([]Def{{Name: "ok", Entries: []string{"::1"}}, c.def})
		if err == nil || !strings.HasPrefix(err.Error(), c.err) {
			t.Errorf("Compile(%+v) error %v; want %q", c.def, err, c.err)
		}
	}
}

// TestUnseenCodesWarned checks that a code no network has is logged, not an error.
func TestUnseenCodesWarned(t *testing.T) {
	src, _ := testSources(t)
	rec := &logRecorder{}
	src.Logger = slog.New(rec)
	tab, err := CompileWith([]Def{{Name: "uk", Countries: []string{"UK", "GB", "DE-XX"}}, {Name: "as", ASNs: []uint32{64500, 7}}}, src)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	for _, code := range []string{"UK", "DE-XX", "7"} {
		if !rec.has(slog.LevelWarn, "no network of the database has this code", "code", code) {
			t.Errorf("no warning for %q; log: %v", code, rec.all())
		}
	}
	if rec.has(slog.LevelWarn, "", "code", "GB") || rec.has(slog.LevelWarn, "", "code", "64500") {
		t.Errorf("warned of a code the database has; log: %v", rec.all())
	}
}

func TestParseCountry(t *testing.T) {
	for _, c := range countryCases {
		got, err := parseCountry(c.in)
		if (err != nil) != (c.want == "") || got != c.want {
			t.Errorf("parseCountry(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// countryCases drive TestParseCountry and seed FuzzParseCountry; an empty want is an error.
var countryCases = []struct{ in, want string }{
	{"DE", "DE"}, {"de", "DE"}, {" fr\t", "FR"}, {"DE-BY", "DE-BY"}, {"fr-75", "FR-75"}, {"GB-LND", "GB-LND"},
	{"US-1", "US-1"}, {"", ""}, {"D", ""}, {"DEU", ""}, {"D1", ""}, {"DE-", ""}, {"DE-BAVA", ""},
	{"-BY", ""}, {"DE-B-Y", ""}, {"DE BY", ""}, {"DÉ", ""}, {"DE_BY", ""},
}

func FuzzParseCountry(f *testing.F) {
	for _, c := range countryCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCountry(s)
		if err != nil {
			if got != "" {
				t.Fatalf("parseCountry(%q) failed (%v) but returned %q", s, err, got)
			}
			return
		}
		if again, err := parseCountry(got); err != nil || again != got {
			t.Fatalf("parseCountry(%q) = %q; reads back as %q, %v", s, got, again, err)
		}
		if got != strings.ToUpper(got) || !strings.EqualFold(got, strings.TrimSpace(s)) {
			t.Fatalf("parseCountry(%q) = %q: not the input in upper case", s, got)
		}
		if cc, sub, _ := strings.Cut(got, "-"); len(cc) != 2 || len(sub) > 3 || strings.Count(got, "-") > 1 {
			t.Fatalf("parseCountry(%q) = %q: bad shape", s, got)
		}
	})
}

// asnCases drive TestParseASN and seed FuzzParseASN. A case with err wants an error containing it.
var asnCases = []struct {
	in   string
	want uint32
	err  string
}{
	{in: "64500", want: 64500},
	{in: "AS64500", want: 64500},
	{in: "as13335", want: 13335},
	{in: " As1 ", want: 1},
	{in: "4294967295", want: 4294967295},
	{in: "AS0064500", want: 64500},
	{in: "0", err: `bad AS number "0": 0 is not an AS number`},
	{in: "AS0", err: "0 is not an AS number"},
	{in: "4294967296", err: `bad AS number "4294967296": larger than 4294967295`},
	{in: "", err: `bad AS number "": want digits, as in 64500 or AS64500`},
	{in: "AS", err: "want digits"},
	{in: "AS-1", err: "want digits"},
	{in: "+5", err: "want digits"},
	{in: "1.10", err: "want digits"},
	{in: "AS 64500", err: "want digits"},
	{in: "64500x", err: "want digits"},
	{in: "0x10", err: "want digits"},
}

func TestParseASN(t *testing.T) {
	for _, c := range asnCases {
		got, err := ParseASN(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseASN(%q) = %d, %v; want error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseASN(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func FuzzParseASN(f *testing.F) {
	for _, c := range asnCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseASN(s)
		if err != nil {
			if n != 0 || !strings.HasPrefix(err.Error(), "bad AS number ") {
				t.Fatalf("ParseASN(%q) = %d, %v", s, n, err)
			}
			return
		}
		if n == 0 {
			t.Fatalf("ParseASN(%q) = 0 without error", s)
		}
		for _, form := range []string{fmt.Sprint(n), fmt.Sprintf("AS%d", n)} {
			if again, err := ParseASN(form); err != nil || again != n {
				t.Fatalf("ParseASN(%q) = %d; %q reads back as %d, %v", s, n, form, again, err)
			}
		}
	})
}

// geoOracle answers from the databases directly, record by record, what CompileWith compiles
// into intervals.
type geoOracle struct {
	city, asn *maxminddb.Reader
	byCode    map[string]Match
	byASN     map[uint32]Match
}

func newGeoOracle(t testing.TB, defs []Def, src Sources) *geoOracle {
	o := &geoOracle{byCode: map[string]Match{}, byASN: map[uint32]Match{}}
	var err error
	if o.city, err = maxminddb.Open(src.CountryDB); err != nil {
		t.Fatal(err)
	}
	if o.asn, err = maxminddb.Open(src.ASNDB); err != nil {
		t.Fatal(err)
	}
	for i, d := range defs {
		for _, c := range d.Countries {
			code, _ := parseCountry(c)
			o.byCode[code] = o.byCode[code].With(i)
		}
		for _, a := range d.ASNs {
			o.byASN[a] = o.byASN[a].With(i)
		}
	}
	return o
}

// aliased are the IPv6 networks a database maps to its IPv4 data, which zones leave out.
var aliased = []netip.Prefix{netip.MustParsePrefix("::/96"), netip.MustParsePrefix("::ffff:0:0/96"),
	netip.MustParsePrefix("2001::/32"), netip.MustParsePrefix("2002::/16")}

func (o *geoOracle) lookup(t testing.TB, ip netip.Addr) Match {
	var m Match
	ip = ip.WithZone("").Unmap()
	for _, p := range aliased {
		if ip.Is6() && p.Contains(ip) {
			return m
		}
	}
	var rec countryRecord
	if err := o.city.Lookup(ip).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if cc := strings.ToUpper(rec.Country.ISOCode); cc != "" {
		m = m.Union(o.byCode[cc])
		for _, s := range rec.Subdivisions {
			m = m.Union(o.byCode[cc+"-"+strings.ToUpper(s.ISOCode)])
		}
	}
	var a asnRecord
	if err := o.asn.Lookup(ip).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if a.Number != 0 {
		m = m.Union(o.byASN[a.Number])
	}
	return m
}

// edges returns the first and last address of every network of the database, and their
// neighbors.
func (o *geoOracle) edges() []netip.Addr {
	var out []netip.Addr
	for _, r := range []*maxminddb.Reader{o.city, o.asn} {
		for res := range r.Networks(maxminddb.IncludeAliasedNetworks()) {
			p := res.Prefix()
			from, to, err := ParseEntry(p.String())
			if err != nil {
				continue
			}
			out = append(out, from, from.Prev(), to, to.Next())
		}
	}
	return out
}

// randomGeo returns random overlapping networks for a City and an ASN database, crowded into a
// few areas, over a few countries, regions and AS numbers.
func randomGeo(r *rand.Rand, n int) (city, asn []geoNet) {
	countries := []string{"DE", "FR", "US", "GB", "JP"}
	subs := []string{"BY", "BE", "IDF", "ENG", "1"}
	prefix := func() string {
		switch r.IntN(3) {
		case 0:
			return netip.PrefixFrom(addrFrom4(0x0a000000|r.Uint32N(1<<16)), 16+r.IntN(17)).Masked().String()
		case 1:
			return netip.PrefixFrom(addrFrom4(0xc0000000|r.Uint32N(1<<20)), 12+r.IntN(21)).Masked().String()
		default:
			return netip.PrefixFrom(addrFrom6(u128{0x2a00000000000000 | r.Uint64N(1<<20)<<32, r.Uint64()}), 24+r.IntN(105)).Masked().String()
		}
	}
	for range n {
		g := geoNet{prefix: prefix()}
		if r.IntN(8) > 0 {
			g.country = countries[r.IntN(len(countries))]
			for range r.IntN(3) {
				g.subs = append(g.subs, subs[r.IntN(len(subs))])
			}
		}
		city = append(city, g)
		asn = append(asn, geoNet{prefix: prefix(), asn: 64500 + r.Uint32N(8)})
	}
	return city, asn
}

// TestGeoMatchesDatabaseLookup compares Lookup with zones of countries, regions, ASNs and
// entries against a linear scan of the entries plus a direct lookup in the databases, at the
// edges of every network and entry and at random addresses.
func TestGeoMatchesDatabaseLookup(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	codes := []string{"DE", "FR", "US", "GB", "JP", "DE-BY", "DE-BE", "FR-IDF", "GB-ENG", "US-1", "JP-BY", "IT"}
	for round := range 8 {
		city, asn := randomGeo(r, 20+r.IntN(300))
		src := Sources{CountryDB: filepath.Join(dir, "city.mmdb"), ASNDB: filepath.Join(dir, "asn.mmdb"), Reload: -1}
		writeDB(t, src.CountryDB, "GeoIP2-City", city)
		writeDB(t, src.ASNDB, "GeoLite2-ASN", asn)
		defs := randomDefs(r, 1+r.IntN(30), 6)
		for i := range defs {
			if r.IntN(3) == 0 {
				defs[i].Entries = nil
			}
			for range r.IntN(3) {
				defs[i].Countries = append(defs[i].Countries, codes[r.IntN(len(codes))])
			}
			for range r.IntN(2) {
				defs[i].ASNs = append(defs[i].ASNs, 64500+r.Uint32N(10))
			}
			if defs[i].empty() {
				defs[i].Countries = []string{"DE"}
			}
		}
		tab, err := CompileWith(defs, src)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		o := newGeoOracle(t, defs, src)
		n := newNaive(t, defs)
		probes := o.edges()
		for _, e := range n {
			probes = append(probes, e.from, e.from.Prev(), e.to, e.to.Next())
		}
		for range 300 {
			probes = append(probes, addrFrom4(0x0a000000|r.Uint32N(1<<16)), addrFrom4(0xc0000000|r.Uint32N(1<<20)),
				addrFrom6(u128{0x2a00000000000000 | r.Uint64N(1<<20)<<32, r.Uint64()}), addrFrom4(r.Uint32()))
		}
		for _, ip := range probes {
			if !ip.IsValid() {
				continue
			}
			for _, form := range []netip.Addr{ip, mapped(ip)} {
				want := n.lookup(form).Union(o.lookup(t, form))
				if got := tab.Lookup(form); got != want {
					t.Fatalf("round %d: Lookup(%v) = %q; scan and databases say %q", round, form, tab.Names(got), tab.Names(want))
				}
			}
		}
		blockedConsistent(t, defs, tab, probes)
		checkLayout(t, tab.dyn.cur.Load())
		tab.Close()
	}
}

// logRecorder is a slog.Handler that keeps the records, for tests.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

// has reports whether a record of that level has msg in its message and an attribute key
// whose value contains val.
func (h *logRecorder) has(level slog.Level, msg, key, val string) bool {
	return h.count(level, msg, key, val) > 0
}

func (h *logRecorder) count(level slog.Level, msg, key, val string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level != level || !strings.Contains(r.Message, msg) {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key && strings.Contains(a.Value.String(), val) {
				n++
				return false
			}
			return true
		})
	}
	return n
}

func (h *logRecorder) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		s := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			s += " " + a.String()
			return true
		})
		out = append(out, s)
	}
	return out
}

// eventually waits up to 10 seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestNetworkAboveIPv4Subtree checks a database whose record for ::/64 holds its IPv4 subtree
// (::/96): IPv4 addresses are in that record, as a database lookup says.
func TestNetworkAboveIPv4Subtree(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "city.mmdb")
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", IncludeReservedNetworks: true, DisableIPv4Aliasing: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []geoNet{{prefix: "::/64", country: "DE"}, {prefix: "2001:db8::/32", country: "FR"}} {
		_, ipnet, _ := net.ParseCIDR(n.prefix)
		if err := tree.Insert(ipnet, n.record()); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomically(t, path, func(f *os.File) error {
		_, err := tree.WriteTo(f)
		return err
	})
	tab, err := CompileWith([]Def{{Name: "de", Countries: []string{"DE"}}, {Name: "fr", Countries: []string{"FR"}}},
		Sources{CountryDB: path, Reload: -1})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{
		"0.0.0.0": "de", "8.8.8.8": "de", "255.255.255.255": "de", "::ffff:8.8.8.8": "de", "::": "de",
		"::1:0:0:1": "de", "::ffff:ffff:ffff:ffff": "de", "0:0:0:1::": "", "2001:db8::1": "fr", "2001:db9::": "",
	} {
		if got := tab.Names(tab.Lookup(netip.MustParseAddr(ip))); !slices.Equal(got, []string{want}) && !(want == "" && got == nil) {
			t.Errorf("Lookup(%s) = %q; want %q", ip, got, want)
		}
	}
	checkLayout(t, tab.dyn.cur.Load())
}

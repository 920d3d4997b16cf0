package zones

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// benchCountries are the countries of the benchmark database.
var benchCountries = []string{"DE", "FR", "US", "GB", "JP", "CN", "RU", "BR", "IN", "NL", "IT", "ES", "PL", "SE", "CA", "AU"}

// writeBenchCityDB writes a City-like database of n networks (random IPv4 /24s and IPv6 /48s in
// 2000::/3) to path, each with a country, a region and a city id, so that records are many and
// mostly distinct as in GeoLite2-City. It returns addresses inside the networks.
func writeBenchCityDB(b *testing.B, path string, n int) []netip.Addr {
	r := rand.New(rand.NewPCG(9, 9))
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-City", RecordSize: 28})
	if err != nil {
		b.Fatal(err)
	}
	var ips []netip.Addr
	for i := range n {
		var p netip.Prefix
		if i%2 == 0 {
			// 1.0.0.0 to 223.255.255.255, outside most reserved networks.
			p = netip.PrefixFrom(addrFrom4((1+r.Uint32N(222))<<24|r.Uint32N(1<<24)&^0xff), 24)
		} else {
			p = netip.PrefixFrom(addrFrom6(u128{0x2400<<48 | r.Uint64N(1<<58)&^0xffff, 0}), 48)
		}
		cc := benchCountries[r.IntN(len(benchCountries))]
		rec := mmdbtype.Map{
			"city":         mmdbtype.Map{"geoname_id": mmdbtype.Uint32(r.Uint32N(200_000))},
			"country":      mmdbtype.Map{"iso_code": mmdbtype.String(cc), "names": mmdbtype.Map{"en": mmdbtype.String("Country " + cc)}},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(fmt.Sprint(r.IntN(20)))}},
		}
		if err := tree.Insert(&net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, rec); err != nil {
			continue // a reserved network
		}
		ips = append(ips, p.Addr().Next())
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		b.Fatal(err)
	}
	return ips
}

// BenchmarkLookupWithCountry looks up addresses in 100k prefixes over 64 zones plus zones of
// countries and regions from a 20k-network City database.
func BenchmarkLookupWithCountry(b *testing.B) {
	defs, v4, v6 := benchDefs(100_000)
	path := filepath.Join(b.TempDir(), "city.mmdb")
	inDB := writeBenchCityDB(b, path, 20_000)
	defs = append(defs,
		Def{Name: "eu", Countries: []string{"DE", "FR", "NL", "IT", "ES", "PL", "SE"}},
		Def{Name: "us", Countries: []string{"US", "US-1", "US-2"}},
		Def{Name: "sanctioned", Blocklist: true, Countries: []string{"RU", "CN-7"}},
	)
	tab, err := CompileWith(defs, Sources{CountryDB: path, Reload: -1})
	if err != nil {
		b.Fatal(err)
	}
	var ips []netip.Addr
	for i := range inDB {
		ips = append(ips, inDB[i], v4[i%len(v4)], v6[i%len(v6)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	var m Match
	for i := 0; b.Loop(); i++ {
		m = tab.Lookup(ips[i%len(ips)])
	}
	sinkMatch = m
}

// BenchmarkCompileCountryDB measures reading and walking a City database of 100k networks
// (GeoLite2-City has about 5 million: scale by 50 for a real one).
func BenchmarkCompileCountryDB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "city.mmdb")
	writeBenchCityDB(b, path, 100_000)
	defs := []Def{{Name: "eu", Countries: []string{"DE", "FR", "NL", "IT", "ES", "PL", "SE", "DE-1"}}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := CompileWith(defs, Sources{CountryDB: path, Reload: -1}); err != nil {
			b.Fatal(err)
		}
	}
}

package zones

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// benchDefs returns n prefixes, half random IPv4 /24s and half random IPv6 /48s in 2000::/3,
// spread over 64 zones, and addresses to look up of each family: half inside a prefix, half
// anywhere.
func benchDefs(n int) (defs []Def, v4, v6 []netip.Addr) {
	r := rand.New(rand.NewPCG(42, 7))
	const zones = 64
	defs = make([]Def, zones)
	for i := range defs {
		defs[i] = Def{Name: fmt.Sprintf("zone-%d", i), Blocklist: i%16 == 0}
	}
	for i := range n {
		var e string
		if i%2 == 0 {
			a := addrFrom4(r.Uint32() &^ 0xff)
			e = a.String() + "/24"
			v4 = append(v4, a.Next(), addrFrom4(r.Uint32()))
		} else {
			a := addrFrom6(u128{0x2000<<48 | r.Uint64N(1<<61)&^0xffff, 0})
			e = a.String() + "/48"
			v6 = append(v6, addrFrom6(u128{v6key(a).hi | r.Uint64N(1<<16), r.Uint64()}),
				addrFrom6(u128{0x2000<<48 | r.Uint64N(1<<61), r.Uint64()}))
		}
		z := r.IntN(zones)
		defs[z].Entries = append(defs[z].Entries, e)
	}
	r.Shuffle(len(v4), func(i, j int) { v4[i], v4[j] = v4[j], v4[i] })
	r.Shuffle(len(v6), func(i, j int) { v6[i], v6[j] = v6[j], v6[i] })
	return defs, v4, v6
}

var sinkMatch Match

func BenchmarkLookup(b *testing.B) {
	defs, v4, v6 := benchDefs(100_000)
	tab, err := Compile(defs)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ips  []netip.Addr
	}{{"v4", v4}, {"v6", v6}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var m Match
			for i := 0; b.Loop(); i++ {
				m = tab.Lookup(c.ips[i%len(c.ips)])
			}
			sinkMatch = m
		})
	}
}

func BenchmarkCompile100k(b *testing.B) {
	defs, _, _ := benchDefs(100_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(defs); err != nil {
			b.Fatal(err)
		}
	}
}

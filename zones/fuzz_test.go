package zones

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseEntry(f *testing.F) {
	for _, c := range entryCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		from, to, err := ParseEntry(s)
		if err != nil {
			if from.IsValid() || to.IsValid() {
				t.Fatalf("ParseEntry(%q) failed (%v) but returned %v, %v", s, err, from, to)
			}
			return
		}
		checkEntry(t, s, from, to)
	})
}

func FuzzParseClientIP(f *testing.F) {
	for _, c := range clientIPCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseClientIP(s)
		if err != nil {
			if a.IsValid() {
				t.Fatalf("ParseClientIP(%q) failed (%v) but returned %v", s, err, a)
			}
			// Everything netip accepts as an address, ParseClientIP accepts too.
			if _, perr := netip.ParseAddr(s); perr == nil {
				t.Fatalf("ParseClientIP(%q): %v; netip.ParseAddr accepts it", s, err)
			}
			return
		}
		checkClientIP(t, s, a)
	})
}

// FuzzLookup builds zones from data and compares Lookup with the linear scan at probe and at
// the edges of every entry. Each 19-byte record of data is one entry: zone (mod 8), kind,
// 16 address bytes, prefix length; entries are written as text so Compile parses them.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{}, []byte{10, 0, 0, 1})
	seed := []byte{
		0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8,
		1, 1, 10, 0, 0, 1, 10, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		2, 3, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 48,
		2, 2, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32,
		3, 4, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
	}
	f.Add(seed, []byte{10, 0, 0, 7})
	f.Add(seed, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data, probe []byte) {
		const zones, rec = 8, 19
		defs := make([]Def, zones)
		for i := range defs {
			defs[i].Name = "z" + string(rune('0'+i))
			defs[i].Blocklist = i%3 == 0
		}
		for ; len(data) >= rec; data = data[rec:] {
			z, kind, b, bits := int(data[0])%zones, data[1]%5, data[2:18], int(data[18])
			v4 := netip.AddrFrom4([4]byte(b[:4]))
			v6 := netip.AddrFrom16([16]byte(b))
			var e string
			switch kind {
			case 0: // IPv4 CIDR
				e = netip.PrefixFrom(v4, bits%33).Masked().String()
			case 1: // IPv4 range from the first 4 bytes to the next 4
				a, c := v4, netip.AddrFrom4([4]byte(b[4:8]))
				if c.Less(a) {
					a, c = c, a
				}
				e = a.String() + "-" + c.String()
			case 2: // IPv4, written mapped
				p := netip.PrefixFrom(v4, bits%33).Masked()
				e = "::ffff:" + p.Addr().String() + "/" + strconv.Itoa(96+p.Bits())
			case 3: // IPv6 CIDR
				e = netip.PrefixFrom(v6, bits%129).Masked().String()
			case 4: // IPv6 range between the address and the address with its low bits set
				hi := binary.BigEndian.Uint64(b[:8])
				lo := binary.BigEndian.Uint64(b[8:])
				end := addrFrom6(u128{hi, lo | (1<<(bits%64) - 1)})
				e = v6.String() + "-" + end.String()
			}
			defs[z].Entries = append(defs[z].Entries, e)
		}
		var used []Def
		for _, d := range defs {
			if len(d.Entries) > 0 {
				used = append(used, d)
			}
		}
		tab, err := Compile(used)
		if err != nil {
			t.Fatalf("Compile(%v): %v", used, err)
		}
		var probes []netip.Addr
		switch len(probe) {
		case 4:
			probes = append(probes, netip.AddrFrom4([4]byte(probe)))
		case 16:
			probes = append(probes, netip.AddrFrom16([16]byte(probe)))
		default:
			if a, err := netip.ParseAddr(strings.TrimSpace(string(probe))); err == nil {
				probes = append(probes, a)
			}
		}
		checkAgainstNaive(t, used, tab, probes)
		blockedConsistent(t, used, tab, probes)
	})
}

package zones

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	many := make([]Def, MaxZones+1)
	for i := range many {
		many[i] = Def{Name: fmt.Sprintf("z%d", i), Entries: []string{"10.0.0.1"}}
	}
	ok := []string{"10.0.0.0/8"}
	cases := []struct {
		name string
		defs []Def
		err  string
	}{
		{"too many zones", many, "too many zones: 257 (at most 256)"},
		{"empty name", []Def{{Name: "", Entries: ok}}, `zone 1 (""): zone name is empty`},
		{"long name", []Def{{Name: "a", Entries: ok}, {Name: strings.Repeat("x", 65), Entries: ok}},
			`zone 2 ("` + strings.Repeat("x", 65) + `"): zone name is longer than 64 characters`},
		{"upper case", []Def{{Name: "Office", Entries: ok}},
			`zone 1 ("Office"): zone name has 'O' at byte 0; use a-z, 0-9, '_' and '-'`},
		{"space", []Def{{Name: "my office", Entries: ok}},
			`zone 1 ("my office"): zone name has ' ' at byte 2; use a-z, 0-9, '_' and '-'`},
		{"duplicate", []Def{{Name: "office", Entries: ok}, {Name: "vpn", Entries: ok}, {Name: "office", Entries: ok}},
			`zone "office": name already used by zone 1`},
		{"no entries", []Def{{Name: "office"}}, `zone "office": no entries`},
		{"empty entry", []Def{{Name: "office", Entries: []string{"10.0.0.0/8", " "}}},
			`zone "office": entry 2 (""): empty entry`},
		{"reversed range", []Def{{Name: "office", Entries: []string{"10.0.0.0/8", "10.0.0.9-10.0.0.1"}}},
			`zone "office": entry 2 ("10.0.0.9-10.0.0.1"): range start is after its end`},
		{"host bits", []Def{{Name: "office", Entries: []string{" 10.0.0.1/8 "}}},
			`zone "office": entry 1 ("10.0.0.1/8"): host bits set, did you mean 10.0.0.0/8`},
		{"host bits v6", []Def{{Name: "lab", Entries: []string{"2001:db8::1/64"}}},
			`zone "lab": entry 1 ("2001:db8::1/64"): host bits set, did you mean 2001:db8::/64`},
		{"bad CIDR", []Def{{Name: "office", Entries: []string{"10.0.0/8"}}},
			`zone "office": entry 1 ("10.0.0/8"): bad CIDR: netip.ParsePrefix("10.0.0/8"): ParseAddr("10.0.0"): IPv4 address too short`},
		{"bad address", []Def{{Name: "office", Entries: []string{"10.0.0.256"}}},
			`zone "office": entry 1 ("10.0.0.256"): bad address: ParseAddr("10.0.0.256"): IPv4 field has value >255`},
		{"mixed range", []Def{{Name: "office", Entries: []string{"10.0.0.1-::1"}}},
			`zone "office": entry 1 ("10.0.0.1-::1"): range start and end are of different address families`},
		{"zone in entry", []Def{{Name: "office", Entries: []string{"fe80::1%eth0"}}},
			`zone "office": entry 1 ("fe80::1%eth0"): address "fe80::1%eth0" has an IPv6 zone, which a network zone cannot use`},
		{"bad range end", []Def{{Name: "office", Entries: []string{"10.0.0.1-10.0.0"}}},
			`zone "office": entry 1 ("10.0.0.1-10.0.0"): range end: bad address: ParseAddr("10.0.0"): IPv4 address too short`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab, err := Compile(c.defs)
			if err == nil {
				t.Fatalf("Compile succeeded (%d zones); want error %q", tab.Len(), c.err)
			}
			if err.Error() != c.err {
				t.Fatalf("Compile error:\n got %q\nwant %q", err, c.err)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, defs := range [][]Def{
		nil,
		{{Name: "a", Entries: []string{"0.0.0.0/0", "::/0"}}},
		{{Name: strings.Repeat("z", 64), Entries: []string{"255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}}},
		{{Name: "a-b_0-9", Entries: []string{"0.0.0.0", "::"}}},
	} {
		if _, err := Compile(defs); err != nil {
			t.Errorf("Compile(%v): %v", defs, err)
		}
	}
	full := make([]Def, MaxZones)
	for i := range full {
		full[i] = Def{Name: fmt.Sprintf("z%d", i), Entries: []string{fmt.Sprintf("10.0.%d.0/24", i)}, Blocklist: i == MaxZones-1}
	}
	tab, err := Compile(full)
	if err != nil {
		t.Fatalf("Compile(%d zones): %v", MaxZones, err)
	}
	m := tab.Lookup(netip.MustParseAddr("10.0.255.9"))
	if got := tab.Names(m); !slices.Equal(got, []string{"z255"}) {
		t.Errorf("zone 255: Names = %q", got)
	}
	if name, ok := tab.Blocked(m); !ok || name != "z255" {
		t.Errorf("zone 255: Blocked = %q, %v", name, ok)
	}
}

// lookupDefs is the table TestLookup and FuzzLookup use.
var lookupDefs = []Def{
	{Name: "office", Entries: []string{"10.0.0.0/8", "192.168.1.0/24", "2001:db8:1::/48"}},
	{Name: "vpn", Entries: []string{"10.8.0.0/16", "10.0.0.1-10.0.0.50", "fd00::1-fd00::ff"}},
	{Name: "badguys", Blocklist: true, Entries: []string{"10.8.0.0/24", "203.0.113.0/24", "2001:db8:1:666::/64"}},
	{Name: "loopback", Entries: []string{"127.0.0.0/8", "::1"}},
	{Name: "edges", Entries: []string{"0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}},
	{Name: "mapped", Entries: []string{"::ffff:172.16.0.0/108"}},
	{Name: "tor", Blocklist: true, Entries: []string{"198.51.100.7", "203.0.113.128/25"}},
}

func TestLookup(t *testing.T) {
	tab, err := Compile(lookupDefs)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ip      string
		zones   []string
		blocked string
	}{
		{"10.1.2.3", []string{"office"}, ""},
		{"::ffff:10.1.2.3", []string{"office"}, ""},
		{"9.255.255.255", nil, ""},
		{"11.0.0.0", nil, ""},
		{"10.255.255.255", []string{"office"}, ""},
		{"10.0.0.0", []string{"office"}, ""},
		// Range edges.
		{"10.0.0.1", []string{"office", "vpn"}, ""},
		{"10.0.0.50", []string{"office", "vpn"}, ""},
		{"10.0.0.51", []string{"office"}, ""},
		// Nested overlaps across three zones.
		{"10.8.0.9", []string{"office", "vpn", "badguys"}, "badguys"},
		{"10.8.1.0", []string{"office", "vpn"}, ""},
		{"10.8.255.255", []string{"office", "vpn"}, ""},
		{"10.9.0.0", []string{"office"}, ""},
		// Two blocklists: the first by index is reported.
		{"203.0.113.1", []string{"badguys"}, "badguys"},
		{"203.0.113.200", []string{"badguys", "tor"}, "badguys"},
		{"198.51.100.7", []string{"tor"}, "tor"},
		{"198.51.100.8", nil, ""},
		{"127.0.0.1", []string{"loopback"}, ""},
		{"::1", []string{"loopback"}, ""},
		{"::2", nil, ""},
		{"0.0.0.0", []string{"edges"}, ""},
		{"0.0.0.1", nil, ""},
		{"255.255.255.255", []string{"edges"}, ""},
		{"255.255.255.254", nil, ""},
		{"::", []string{"edges"}, ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"edges"}, ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", nil, ""},
		// IPv6, nested.
		{"2001:db8:1::1", []string{"office"}, ""},
		{"2001:db8:1:666::1", []string{"office", "badguys"}, "badguys"},
		{"2001:db8:1:667::", []string{"office"}, ""},
		{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", []string{"office"}, ""},
		{"2001:db8:2::", nil, ""},
		{"2001:db8:0:ffff:ffff:ffff:ffff:ffff", nil, ""},
		{"fd00::", nil, ""},
		{"fd00::1", []string{"vpn"}, ""},
		{"fd00::ff", []string{"vpn"}, ""},
		{"fd00::100", nil, ""},
		// A mapped entry is IPv4: it matches the plain and the mapped form.
		{"172.16.0.1", []string{"mapped"}, ""},
		{"::ffff:172.31.255.255", []string{"mapped"}, ""},
		{"172.32.0.0", nil, ""},
		// IPv6 zones are ignored.
		{"2001:db8:1::1%eth0", []string{"office"}, ""},
		// An IPv4-compatible (not mapped) address is IPv6.
		{"::10.1.2.3", nil, ""},
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
		for _, z := range c.zones {
			if i, ok := tab.Index(z); !ok || !m.Has(i) {
				t.Errorf("Lookup(%s): Has(Index(%q)) is false", c.ip, z)
			}
		}
	}
	if m := tab.Lookup(netip.Addr{}); !m.Empty() {
		t.Errorf("Lookup(zero Addr) = %q; want no zones", tab.Names(m))
	}
}

func TestTableAccessors(t *testing.T) {
	tab, err := Compile(lookupDefs)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != len(lookupDefs) {
		t.Errorf("Len = %d; want %d", tab.Len(), len(lookupDefs))
	}
	for i, d := range lookupDefs {
		if tab.Name(i) != d.Name {
			t.Errorf("Name(%d) = %q; want %q", i, tab.Name(i), d.Name)
		}
		if j, ok := tab.Index(d.Name); !ok || j != i {
			t.Errorf("Index(%q) = %d, %v; want %d", d.Name, j, ok, i)
		}
	}
	if _, ok := tab.Index("nope"); ok {
		t.Error(`Index("nope") found a zone`)
	}
	for _, i := range []int{-1, len(lookupDefs), MaxZones} {
		if n := tab.Name(i); n != "" {
			t.Errorf("Name(%d) = %q; want empty", i, n)
		}
	}
	// Bits past the last zone are not named, nor reported as blocked.
	var m Match
	m = m.With(len(lookupDefs)).With(MaxZones - 1)
	if got := tab.Names(m); got != nil {
		t.Errorf("Names(unknown zones) = %q", got)
	}
	if name, ok := tab.Blocked(m); ok {
		t.Errorf("Blocked(unknown zones) = %q", name)
	}
	var _ interface{ Index(string) (int, bool) } = tab
}

func TestNilTable(t *testing.T) {
	var tab *Table
	if m := tab.Lookup(netip.MustParseAddr("10.0.0.1")); !m.Empty() {
		t.Error("nil Table: Lookup found a zone")
	}
	if _, ok := tab.Index("office"); ok {
		t.Error("nil Table: Index found a zone")
	}
	if tab.Len() != 0 || tab.Name(0) != "" || tab.Names(Match{}.With(0)) != nil {
		t.Error("nil Table: has zones")
	}
	if _, ok := tab.Blocked(Match{}.With(0)); ok {
		t.Error("nil Table: Blocked")
	}
	var zero Table
	if m := zero.Lookup(netip.MustParseAddr("::1")); !m.Empty() {
		t.Error("zero Table: Lookup found a zone")
	}
	empty, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := empty.Lookup(netip.MustParseAddr("10.0.0.1")); !m.Empty() || empty.Len() != 0 {
		t.Error("empty Table: has zones")
	}
}

func TestLookupAllocs(t *testing.T) {
	tab, err := Compile(lookupDefs)
	if err != nil {
		t.Fatal(err)
	}
	ips := []netip.Addr{netip.MustParseAddr("10.8.0.9"), netip.MustParseAddr("::ffff:10.1.2.3"),
		netip.MustParseAddr("2001:db8:1:666::1"), netip.MustParseAddr("fe80::1%eth0"), {}}
	var sink Match
	if n := testing.AllocsPerRun(100, func() {
		for _, ip := range ips {
			sink = sink.Union(tab.Lookup(ip))
		}
	}); n != 0 {
		t.Errorf("Lookup allocates %v times per run", n)
	}
}

// naive is the reference Lookup: a linear scan over every entry of every zone.
type naive []struct {
	zone     int
	from, to netip.Addr
}

func newNaive(t testing.TB, defs []Def) naive {
	var n naive
	for i, d := range defs {
		for _, e := range d.Entries {
			from, to, err := ParseEntry(e)
			if err != nil {
				t.Fatalf("naive: %v", err)
			}
			n = append(n, struct {
				zone     int
				from, to netip.Addr
			}{i, from, to})
		}
	}
	return n
}

func (n naive) lookup(ip netip.Addr) Match {
	var m Match
	if !ip.IsValid() {
		return m
	}
	ip = ip.WithZone("").Unmap()
	for _, e := range n {
		if e.from.Is4() == ip.Is4() && e.from.Compare(ip) <= 0 && ip.Compare(e.to) <= 0 {
			m = m.With(e.zone)
		}
	}
	return m
}

// checkAgainstNaive compares Lookup with the linear scan at probes and at the edges of every
// entry, each IPv4 address also in its mapped form.
func checkAgainstNaive(t *testing.T, defs []Def, tab *Table, probes []netip.Addr) {
	t.Helper()
	n := newNaive(t, defs)
	for _, e := range n {
		probes = append(probes, e.from, e.from.Prev(), e.to, e.to.Next())
	}
	for _, ip := range probes {
		for _, form := range []netip.Addr{ip, mapped(ip)} {
			if got, want := tab.Lookup(form), n.lookup(form); got != want {
				t.Fatalf("Lookup(%v) = %q; linear scan says %q", form, tab.Names(got), tab.Names(want))
			}
		}
	}
}

// mapped returns an IPv4 address in its IPv4-mapped IPv6 form, anything else unchanged.
func mapped(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

// randomDefs makes zones whose entries crowd into a few small areas, so they overlap a lot, plus
// a few wide ones and the ends of both address spaces.
func randomDefs(r *rand.Rand, zones, entries int) []Def {
	v4 := func() netip.Addr {
		bases := []uint32{0, 0x0a000000, 0xc0a80000, 0xffff0000}
		return addrFrom4(bases[r.IntN(len(bases))] | r.Uint32N(1<<12))
	}
	v6 := func() netip.Addr {
		bases := []u128{{0, 0}, {0x20010db800000000, 0}, {^uint64(0), 0xffffffffffff0000}}
		b := bases[r.IntN(len(bases))]
		return addrFrom6(u128{b.hi, b.lo | r.Uint64N(1<<14)})
	}
	defs := make([]Def, zones)
	for i := range defs {
		d := Def{Name: fmt.Sprintf("z%d", i), Blocklist: r.IntN(4) == 0}
		for range 1 + r.IntN(entries) {
			var e string
			switch r.IntN(9) {
			case 0:
				e = v4().String()
			case 1:
				e = "::ffff:" + v4().String()
			case 2:
				e = netip.PrefixFrom(v4(), 20+r.IntN(13)).Masked().String()
			case 3:
				a, b := v4(), v4()
				if b.Less(a) {
					a, b = b, a
				}
				e = a.String() + "-" + b.String()
			case 4:
				e = v6().String()
			case 5:
				e = netip.PrefixFrom(v6(), 112+r.IntN(17)).Masked().String()
			case 6:
				a, b := v6(), v6()
				if b.Less(a) {
					a, b = b, a
				}
				e = a.String() + " - " + b.String()
			case 7:
				e = netip.PrefixFrom(v4(), r.IntN(12)).Masked().String()
			case 8:
				e = netip.PrefixFrom(v6(), r.IntN(40)).Masked().String()
			}
			d.Entries = append(d.Entries, e)
		}
		defs[i] = d
	}
	return defs
}

func TestLookupMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		defs := randomDefs(r, 1+r.IntN(40), 12)
		if round == 0 {
			defs = randomDefs(r, MaxZones, 3)
		}
		tab, err := Compile(defs)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		probes := []netip.Addr{
			netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"),
			netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		}
		more := randomDefs(r, 1, 200)[0].Entries
		for _, e := range more {
			from, to, _ := ParseEntry(e)
			probes = append(probes, from, to)
		}
		for range 200 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			probes = append(probes, netip.AddrFrom16(b), netip.AddrFrom4([4]byte(b[:4])))
		}
		checkAgainstNaive(t, defs, tab, probes)
		blockedConsistent(t, defs, tab, probes)
		checkLayout(t, tab)
	}
}

// checkLayout checks the compiled intervals: they start at the lowest address, are sorted, and
// neighbors differ (equal neighbors would be merged).
func checkLayout(t *testing.T, tab *Table) {
	t.Helper()
	if len(tab.v4) == 0 || tab.v4[0] != 0 || len(tab.v6) == 0 || tab.v6[0] != (u128{}) ||
		len(tab.v4) != len(tab.v4m) || len(tab.v6) != len(tab.v6m) || tab.matches[0] != (Match{}) {
		t.Fatalf("bad table layout: %d/%d v4, %d/%d v6 intervals", len(tab.v4), len(tab.v4m), len(tab.v6), len(tab.v6m))
	}
	for _, x := range []struct {
		idx   []uint32
		n     int
		shift uint8
		width uint8
	}{{tab.v4idx, len(tab.v4), tab.v4shift, 32}, {tab.v6idx, len(tab.v6), tab.v6shift, 64}} {
		if len(x.idx) != 1<<(x.width-x.shift)+1 || x.idx[0] != 0 || int(x.idx[len(x.idx)-1]) != x.n ||
			!slices.IsSorted(x.idx) {
			t.Fatalf("bad index: %d entries, shift %d, first %d, last %d of %d", len(x.idx), x.shift, x.idx[0], x.idx[len(x.idx)-1], x.n)
		}
	}
	for i := 1; i < len(tab.v4); i++ {
		if tab.v4[i-1] >= tab.v4[i] || tab.v4m[i-1] == tab.v4m[i] {
			t.Fatalf("IPv4 intervals %d and %d: starts %d, %d, matches %d, %d", i-1, i, tab.v4[i-1], tab.v4[i], tab.v4m[i-1], tab.v4m[i])
		}
	}
	for i := 1; i < len(tab.v6); i++ {
		if !tab.v6[i-1].less(tab.v6[i]) || tab.v6m[i-1] == tab.v6m[i] {
			t.Fatalf("IPv6 intervals %d and %d: starts %v, %v, matches %d, %d", i-1, i, tab.v6[i-1], tab.v6[i], tab.v6m[i-1], tab.v6m[i])
		}
	}
}

// blockedConsistent checks Blocked against the defs for each probe.
func blockedConsistent(t *testing.T, defs []Def, tab *Table, probes []netip.Addr) {
	t.Helper()
	for _, ip := range probes {
		m := tab.Lookup(ip)
		want := ""
		for i, d := range defs {
			if d.Blocklist && m.Has(i) {
				want = d.Name
				break
			}
		}
		if got, ok := tab.Blocked(m); got != want || ok != (want != "") {
			t.Fatalf("Blocked(Lookup(%v)) = %q, %v; want %q", ip, got, ok, want)
		}
	}
}

// TestIndexMatchesFullSearch checks the top-bits index on a large table: narrowing the search
// with it finds the same interval as a binary search over all of them, at and around every
// interval start and at random addresses.
func TestIndexMatchesFullSearch(t *testing.T) {
	defs, v4, v6 := benchDefs(20_000)
	tab, err := Compile(defs)
	if err != nil {
		t.Fatal(err)
	}
	if tab.v4shift == 32 || tab.v6shift == 64 {
		t.Fatalf("index not used: shifts %d, %d", tab.v4shift, tab.v6shift)
	}
	checkLayout(t, tab)
	for _, x := range v4 {
		v4 := v4key(x)
		for _, y := range []uint32{v4, v4 - 1, v4 + 1} {
			if got, want := tab.find4(y), full4(tab.v4, y); got != want {
				t.Fatalf("find4(%v) = %d; full search says %d", addrFrom4(y), got, want)
			}
		}
	}
	for _, s := range tab.v4 {
		for _, y := range []uint32{s, s - 1, s + 1} {
			if got, want := tab.find4(y), full4(tab.v4, y); got != want {
				t.Fatalf("find4(%v) = %d; full search says %d", addrFrom4(y), got, want)
			}
		}
	}
	probes6 := slices.Clone(tab.v6)
	for _, x := range v6 {
		probes6 = append(probes6, v6key(x))
	}
	for _, s := range probes6 {
		prev := u128{s.hi, s.lo - 1}
		if s.lo == 0 {
			prev.hi--
		}
		for _, y := range []u128{s, prev, s.next()} {
			if got, want := tab.find6(y), full6(tab.v6, y); got != want {
				t.Fatalf("find6(%v) = %d; full search says %d", addrFrom6(y), got, want)
			}
		}
	}
}

func full4(s []uint32, x uint32) int {
	i, found := slices.BinarySearch(s, x)
	if found {
		return i
	}
	return i - 1
}

func full6(s []u128, x u128) int {
	i, found := slices.BinarySearchFunc(s, x, u128.cmp)
	if found {
		return i
	}
	return i - 1
}

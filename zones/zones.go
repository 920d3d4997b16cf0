// Package zones matches client addresses against named network zones.
package zones

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
)

// Def is one zone as configured. A zone needs at least one entry, country, ASN or list; an
// address is in the zone if any of them covers it.
type Def struct {
	// Name identifies the zone in policies and logs: 1 to 64 characters of a-z, 0-9, '_' and
	// '-', unique within a Table.
	Name string
	// Blocklist marks a zone whose members are denied every request before any login.
	Blocklist bool
	// Entries are the addresses in the zone, each a CIDR ("10.0.0.0/8", "2001:db8::/32"), a
	// single address ("192.0.2.7", "::1") or a range of one family ("10.0.0.1-10.0.0.50"); see
	// ParseEntry. Entries may overlap, within and across zones.
	Entries []string
	// Countries adds the addresses a GeoIP2/GeoLite2 database places in a country, by ISO
	// 3166-1 alpha-2 code ("DE"), or in a region of one, by ISO 3166-2 code ("DE-BY": the
	// country, a dash and the 1 to 3 letters or digits of the subdivision). Case does not
	// matter. They need CompileWith and Sources.CountryDB (a City database for regions).
	Countries []string
	// ASNs adds the addresses an ASN database (GeoLite2-ASN format) assigns to one of these
	// autonomous system numbers. They need CompileWith and Sources.ASNDB.
	ASNs []uint32
	// Lists adds the addresses in these files, re-read when they change (see CompileWith for
	// the format). They need CompileWith.
	Lists []string
}

// empty reports whether d has nothing that puts an address in the zone.
func (d *Def) empty() bool {
	return len(d.Entries) == 0 && len(d.Countries) == 0 && len(d.ASNs) == 0 && len(d.Lists) == 0
}

// maxNameLen is the longest zone name Compile accepts.
const maxNameLen = 64

// Table is a compiled set of zones. Lookup is a binary search over sorted, non-overlapping
// address intervals, each carrying the Match of the zones that cover it, so it is O(log n) and
// allocates nothing; a small index on the top bits of the address picks the slice to search.
// A Table is safe for concurrent use. A Table from Compile is immutable; one from CompileWith
// whose zones use lists or databases swaps in a new version of its intervals when they change,
// and each Lookup sees one whole version. A nil *Table has no zones.
type Table struct {
	names  []string
	byName map[string]int
	block  Match // the blocklist zones

	// matches holds each distinct Match once; index 0 is the empty Match.
	matches []Match
	// v4[i] is the first address of the i-th IPv4 interval, which runs up to v4[i+1]-1 (the
	// last one to 255.255.255.255); v4[0] is 0. v4m[i] indexes its Match in matches.
	v4  []uint32
	v4m []uint32
	// v4idx narrows the search: an address x lies in one of the intervals v4idx[b]-1 up to
	// v4idx[b+1]-1, where b is x>>v4shift. v4idx[b] is the first interval starting at or after
	// b<<v4shift.
	v4idx   []uint32
	v4shift uint8
	// v6, v6m, v6idx and v6shift are the same for IPv6; v6shift applies to the high 64 bits.
	v6      []u128
	v6m     []uint32
	v6idx   []uint32
	v6shift uint8

	// dyn is set on a Table from CompileWith whose zones use lists or databases: its current
	// version of the intervals above (a Table with only those fields) replaces them in Lookup.
	dyn *dynamic
}

// Compile checks defs and builds a Table of static zones: zone i of the table is defs[i]. It
// fails on more than MaxZones zones, a bad or duplicate name, a zone without entries, any bad
// entry, or a zone that uses countries, ASNs or lists (those need CompileWith); the error names
// the zone and the entry (numbered from 1), e.g.
//
//	zone "office": entry 2 ("10.0.0.9-10.0.0.1"): range start is after its end
//
// No defs gives an empty Table, in which every address is in no zone.
func Compile(defs []Def) (*Table, error) {
	t, ev4, ev6, err := newTable(defs)
	if err != nil {
		return nil, err
	}
	for _, d := range defs {
		var what string
		switch {
		case len(d.Countries) > 0:
			what = "countries"
		case len(d.ASNs) > 0:
			what = "ASNs"
		case len(d.Lists) > 0:
			what = "list files"
		default:
			continue
		}
		return nil, fmt.Errorf("zone %q: %s need CompileWith", d.Name, what)
	}
	l := sweepLayer(ev4, ev6)
	t.matches, t.v4, t.v4m, t.v6, t.v6m = l.matches, l.v4, l.v4m, l.v6, l.v6m
	t.index()
	return t, nil
}

// newTable checks defs and returns a Table with their names and blocklist set, and the events
// of their static entries. It checks the shape of countries and ASNs but not whether a source
// for them is given.
func newTable(defs []Def) (t *Table, ev4 []event[uint32], ev6 []event[u128], err error) {
	if len(defs) > MaxZones {
		return nil, nil, nil, fmt.Errorf("too many zones: %d (at most %d)", len(defs), MaxZones)
	}
	t = &Table{
		names:  make([]string, len(defs)),
		byName: make(map[string]int, len(defs)),
	}
	for i, d := range defs {
		if err := checkName(d.Name); err != nil {
			return nil, nil, nil, fmt.Errorf("zone %d (%q): %w", i+1, d.Name, err)
		}
		if j, dup := t.byName[d.Name]; dup {
			return nil, nil, nil, fmt.Errorf("zone %q: name already used by zone %d", d.Name, j+1)
		}
		t.names[i] = d.Name
		t.byName[d.Name] = i
		if d.Blocklist {
			t.block = t.block.With(i)
		}
		if d.empty() {
			return nil, nil, nil, fmt.Errorf("zone %q: no entries", d.Name)
		}
		z := uint16(i)
		for j, e := range d.Entries {
			from, to, err := ParseEntry(e)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("zone %q: entry %d (%q): %w", d.Name, j+1, trimmed(e), err)
			}
			if from.Is4() {
				ev4 = addEvents4(ev4, z, v4key(from), v4key(to))
			} else {
				ev6 = addEvents6(ev6, z, v6key(from), v6key(to))
			}
		}
		for j, c := range d.Countries {
			if _, err := parseCountry(c); err != nil {
				return nil, nil, nil, fmt.Errorf("zone %q: country %d (%q): %w", d.Name, j+1, trimmed(c), err)
			}
		}
		for j, a := range d.ASNs {
			if a == 0 {
				return nil, nil, nil, fmt.Errorf("zone %q: ASN %d: 0 is not an AS number", d.Name, j+1)
			}
		}
		for j, p := range d.Lists {
			if strings.TrimSpace(p) == "" {
				return nil, nil, nil, fmt.Errorf("zone %q: list %d: empty file name", d.Name, j+1)
			}
		}
	}
	return t, ev4, ev6, nil
}

// addEvents4 adds the events of the IPv4 interval [lo, hi] of zone z.
func addEvents4(ev []event[uint32], z uint16, lo, hi uint32) []event[uint32] {
	ev = append(ev, event[uint32]{lo, z, +1})
	if hi != ^uint32(0) {
		ev = append(ev, event[uint32]{hi + 1, z, -1})
	}
	return ev
}

// addEvents6 adds the events of the IPv6 interval [lo, hi] of zone z.
func addEvents6(ev []event[u128], z uint16, lo, hi u128) []event[u128] {
	ev = append(ev, event[u128]{lo, z, +1})
	if !hi.isMax() {
		ev = append(ev, event[u128]{hi.next(), z, -1})
	}
	return ev
}

// sweepLayer returns a Table holding only the intervals (not indexed) that the events make.
func sweepLayer(ev4 []event[uint32], ev6 []event[u128]) *Table {
	l := &Table{matches: []Match{{}}}
	ids := matchIDs{t: l, ids: map[Match]uint32{{}: 0}}
	l.v4, l.v4m = sweep(ev4, cmp.Compare[uint32], &ids)
	l.v6, l.v6m = sweep(ev6, u128.cmp, &ids)
	return l
}

// index builds the top-bits index of t's intervals.
func (t *Table) index() {
	k := indexBits(len(t.v4))
	t.v4shift = uint8(32 - k)
	t.v4idx = buildIndex(len(t.v4), k, func(i int) uint64 { return uint64(t.v4[i] >> t.v4shift) })
	k = indexBits(len(t.v6))
	t.v6shift = uint8(64 - k)
	t.v6idx = buildIndex(len(t.v6), k, func(i int) uint64 { return t.v6[i].hi >> t.v6shift })
}

// trimmed is the entry as ParseEntry reads it, for error messages.
func trimmed(e string) string { return strings.TrimSpace(e) }

func checkName(name string) error {
	if name == "" {
		return errors.New("zone name is empty")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("zone name is longer than %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("zone name has %q at byte %d; use a-z, 0-9, '_' and '-'", c, i)
		}
	}
	return nil
}

// event is where an entry of zone z starts (delta +1) or where it has just ended (delta -1).
type event[K any] struct {
	at    K
	zone  uint16
	delta int8
}

// matchIDs gives each distinct Match an index into t.matches.
type matchIDs struct {
	t   *Table
	ids map[Match]uint32
}

func (m *matchIDs) id(x Match) uint32 {
	if id, ok := m.ids[x]; ok {
		return id
	}
	id := uint32(len(m.t.matches))
	m.t.matches = append(m.t.matches, x)
	m.ids[x] = id
	return id
}

// sweep turns entry events into elementary intervals: starts[i] is where interval i begins and
// ids[i] the Match of the zones covering it. The first interval starts at the zero key (the
// zero value of K is the lowest address); neighbors never have the same Match.
func sweep[K comparable](evs []event[K], cmpK func(a, b K) int, ids *matchIDs) (starts []K, mids []uint32) {
	slices.SortFunc(evs, func(a, b event[K]) int { return cmpK(a.at, b.at) })
	var zero K
	starts, mids = []K{zero}, []uint32{0}
	var count [MaxZones]int32
	var cur Match
	curID := uint32(0)
	for i := 0; i < len(evs); {
		at := evs[i].at
		for ; i < len(evs) && evs[i].at == at; i++ {
			z := int(evs[i].zone)
			count[z] += int32(evs[i].delta)
			if count[z] > 0 {
				cur = cur.With(z)
			} else {
				cur = cur.without(z)
			}
		}
		id := curID
		if cur != ids.t.matches[curID] {
			id = ids.id(cur)
			curID = id
		}
		last := len(starts) - 1
		switch {
		case starts[last] == at: // only at the zero key: replaces the initial empty interval
			mids[last] = id
		case mids[last] != id:
			starts = append(starts, at)
			mids = append(mids, id)
		}
	}
	return slices.Clip(starts), slices.Clip(mids)
}

// maxIndexBits bounds the top-bits index: at most 2^16+1 entries (256 KiB) per family.
const maxIndexBits = 16

// indexBits is how many top address bits index n intervals: about one interval per bucket.
func indexBits(n int) int {
	return min(max(bits.Len(uint(n))-1, 0), maxIndexBits)
}

// buildIndex returns idx with idx[b] the first of n sorted intervals whose start has top bits
// (bucket) >= b, for b in 0..2^k.
func buildIndex(n, k int, bucket func(i int) uint64) []uint32 {
	idx := make([]uint32, 1<<k+1)
	j := 0
	for b := range 1 << k {
		for j < n && bucket(j) < uint64(b) {
			j++
		}
		idx[b] = uint32(j)
	}
	idx[1<<k] = uint32(n)
	return idx
}

// without returns m minus zone i.
func (m Match) without(i int) Match {
	if i >= 0 && i < MaxZones {
		m.bits[i/64] &^= 1 << (uint(i) % 64)
	}
	return m
}

// Lookup returns the zones ip is in. An IPv4-mapped IPv6 address is looked up as IPv4 and an
// IPv6 zone is ignored. The zero (invalid) Addr, like a nil Table, gives the empty Match.
// Lookup does not allocate.
func (t *Table) Lookup(ip netip.Addr) Match {
	if t == nil || !ip.IsValid() {
		return Match{}
	}
	if t.dyn != nil {
		t = t.dyn.cur.Load()
	}
	ip = ip.Unmap()
	if ip.Is4() {
		if len(t.v4idx) == 0 {
			return Match{}
		}
		return t.matches[t.v4m[t.find4(v4key(ip))]]
	}
	if len(t.v6idx) == 0 {
		return Match{}
	}
	return t.matches[t.v6m[t.find6(v6key(ip))]]
}

// find4 returns the IPv4 interval holding x: the last i with v4[i] <= x.
func (t *Table) find4(x uint32) int {
	b := x >> t.v4shift
	s := t.v4
	// v4[lo-1] < b<<v4shift <= x and v4[hi] > x (or hi is the end): search v4[lo:hi].
	lo, hi := int(t.v4idx[b]), int(t.v4idx[b+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s[mid] <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// find6 is find4 for IPv6.
func (t *Table) find6(x u128) int {
	b := x.hi >> t.v6shift
	s := t.v6
	lo, hi := int(t.v6idx[b]), int(t.v6idx[b+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if !x.less(s[mid]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1
}

// Index returns the index of the zone called name, as used by Match.Has.
func (t *Table) Index(name string) (int, bool) {
	if t == nil {
		return 0, false
	}
	i, ok := t.byName[name]
	return i, ok
}

// Len returns the number of zones.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.names)
}

// Name returns the name of zone i, or "" if there is no such zone.
func (t *Table) Name(i int) string {
	if i < 0 || i >= t.Len() {
		return ""
	}
	return t.names[i]
}

// Names returns the names of the zones in m, in index order. It allocates; it is meant for logs.
func (t *Table) Names(m Match) []string {
	var out []string
	for w, word := range m.bits {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if i < t.Len() {
				out = append(out, t.names[i])
			}
		}
	}
	return out
}

// Blocked returns the first (lowest index) blocklist zone in m, if m has one.
func (t *Table) Blocked(m Match) (name string, ok bool) {
	if t == nil {
		return "", false
	}
	for w := range m.bits {
		if b := m.bits[w] & t.block.bits[w]; b != 0 {
			return t.names[w*64+bits.TrailingZeros64(b)], true
		}
	}
	return "", false
}

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

// Def is one zone as configured.
type Def struct {
	// Name identifies the zone in policies and logs: 1 to 64 characters of a-z, 0-9, '_' and
	// '-', unique within a Table.
	Name string
	// Blocklist marks a zone whose members are denied every request before any login.
	Blocklist bool
	// Entries are the addresses in the zone, each a CIDR ("10.0.0.0/8", "2001:db8::/32"), a
	// single address ("192.0.2.7", "::1") or a range of one family ("10.0.0.1-10.0.0.50"); see
	// ParseEntry. A zone needs at least one entry. Entries may overlap, within and across zones.
	Entries []string
}

// maxNameLen is the longest zone name Compile accepts.
const maxNameLen = 64

// Table is a compiled set of zones. Lookup is a binary search over sorted, non-overlapping
// address intervals, each carrying the Match of the zones that cover it, so it is O(log n) and
// allocates nothing; a small index on the top bits of the address picks the slice to search.
// A Table is immutable and safe for concurrent use. A nil *Table has no zones.
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
}

// Compile checks defs and builds a Table. Zone i of the table is defs[i]. It fails on more than
// MaxZones zones, a bad or duplicate name, a zone without entries or any bad entry; the error
// names the zone and the entry (numbered from 1), e.g.
//
//	zone "office": entry 2 ("10.0.0.9-10.0.0.1"): range start is after its end
//
// No defs gives an empty Table, in which every address is in no zone.
func Compile(defs []Def) (*Table, error) {
	if len(defs) > MaxZones {
		return nil, fmt.Errorf("too many zones: %d (at most %d)", len(defs), MaxZones)
	}
	t := &Table{
		names:  make([]string, len(defs)),
		byName: make(map[string]int, len(defs)),
	}
	var ev4 []event[uint32]
	var ev6 []event[u128]
	for i, d := range defs {
		if err := checkName(d.Name); err != nil {
			return nil, fmt.Errorf("zone %d (%q): %w", i+1, d.Name, err)
		}
		if j, dup := t.byName[d.Name]; dup {
			return nil, fmt.Errorf("zone %q: name already used by zone %d", d.Name, j+1)
		}
		t.names[i] = d.Name
		t.byName[d.Name] = i
		if d.Blocklist {
			t.block = t.block.With(i)
		}
		if len(d.Entries) == 0 {
			return nil, fmt.Errorf("zone %q: no entries", d.Name)
		}
		z := uint16(i)
		for j, e := range d.Entries {
			from, to, err := ParseEntry(e)
			if err != nil {
				return nil, fmt.Errorf("zone %q: entry %d (%q): %w", d.Name, j+1, trimmed(e), err)
			}
			if from.Is4() {
				lo, hi := v4key(from), v4key(to)
				ev4 = append(ev4, event[uint32]{lo, z, +1})
				if hi != ^uint32(0) {
					ev4 = append(ev4, event[uint32]{hi + 1, z, -1})
				}
			} else {
				lo, hi := v6key(from), v6key(to)
				ev6 = append(ev6, event[u128]{lo, z, +1})
				if !hi.isMax() {
					ev6 = append(ev6, event[u128]{hi.next(), z, -1})
				}
			}
		}
	}
	ids := matchIDs{t: t, ids: map[Match]uint32{{}: 0}}
	t.matches = []Match{{}}
	t.v4, t.v4m = sweep(ev4, cmp.Compare[uint32], &ids)
	t.v6, t.v6m = sweep(ev6, u128.cmp, &ids)
	k := indexBits(len(t.v4))
	t.v4shift = uint8(32 - k)
	t.v4idx = buildIndex(len(t.v4), k, func(i int) uint64 { return uint64(t.v4[i] >> t.v4shift) })
	k = indexBits(len(t.v6))
	t.v6shift = uint8(64 - k)
	t.v6idx = buildIndex(len(t.v6), k, func(i int) uint64 { return t.v6[i].hi >> t.v6shift })
	return t, nil
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

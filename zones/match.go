package zones

// MaxZones is how many zones one Table can hold: a Match is a fixed-size bit set so a lookup
// allocates nothing.
const MaxZones = 256

// Match is the set of zones an address is in, by zone index (the order the zones were given to
// Compile). The zero Match is in no zone.
type Match struct {
	bits [MaxZones / 64]uint64
}

// Has reports whether the match includes the zone with index i.
func (m Match) Has(i int) bool {
	if i < 0 || i >= MaxZones {
		return false
	}
	return m.bits[i/64]&(1<<(uint(i)%64)) != 0
}

// With returns m plus zone i (out-of-range indexes are ignored).
func (m Match) With(i int) Match {
	if i >= 0 && i < MaxZones {
		m.bits[i/64] |= 1 << (uint(i) % 64)
	}
	return m
}

// Union returns the zones in m or o.
func (m Match) Union(o Match) Match {
	for i := range m.bits {
		m.bits[i] |= o.bits[i]
	}
	return m
}

// Intersects reports whether m and o share a zone.
func (m Match) Intersects(o Match) bool {
	for i := range m.bits {
		if m.bits[i]&o.bits[i] != 0 {
			return true
		}
	}
	return false
}

// Empty reports whether m is in no zone.
func (m Match) Empty() bool {
	for _, b := range m.bits {
		if b != 0 {
			return false
		}
	}
	return true
}

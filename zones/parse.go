package zones

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ParseEntry parses one zone entry into the inclusive interval of addresses it covers. An entry
// is a CIDR ("10.0.0.0/8", "2001:db8::/32"), a single address ("192.0.2.7", "::1") or a range of
// one family with start <= end ("10.0.0.1-10.0.0.50"). Surrounding spaces are trimmed, also
// around the dash of a range.
//
// IPv4-mapped IPv6 forms are turned into IPv4 ("::ffff:10.0.0.0/104" is 10.0.0.0/8), so from and
// to are either both IPv4 (4-byte) or both IPv6 outside ::ffff:0:0/96. A CIDR with host bits set
// is an error, as is an address with an IPv6 zone ("fe80::1%eth0"). The error states the reason
// without repeating s; Compile adds the zone and entry.
func ParseEntry(s string) (from, to netip.Addr, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, netip.Addr{}, errors.New("empty entry")
	}
	if strings.Contains(s, "/") {
		return parseCIDR(s)
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		return parseRange(strings.TrimSpace(a), strings.TrimSpace(b))
	}
	a, err := parseEntryAddr(s)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	return a, a, nil
}

func parseCIDR(s string) (from, to netip.Addr, err error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("bad CIDR: %w", err)
	}
	if m := p.Masked(); m != p {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("host bits set, did you mean %s", m)
	}
	addr, bits := p.Addr(), p.Bits()
	if addr.Is4In6() {
		// Masked and 4in6 means bits >= 96: the ffff marker sits in bits 80..95.
		addr, bits = addr.Unmap(), bits-96
	}
	if addr.Is4() {
		first := v4key(addr)
		return addr, addrFrom4(first | ^uint32(0)>>bits), nil
	}
	first := v6key(addr)
	last := u128{first.hi | ^uint64(0)>>bits, first.lo | ^uint64(0)>>max(bits-64, 0)}
	return addr, addrFrom6(last), nil
}

func parseRange(a, b string) (from, to netip.Addr, err error) {
	if from, err = parseEntryAddr(a); err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range start: %w", err)
	}
	if to, err = parseEntryAddr(b); err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range end: %w", err)
	}
	if from.Is4() != to.Is4() {
		return netip.Addr{}, netip.Addr{}, errors.New("range start and end are of different address families")
	}
	if from.Compare(to) > 0 {
		return netip.Addr{}, netip.Addr{}, errors.New("range start is after its end")
	}
	return from, to, nil
}

func parseEntryAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("missing address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bad address: %w", err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has an IPv6 zone, which a network zone cannot use", s)
	}
	return a.Unmap(), nil
}

// ParseClientIP parses a client address as Caddy's client_ip variable or an http.Request's
// RemoteAddr gives it: "1.2.3.4", "::1", "[::1]", "1.2.3.4:5678", "[::1]:443". An IPv6 zone
// ("fe80::1%eth0") is dropped and an IPv4-mapped IPv6 address is returned as IPv4, so the result
// is ready for Table.Lookup.
func ParseClientIP(s string) (netip.Addr, error) {
	a, err := parseClientIP(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bad client IP %q: %w", s, err)
	}
	return a.WithZone("").Unmap(), nil
}

func parseClientIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("empty")
	}
	if s[0] == '[' {
		host, rest, ok := strings.Cut(s[1:], "]")
		if !ok {
			return netip.Addr{}, errors.New("missing ']'")
		}
		if rest != "" {
			port, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return netip.Addr{}, errors.New("unexpected text after ']'")
			}
			if !validPort(port) {
				return netip.Addr{}, fmt.Errorf("bad port %q", port)
			}
		}
		return netip.ParseAddr(host)
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	} else if strings.Count(s, ":") != 1 {
		// No port to split off ("::1" was handled above; "1.2.3.4" too): report the address error.
		return netip.Addr{}, err
	}
	host, port, _ := strings.Cut(s, ":")
	if !validPort(port) {
		return netip.Addr{}, fmt.Errorf("bad port %q", port)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, err
	}
	if !a.Is4() {
		return netip.Addr{}, errors.New("IPv6 address with a port must be in brackets")
	}
	return a, nil
}

// validPort reports whether p is a decimal port number, 0..65535, as in "host:port".
func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// u128 is an IPv6 address as a big-endian 128-bit number.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func (a u128) isMax() bool { return a.hi == ^uint64(0) && a.lo == ^uint64(0) }

func (a u128) next() u128 {
	lo := a.lo + 1
	hi := a.hi
	if lo == 0 {
		hi++
	}
	return u128{hi, lo}
}

// v4key returns an IPv4 address (4-byte form) as a number.
func v4key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// v6key returns an address as a 128-bit number.
func v6key(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func addrFrom4(x uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return netip.AddrFrom4(b)
}

func addrFrom6(x u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

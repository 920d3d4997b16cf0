package zones

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// entryCases drive TestParseEntry and seed FuzzParseEntry. A case with err wants an error
// containing it; otherwise from and to are the interval wanted.
var entryCases = []struct {
	in, from, to, err string
}{
	{in: "10.0.0.0/8", from: "10.0.0.0", to: "10.255.255.255"},
	{in: "  10.0.0.0/8\t", from: "10.0.0.0", to: "10.255.255.255"},
	{in: "0.0.0.0/0", from: "0.0.0.0", to: "255.255.255.255"},
	{in: "192.0.2.7/32", from: "192.0.2.7", to: "192.0.2.7"},
	{in: "192.0.2.7", from: "192.0.2.7", to: "192.0.2.7"},
	{in: "2001:db8::/32", from: "2001:db8::", to: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
	{in: "2001:db8::/64", from: "2001:db8::", to: "2001:db8::ffff:ffff:ffff:ffff"},
	{in: "2001:db8::/65", from: "2001:db8::", to: "2001:db8::7fff:ffff:ffff:ffff"},
	{in: "2001:db8::/63", from: "2001:db8::", to: "2001:db8:0:1:ffff:ffff:ffff:ffff"},
	{in: "::/0", from: "::", to: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	{in: "::1", from: "::1", to: "::1"},
	{in: "::1/128", from: "::1", to: "::1"},
	{in: "::ffff:10.0.0.0/104", from: "10.0.0.0", to: "10.255.255.255"},
	{in: "::ffff:0:0/96", from: "0.0.0.0", to: "255.255.255.255"},
	{in: "::ffff:10.1.2.3", from: "10.1.2.3", to: "10.1.2.3"},
	{in: "10.0.0.1-10.0.0.50", from: "10.0.0.1", to: "10.0.0.50"},
	{in: "10.0.0.1 - 10.0.0.50", from: "10.0.0.1", to: "10.0.0.50"},
	{in: "10.0.0.1-10.0.0.1", from: "10.0.0.1", to: "10.0.0.1"},
	{in: "::ffff:10.0.0.1-10.0.0.5", from: "10.0.0.1", to: "10.0.0.5"},
	{in: "2001:db8::1-2001:db8::1:0", from: "2001:db8::1", to: "2001:db8::1:0"},

	{in: "", err: "empty entry"},
	{in: "   ", err: "empty entry"},
	{in: "10.0.0.1/8", err: "host bits set, did you mean 10.0.0.0/8"},
	{in: "2001:db8::1/32", err: "host bits set, did you mean 2001:db8::/32"},
	{in: "::ffff:10.0.0.1/104", err: "host bits set, did you mean ::ffff:10.0.0.0/104"},
	{in: "::ffff:10.0.0.0/80", err: "host bits set, did you mean ::/80"},
	{in: "10.0.0/8", err: "bad CIDR: "},
	{in: "10.0.0.0/33", err: "bad CIDR: "},
	{in: "10.0.0.0/", err: "bad CIDR: "},
	{in: "fe80::/10%eth0", err: "bad CIDR: "},
	{in: "10.0.0.300", err: "bad address: "},
	{in: "example.com", err: "bad address: "},
	{in: "fe80::1%eth0", err: `address "fe80::1%eth0" has an IPv6 zone`},
	{in: "10.0.0.9-10.0.0.1", err: "range start is after its end"},
	{in: "2001:db8::2-2001:db8::1", err: "range start is after its end"},
	{in: "10.0.0.1-::1", err: "range start and end are of different address families"},
	{in: "::1-10.0.0.1", err: "range start and end are of different address families"},
	{in: "10.0.0.1-", err: "range end: missing address"},
	{in: "-10.0.0.1", err: "range start: missing address"},
	{in: "10.0.0.1-10.0.0.2-10.0.0.3", err: "range end: bad address: "},
	{in: "10.0.0.1-fe80::1%eth0", err: "range end: address"},
}

func TestParseEntry(t *testing.T) {
	for _, c := range entryCases {
		from, to, err := ParseEntry(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseEntry(%q) = %v, %v, %v; want error containing %q", c.in, from, to, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseEntry(%q): unexpected error %v", c.in, err)
			continue
		}
		if from != netip.MustParseAddr(c.from) || to != netip.MustParseAddr(c.to) {
			t.Errorf("ParseEntry(%q) = %v, %v; want %s, %s", c.in, from, to, c.from, c.to)
		}
		checkEntry(t, c.in, from, to)
	}
}

// checkEntry checks what must hold for every entry ParseEntry accepts: a well-formed interval
// that reads back the same written as a range (and as a single address when it is one), and,
// for a CIDR, the same addresses as netip.Prefix.Contains.
func checkEntry(t *testing.T, in string, from, to netip.Addr) {
	t.Helper()
	if !from.IsValid() || !to.IsValid() || from.Zone() != "" || to.Zone() != "" ||
		from.Is4In6() || to.Is4In6() || from.Is4() != to.Is4() || from.Compare(to) > 0 {
		t.Fatalf("ParseEntry(%q) = %v, %v: not a clean interval", in, from, to)
	}
	f2, t2, err := ParseEntry(from.String() + "-" + to.String())
	if err != nil || f2 != from || t2 != to {
		t.Fatalf("ParseEntry(%q) = %v, %v; as a range it reads back as %v, %v, %v", in, from, to, f2, t2, err)
	}
	if from == to {
		if f2, t2, err := ParseEntry(from.String()); err != nil || f2 != from || t2 != to {
			t.Fatalf("ParseEntry(%q) = %v; as an address it reads back as %v, %v, %v", in, from, f2, t2, err)
		}
	}
	if p, err := netip.ParsePrefix(strings.TrimSpace(in)); err == nil {
		if !p.Contains(mapLike(p.Addr(), from)) || !p.Contains(mapLike(p.Addr(), to)) {
			t.Fatalf("ParseEntry(%q) = %v, %v: outside the prefix", in, from, to)
		}
		if b := from.Prev(); b.IsValid() && p.Contains(mapLike(p.Addr(), b)) {
			t.Fatalf("ParseEntry(%q) = %v, %v: prefix also contains %v", in, from, to, b)
		}
		if a := to.Next(); a.IsValid() && p.Contains(mapLike(p.Addr(), a)) {
			t.Fatalf("ParseEntry(%q) = %v, %v: prefix also contains %v", in, from, to, a)
		}
	}
}

// mapLike returns a in the form of like: IPv4-mapped when like is, so Prefix.Contains can test it.
func mapLike(like, a netip.Addr) netip.Addr {
	if like.Is4In6() && a.Is4() {
		return netip.AddrFrom16(a.As16())
	}
	return a
}

// clientIPCases drive TestParseClientIP and seed FuzzParseClientIP; an empty want is an error.
var clientIPCases = []struct{ in, want string }{
	{"1.2.3.4", "1.2.3.4"},
	{"::1", "::1"},
	{"[::1]", "::1"},
	{"1.2.3.4:5678", "1.2.3.4"},
	{"1.2.3.4:0", "1.2.3.4"},
	{"1.2.3.4:65535", "1.2.3.4"},
	{"[::1]:443", "::1"},
	{"[1.2.3.4]:80", "1.2.3.4"},
	{"fe80::1%eth0", "fe80::1"},
	{"[fe80::1%eth0]:443", "fe80::1"},
	{"::ffff:10.1.2.3", "10.1.2.3"},
	{"[::ffff:10.1.2.3]:8080", "10.1.2.3"},
	{"::ffff:10.1.2.3%eth0", "10.1.2.3"},
	{"2001:db8::1", "2001:db8::1"},

	{"", ""},
	{" 1.2.3.4", ""},
	{"1.2.3.4:", ""},
	{"1.2.3.4:65536", ""},
	{"1.2.3.4:http", ""},
	{"1.2.3.4:+80", ""},
	{"1.2.3.4:123456", ""},
	{"::1:443:", ""},
	{"[::1", ""},
	{"[::1]443", ""},
	{"[::1]:", ""},
	{"[::1]:x", ""},
	{"[]:80", ""},
	{"[example.com]:80", ""},
	{"example.com:80", ""},
	{"example.com", ""},
	{"1.2.3.4%eth0", ""},
	{"1.2.3.4/32", ""},
	{"10.0.0.300", ""},
}

func TestParseClientIP(t *testing.T) {
	for _, c := range clientIPCases {
		got, err := ParseClientIP(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseClientIP(%q) = %v; want an error", c.in, got)
			} else if !strings.HasPrefix(err.Error(), "bad client IP ") {
				t.Errorf("ParseClientIP(%q): error %q does not say what failed", c.in, err)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(c.want) {
			t.Errorf("ParseClientIP(%q) = %v, %v; want %s", c.in, got, err, c.want)
			continue
		}
		checkClientIP(t, c.in, got)
	}
}

// checkClientIP checks what must hold for every address ParseClientIP accepts: it is ready for
// Lookup, reads back the same, and agrees with netip.ParseAddr and net.SplitHostPort.
func checkClientIP(t *testing.T, in string, got netip.Addr) {
	t.Helper()
	if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
		t.Fatalf("ParseClientIP(%q) = %v: not a clean address", in, got)
	}
	if again, err := ParseClientIP(got.String()); err != nil || again != got {
		t.Fatalf("ParseClientIP(%q) = %v; reads back as %v, %v", in, got, again, err)
	}
	clean := func(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }
	if a, err := netip.ParseAddr(in); err == nil {
		if clean(a) != got {
			t.Fatalf("ParseClientIP(%q) = %v; netip.ParseAddr gives %v", in, got, a)
		}
		return
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(in, "["), "]")); err == nil {
		if clean(a) != got {
			t.Fatalf("ParseClientIP(%q) = %v; netip.ParseAddr without brackets gives %v", in, got, a)
		}
		return
	}
	host, _, err := net.SplitHostPort(in)
	if err != nil {
		t.Fatalf("ParseClientIP(%q) = %v; net.SplitHostPort says %v", in, got, err)
	}
	if a, err := netip.ParseAddr(host); err != nil || clean(a) != got {
		t.Fatalf("ParseClientIP(%q) = %v; net.SplitHostPort's host %q parses as %v, %v", in, got, host, a, err)
	}
}

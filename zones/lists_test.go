package zones

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// listCases drive TestParseList and seed FuzzParseListFile. A case with err wants an error
// starting with it; otherwise want is the entries, each as its first and last address.
var listCases = []struct {
	name, in string
	want     []string
	err      string
}{
	{name: "empty", in: ""},
	{name: "comments only", in: "# nothing here\n; nor here\n\n   \n"},
	{name: "tor bulk list", in: "185.220.101.1\n185.220.101.2\n2a0b:f4c2::1\n",
		want: []string{"185.220.101.1-185.220.101.1", "185.220.101.2-185.220.101.2", "2a0b:f4c2::1-2a0b:f4c2::1"}},
	{name: "no final newline", in: "10.0.0.0/8", want: []string{"10.0.0.0-10.255.255.255"}},
	{name: "CRLF and BOM", in: "\ufeff192.0.2.1\r\n192.0.2.0/30\r\n",
		want: []string{"192.0.2.1-192.0.2.1", "192.0.2.0-192.0.2.3"}},
	{name: "comments and ranges", in: "# header\n10.0.0.1 - 10.0.0.9 # office\n\t2001:db8::/126 ; SBL123\n::ffff:1.2.3.4\n",
		want: []string{"10.0.0.1-10.0.0.9", "2001:db8::-2001:db8::3", "1.2.3.4-1.2.3.4"}},
	{name: "duplicates kept", in: "10.0.0.1\n10.0.0.1\n", want: []string{"10.0.0.1-10.0.0.1", "10.0.0.1-10.0.0.1"}},
	{name: "bad CIDR", in: "10.0.0.1\n\n# c\n10.0.0/8\n", err: `line 4 ("10.0.0/8"): bad CIDR: `},
	{name: "host bits", in: "10.0.0.1/8", err: `line 1 ("10.0.0.1/8"): host bits set, did you mean 10.0.0.0/8`},
	{name: "name not address", in: "example.com\n", err: `line 1 ("example.com"): bad address: `},
	{name: "exit-addresses format", in: "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nExitAddress 162.247.74.201 2024-01-01 00:00:00\n",
		err: `line 1 ("ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E"): bad address: `},
	{name: "long line cut", in: strings.Repeat("x", 200), err: `line 1 ("` + strings.Repeat("x", 64) + `"): bad address`},
	{name: "binary", in: "\x00\x01\x02", err: `line 1 ("\x00\x01\x02"): bad address`},
	{name: "reversed range", in: "10.0.0.9-10.0.0.1\n", err: `line 1 ("10.0.0.9-10.0.0.1"): range start is after its end`},
}

func TestParseList(t *testing.T) {
	for _, c := range listCases {
		t.Run(c.name, func(t *testing.T) {
			l, err := parseList([]byte(c.in))
			if c.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.err) {
					t.Fatalf("parseList: %v; want error %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listStrings(l); !slices.Equal(got, sortedCopy(c.want)) {
				t.Errorf("parseList = %q; want %q", got, c.want)
			}
		})
	}
}

// listStrings returns l's entries as "first-last", IPv4 then IPv6, sorted.
func listStrings(l *list) []string {
	var out []string
	for _, s := range l.v4 {
		out = append(out, addrFrom4(s.lo).String()+"-"+addrFrom4(s.hi).String())
	}
	for _, s := range l.v6 {
		out = append(out, addrFrom6(s.lo).String()+"-"+addrFrom6(s.hi).String())
	}
	slices.Sort(out)
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func FuzzParseListFile(f *testing.F) {
	for _, c := range listCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseList(data)
		if err != nil {
			// The error names a line that exists.
			msg := err.Error()
			rest, ok := strings.CutPrefix(msg, "line ")
			num, _, ok2 := strings.Cut(rest, " ")
			n, err2 := strconv.Atoi(num)
			if l != nil || !ok || !ok2 || err2 != nil || n < 1 || n > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("parseList(%q): bad error %q", data, msg)
			}
			return
		}
		// One entry per line that is not blank or a comment.
		lines := 0
		for line := range strings.Lines(strings.TrimPrefix(string(data), "\ufeff")) {
			line, _, _ = strings.Cut(line, "#")
			line, _, _ = strings.Cut(line, ";")
			if strings.TrimSpace(line) != "" {
				lines++
			}
		}
		if l.len() != lines {
			t.Fatalf("parseList(%q): %d entries from %d lines", data, l.len(), lines)
		}
		// Every entry is a clean interval, and the entries written back as ranges read the same.
		var b strings.Builder
		for _, s := range l.v4 {
			if s.lo > s.hi {
				t.Fatalf("parseList(%q): IPv4 entry %v", data, s)
			}
			fmt.Fprintf(&b, "%s-%s\n", addrFrom4(s.lo), addrFrom4(s.hi))
		}
		for _, s := range l.v6 {
			if s.hi.less(s.lo) || addrFrom6(s.lo).Is4In6() {
				t.Fatalf("parseList(%q): IPv6 entry %v", data, s)
			}
			fmt.Fprintf(&b, "%s-%s # again\n", addrFrom6(s.lo), addrFrom6(s.hi))
		}
		again, err := parseList([]byte(b.String()))
		if err != nil || !slices.Equal(listStrings(again), listStrings(l)) {
			t.Fatalf("parseList(%q) = %q; written back it reads %q, %v", data, listStrings(l), listStrings(again), err)
		}
	})
}

// has reports whether tab puts ip in zone.
func has(tab *Table, ip, zone string) bool {
	i, ok := tab.Index(zone)
	return ok && tab.Lookup(netip.MustParseAddr(ip)).Has(i)
}

func TestListReload(t *testing.T) {
	dir := t.TempDir()
	exits := filepath.Join(dir, "exits.txt")
	writeText(t, exits, "# exits\n192.0.2.1\n")
	rec := &logRecorder{}
	tab, err := CompileWith([]Def{
		{Name: "office", Entries: []string{"10.0.0.0/8"}},
		{Name: "tor", Blocklist: true, Lists: []string{exits}},
		{Name: "anon", Lists: []string{dir + "/./exits.txt"}, Entries: []string{"192.0.2.9"}},
	}, Sources{Reload: 5 * time.Millisecond, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	if !has(tab, "192.0.2.1", "tor") || !has(tab, "192.0.2.1", "anon") || has(tab, "192.0.2.2", "tor") {
		t.Fatal("list not loaded")
	}

	// Rewritten in place: the new contents replace the old, in every zone using the file.
	writeText(t, exits, "192.0.2.2\n2001:db8::2\n")
	// (A check may see the file half written, and load a part; wait for the whole.)
	eventually(t, "the rewritten list", func() bool { return has(tab, "2001:db8::2", "tor") })
	if has(tab, "192.0.2.1", "tor") || !has(tab, "192.0.2.2", "anon") || !has(tab, "2001:db8::2", "anon") ||
		!has(tab, "192.0.2.9", "anon") || !has(tab, "10.1.1.1", "office") {
		t.Fatalf("after reload: zones %q, %q", tab.Names(tab.Lookup(netip.MustParseAddr("192.0.2.2"))), tab.Names(tab.Lookup(netip.MustParseAddr("2001:db8::2"))))
	}
	if !rec.has(slog.LevelInfo, "list file reloaded", "file", exits) {
		t.Errorf("reload not logged: %v", rec.all())
	}

	// Each way of breaking the file keeps the previous contents and logs the error once.
	for _, c := range []struct {
		name  string
		write func()
		err   string
	}{
		{"bad line", func() {
			writeAtomically(t, exits, func(f *os.File) error {
				_, err := f.WriteString("192.0.2.3\n192.0.2.300\n")
				return err
			})
		}, `line 2 ("192.0.2.300"): bad address`},
		{"truncated", func() { writeText(t, exits, "") }, "file is empty"},
		{"removed", func() {
			if err := os.Remove(exits); err != nil {
				t.Fatal(err)
			}
		}, "no such file or directory"},
	} {
		// An earlier in-place write may have been seen half done (an empty file): count from here.
		before := rec.count(slog.LevelError, "", "error", c.err)
		c.write()
		eventually(t, c.name+" reported", func() bool {
			return rec.count(slog.LevelError, "list file not reloaded; keeping its previous contents", "error", c.err) > before
		})
		time.Sleep(30 * time.Millisecond) // several more checks
		if n := rec.count(slog.LevelError, "", "error", c.err) - before; n != 1 {
			t.Errorf("%s: logged %d times", c.name, n)
		}
		if !has(tab, "192.0.2.2", "tor") || !has(tab, "2001:db8::2", "tor") || has(tab, "192.0.2.3", "tor") {
			t.Fatalf("%s: the previous contents were not kept", c.name)
		}
	}

	// Put back through a rename: loaded again.
	writeAtomically(t, exits, func(f *os.File) error {
		_, err := f.WriteString("; only comments: no address on purpose\n")
		return err
	})
	eventually(t, "the emptied list", func() bool { return !has(tab, "192.0.2.2", "tor") })
	if has(tab, "2001:db8::2", "tor") || !has(tab, "192.0.2.9", "anon") {
		t.Fatal("emptied list: old entries remain or static entries are gone")
	}

	// After Close the file is no longer read.
	if err := tab.Close(); err != nil {
		t.Fatal(err)
	}
	tab.Close()
	writeText(t, exits, "192.0.2.4\n")
	time.Sleep(30 * time.Millisecond)
	if has(tab, "192.0.2.4", "tor") {
		t.Error("reloaded after Close")
	}
}

func TestDatabaseReload(t *testing.T) {
	src, dir := testSources(t)
	rec := &logRecorder{}
	src.Logger = slog.New(rec)
	src.Reload = 5 * time.Millisecond
	exits := filepath.Join(dir, "exits.txt")
	writeText(t, exits, "198.51.100.1\n")
	tab, err := CompileWith([]Def{
		{Name: "de", Countries: []string{"DE"}},
		{Name: "fr", Countries: []string{"FR"}},
		{Name: "cloud", ASNs: []uint32{64500}},
		{Name: "tor", Lists: []string{exits}},
	}, src)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	if !has(tab, "192.0.2.1", "de") || has(tab, "192.0.2.1", "fr") || !has(tab, "192.0.2.1", "cloud") {
		t.Fatal("databases not loaded")
	}

	// A new database is renamed over the old one, as geoipupdate does.
	moved := slices.Clone(cityNets)
	moved[0].country = "FR"
	writeDB(t, src.CountryDB, "GeoLite2-City", moved)
	eventually(t, "the new country database", func() bool { return has(tab, "192.0.2.1", "fr") })
	if has(tab, "192.0.2.1", "de") || !has(tab, "192.0.2.1", "cloud") || !has(tab, "198.51.100.1", "tor") || !has(tab, "198.51.100.1", "de") {
		t.Fatalf("after reload: %q", tab.Names(tab.Lookup(netip.MustParseAddr("192.0.2.1"))))
	}
	if !rec.has(slog.LevelInfo, "database reloaded", "file", src.CountryDB) {
		t.Errorf("reload not logged: %v", rec.all())
	}

	// A broken database keeps the previous data.
	writeText(t, src.ASNDB, "garbage")
	eventually(t, "the broken database reported", func() bool {
		return rec.has(slog.LevelError, "database not reloaded; keeping its previous data", "file", src.ASNDB)
	})
	if !has(tab, "192.0.2.1", "cloud") || !has(tab, "192.0.2.1", "fr") {
		t.Fatal("broken database: previous data not kept")
	}

	// Fixed: loaded again.
	writeDB(t, src.ASNDB, "GeoLite2-ASN", []geoNet{{prefix: "203.0.113.0/24", asn: 64500}})
	eventually(t, "the fixed ASN database", func() bool { return has(tab, "203.0.113.1", "cloud") })
	if has(tab, "192.0.2.1", "cloud") {
		t.Error("fixed database: old networks remain")
	}
}

// TestReloadRace looks addresses up while the list is rewritten, for the race detector: each
// Lookup sees one whole version.
func TestReloadRace(t *testing.T) {
	dir := t.TempDir()
	exits := filepath.Join(dir, "exits.txt")
	writeText(t, exits, "192.0.2.1\n")
	tab, err := CompileWith([]Def{{Name: "a", Lists: []string{exits}}, {Name: "b", Lists: []string{exits}}},
		Sources{Reload: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ip := netip.MustParseAddr("192.0.2.1")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if m := tab.Lookup(ip); m.Has(0) != m.Has(1) {
					t.Error("a Lookup saw half a version")
					return
				}
			}
		})
	}
	for i := range 20 {
		writeAtomically(t, exits, func(f *os.File) error {
			_, err := fmt.Fprintf(f, "192.0.2.%d\n", 1+i%2)
			return err
		})
		want := fmt.Sprintf("192.0.2.%d", 1+i%2)
		eventually(t, "reload "+want, func() bool { return has(tab, want, "a") })
	}
	close(stop)
	wg.Wait()
}

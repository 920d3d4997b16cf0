package zones

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReload is how often CompileWith checks list files and databases for changes when
// Sources.Reload is zero.
const DefaultReload = time.Minute

// Sources tells CompileWith where zones that use countries, ASNs and lists find their data, and
// how it keeps up with changes.
type Sources struct {
	// CountryDB is the path of a MaxMind GeoIP2 or GeoLite2 City or Country database (.mmdb),
	// needed when some zone names countries; regions ("DE-BY") need a City database. Unused
	// otherwise.
	CountryDB string
	// ASNDB is the path of a GeoLite2-ASN (or GeoIP2-ISP) database, needed when some zone
	// names ASNs. Unused otherwise.
	ASNDB string
	// Reload is how often list files and databases are checked for changes (size, time of
	// last change, or the file replaced); a changed file is read again. Zero means
	// DefaultReload; below zero, files are read only by CompileWith.
	Reload time.Duration
	// Logger receives reloads (Info), reloads that failed (Error, once per distinct error of a
	// file) and codes that a database has no network for (Warn). Nil discards them.
	Logger *slog.Logger
}

// CompileWith is Compile for zones that may also use countries, ASNs and list files (see Def).
// Zones using only entries give the same Table as Compile.
//
// It reads every list file and database, so it fails, naming the zone and the file, when one is
// missing, unreadable or bad, or when a zone names countries or ASNs and its database is not in
// src, e.g.
//
//	zone "tor": list file "/var/lib/tor/exits.txt": line 7 ("10.0.0/8"): bad CIDR: ...
//	country database "/var/lib/GeoIP/GeoLite2-City.mmdb": open: no such file or directory
//
// A list file holds one address, CIDR or range per line, as ParseEntry reads them. Everything
// from a '#' or ';' to the end of a line is a comment, and blank lines are skipped. A file of
// zero bytes is an error (a file being rewritten in place looks like that): a file meant to
// list no address holds a comment. A file may be used by several zones and is read once.
//
// A database is read into memory (not mapped), walked once, and its matching networks become
// intervals in the Table, so Lookup costs the same as for static zones. A country is
// country.iso_code of a record (where MaxMind places the user, not registered_country); a
// region is one of its subdivisions[].iso_code. IPv6 addresses that a database aliases to its
// IPv4 data (::ffff:0:0/96, ::/96, 6to4 2002::/16, Teredo 2001::/32) are in no country or ASN;
// IPv4-mapped addresses are looked up as IPv4, as always.
//
// Unless src.Reload is negative, a goroutine then checks the files every src.Reload and, when
// one has changed, reads it and swaps in new intervals for all zones at once. A file that cannot
// be read or parsed on reload keeps its previous contents and the error is logged; it is tried
// again when it changes. Close stops the checks; a Table no longer referenced stops them too.
func CompileWith(defs []Def, src Sources) (*Table, error) {
	t, ev4, ev6, err := newTable(defs)
	if err != nil {
		return nil, err
	}
	d := &dynamic{names: t.names, log: src.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	byCode := make(map[string]Match)
	byASN := make(map[uint32]Match)
	byPath := make(map[string]*listFile)
	countryZone, asnZone := -1, -1
	for i, def := range defs {
		for _, c := range def.Countries {
			code, _ := parseCountry(c) // checked by newTable
			byCode[code] = byCode[code].With(i)
			if countryZone < 0 {
				countryZone = i
			}
		}
		for _, a := range def.ASNs {
			byASN[a] = byASN[a].With(i)
			if asnZone < 0 {
				asnZone = i
			}
		}
		for _, p := range def.Lists {
			p = filepath.Clean(strings.TrimSpace(p))
			lf := byPath[p]
			if lf == nil {
				lf = &listFile{path: p}
				byPath[p] = lf
				d.lists = append(d.lists, lf)
			}
			if n := len(lf.zones); n == 0 || lf.zones[n-1] != uint16(i) {
				lf.zones = append(lf.zones, uint16(i))
			}
		}
	}
	if countryZone >= 0 {
		if src.CountryDB == "" {
			return nil, fmt.Errorf("zone %q: countries need a country database (Sources.CountryDB)", t.names[countryZone])
		}
		d.dbs = append(d.dbs, &database{kind: "country database", path: src.CountryDB, load: countryLoader(byCode)})
	}
	if asnZone >= 0 {
		if src.ASNDB == "" {
			return nil, fmt.Errorf("zone %q: ASNs need an ASN database (Sources.ASNDB)", t.names[asnZone])
		}
		d.dbs = append(d.dbs, &database{kind: "ASN database", path: src.ASNDB, load: asnLoader(byASN)})
	}
	static := sweepLayer(ev4, ev6)
	if len(d.lists) == 0 && len(d.dbs) == 0 {
		t.matches, t.v4, t.v4m, t.v6, t.v6m = static.matches, static.v4, static.v4m, static.v6, static.v6m
		t.index()
		return t, nil
	}
	d.static = static
	for _, lf := range d.lists {
		l, fi, err := loadList(lf.path)
		if err != nil {
			return nil, fmt.Errorf("zone %q: list file %q: %w", t.names[lf.zones[0]], lf.path, err)
		}
		lf.list, lf.fi = l, fi
	}
	for _, db := range d.dbs {
		if err := d.loadDB(db); err != nil {
			return nil, fmt.Errorf("%s %q: %w", db.kind, db.path, err)
		}
	}
	d.cur.Store(d.build())
	t.dyn = d
	if src.Reload >= 0 {
		every := src.Reload
		if every == 0 {
			every = DefaultReload
		}
		d.stop, d.done = make(chan struct{}), make(chan struct{})
		go d.run(every)
		runtime.AddCleanup(t, (*dynamic).close, d)
	}
	return t, nil
}

// Close stops checking the Table's list files and databases for changes; Lookup goes on with
// what was last read. It waits for a reload in progress to finish. Close is safe to call more
// than once and on any Table; it always returns nil.
func (t *Table) Close() error {
	if t != nil && t.dyn != nil {
		t.dyn.close()
	}
	return nil
}

// dynamic is the state of a Table whose zones use lists or databases.
type dynamic struct {
	// cur is the current version: a Table with only its intervals and index set.
	cur atomic.Pointer[Table]

	// The rest is used by CompileWith and then only by the reload goroutine.
	names  []string // the zone names, for logs
	log    *slog.Logger
	static *Table // intervals of the zones' entries
	lists  []*listFile
	dbs    []*database

	stop, done chan struct{} // nil when nothing is reloaded
	stopOnce   sync.Once
}

// listFile is a list file and what was last read from it.
type listFile struct {
	path    string
	zones   []uint16 // the zones that use the file, in order
	list    *list
	fi      os.FileInfo // the file last read, whether or not it parsed
	lastErr string      // the last error logged, to log each distinct error once
}

// database is a MaxMind database and the intervals last made from it.
type database struct {
	kind    string // "country database" or "ASN database"
	path    string
	load    func(data []byte) (layer *Table, unseen []string, err error)
	layer   *Table
	fi      os.FileInfo
	lastErr string
}

// loadDB reads db's file and makes its intervals. On error db keeps its previous layer.
func (d *dynamic) loadDB(db *database) error {
	data, fi, err := readFile(db.path, maxDBSize)
	if err != nil {
		return err
	}
	db.fi = fi
	layer, unseen, err := db.load(data)
	if err != nil {
		return err
	}
	db.layer = layer
	for _, code := range unseen {
		d.log.Warn("zones: no network of the database has this code; is it right?",
			"file", db.path, "code", code)
	}
	return nil
}

// build returns a new version of the intervals: the entries', the lists' and the databases'.
func (d *dynamic) build() *Table {
	t := d.static
	if len(d.lists) > 0 {
		var ev4 []event[uint32]
		var ev6 []event[u128]
		for _, lf := range d.lists {
			for _, z := range lf.zones {
				for _, s := range lf.list.v4 {
					ev4 = addEvents4(ev4, z, s.lo, s.hi)
				}
				for _, s := range lf.list.v6 {
					ev6 = addEvents6(ev6, z, s.lo, s.hi)
				}
			}
		}
		t = mergeLayers(t, sweepLayer(ev4, ev6))
	}
	for _, db := range d.dbs {
		t = mergeLayers(t, db.layer)
	}
	t.index()
	return t
}

// run checks the files every interval until close.
func (d *dynamic) run(every time.Duration) {
	defer close(d.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
			d.check()
		}
	}
}

func (d *dynamic) close() {
	d.stopOnce.Do(func() {
		if d.stop != nil {
			close(d.stop)
			<-d.done
		}
	})
}

// check reads the files that changed and, if any was read, swaps in a new version.
func (d *dynamic) check() {
	changed := false
	for _, lf := range d.lists {
		changed = d.checkList(lf) || changed
	}
	for _, db := range d.dbs {
		changed = d.checkDB(db) || changed
	}
	if changed {
		d.cur.Store(d.build())
	}
}

// checkList reads lf again if its file changed, and reports whether its contents did.
func (d *dynamic) checkList(lf *listFile) bool {
	changed, err := fileChanged(lf.path, lf.fi)
	if err == nil && !changed {
		return false
	}
	if err == nil {
		var l *list
		var fi os.FileInfo
		l, fi, err = loadList(lf.path)
		if fi != nil {
			lf.fi = fi // a file that does not parse is tried again when it changes
		}
		if err == nil {
			lf.list, lf.lastErr = l, ""
			d.log.Info("zones: list file reloaded", "file", lf.path, "zones", d.zoneNames(lf.zones),
				"entries", l.len())
			return true
		}
	}
	if msg := err.Error(); msg != lf.lastErr {
		lf.lastErr = msg
		d.log.Error("zones: list file not reloaded; keeping its previous contents", "file", lf.path,
			"zones", d.zoneNames(lf.zones), "entries", lf.list.len(), "error", err)
	}
	return false
}

// checkDB reads db again if its file changed, and reports whether its intervals did.
func (d *dynamic) checkDB(db *database) bool {
	changed, err := fileChanged(db.path, db.fi)
	if err == nil && !changed {
		return false
	}
	if err == nil {
		if err = d.loadDB(db); err == nil {
			db.lastErr = ""
			d.log.Info("zones: database reloaded", "file", db.path, "kind", db.kind)
			return true
		}
	}
	if msg := err.Error(); msg != db.lastErr {
		db.lastErr = msg
		d.log.Error("zones: database not reloaded; keeping its previous data", "file", db.path,
			"kind", db.kind, "error", err)
	}
	return false
}

func (d *dynamic) zoneNames(zs []uint16) []string {
	out := make([]string, len(zs))
	for i, z := range zs {
		out[i] = d.names[z]
	}
	return out
}

// fileChanged reports whether the file at path is not the one last read (fi): replaced, or
// changed in size or modification time.
func fileChanged(path string, fi os.FileInfo) (bool, error) {
	cur, err := os.Stat(path)
	if err != nil {
		return false, unwrapPath(err)
	}
	return fi == nil || !os.SameFile(fi, cur) || fi.Size() != cur.Size() || !fi.ModTime().Equal(cur.ModTime()), nil
}

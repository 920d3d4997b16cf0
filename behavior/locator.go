package behavior

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// DefaultCheckEvery is how often a Locator looks at its file for changes by default.
const DefaultCheckEvery = time.Minute

// maxDBSize bounds a database file (GeoIP2-City is about 130 MiB).
const maxDBSize = 1 << 30

// LocatorOptions tune a Locator. The zero value is ready to use.
type LocatorOptions struct {
	// CheckEvery is the least time between two looks at the file (size, modification time, or
	// the file replaced) that Locate starts; zero means DefaultCheckEvery (1 minute), below
	// zero only Reload looks.
	CheckEvery time.Duration
	// Logger receives reloads (Info) and failed reloads that Locate started (Error, once per
	// distinct error). Nil discards them.
	Logger *slog.Logger
	// Now is the clock CheckEvery is measured with; default time.Now.
	Now func() time.Time
}

// Locator turns an address into a country and a location from a MaxMind database: a
// GeoIP2/GeoLite2 City database (country.iso_code, location.latitude and location.longitude)
// or a Country database, which gives the country only. The file is read into memory, so it
// may be replaced or rewritten while in use. A Locator is safe for concurrent use.
type Locator struct {
	path  string
	every time.Duration
	now   func() time.Time
	log   *slog.Logger

	cur       atomic.Pointer[maxminddb.Reader] // nil once closed
	lastCheck atomic.Int64                     // Unix nanoseconds of the last look at the file
	checking  atomic.Bool                      // a look that Locate started is running
	logged    string                           // the last error such a look logged, to log each once

	loadMu  sync.Mutex  // serializes looks at the file; guards fi and lastErr
	fi      os.FileInfo // the file last read, whether or not it loaded
	lastErr error       // why it did not load; nil if it did

	mu     sync.Mutex // guards closed and adding to wg
	closed bool
	wg     sync.WaitGroup // looks that Locate started
}

// OpenLocator opens the database at path with the default LocatorOptions.
func OpenLocator(path string) (*Locator, error) {
	return OpenLocatorWith(path, LocatorOptions{})
}

// OpenLocatorWith opens the database at path. It fails, naming the file, if the file cannot be
// read or is not a City or Country database.
func OpenLocatorWith(path string, opts LocatorOptions) (*Locator, error) {
	l := &Locator{path: path, every: opts.CheckEvery, now: opts.Now, log: opts.Logger}
	if l.every == 0 {
		l.every = DefaultCheckEvery
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	r, fi, err := loadDB(path)
	if err != nil {
		return nil, fmt.Errorf("opening the location database %q: %w", path, err)
	}
	l.cur.Store(r)
	l.fi = fi
	l.lastCheck.Store(l.now().UnixNano())
	return l, nil
}

// cityRecord is the part of a City or Country record that Locate reads.
type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  *float64 `maxminddb:"latitude"`
		Longitude *float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// Locate returns the country (ISO 3166-1 alpha-2 code, upper case; "" unknown) and the
// location (Known false when unknown) of ip. The country is where MaxMind places the user
// (country), not where the network is registered. An IPv4-mapped IPv6 address is looked up as
// IPv4. A closed Locator knows nothing.
//
// At most once every CheckEvery, a call starts a look at the file in the background, which
// reads the file again if it changed; calls meanwhile use the database already read.
func (l *Locator) Locate(ip netip.Addr) (country string, loc Location) {
	l.maybeCheck()
	r := l.cur.Load()
	if r == nil || !ip.IsValid() {
		return "", Location{}
	}
	var rec cityRecord
	if err := r.Lookup(ip.Unmap().WithZone("")).Decode(&rec); err != nil {
		return "", Location{}
	}
	country = normCountry(rec.Country.ISOCode)
	if la, lo := rec.Location.Latitude, rec.Location.Longitude; la != nil && lo != nil {
		if p := (Location{Lat: *la, Lon: *lo, Known: true}); p.valid() {
			loc = p
		}
	}
	return country, loc
}

// maybeCheck starts a look at the file in the background if CheckEvery has passed since the
// last one and none is running.
func (l *Locator) maybeCheck() {
	if l.every < 0 {
		return
	}
	now := l.now()
	if now.Sub(time.Unix(0, l.lastCheck.Load())) < l.every || !l.checking.CompareAndSwap(false, true) {
		return
	}
	l.lastCheck.Store(now.UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.checking.Store(false)
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.checking.Store(false)
		err := l.Reload()
		if err == nil {
			l.logged = ""
		} else if msg := err.Error(); msg != l.logged {
			l.logged = msg
			l.log.Error("behavior: location database not reloaded; keeping the one read before",
				"file", l.path, "error", err)
		}
	}()
}

// Reload reads the file again if it changed (size, modification time, or the file replaced)
// since it was last read. A file that fails to load keeps the database read before, and the
// error is returned, by this call and by later ones until the file changes again.
func (l *Locator) Reload() error {
	l.loadMu.Lock()
	defer l.loadMu.Unlock()
	if l.cur.Load() == nil {
		return fmt.Errorf("reloading the location database %q: the locator is closed", l.path)
	}
	cur, err := os.Stat(l.path)
	if err != nil {
		return fmt.Errorf("reloading the location database %q: %w", l.path, unwrapPath(err))
	}
	if l.fi != nil && os.SameFile(l.fi, cur) && l.fi.Size() == cur.Size() && l.fi.ModTime().Equal(cur.ModTime()) {
		return l.lastErr
	}
	r, fi, err := loadDB(l.path)
	if fi != nil {
		l.fi = fi // a file that does not load is tried again when it changes
	}
	if err != nil {
		l.lastErr = fmt.Errorf("reloading the location database %q: %w", l.path, err)
		return l.lastErr
	}
	l.lastErr = nil
	l.cur.Store(r) // Close takes loadMu to clear cur, so the Locator is still open
	l.log.Info("behavior: location database reloaded", "file", l.path,
		"type", r.Metadata.DatabaseType, "built", r.Metadata.BuildTime())
	return nil
}

// Close stops the looks at the file, waiting for one in progress; Locate then knows nothing.
// Close is safe to call more than once.
func (l *Locator) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
	l.loadMu.Lock()
	l.cur.Store(nil)
	l.loadMu.Unlock()
	return nil
}

// loadDB reads the database at path into memory and checks that it is a City or Country
// database. It returns the file's info once the file was opened, even if it does not load.
func loadDB(path string) (*maxminddb.Reader, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, unwrapPath(err)
	}
	if !fi.Mode().IsRegular() {
		// A FIFO or a device could block the reader forever.
		return nil, nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > maxDBSize {
		return nil, fi, fmt.Errorf("file is larger than %d MiB", maxDBSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDBSize+1))
	if err != nil {
		return nil, fi, unwrapPath(err)
	}
	if len(data) > maxDBSize {
		return nil, fi, fmt.Errorf("file is larger than %d MiB", maxDBSize>>20)
	}
	if len(data) == 0 {
		return nil, fi, errors.New("file is empty")
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fi, fmt.Errorf("not a MaxMind database: %w", err)
	}
	typ := r.Metadata.DatabaseType
	if t := strings.ToLower(typ); !strings.Contains(t, "city") && !strings.Contains(t, "country") &&
		!strings.Contains(t, "enterprise") {
		return nil, fi, fmt.Errorf("database type %q: want a City or Country database (GeoLite2-City, GeoIP2-City, GeoIP2-Country, ...)", typ)
	}
	return r, fi, nil
}

// unwrapPath drops the path from an *os.PathError, whose text repeats it, keeping what
// errors.Is needs (fs.ErrNotExist, fs.ErrPermission).
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

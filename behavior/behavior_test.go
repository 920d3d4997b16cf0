package behavior

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

// t0 is the test clock's start.
var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

// Places, in degrees.
var (
	berlin    = Location{Lat: 52.5200, Lon: 13.4050, Known: true}
	potsdam   = Location{Lat: 52.3906, Lon: 13.0645, Known: true}
	paris     = Location{Lat: 48.8566, Lon: 2.3522, Known: true}
	amsterdam = Location{Lat: 52.3676, Lon: 4.9041, Known: true}
	newYork   = Location{Lat: 40.7128, Lon: -74.0060, Known: true}
	sydney    = Location{Lat: -33.8688, Lon: 151.2093, Known: true}
)

type fixture struct {
	h     *History
	st    *bolt.Store
	clock *storetest.Clock
}

// newFixture returns a History on a new bolt store whose clock reads t0; cfg's Store and Now
// are set.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	clock := storetest.NewClock(t0)
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Now = st, clock.Now
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{h: h, st: st, clock: clock}
}

func (f *fixture) record(t testing.TB, user string, ss ...SignIn) {
	t.Helper()
	for i, s := range ss {
		if err := f.h.Record(context.Background(), user, s); err != nil {
			t.Fatalf("recording sign-in %d of %q: %v", i, user, err)
		}
	}
}

func (f *fixture) list(t testing.TB, user string) []SignIn {
	t.Helper()
	got, err := f.h.List(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// history is three sign-ins: Berlin two days and two hours ago with d-1, Amsterdam yesterday
// with d-2.
var history = []SignIn{
	{Time: t0.Add(-48 * time.Hour), IP: ip("192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"},
	{Time: t0.Add(-24 * time.Hour), IP: ip("198.51.100.7"), Country: "nl", Location: amsterdam, Device: "d-2"},
	{Time: t0.Add(-2 * time.Hour), IP: ip("::ffff:192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"},
}

func TestAssess(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	one := history[2:]
	noLoc := []SignIn{
		{Time: at(-3 * time.Hour), IP: ip("192.0.2.1"), Country: "DE", Device: "d-1"},
		{Time: at(-2 * time.Hour), IP: ip("192.0.2.2"), Device: "d-1"},
	}
	// The newest sign-in has no location: travel is measured from Amsterdam.
	lastUnknown := append(append([]SignIn(nil), history[:2]...),
		SignIn{Time: at(-time.Hour), IP: ip("192.0.2.9"), Country: "DE", Device: "d-1"})
	cases := []struct {
		name    string
		history []SignIn
		cur     SignIn
		sig     Signal
		matched bool
		reason  string
	}{
		// No history: every signal matches.
		{"first/device", nil, SignIn{Device: "d-1"}, NewDevice, true, "first sign-in: no history (counted as new)"},
		{"first/ip", nil, SignIn{IP: ip("192.0.2.1")}, NewIP, true, "first sign-in: no history (counted as new)"},
		{"first/country", nil, SignIn{Country: "DE"}, NewCountry, true, "first sign-in: no history (counted as new)"},
		{"first/travel", nil, SignIn{Location: berlin}, ImpossibleTravel, true, "first sign-in: no history (counted as matched)"},

		{"device/seen", history, SignIn{Device: "d-1"}, NewDevice, false, "device d-1 seen in 2 of the last 3 sign-ins"},
		{"device/new", history, SignIn{Device: "d-123"}, NewDevice, true, "device d-123 not seen in the last 3 sign-ins"},
		{"device/unknown", history, SignIn{}, NewDevice, true, "device unknown: counted as new"},
		{"device/case matters", history, SignIn{Device: "D-1"}, NewDevice, true, "device D-1 not seen in the last 3 sign-ins"},
		{"device/quoted", history, SignIn{Device: "x\nforged=1"}, NewDevice, true, `device "x\nforged=1" not seen in the last 3 sign-ins`},
		{"device/long", history, SignIn{Device: strings.Repeat("a", 70)}, NewDevice, true, `device "` + strings.Repeat("a", 64) + `"... not seen in the last 3 sign-ins`},
		{"device/one seen", one, SignIn{Device: "d-1"}, NewDevice, false, "device d-1 seen in the last sign-in"},
		{"device/one new", one, SignIn{Device: "d-2"}, NewDevice, true, "device d-2 not seen in the last sign-in"},

		{"ip/seen", history, SignIn{IP: ip("192.0.2.1")}, NewIP, false, "IP 192.0.2.1 seen in 2 of the last 3 sign-ins"},
		{"ip/seen mapped", history, SignIn{IP: ip("::ffff:198.51.100.7")}, NewIP, false, "IP 198.51.100.7 seen in 1 of the last 3 sign-ins"},
		{"ip/new", history, SignIn{IP: ip("203.0.113.7")}, NewIP, true, "IP 203.0.113.7 not seen in the last 3 sign-ins"},
		{"ip/new v6", history, SignIn{IP: ip("2001:db8::1%eth0")}, NewIP, true, "IP 2001:db8::1 not seen in the last 3 sign-ins"},
		{"ip/unknown", history, SignIn{}, NewIP, true, "IP unknown: counted as new"},

		{"country/seen", history, SignIn{Country: "de"}, NewCountry, false, "country DE seen in 2 of the last 3 sign-ins"},
		{"country/new", history, SignIn{Country: "FR"}, NewCountry, true, "country FR never seen (seen: DE, NL)"},
		{"country/unknown", history, SignIn{}, NewCountry, true, "country unknown: counted as new"},
		{"country/invalid", history, SignIn{Country: "D1"}, NewCountry, true, "country unknown: counted as new"},
		{"country/none known", noLoc[1:], SignIn{Country: "FR"}, NewCountry, true, "country FR never seen (seen: none known)"},

		{"travel/same city", history, SignIn{Time: t0, Location: berlin, Country: "DE"}, ImpossibleTravel, false,
			"0 km in 2h0m0s from DE to DE: under 100 km, within geolocation error"},
		{"travel/short hop", history, SignIn{Time: at(-2*time.Hour + time.Minute), Location: potsdam, Country: "DE"}, ImpossibleTravel, false,
			"27 km in 1m0s from DE to DE: under 100 km, within geolocation error"},
		{"travel/possible", history, SignIn{Time: t0, Location: paris, Country: "FR"}, ImpossibleTravel, false,
			"877 km in 2h0m0s from DE to FR = 439 km/h <= 900 km/h"},
		{"travel/impossible", history, SignIn{Time: at(-2*time.Hour + 10*time.Minute), Location: newYork, Country: "US"}, ImpossibleTravel, true,
			"6,385 km in 10m0s from DE to US = 38,310 km/h > 900 km/h"},
		{"travel/no time", history, SignIn{Time: at(-2 * time.Hour), Location: paris, Country: "FR"}, ImpossibleTravel, true,
			"877 km in 0s from DE to FR: no time between the sign-ins"},
		{"travel/back in time", history, SignIn{Time: at(-3 * time.Hour), Location: paris}, ImpossibleTravel, true,
			"877 km in -1h0m0s from DE to ?: no time between the sign-ins"},
		{"travel/from last known", lastUnknown, SignIn{Time: t0, Location: berlin, Country: "DE"}, ImpossibleTravel, false,
			"576 km in 24h0m0s from NL to DE = 24 km/h <= 900 km/h"},
		{"travel/unknown location", history, SignIn{Time: t0, Country: "DE"}, ImpossibleTravel, true,
			"location unknown: counted as matched"},
		{"travel/invalid location", history, SignIn{Time: t0, Location: Location{Lat: 91, Known: true}}, ImpossibleTravel, true,
			"location unknown: counted as matched"},
		{"travel/no previous location", noLoc, SignIn{Time: t0, Location: berlin}, ImpossibleTravel, true,
			"no previous sign-in with a known location: counted as matched"},
		// Time zero is now.
		{"travel/zero time", history, SignIn{Location: sydney, Country: "AU"}, ImpossibleTravel, true,
			"16,095 km in 2h0m0s from DE to AU = 8,047 km/h > 900 km/h"},

		{"unknown signal", history, SignIn{}, Signal("new_planet"), true, `unknown signal "new_planet": counted as matched`},
	}
	f := newFixture(t, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.record(t, c.name, c.history...)
			a, err := f.h.Assess(context.Background(), c.name, c.cur)
			if err != nil {
				t.Fatal(err)
			}
			got := a.Verdict(c.sig)
			if got.Matched != c.matched || got.Reason != c.reason {
				t.Errorf("%s = {%v, %q}, want {%v, %q}", c.sig, got.Matched, got.Reason, c.matched, c.reason)
			}
			// Assess does not change the history.
			if n := len(f.list(t, c.name)); n != len(c.history) {
				t.Errorf("history has %d sign-ins after Assess, want %d", n, len(c.history))
			}
		})
	}
}

// TestImpossibleTravelAcceptance is the case: a sign-in from a second country 10
// minutes after the first triggers impossible_travel; a short hop does not.
func TestImpossibleTravelAcceptance(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	first := SignIn{Time: t0, IP: ip("192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"}
	f.record(t, "alice", first)
	f.clock.Advance(10 * time.Minute)

	a, err := f.h.Assess(ctx, "alice", SignIn{IP: ip("203.0.113.9"), Country: "US", Location: newYork, Device: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Verdict(ImpossibleTravel); !v.Matched || v.Reason != "6,385 km in 10m0s from DE to US = 38,310 km/h > 900 km/h" {
		t.Errorf("Berlin then New York 10 minutes later: %+v, want impossible travel", v)
	}
	if s, ok := a.Any(NewDevice, ImpossibleTravel, NewCountry); !ok || s != ImpossibleTravel {
		t.Errorf("Any = %q, %v; want impossible_travel (the device is known)", s, ok)
	}

	a, err = f.h.Assess(ctx, "alice", SignIn{IP: ip("192.0.2.77"), Country: "DE", Location: potsdam, Device: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Verdict(ImpossibleTravel); v.Matched {
		t.Errorf("Berlin then Potsdam: %+v, want not impossible", v)
	}
	if s, ok := a.Any(NewDevice, NewCountry, ImpossibleTravel); ok {
		t.Errorf("Any = %q, want none (only the IP is new)", s)
	}
	if s, ok := a.Any(NewDevice, NewIP); !ok || s != NewIP {
		t.Errorf("Any = %q, %v; want new_ip", s, ok)
	}
}

func TestAssessmentFailsClosed(t *testing.T) {
	var zero Assessment
	for _, s := range Signals() {
		if v := zero.Verdict(s); !v.Matched || v.Reason != "not assessed: counted as matched" {
			t.Errorf("zero Assessment: %s = %+v, want matched", s, v)
		}
	}
	if s, ok := zero.Any(NewIP); !ok || s != NewIP {
		t.Errorf("zero Assessment: Any = %q, %v; want new_ip", s, ok)
	}
	if s, ok := zero.Any(); ok {
		t.Errorf("Any() with no signals = %q, true; want false", s)
	}

	// A store that cannot answer gives an error, and the zero Assessment with it.
	f := newFixture(t, Config{})
	f.record(t, "bob", history...)
	f.st.Close()
	ctx := context.Background()
	a, err := f.h.Assess(ctx, "bob", SignIn{Device: "d-1"})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), `assessing a sign-in of user "bob": reading the history: `) {
		t.Errorf("Assess on a closed store: %v, want ErrUnavailable and context", err)
	}
	if !a.Verdict(NewDevice).Matched {
		t.Error("Assess on a closed store: new_device not matched")
	}
	if err := f.h.Record(ctx, "bob", SignIn{}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Record on a closed store: %v, want ErrUnavailable", err)
	}
	if _, err := f.h.List(ctx, "bob"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("List on a closed store: %v, want ErrUnavailable", err)
	}
	if err := f.h.Forget(ctx, "bob"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Forget on a closed store: %v, want ErrUnavailable", err)
	}
}

func TestEmptyUserID(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	if _, err := f.h.Assess(ctx, "", SignIn{}); err == nil || err.Error() != "assessing a sign-in: empty user id" {
		t.Errorf("Assess: %v", err)
	}
	if err := f.h.Record(ctx, "", SignIn{}); err == nil || err.Error() != "recording a sign-in: empty user id" {
		t.Errorf("Record: %v", err)
	}
	if _, err := f.h.List(ctx, ""); err == nil || err.Error() != "listing sign-ins: empty user id" {
		t.Errorf("List: %v", err)
	}
	if err := f.h.Forget(ctx, ""); err == nil || err.Error() != "forgetting sign-ins: empty user id" {
		t.Errorf("Forget: %v", err)
	}
}

func TestRecordListForget(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := context.Background()
	if got := f.list(t, "carol"); len(got) != 0 {
		t.Fatalf("unknown user: %v", got)
	}
	f.record(t, "carol", history...)
	f.record(t, "dave", history[0])
	got := f.list(t, "carol")
	want := []SignIn{
		{Time: history[2].Time, IP: ip("192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"},
		{Time: history[1].Time, IP: ip("198.51.100.7"), Country: "NL", Location: amsterdam, Device: "d-2"},
		{Time: history[0].Time, IP: ip("192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List =\n%v\nwant (newest first, normalized)\n%v", got, want)
	}

	// Zero time is now; an unknown location stays unknown.
	f.record(t, "erin", SignIn{IP: ip("2001:db8::1")})
	if got := f.list(t, "erin"); len(got) != 1 || !got[0].Time.Equal(t0) || got[0].Location.Known {
		t.Errorf("List = %v, want one sign-in at %v without location", got, t0)
	}

	// One record per user, owned by the user, expiring Retention after the newest sign-in.
	r, err := f.st.Get(ctx, Kind, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if r.Owner != "carol" || !r.ExpiresAt.Equal(history[2].Time.Add(DefaultRetention)) {
		t.Errorf("record owner %q, expires %v; want carol, %v", r.Owner, r.ExpiresAt, history[2].Time.Add(DefaultRetention))
	}

	if err := f.h.Forget(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if got := f.list(t, "carol"); len(got) != 0 {
		t.Errorf("after Forget: %v", got)
	}
	if err := f.h.Forget(ctx, "carol"); err != nil {
		t.Errorf("Forget twice: %v", err)
	}
	if got := f.list(t, "dave"); len(got) != 1 {
		t.Errorf("Forget of carol removed dave's history: %v", got)
	}
}

func TestTrimMaxEntries(t *testing.T) {
	f := newFixture(t, Config{MaxEntries: 3})
	for i := range 5 {
		f.record(t, "u", SignIn{Time: t0.Add(time.Duration(i-10) * time.Minute), Device: fmt.Sprintf("d-%d", i)})
	}
	devices := func() string {
		var ds []string
		for _, s := range f.list(t, "u") {
			ds = append(ds, s.Device)
		}
		return strings.Join(ds, " ")
	}
	if got := devices(); got != "d-4 d-3 d-2" {
		t.Errorf("after 5 sign-ins: %s, want the newest 3: d-4 d-3 d-2", got)
	}
	// Sign-ins recorded out of order keep their place; one older than the kept ones is dropped.
	f.record(t, "u", SignIn{Time: t0.Add(-7*time.Minute - 30*time.Second), Device: "late"})
	if got := devices(); got != "d-4 d-3 late" {
		t.Errorf("after a late sign-in: %s, want d-4 d-3 late", got)
	}
	f.record(t, "u", SignIn{Time: t0.Add(-time.Hour), Device: "too-old"})
	if got := devices(); got != "d-4 d-3 late" {
		t.Errorf("after an older sign-in: %s, want d-4 d-3 late", got)
	}
	a, err := f.h.Assess(context.Background(), "u", SignIn{Device: "d-0"})
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Verdict(NewDevice); !v.Matched || v.Reason != "device d-0 not seen in the last 3 sign-ins" {
		t.Errorf("trimmed device: %+v", v)
	}
}

func TestTrimRetention(t *testing.T) {
	f := newFixture(t, Config{Retention: 24 * time.Hour})
	ctx := context.Background()
	f.record(t, "u", SignIn{Device: "a", Location: berlin, Country: "DE"}) // t0
	f.clock.Advance(12 * time.Hour)
	f.record(t, "u", SignIn{Device: "b"}) // t0+12h
	f.clock.Advance(13 * time.Hour)       // a is 25 hours old

	if got := f.list(t, "u"); len(got) != 1 || got[0].Device != "b" {
		t.Errorf("List after 25h: %v, want only b", got)
	}
	a, err := f.h.Assess(ctx, "u", SignIn{Device: "a", Location: newYork, Country: "US"})
	if err != nil {
		t.Fatal(err)
	}
	if v := a.Verdict(NewDevice); !v.Matched || v.Reason != "device a not seen in the last sign-in" {
		t.Errorf("new_device past retention: %+v", v)
	}
	if v := a.Verdict(NewCountry); !v.Matched || v.Reason != "country US never seen (seen: none known)" {
		t.Errorf("new_country past retention: %+v", v)
	}
	if v := a.Verdict(ImpossibleTravel); !v.Matched || v.Reason != "no previous sign-in with a known location: counted as matched" {
		t.Errorf("impossible_travel past retention: %+v", v)
	}

	// Recording drops the old entry from the record too.
	f.record(t, "u", SignIn{Device: "c"})
	r, err := f.st.Get(ctx, Kind, "u")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Value), `"d":"a"`) {
		t.Errorf("record still holds the expired entry: %s", r.Value)
	}
	if want := f.clock.Now().Add(24 * time.Hour); !r.ExpiresAt.Equal(want) {
		t.Errorf("record expires %v, want %v", r.ExpiresAt, want)
	}

	// The record itself expires a retention after the newest sign-in.
	f.clock.Advance(24 * time.Hour)
	if _, err := f.st.Get(ctx, Kind, "u"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record a retention after the last sign-in: %v, want not found", err)
	}
	if got := f.list(t, "u"); len(got) != 0 {
		t.Errorf("List: %v, want none", got)
	}

	// A sign-in already past the retention is not kept.
	f.record(t, "v", SignIn{Time: f.clock.Now().Add(-25 * time.Hour), Device: "old"})
	if _, err := f.st.Get(ctx, Kind, "v"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of an old sign-in: %v, want none written", err)
	}
}

// TestConcurrentRecord checks that Records racing for the same user, also for the record's
// creation, lose nothing.
func TestConcurrentRecord(t *testing.T) {
	const goroutines, each = 16, 8
	f := newFixture(t, Config{MaxEntries: 1000})
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for i := range each {
				s := SignIn{Time: t0.Add(-time.Duration(g*each+i) * time.Second), Device: fmt.Sprintf("d-%d-%d", g, i)}
				if err := f.h.Record(context.Background(), "racer", s); err != nil {
					errs <- err
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := f.list(t, "racer")
	if len(got) != goroutines*each {
		t.Fatalf("%d sign-ins kept, want %d", len(got), goroutines*each)
	}
	seen := make(map[string]bool)
	for i, s := range got {
		seen[s.Device] = true
		if i > 0 && s.Time.After(got[i-1].Time) {
			t.Errorf("sign-in %d (%v) is newer than the one before it (%v)", i, s.Time, got[i-1].Time)
		}
	}
	if len(seen) != goroutines*each {
		t.Errorf("%d distinct devices, want %d", len(seen), goroutines*each)
	}
}

func TestNewConfig(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "z.db"), bolt.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no store", Config{}, "behavior: no store"},
		{"negative entries", Config{Store: st, MaxEntries: -1}, "behavior: MaxEntries -1: want 1 to 10000 (0 for the default 50)"},
		{"too many entries", Config{Store: st, MaxEntries: 10_001}, "behavior: MaxEntries 10001: want 1 to 10000 (0 for the default 50)"},
		{"negative retention", Config{Store: st, Retention: -time.Hour}, "behavior: Retention -1h0m0s: must not be negative (0 for the default 4320h0m0s)"},
		{"negative speed", Config{Store: st, MaxSpeedKMH: -1}, "behavior: MaxSpeedKMH -1: want a speed above 0 (0 for the default 900)"},
		{"NaN speed", Config{Store: st, MaxSpeedKMH: math.NaN()}, "behavior: MaxSpeedKMH NaN: want a speed above 0 (0 for the default 900)"},
		{"infinite speed", Config{Store: st, MaxSpeedKMH: math.Inf(1)}, "behavior: MaxSpeedKMH +Inf: want a speed above 0 (0 for the default 900)"},
		{"negative distance", Config{Store: st, MinDistanceKM: -5}, "behavior: MinDistanceKM -5: must not be negative (0 for the default 100)"},
		{"NaN distance", Config{Store: st, MinDistanceKM: math.NaN()}, "behavior: MinDistanceKM NaN: must not be negative (0 for the default 100)"},
		{"defaults", Config{Store: st}, ""},
		{"all set", Config{Store: st, MaxEntries: 10_000, Retention: time.Hour, MaxSpeedKMH: 0.5, MinDistanceKM: 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := New(c.cfg)
			if c.err == "" {
				if err != nil || h == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || err.Error() != c.err {
				t.Errorf("New: %v, want %q", err, c.err)
			}
		})
	}
}

// TestCustomLimits checks MaxSpeedKMH and MinDistanceKM, and how a fractional limit is written.
func TestCustomLimits(t *testing.T) {
	f := newFixture(t, Config{MaxSpeedKMH: 400.5, MinDistanceKM: 1000})
	f.record(t, "u", SignIn{Time: t0.Add(-2 * time.Hour), Location: berlin, Country: "DE"})
	cases := []struct {
		cur     SignIn
		matched bool
		reason  string
	}{
		{SignIn{Location: paris, Country: "FR"}, false, "877 km in 2h0m0s from DE to FR: under 1,000 km, within geolocation error"},
		{SignIn{Location: newYork, Country: "US"}, true, "6,385 km in 2h0m0s from DE to US = 3,193 km/h > 400.5 km/h"},
		{SignIn{Time: t0.Add(14 * time.Hour), Location: newYork, Country: "US"}, false, "6,385 km in 16h0m0s from DE to US = 399 km/h <= 400.5 km/h"},
	}
	for _, c := range cases {
		a, err := f.h.Assess(context.Background(), "u", c.cur)
		if err != nil {
			t.Fatal(err)
		}
		if v := a.Verdict(ImpossibleTravel); v.Matched != c.matched || v.Reason != c.reason {
			t.Errorf("%+v: got {%v, %q}, want {%v, %q}", c.cur, v.Matched, v.Reason, c.matched, c.reason)
		}
	}
}

func TestDistanceKM(t *testing.T) {
	cases := []struct {
		name string
		a, b Location
		want float64 // km
		tol  float64 // relative
	}{
		{"Berlin-Paris", berlin, paris, 878, 0.01},
		{"Paris-Berlin", paris, berlin, 878, 0.01},
		{"Berlin-New York", berlin, newYork, 6385, 0.01},
		{"Berlin-Potsdam", berlin, potsdam, 27.2, 0.01},
		{"Berlin-Sydney", berlin, sydney, 16095, 0.01},
		{"across the date line", Location{Lat: 0, Lon: 179.5, Known: true}, Location{Lat: 0, Lon: -179.5, Known: true}, 111.2, 0.01},
		{"pole to pole", Location{Lat: 90, Known: true}, Location{Lat: -90, Known: true}, math.Pi * earthRadiusKM, 1e-9},
		{"antipodes", Location{Lat: 10, Lon: 20, Known: true}, Location{Lat: -10, Lon: -160, Known: true}, math.Pi * earthRadiusKM, 1e-9},
	}
	for _, c := range cases {
		got := DistanceKM(c.a, c.b)
		if math.Abs(got-c.want) > c.want*c.tol {
			t.Errorf("%s: %.1f km, want %.1f km within %g%%", c.name, got, c.want, c.tol*100)
		}
	}
	if d := DistanceKM(berlin, berlin); d != 0 {
		t.Errorf("Berlin-Berlin: %v km, want 0", d)
	}
}

func TestGroup(t *testing.T) {
	cases := map[float64]string{0: "0", 999: "999", 1000: "1,000", 1024: "1,024", 6144.4: "6,144",
		1234567: "1,234,567", -1234: "-1,234"}
	for f, want := range cases {
		if got := whole(f); got != want {
			t.Errorf("whole(%v) = %q, want %q", f, got, want)
		}
	}
	if got := number(1500.25); got != "1,500.25" {
		t.Errorf("number(1500.25) = %q", got)
	}
}

func BenchmarkAssess(b *testing.B) {
	f := newFixture(b, Config{})
	for i := range DefaultMaxEntries {
		f.record(b, "u", SignIn{
			Time:     t0.Add(-time.Duration(i+1) * time.Hour),
			IP:       netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Country:  []string{"DE", "NL", "FR"}[i%3],
			Location: []Location{berlin, amsterdam, paris}[i%3],
			Device:   fmt.Sprintf("d-%d", i%5),
		})
	}
	cur := SignIn{IP: ip("203.0.113.1"), Country: "US", Location: newYork, Device: "d-9"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := f.h.Assess(ctx, "u", cur)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := a.Any(ImpossibleTravel); !ok {
			b.Fatal("not impossible travel")
		}
	}
}

// BenchmarkAssessCompare is Assess without the store read and decoding.
func BenchmarkAssessCompare(b *testing.B) {
	f := newFixture(b, Config{})
	es := make([]entry, DefaultMaxEntries)
	for i := range es {
		es[i] = f.h.entry(SignIn{
			Time:     t0.Add(-time.Duration(i+1) * time.Hour),
			IP:       netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Country:  []string{"DE", "NL", "FR"}[i%3],
			Location: []Location{berlin, amsterdam, paris}[i%3],
			Device:   fmt.Sprintf("d-%d", i%5),
		})
	}
	cur := f.h.entry(SignIn{IP: ip("192.0.2.7"), Country: "DE", Location: potsdam, Device: "d-1"})
	b.ReportAllocs()
	for b.Loop() {
		f.h.assess(es, cur)
	}
}

func BenchmarkRecord(b *testing.B) {
	f := newFixture(b, Config{})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s := SignIn{Time: t0.Add(-time.Duration(i) * time.Millisecond), IP: ip("192.0.2.1"), Country: "DE", Location: berlin, Device: "d-1"}
		if err := f.h.Record(ctx, "u", s); err != nil {
			b.Fatal(err)
		}
	}
}

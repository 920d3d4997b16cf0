// Package behavior keeps users' sign-in history and tells when a sign-in is unusual.
//
// A History holds, per user, the last sign-ins (time, address, country, location, device) in
// one store record, and Assess compares a new sign-in with them for the signals a policy rule
// can ask one more factor for: new_device, new_ip, new_country and impossible_travel, as
// Okta's behavior detection does. Call Assess before Record for the same sign-in. Where there is
// too little to judge by, a signal counts as matched (the careful choice) and its reason says
// why. A Locator gives the country and location of an address from a MaxMind database.
package behavior

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zonegate/zonegate/store"
)

// Kind is the store kind of sign-in histories: one record per user, id and owner the user id.
const Kind store.Kind = "signin_history"

// Defaults of Config.
const (
	DefaultMaxEntries    = 50
	DefaultRetention     = 180 * 24 * time.Hour
	DefaultMaxSpeedKMH   = 900 // an airliner
	DefaultMinDistanceKM = 100 // city-level geolocation error
)

// maxMaxEntries bounds Config.MaxEntries so a history stays a small record (about 150 bytes an
// entry).
const maxMaxEntries = 10_000

// maxRecordAttempts bounds Record's retries when another writer creates the record first.
const maxRecordAttempts = 8

// SignIn is one successful sign-in as the history keeps it.
type SignIn struct {
	// Time is when it happened; zero means now (Config.Now).
	Time time.Time
	// IP is the client address; the zero Addr is unknown. An IPv4-mapped IPv6 address is the
	// same IP as its IPv4 form, and a zone is dropped.
	IP netip.Addr
	// Country is the ISO 3166-1 alpha-2 code of where the address is (any case); "" unknown.
	Country string
	// Location is where the address is; zero (Known false) when unknown.
	Location Location
	// Device is the device id; "" unknown.
	Device string
}

// Config configures a History.
type Config struct {
	// Store keeps the histories (kind "signin_history"). Required.
	Store store.Store
	// MaxEntries is how many sign-ins are kept per user, the oldest dropped first; 1 to
	// 10000, zero means DefaultMaxEntries (50).
	MaxEntries int
	// Retention is how long a sign-in is kept and counts; zero means DefaultRetention (180
	// days).
	Retention time.Duration
	// MaxSpeedKMH is the speed above which travel between two sign-ins is impossible; zero
	// means DefaultMaxSpeedKMH (900, an airliner); must not be negative.
	MaxSpeedKMH float64
	// MinDistanceKM is the distance below which travel never counts as impossible, however
	// short the time (city-level geolocation error); zero means DefaultMinDistanceKM (100);
	// must not be negative.
	MinDistanceKM float64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// History keeps users' sign-in histories in a store. It is safe for concurrent use, also by
// several gateways sharing a store: Record is a compare-and-swap update of the user's record.
type History struct {
	coll       store.Collection[record]
	maxEntries int
	retention  time.Duration
	maxSpeed   float64
	minDist    float64
	now        func() time.Time
}

// record is the stored value of one user's history.
type record struct {
	// Entries are the kept sign-ins, newest first.
	Entries []entry `json:"entries"`
}

// entry is one sign-in as stored: normalized (see History.entry), with short JSON names.
type entry struct {
	Time    time.Time   `json:"t"`
	IP      netip.Addr  `json:"ip,omitzero"`
	Country string      `json:"c,omitempty"`
	Loc     *[2]float64 `json:"loc,omitempty"` // latitude, longitude; nil when unknown
	Device  string      `json:"d,omitempty"`
}

// location returns e's location.
func (e entry) location() Location {
	if e.Loc == nil {
		return Location{}
	}
	return Location{Lat: e.Loc[0], Lon: e.Loc[1], Known: true}
}

// New returns a History with cfg, its zero fields set to their defaults.
func New(cfg Config) (*History, error) {
	if cfg.Store == nil {
		return nil, errors.New("behavior: no store")
	}
	if cfg.MaxEntries < 0 || cfg.MaxEntries > maxMaxEntries {
		return nil, fmt.Errorf("behavior: MaxEntries %d: want 1 to %d (0 for the default %d)",
			cfg.MaxEntries, maxMaxEntries, DefaultMaxEntries)
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("behavior: Retention %v: must not be negative (0 for the default %v)",
			cfg.Retention, DefaultRetention)
	}
	if !(cfg.MaxSpeedKMH >= 0) || math.IsInf(cfg.MaxSpeedKMH, 0) {
		return nil, fmt.Errorf("behavior: MaxSpeedKMH %v: want a speed above 0 (0 for the default %d)",
			cfg.MaxSpeedKMH, DefaultMaxSpeedKMH)
	}
	if !(cfg.MinDistanceKM >= 0) || math.IsInf(cfg.MinDistanceKM, 0) {
		return nil, fmt.Errorf("behavior: MinDistanceKM %v: must not be negative (0 for the default %d)",
			cfg.MinDistanceKM, DefaultMinDistanceKM)
	}
	h := &History{
		coll:       store.Collection[record]{Store: cfg.Store, Kind: Kind},
		maxEntries: cmp.Or(cfg.MaxEntries, DefaultMaxEntries),
		retention:  cmp.Or(cfg.Retention, DefaultRetention),
		maxSpeed:   cmp.Or(cfg.MaxSpeedKMH, DefaultMaxSpeedKMH),
		minDist:    cmp.Or(cfg.MinDistanceKM, DefaultMinDistanceKM),
		now:        cfg.Now,
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// entry returns s as stored: zero time replaced by now, the address unmapped and without a
// zone, the country in upper case ("" unless two letters), a location out of range unknown.
func (h *History) entry(s SignIn) entry {
	e := entry{Time: s.Time, IP: s.IP.Unmap().WithZone(""), Country: normCountry(s.Country), Device: s.Device}
	if e.Time.IsZero() {
		e.Time = h.now()
	}
	if s.Location.valid() {
		e.Loc = &[2]float64{s.Location.Lat, s.Location.Lon}
	}
	return e
}

// normCountry returns s trimmed and in upper case if it is two letters, else "".
func normCountry(s string) string {
	s = strings.TrimSpace(s)
	if len(s) != 2 {
		return ""
	}
	b := [2]byte{s[0] &^ 0x20, s[1] &^ 0x20} // ASCII upper case
	if b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z' {
		return ""
	}
	return string(b[:])
}

// load returns the user's kept sign-ins, newest first: none if there is no record.
func (h *History) load(ctx context.Context, userID string) ([]entry, error) {
	r, err := h.coll.Get(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return h.trim(r.Entries, h.now()), nil
}

// trim drops from es (newest first) the entries past the retention at now and those beyond
// MaxEntries. It reuses es.
func (h *History) trim(es []entry, now time.Time) []entry {
	cutoff := now.Add(-h.retention)
	es = slices.DeleteFunc(es, func(e entry) bool { return !e.Time.After(cutoff) })
	if len(es) > h.maxEntries {
		es = es[:h.maxEntries]
	}
	return es
}

// insert adds e to es (newest first) before every entry not newer than it.
func insert(es []entry, e entry) []entry {
	i := slices.IndexFunc(es, func(x entry) bool { return !x.Time.After(e.Time) })
	if i < 0 {
		i = len(es)
	}
	return slices.Insert(es, i, e)
}

// Record appends s to the user's history: one compare-and-swap update of the user's record
// (created if missing), which is then trimmed by MaxEntries and Retention and expires
// Retention after its newest sign-in. A sign-in already past the retention is not kept.
func (h *History) Record(ctx context.Context, userID string, s SignIn) error {
	if userID == "" {
		return errors.New("recording a sign-in: empty user id")
	}
	e := h.entry(s)
	now := h.now()
	if !e.Time.After(now.Add(-h.retention)) {
		return nil
	}
	add := func(r record) (record, time.Time) {
		r.Entries = h.trim(insert(r.Entries, e), now)
		return r, r.Entries[0].Time.Add(h.retention)
	}
	for attempt := 1; ; attempt++ {
		_, err := h.coll.Update(ctx, userID, func(r record) (record, time.Time, error) {
			r, exp := add(r)
			return r, exp, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			r, exp := add(record{})
			err = h.coll.Create(ctx, userID, userID, exp, r)
			if errors.Is(err, store.ErrAlreadyExists) && attempt < maxRecordAttempts {
				continue // another sign-in created it first: add to theirs
			}
		}
		if err != nil {
			return fmt.Errorf("recording a sign-in of user %q: %w", userID, err)
		}
		return nil
	}
}

// List returns the user's kept sign-ins, newest first (none for an unknown user).
func (h *History) List(ctx context.Context, userID string) ([]SignIn, error) {
	if userID == "" {
		return nil, errors.New("listing sign-ins: empty user id")
	}
	es, err := h.load(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sign-ins of user %q: %w", userID, err)
	}
	out := make([]SignIn, len(es))
	for i, e := range es {
		out[i] = SignIn{Time: e.Time, IP: e.IP, Country: e.Country, Location: e.location(), Device: e.Device}
	}
	return out, nil
}

// Forget deletes the user's history (a user deprovisioned, or asking to be forgotten).
func (h *History) Forget(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("forgetting sign-ins: empty user id")
	}
	if err := h.coll.Delete(ctx, userID); err != nil {
		return fmt.Errorf("forgetting sign-ins of user %q: %w", userID, err)
	}
	return nil
}

// Verdict is what Assess found for one signal.
type Verdict struct {
	// Matched says the sign-in is unusual in this way (or there was too little to judge by).
	Matched bool
	// Reason says why, for the audit and debug logs, e.g. "device d-123 not seen in the last
	// 50 sign-ins" or "1,024 km in 10m0s from DE to FR = 6,144 km/h > 900 km/h".
	Reason string
}

// Assessment is what Assess found for every signal. The zero Assessment (not assessed)
// counts every signal as matched.
type Assessment struct {
	verdicts [len(signals)]Verdict
	done     bool
}

// Verdict returns the verdict for s. A signal that is not one of this package's, or any
// signal of an Assessment that Assess did not return, counts as matched.
func (a Assessment) Verdict(s Signal) Verdict {
	i := s.index()
	switch {
	case i < 0:
		return Verdict{Matched: true, Reason: fmt.Sprintf("unknown signal %q: counted as matched", string(s))}
	case !a.done:
		return Verdict{Matched: true, Reason: "not assessed: counted as matched"}
	}
	return a.verdicts[i]
}

// Any returns the first of signals that matched, in the order given, and true; or "" and
// false if none did.
func (a Assessment) Any(signals ...Signal) (Signal, bool) {
	for _, s := range signals {
		if a.Verdict(s).Matched {
			return s, true
		}
	}
	return "", false
}

// Assess compares s with the user's history (not changing it). With too little history to judge
// (no previous sign-in; or for impossible_travel no previous sign-in with a known location; or
// the current location unknown), the signal counts as MATCHED and the reason says so — the
// careful choice. The same holds for a sign-in whose device, address or country is unknown.
// new_device, new_ip and new_country look at every kept sign-in; impossible_travel compares with
// the most recent one that has a known location. An error (the store unreachable) comes with
// the zero Assessment, which counts every signal as matched.
func (h *History) Assess(ctx context.Context, userID string, s SignIn) (Assessment, error) {
	if userID == "" {
		return Assessment{}, errors.New("assessing a sign-in: empty user id")
	}
	es, err := h.load(ctx, userID)
	if err != nil {
		return Assessment{}, fmt.Errorf("assessing a sign-in of user %q: reading the history: %w", userID, err)
	}
	return h.assess(es, h.entry(s)), nil
}

// assess compares cur with the kept sign-ins es (newest first).
func (h *History) assess(es []entry, cur entry) Assessment {
	a := Assessment{done: true}
	a.verdicts[NewDevice.index()] = seenBefore(es, "device", show(cur.Device), cur.Device != "",
		func(e entry) bool { return e.Device == cur.Device })
	a.verdicts[NewIP.index()] = seenBefore(es, "IP", cur.IP.String(), cur.IP.IsValid(),
		func(e entry) bool { return e.IP == cur.IP })
	a.verdicts[NewCountry.index()] = newCountry(es, cur.Country)
	a.verdicts[ImpossibleTravel.index()] = h.travel(es, cur)
	return a
}

// noHistory is the reason of a signal judged against no previous sign-in.
const noHistory = "first sign-in: no history (counted as new)"

// seenBefore is the verdict of new_device and new_ip: matched unless some entry of es has the
// value (same). what names it and shown is how it is written.
func seenBefore(es []entry, what, shown string, known bool, same func(entry) bool) Verdict {
	switch {
	case len(es) == 0:
		return Verdict{Matched: true, Reason: noHistory}
	case !known:
		return Verdict{Matched: true, Reason: what + " unknown: counted as new"}
	}
	n := 0
	for _, e := range es {
		if same(e) {
			n++
		}
	}
	if n == 0 {
		return Verdict{Matched: true, Reason: what + " " + shown + " not seen in " + lastN(len(es))}
	}
	return Verdict{Reason: what + " " + shown + " seen in " + countOf(n, len(es))}
}

// newCountry is the verdict of new_country.
func newCountry(es []entry, cc string) Verdict {
	switch {
	case len(es) == 0:
		return Verdict{Matched: true, Reason: noHistory}
	case cc == "":
		return Verdict{Matched: true, Reason: "country unknown: counted as new"}
	}
	n := 0
	var seen []string
	for _, e := range es {
		switch e.Country {
		case cc:
			n++
		case "":
		default:
			if !slices.Contains(seen, e.Country) {
				seen = append(seen, e.Country)
			}
		}
	}
	if n > 0 {
		return Verdict{Reason: "country " + cc + " seen in " + countOf(n, len(es))}
	}
	list := "none known"
	if len(seen) > 0 {
		slices.Sort(seen)
		list = strings.Join(seen, ", ")
	}
	return Verdict{Matched: true, Reason: "country " + cc + " never seen (seen: " + list + ")"}
}

// travel is the verdict of impossible_travel: cur against the newest entry of es with a known
// location.
func (h *History) travel(es []entry, cur entry) Verdict {
	if len(es) == 0 {
		return Verdict{Matched: true, Reason: "first sign-in: no history (counted as matched)"}
	}
	if cur.Loc == nil {
		return Verdict{Matched: true, Reason: "location unknown: counted as matched"}
	}
	i := slices.IndexFunc(es, func(e entry) bool { return e.Loc != nil })
	if i < 0 {
		return Verdict{Matched: true, Reason: "no previous sign-in with a known location: counted as matched"}
	}
	prev := es[i]
	km := DistanceKM(prev.location(), cur.location())
	elapsed := cur.Time.Sub(prev.Time)
	trip := fmt.Sprintf("%s km in %v from %s to %s", whole(km), elapsed.Round(time.Second),
		orUnknown(prev.Country), orUnknown(cur.Country))
	switch {
	case km < h.minDist:
		return Verdict{Reason: trip + ": under " + number(h.minDist) + " km, within geolocation error"}
	case elapsed <= 0:
		return Verdict{Matched: true, Reason: trip + ": no time between the sign-ins"}
	}
	speed := km / elapsed.Hours()
	if speed > h.maxSpeed {
		return Verdict{Matched: true, Reason: trip + " = " + whole(speed) + " km/h > " + number(h.maxSpeed) + " km/h"}
	}
	return Verdict{Reason: trip + " = " + whole(speed) + " km/h <= " + number(h.maxSpeed) + " km/h"}
}

// lastN says "the last sign-in" or "the last n sign-ins".
func lastN(n int) string {
	if n == 1 {
		return "the last sign-in"
	}
	return "the last " + strconv.Itoa(n) + " sign-ins"
}

// countOf says "the last sign-in" or "k of the last n sign-ins".
func countOf(k, n int) string {
	if n == 1 {
		return lastN(1)
	}
	return strconv.Itoa(k) + " of " + lastN(n)
}

// orUnknown returns cc, or "?" for an unknown country.
func orUnknown(cc string) string { return cmp.Or(cc, "?") }

// whole writes f rounded to a whole number, with thousands separators: "6,144".
func whole(f float64) string { return group(strconv.FormatFloat(math.Round(f), 'f', 0, 64)) }

// number writes f in full, with thousands separators: "900", "1,500.5".
func number(f float64) string { return group(strconv.FormatFloat(f, 'f', -1, 64)) }

// group puts commas between the thousands of the integer part of the decimal number s.
func group(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(intPart) <= 3 {
		return sign + s
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// show returns a device id for a reason: as is if it is up to 64 printable ASCII characters
// without spaces, else quoted (and cut to 64 bytes), so a client cannot forge log lines.
func show(id string) string {
	const maxShown = 64
	ok := len(id) <= maxShown
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] > ' ' && id[i] < 0x7f && id[i] != '"'
	}
	if ok {
		return id
	}
	if len(id) > maxShown {
		return strconv.Quote(id[:maxShown]) + "..."
	}
	return strconv.Quote(id)
}

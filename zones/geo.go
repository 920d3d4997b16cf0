package zones

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// maxDBSize bounds a MaxMind database file (GeoIP2-City is about 130 MiB).
const maxDBSize = 1 << 30

// parseCountry checks a country ("DE") or region ("DE-BY") code and returns it in upper case.
func parseCountry(s string) (string, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	cc, sub, region := strings.Cut(s, "-")
	if len(cc) != 2 || !isAlnum(cc, false) || region && (len(sub) < 1 || len(sub) > 3 || !isAlnum(sub, true)) {
		return "", errors.New(`want an ISO 3166-1 alpha-2 country code such as "DE" or an ISO 3166-2 region such as "DE-BY"`)
	}
	return s, nil
}

// isAlnum reports whether s is all A-Z (and 0-9 if digits).
func isAlnum(s string, digits bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || digits && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ParseASN parses an autonomous system number written "64500" or "AS64500" (any case, spaces
// around it trimmed), from 1 to 4294967295. The asdot form ("1.10") is not accepted.
func ParseASN(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	if len(t) >= 2 && strings.EqualFold(t[:2], "AS") {
		t = t[2:]
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return 0, fmt.Errorf("bad AS number %q: want digits, as in 64500 or AS64500", s)
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("bad AS number %q: larger than 4294967295", s)
		}
		return 0, fmt.Errorf("bad AS number %q: want digits, as in 64500 or AS64500", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("bad AS number %q: 0 is not an AS number", s)
	}
	return uint32(n), nil
}

// countryRecord is the part of a GeoIP2/GeoLite2 City or Country record that zones use.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"subdivisions"`
}

// asnRecord is the part of a GeoLite2-ASN record that zones use.
type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
}

// countryLoader returns the load function of a country database: byCode holds the zones that
// name each country ("DE") and region ("DE-BY"). The function also returns a warning for each
// code that no network of the database has (likely a typo, such as "UK" for "GB"); it fails when
// no record has a country, or regions are named and no record has one (a Country database
// where a City database is needed).
func countryLoader(byCode map[string]Match) func([]byte) (*Table, []string, error) {
	regions := false
	for code := range byCode {
		regions = regions || strings.Contains(code, "-")
	}
	return func(data []byte) (*Table, []string, error) {
		seen := make(map[string]bool, len(byCode))
		withCountry, withRegion := 0, 0
		var rec countryRecord
		layer, err := walkDB(data, func(res maxminddb.Result) (Match, error) {
			rec = countryRecord{}
			if err := res.Decode(&rec); err != nil {
				return Match{}, err
			}
			cc := strings.ToUpper(rec.Country.ISOCode)
			if cc == "" {
				return Match{}, nil
			}
			withCountry++
			m := byCode[cc]
			seen[cc] = true
			if len(rec.Subdivisions) > 0 {
				withRegion++
			}
			for _, s := range rec.Subdivisions {
				code := cc + "-" + strings.ToUpper(s.ISOCode)
				m = m.Union(byCode[code])
				seen[code] = true
			}
			return m, nil
		})
		if err != nil {
			return nil, nil, err
		}
		if withCountry == 0 {
			return nil, nil, errors.New("no network has a country (country.iso_code); is it a GeoIP2 or GeoLite2 City or Country database?")
		}
		if regions && withRegion == 0 {
			return nil, nil, errors.New("no network has a region (subdivisions); regions need a City database")
		}
		return layer, unseen(byCode, func(code string) bool { return seen[code] }), nil
	}
}

// asnLoader returns the load function of an ASN database: byASN holds the zones that name each
// AS number. Like countryLoader it warns of numbers no network has, and fails when no record has
// one.
func asnLoader(byASN map[uint32]Match) func([]byte) (*Table, []string, error) {
	return func(data []byte) (*Table, []string, error) {
		seen := make(map[uint32]bool, len(byASN))
		withASN := 0
		var rec asnRecord
		layer, err := walkDB(data, func(res maxminddb.Result) (Match, error) {
			rec = asnRecord{}
			if err := res.Decode(&rec); err != nil {
				return Match{}, err
			}
			if rec.Number == 0 {
				return Match{}, nil
			}
			withASN++
			seen[rec.Number] = true
			return byASN[rec.Number], nil
		})
		if err != nil {
			return nil, nil, err
		}
		if withASN == 0 {
			return nil, nil, errors.New("no network has an AS number (autonomous_system_number); is it a GeoLite2-ASN database?")
		}
		return layer, unseen(byASN, func(a uint32) bool { return seen[a] }), nil
	}
}

// unseen returns the keys of byKey that seen rejects, sorted, as text.
func unseen[K cmp.Ordered](byKey map[K]Match, seen func(K) bool) []string {
	var keys []K
	for k := range byKey {
		if !seen(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprint(k)
	}
	return out
}

// walkDB reads every network of a MaxMind database and returns the intervals of the zones that
// match reports for its records (one call per distinct record). Aliases of the IPv4 space in
// IPv6 (::ffff:0:0/96, 6to4 2002::/16, Teredo 2001::/32) are skipped, as is the IPv4-compatible
// ::/96, so IPv6 addresses there are in no zone of the database: IPv4 clients are looked up as
// IPv4.
func walkDB(data []byte, match func(maxminddb.Result) (Match, error)) (*Table, error) {
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, err
	}
	l := &Table{matches: []Match{{}}}
	ids := matchIDs{t: l, ids: map[Match]uint32{{}: 0}}
	memo := make(map[uintptr]uint32)
	b4 := newLayerBuilder(func(a, b uint32) bool { return a < b }, func(x uint32) uint32 { return x + 1 },
		func(x uint32) bool { return x == ^uint32(0) })
	b6 := newLayerBuilder(u128.less, u128.next, u128.isMax)
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("reading networks: %w", err)
		}
		off := res.Offset()
		id, ok := memo[off]
		if !ok {
			m, err := match(res)
			if err != nil {
				return nil, fmt.Errorf("network %s: %w", res.Prefix(), err)
			}
			id = ids.id(m)
			memo[off] = id
		}
		if id == 0 {
			continue
		}
		p := res.Prefix()
		addr, bits := p.Addr(), p.Bits()
		if addr.Is4() {
			lo := v4key(addr)
			err = b4.add(lo, lo|^uint32(0)>>bits, id)
		} else {
			lo := v6key(addr)
			if bits <= 96 && lo == (u128{}) {
				// The network holds the database's IPv4 subtree at ::/96: IPv4 is in it too.
				if err := b4.add(0, ^uint32(0), id); err != nil {
					return nil, fmt.Errorf("network %s: %w", p, err)
				}
			}
			err = b6.add(lo, u128{lo.hi | ^uint64(0)>>bits, lo.lo | ^uint64(0)>>max(bits-64, 0)}, id)
		}
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", p, err)
		}
	}
	l.v4, l.v4m = b4.finish()
	l.v6, l.v6m = b6.finish()
	return l, nil
}

// layerBuilder builds one family's intervals from runs of addresses given in ascending order.
type layerBuilder[K comparable] struct {
	starts []K
	mids   []uint32
	next   K    // the first address after the last run
	full   bool // the last run ended at the last address
	less   func(a, b K) bool
	inc    func(K) K
	isMax  func(K) bool
}

func newLayerBuilder[K comparable](less func(a, b K) bool, inc func(K) K, isMax func(K) bool) *layerBuilder[K] {
	var zero K
	return &layerBuilder[K]{starts: []K{zero}, mids: []uint32{0}, less: less, inc: inc, isMax: isMax}
}

// add gives the addresses lo to hi the Match with index id; lo must not be below the end of the
// previous run.
func (b *layerBuilder[K]) add(lo, hi K, id uint32) error {
	if b.full || b.less(lo, b.next) || b.less(hi, lo) {
		return errors.New("networks out of order")
	}
	if lo != b.next {
		b.push(b.next, 0)
	}
	b.push(lo, id)
	if b.isMax(hi) {
		b.full = true
	} else {
		b.next = b.inc(hi)
	}
	return nil
}

// push starts an interval with Match id at at, which is not below the last start.
func (b *layerBuilder[K]) push(at K, id uint32) {
	n := len(b.starts)
	if b.starts[n-1] == at {
		b.starts, b.mids = b.starts[:n-1], b.mids[:n-1]
		n--
	}
	if n > 0 && b.mids[n-1] == id {
		return
	}
	b.starts = append(b.starts, at)
	b.mids = append(b.mids, id)
}

// finish returns the intervals, the last running to the end of the address space.
func (b *layerBuilder[K]) finish() ([]K, []uint32) {
	if !b.full {
		b.push(b.next, 0)
	}
	return slices.Clip(b.starts), slices.Clip(b.mids)
}

// mergeLayers returns the intervals (not indexed) of the union of two layers: each address is
// in the zones it is in in a or in b.
func mergeLayers(a, b *Table) *Table {
	l := &Table{matches: []Match{{}}}
	ids := matchIDs{t: l, ids: map[Match]uint32{{}: 0}}
	l.v4, l.v4m = mergeFamily(a.v4, a.v4m, a.matches, b.v4, b.v4m, b.matches, cmp.Compare[uint32], &ids)
	l.v6, l.v6m = mergeFamily(a.v6, a.v6m, a.matches, b.v6, b.v6m, b.matches, u128.cmp, &ids)
	return l
}

// mergeFamily merges two families of intervals, each starting at the zero key.
func mergeFamily[K comparable](as []K, am []uint32, amatch []Match, bs []K, bm []uint32, bmatch []Match,
	cmpK func(a, b K) int, ids *matchIDs) ([]K, []uint32) {
	starts := make([]K, 0, max(len(as), len(bs)))
	mids := make([]uint32, 0, cap(starts))
	var ca, cb uint32 // the Match indexes, in a and b, of the intervals at the current key
	for i, j := 0, 0; i < len(as) || j < len(bs); {
		var at K
		switch {
		case j == len(bs):
			at = as[i]
		case i == len(as):
			at = bs[j]
		case cmpK(as[i], bs[j]) <= 0:
			at = as[i]
		default:
			at = bs[j]
		}
		if i < len(as) && as[i] == at {
			ca = am[i]
			i++
		}
		if j < len(bs) && bs[j] == at {
			cb = bm[j]
			j++
		}
		id := ids.id(amatch[ca].Union(bmatch[cb]))
		if n := len(starts); n == 0 || mids[n-1] != id {
			starts = append(starts, at)
			mids = append(mids, id)
		}
	}
	return slices.Clip(starts), slices.Clip(mids)
}

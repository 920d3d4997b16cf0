package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zonegate/zonegate/store"
)

// Query limits.
const (
	// DefaultLimit is a Filter's Limit when it sets none.
	DefaultLimit = 100
	// MaxLimit is the largest Limit.
	MaxLimit = 1000
	// DefaultSpan is how far back a Filter without Since looks from Until.
	DefaultSpan = 24 * time.Hour
)

// ErrInvalidFilter is wrapped by every error about a filter (bad parameter, bad range, bad
// cursor), so an HTTP handler can answer 400 for it and 503 for the rest.
var ErrInvalidFilter = errors.New("audit: invalid filter")

// Filter selects events for Query. The zero value is the last 24 hours, 100 events at a time.
type Filter struct {
	// Since is the start of the range (inclusive); default Until minus 24 hours.
	Since time.Time
	// Until is the end of the range (exclusive); default now (including events of this very
	// instant). The range may be at most the Log's Retention long.
	Until time.Time
	// Types select event types, exact or prefix (an entry ending in "." or "*"); any may match.
	// Empty selects every type.
	Types []string
	// Actor matches Actor.ID or Actor.Name exactly.
	Actor string
	// Outcome matches Outcome, ignoring case.
	Outcome string
	// Target matches the ID or Name of any Target exactly.
	Target string
	// Limit is the page size: default 100, at most 1000.
	Limit int
	// After is the cursor from the previous Page's Next; the next page starts after it. It never
	// widens the range: Since and Until still apply.
	After string
}

// Page is one page of events, oldest first.
type Page struct {
	// Events are the matching events in ascending time (then id) order.
	Events []Event `json:"events"`
	// Next is the cursor for the following page (Filter.After); empty on the last page.
	Next string `json:"next,omitempty"`
}

// filterParams are the query parameters ParseFilter knows.
var filterParams = []string{"since", "until", "type", "actor", "outcome", "target", "limit", "after"}

// ParseFilter reads a Filter from URL query parameters: since and until (RFC 3339), type
// (repeated or a comma-separated list), actor, outcome, target, limit and after. Each parameter
// other than type may appear once; unknown parameters are refused, so a typo does not silently
// widen the result. Errors wrap ErrInvalidFilter and name the parameter ("since: not an RFC 3339
// time"). Defaults are left to Query.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	for k := range q {
		if !slices.Contains(filterParams, k) {
			return Filter{}, fmt.Errorf("%w: unknown parameter %q (want one of %s)", ErrInvalidFilter, clipQuote(k), strings.Join(filterParams, ", "))
		}
	}
	one := func(name string) (string, error) {
		vs := q[name]
		switch {
		case len(vs) == 0:
			return "", nil
		case len(vs) > 1:
			return "", fmt.Errorf("%w: %s: given more than once", ErrInvalidFilter, name)
		}
		return vs[0], nil
	}
	var err error
	var v string
	if v, err = one("since"); err != nil {
		return Filter{}, err
	}
	if f.Since, err = parseTime("since", v); err != nil {
		return Filter{}, err
	}
	if v, err = one("until"); err != nil {
		return Filter{}, err
	}
	if f.Until, err = parseTime("until", v); err != nil {
		return Filter{}, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return Filter{}, fmt.Errorf("%w: since: must be before until", ErrInvalidFilter)
	}
	for _, v := range q["type"] {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if err := checkPattern(p); err != nil {
				return Filter{}, fmt.Errorf("%w: type: %w", ErrInvalidFilter, err)
			}
			if len(f.Types) == maxFilterTypes {
				return Filter{}, fmt.Errorf("%w: type: more than %d entries", ErrInvalidFilter, maxFilterTypes)
			}
			f.Types = append(f.Types, p)
		}
	}
	if f.Actor, err = one("actor"); err != nil {
		return Filter{}, err
	}
	if f.Outcome, err = one("outcome"); err != nil {
		return Filter{}, err
	}
	if f.Target, err = one("target"); err != nil {
		return Filter{}, err
	}
	if v, err = one("limit"); err != nil {
		return Filter{}, err
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Filter{}, fmt.Errorf("%w: limit: not a whole number", ErrInvalidFilter)
		}
		if n < 1 || n > MaxLimit {
			return Filter{}, fmt.Errorf("%w: limit: must be 1 to %d", ErrInvalidFilter, MaxLimit)
		}
		f.Limit = n
	}
	if f.After, err = one("after"); err != nil {
		return Filter{}, err
	}
	if err := f.check(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

// maxFilterTypes bounds a filter's type list.
const maxFilterTypes = 32

// parseTime reads an RFC 3339 time ("" is the zero time).
func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("%w: %s: not an RFC 3339 time (like 2026-01-02T15:04:05Z)", ErrInvalidFilter, name)
	}
	return t, nil
}

// check validates what does not depend on the clock or the Log.
func (f Filter) check() error {
	if len(f.Types) > maxFilterTypes {
		return fmt.Errorf("%w: type: more than %d entries", ErrInvalidFilter, maxFilterTypes)
	}
	for _, p := range f.Types {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("%w: type: %w", ErrInvalidFilter, err)
		}
	}
	for _, v := range []struct{ name, v string }{{"actor", f.Actor}, {"outcome", f.Outcome}, {"target", f.Target}} {
		if len(v.v) > maxFieldLen {
			return fmt.Errorf("%w: %s: longer than %d bytes", ErrInvalidFilter, v.name, maxFieldLen)
		}
	}
	if f.Limit < 0 || f.Limit > MaxLimit {
		return fmt.Errorf("%w: limit: must be 1 to %d", ErrInvalidFilter, MaxLimit)
	}
	if f.After != "" {
		if _, err := parseID(f.After); err != nil {
			return fmt.Errorf("%w: after: not a cursor from a previous page", ErrInvalidFilter)
		}
	}
	return nil
}

// match reports whether e passes the filter's field conditions (not the time range).
func (f *Filter) match(e *Event) bool {
	if len(f.Types) > 0 && !matchAny(f.Types, e.Type) {
		return false
	}
	if f.Actor != "" && e.Actor.ID != f.Actor && e.Actor.Name != f.Actor {
		return false
	}
	if f.Outcome != "" && !strings.EqualFold(e.Outcome, f.Outcome) {
		return false
	}
	if f.Target != "" && !slices.ContainsFunc(e.Targets, func(t Target) bool { return t.ID == f.Target || t.Name == f.Target }) {
		return false
	}
	return true
}

// Query returns the page of events that f selects, oldest first. It walks the hour buckets of
// f's range in order, so its work is bounded by the range (at most Retention) and the events in
// it. Errors about f wrap ErrInvalidFilter; others come from the store.
func (l *Log) Query(ctx context.Context, f Filter) (Page, error) {
	if err := f.check(); err != nil {
		return Page{}, err
	}
	// end is the exclusive end of the walk: Until, or just after now when Until is not set, so
	// the events of this very instant are included.
	var end time.Time
	if f.Until.IsZero() {
		f.Until = l.now()
		end = f.Until.Add(time.Nanosecond)
	} else {
		end = f.Until
	}
	if f.Since.IsZero() {
		f.Since = f.Until.Add(-DefaultSpan)
	}
	if !f.Since.Before(end) {
		return Page{}, fmt.Errorf("%w: since: must be before until", ErrInvalidFilter)
	}
	if f.Until.Sub(f.Since) > l.retention {
		return Page{}, fmt.Errorf("%w: the range since %s until %s is longer than the retention of %s",
			ErrInvalidFilter, f.Since.UTC().Format(time.RFC3339), f.Until.UTC().Format(time.RFC3339), l.retention)
	}
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	start := f.Since.UTC().Truncate(time.Hour)
	if f.After != "" {
		at, _ := parseID(f.After) // checked above
		if h := at.Truncate(time.Hour); h.After(start) {
			start = h
		}
	}

	page := Page{Events: []Event{}}
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		rs, err := l.st.ListByOwner(ctx, KindEvent, bucket(h))
		if err != nil {
			return Page{}, fmt.Errorf("audit: querying events of %s: %w", h.Format("2006-01-02T15Z"), err)
		}
		slices.SortFunc(rs, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
		for _, r := range rs {
			if f.After != "" && r.ID <= f.After {
				continue
			}
			var e Event
			if err := json.Unmarshal(r.Value, &e); err != nil {
				return Page{}, fmt.Errorf("audit: querying events: decoding event %s: %w", r.ID, err)
			}
			if e.Time.Before(f.Since) || !e.Time.Before(end) || !f.match(&e) {
				continue
			}
			if len(page.Events) == f.Limit {
				page.Next = page.Events[len(page.Events)-1].ID
				return page, nil
			}
			page.Events = append(page.Events, e)
		}
	}
	return page, nil
}

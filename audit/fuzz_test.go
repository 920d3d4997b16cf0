package audit

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseFilter feeds arbitrary query strings: nothing panics, every error wraps
// ErrInvalidFilter, and an accepted filter is one Query would not refuse for its own fields.
func FuzzParseFilter(f *testing.F) {
	for _, q := range []string{
		"", "since=2026-11-22T10:00:00Z&until=2026-11-22T12:00:00.5%2B01:00&type=user.session.*&type=policy.,system.api_token.use&actor=alice&outcome=deny&target=wiki&limit=50&after=20261122T191958.123456789Z-0a1b2c3d",
		"type=a.b,+c.*", "since=yesterday", "since=2026-11-22", "until=2026-11-22T10:00:00",
		"since=2026-11-22T12:00:00Z&until=2026-11-22T10:00:00Z", "limit=0", "limit=1001", "limit=ten",
		"limit=1000", "type=a,,b", "type=a%20b", "after=nope", "sinse=x", "actor=a&actor=b",
		"since=0000-01-01T00:00:00Z", "since=9999-12-31T23:59:59Z", "limit=-1", "limit=+5", "limit=0x10",
		"type=*", "type=%2A%2A", "%zz",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := ParseFilter(q)
		if err != nil {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			return
		}
		if err := flt.check(); err != nil {
			t.Fatalf("accepted %+v but check refuses it: %v", flt, err)
		}
		if flt.Limit < 0 || flt.Limit > MaxLimit {
			t.Fatalf("limit %d", flt.Limit)
		}
		if !flt.Since.IsZero() && !flt.Until.IsZero() && !flt.Since.Before(flt.Until) {
			t.Fatalf("since %v not before until %v", flt.Since, flt.Until)
		}
		for _, p := range flt.Types {
			if p == "" || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
				t.Fatalf("type pattern %q", p)
			}
		}
	})
}

// FuzzVerify checks Verify against arbitrary inputs: nothing panics, and it accepts only a
// header with an entry that is exactly the MAC Sign makes, at a fresh timestamp.
func FuzzVerify(f *testing.F) {
	for _, c := range signCases {
		f.Add([]byte(c.secret), c.ts, []byte(c.body), c.sig, c.now.Unix())
	}
	f.Fuzz(func(t *testing.T, secret []byte, ts string, body []byte, sig string, now int64) {
		nowT := time.Unix(now%(1<<40), 0)
		err := Verify(secret, ts, body, sig, nowT, time.Minute)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrStaleTimestamp) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if len(secret) == 0 {
			t.Fatal("verified with an empty secret")
		}
		want := Sign(secret, ts, body)
		found := false
		for e := range strings.SplitSeq(sig, ",") {
			if strings.EqualFold(strings.TrimSpace(e), want) {
				found = true
			}
		}
		if !found {
			t.Fatalf("verified %q, which has no entry %q", sig, want)
		}
		// A signed request verifies; flipping a body byte breaks it.
		if len(body) > 0 {
			changed := append([]byte(nil), body...)
			changed[0] ^= 1
			if Verify(secret, ts, changed, sig, nowT, time.Minute) == nil {
				t.Fatal("verified after the body changed")
			}
		}
	})
}

package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name  string
		exp   time.Time
		owner string
		value []byte
	}{
		{"no expiry, empty", time.Time{}, "", nil},
		{"nanoseconds", time.Date(2030, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "alice", []byte("v")},
		{"before 1970", time.Date(1960, 6, 1, 0, 0, 0, 1, time.UTC), "o", []byte{0, 1, 2}},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "", []byte("far")},
		{"Unix epoch", time.Unix(0, 0), "", nil},
		{"other zone", time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)), "o", []byte("v")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := encode(7, tt.exp, tt.owner, tt.value)
			r, err := decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got := r.record("session", "id")
			if got.Version != 7 || got.Owner != tt.owner || !bytes.Equal(got.Value, tt.value) || !got.ExpiresAt.Equal(tt.exp) || got.ExpiresAt.IsZero() != tt.exp.IsZero() {
				t.Errorf("got %+v, want version 7, owner %q, value %q, expiry %v", got, tt.owner, tt.value, tt.exp)
			}
			if again := encode(r.version, r.expTime(), string(r.owner), r.value); !bytes.Equal(again, b) {
				t.Errorf("re-encoding gave %x, want %x", again, b)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encode(1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), "alice", []byte("value"))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "0 bytes is shorter than the header"},
		{"short", good[:headerLen-1], "25 bytes is shorter than the header"},
		{"format", mut(func(b []byte) []byte { b[0] = 2; return b }), "unknown format 2"},
		{"flags", mut(func(b []byte) []byte { b[1] = 0x81; return b }), "unknown flags 0x81"},
		{"nanoseconds", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[18:22], 1e9); return b }), "expiry nanoseconds 1000000000 out of range"},
		{"expiry without flag", mut(func(b []byte) []byte { b[1] = 0; return b }), "expiry set without its flag"},
		{"flag with zero time", encodeRawExpiry(time.Time{}.Unix(), 0), "expiry flag with the zero time"},
		{"owner too long", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:26], 11); return b }), "owner length 11 exceeds the record"},
		{"owner length huge", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:26], 0xffffffff); return b }), "owner length 4294967295 exceeds the record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(tt.in)
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("got error %v, want errCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
	// The boundary cases that are fine.
	if r, err := decode(mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:26], 10); return b })); err != nil || string(r.owner) != "alicevalue" || len(r.value) != 0 {
		t.Errorf("owner covering the whole rest: got %+v, %v", r, err)
	}
}

// encodeRawExpiry builds a header with the expiry flag and the given seconds and nanoseconds.
func encodeRawExpiry(sec int64, nsec uint32) []byte {
	b := make([]byte, headerLen)
	b[0], b[1] = formatV1, flagExpires
	binary.BigEndian.PutUint64(b[10:18], uint64(sec))
	binary.BigEndian.PutUint32(b[18:22], nsec)
	return b
}

func TestExpired(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 10, 500, time.UTC)
	r, err := decode(encode(1, exp, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		now  time.Time
		want bool
	}{
		{"a second before", exp.Add(-time.Second), false},
		{"a nanosecond before", exp.Add(-1), false},
		{"at ExpiresAt", exp, true},
		{"a nanosecond after", exp.Add(1), true},
		{"a second later, fewer nanoseconds", exp.Add(time.Second - 499), true},
		{"same instant in another zone", exp.In(time.FixedZone("X", -7200)), true},
	} {
		if got := r.expired(tt.now); got != tt.want {
			t.Errorf("%s: expired = %v, want %v", tt.name, got, tt.want)
		}
	}
	noExp, _ := decode(encode(1, time.Time{}, "", nil))
	if noExp.expired(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("a record without expiry expired")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(1, time.Time{}, "", nil))
	f.Add(encode(42, time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), "alice", []byte(`{"a":1}`)))
	f.Add(encodeRawExpiry(time.Time{}.Unix(), 0))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, headerLen+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error %v is not errCorrupt", err)
			}
			return
		}
		rec := r.record("session", "id")
		_ = r.expired(time.Now())
		again := encode(rec.Version, rec.ExpiresAt, rec.Owner, rec.Value)
		if !bytes.Equal(again, b) {
			t.Fatalf("decode accepted a non-canonical encoding:\n in  %x\n out %x", b, again)
		}
	})
}

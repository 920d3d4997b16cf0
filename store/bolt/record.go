package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/zonegate/zonegate/store"
)

// An encoded record is a fixed header followed by the owner and the value:
//
//	offset size
//	0      1    format (formatV1)
//	1      1    flags (flagExpires: the record has an expiry)
//	2      8    version, big endian
//	10     8    expiry, seconds since the Unix epoch, big endian two's complement (0 without flagExpires)
//	18     4    expiry, nanoseconds within the second (0 without flagExpires)
//	22     4    owner length n
//	26     n    owner
//	26+n   ...  value
const (
	formatV1    = 1
	flagExpires = 1 << 0
	headerLen   = 26
)

// errCorrupt marks a stored record that does not decode.
var errCorrupt = errors.New("corrupt record")

// raw is a decoded record whose owner and value alias the encoded bytes (valid only inside the
// bbolt transaction that read them).
type raw struct {
	version   uint64
	hasExpiry bool
	expSec    int64
	expNsec   uint32
	owner     []byte
	value     []byte
}

// encode lays out a record. exp zero means no expiry.
func encode(version uint64, exp time.Time, owner string, value []byte) []byte {
	b := make([]byte, headerLen+len(owner)+len(value))
	b[0] = formatV1
	if !exp.IsZero() {
		b[1] = flagExpires
		binary.BigEndian.PutUint64(b[10:18], uint64(exp.Unix()))
		binary.BigEndian.PutUint32(b[18:22], uint32(exp.Nanosecond()))
	}
	binary.BigEndian.PutUint64(b[2:10], version)
	binary.BigEndian.PutUint32(b[22:26], uint32(len(owner)))
	copy(b[headerLen:], owner)
	copy(b[headerLen+len(owner):], value)
	return b
}

// decode parses an encoded record without copying. It accepts only the canonical form that
// encode writes, so decode followed by encode gives back the same bytes.
func decode(b []byte) (raw, error) {
	if len(b) < headerLen {
		return raw{}, fmt.Errorf("%w: %d bytes is shorter than the header", errCorrupt, len(b))
	}
	if b[0] != formatV1 {
		return raw{}, fmt.Errorf("%w: unknown format %d", errCorrupt, b[0])
	}
	flags := b[1]
	if flags&^flagExpires != 0 {
		return raw{}, fmt.Errorf("%w: unknown flags %#x", errCorrupt, flags)
	}
	r := raw{
		version:   binary.BigEndian.Uint64(b[2:10]),
		hasExpiry: flags&flagExpires != 0,
		expSec:    int64(binary.BigEndian.Uint64(b[10:18])),
		expNsec:   binary.BigEndian.Uint32(b[18:22]),
	}
	if r.expNsec >= 1e9 {
		return raw{}, fmt.Errorf("%w: expiry nanoseconds %d out of range", errCorrupt, r.expNsec)
	}
	if !r.hasExpiry && (r.expSec != 0 || r.expNsec != 0) {
		return raw{}, fmt.Errorf("%w: expiry set without its flag", errCorrupt)
	}
	if r.hasExpiry && r.expTime().IsZero() {
		return raw{}, fmt.Errorf("%w: expiry flag with the zero time", errCorrupt)
	}
	n := binary.BigEndian.Uint32(b[22:26])
	if uint64(n) > uint64(len(b)-headerLen) {
		return raw{}, fmt.Errorf("%w: owner length %d exceeds the record", errCorrupt, n)
	}
	r.owner = b[headerLen : headerLen+int(n)]
	r.value = b[headerLen+int(n):]
	return r, nil
}

// expTime returns the expiry (zero if none).
func (r raw) expTime() time.Time {
	if !r.hasExpiry {
		return time.Time{}
	}
	return time.Unix(r.expSec, int64(r.expNsec)).UTC()
}

// expired reports whether the record no longer exists at now: a record is gone at its ExpiresAt.
func (r raw) expired(now time.Time) bool {
	if !r.hasExpiry {
		return false
	}
	sec := now.Unix()
	if sec != r.expSec {
		return sec > r.expSec
	}
	return uint32(now.Nanosecond()) >= r.expNsec
}

// record copies r out of the transaction's memory.
func (r raw) record(kind store.Kind, id string) store.Record {
	v := make([]byte, len(r.value))
	copy(v, r.value)
	return store.Record{
		Kind:      kind,
		ID:        id,
		Owner:     string(r.owner),
		Value:     v,
		ExpiresAt: r.expTime(),
		Version:   r.version,
	}
}

// maxValueLen is the largest value that fits in a bbolt value next to the header and owner.
func maxValueLen(owner string) int {
	return math.MaxInt32 - 2 - headerLen - len(owner)
}

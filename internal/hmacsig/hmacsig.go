// Package hmacsig is the signature scheme zonegate's webhooks share, inbound (the MDM
// compliance webhook) and outbound (event hooks): HMAC-SHA256 over "<timestamp>.<body>", sent
// as "v1=<hex>" entries of a signature header beside a unix-seconds timestamp header.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxEntries bounds the entries of a signature header.
const MaxEntries = 8

// MAC returns HMAC-SHA256(secret, timestamp + "." + body).
func MAC(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Header returns the signature header value of mac: "v1=<hex>".
func Header(mac []byte) string { return "v1=" + hex.EncodeToString(mac) }

// ParseTimestamp reads unix seconds: 1 to 12 ASCII digits.
func ParseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > 12 {
		return 0, fmt.Errorf("timestamp: want 1 to 12 digits, got %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("timestamp: not a decimal number")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// ParseHeader returns the v1 MACs of "v1=<hex>[,v1=<hex>...]". Entries of other schemes are
// skipped; a malformed v1 entry, more than MaxEntries entries, or no v1 entry is an error.
func ParseHeader(s string) ([][]byte, error) {
	if s == "" {
		return nil, errors.New("signature header: empty")
	}
	// Counted before splitting, so a huge header costs no allocations.
	if strings.Count(s, ",") >= MaxEntries {
		return nil, fmt.Errorf("signature header: more than %d entries (at most %d allowed)", MaxEntries, MaxEntries)
	}
	var sigs [][]byte
	for i, p := range strings.Split(s, ",") {
		scheme, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || scheme == "" {
			return nil, fmt.Errorf("signature header: entry %d: want scheme=value", i+1)
		}
		if scheme != "v1" {
			continue
		}
		if len(val) != 2*sha256.Size {
			return nil, fmt.Errorf("signature header: entry %d: want %d hex digits, got %d characters", i+1, 2*sha256.Size, len(val))
		}
		b, err := hex.DecodeString(val)
		if err != nil {
			return nil, fmt.Errorf("signature header: entry %d: not hex", i+1)
		}
		sigs = append(sigs, b)
	}
	if len(sigs) == 0 {
		return nil, errors.New("signature header: no v1 entry")
	}
	return sigs, nil
}

// Match reports whether any of sigs is the MAC of timestamp and body under any of secrets
// (compared in constant time) and returns that MAC. Empty secrets are skipped: an empty key
// would let anyone sign.
func Match(secrets [][]byte, timestamp string, body []byte, sigs [][]byte) ([]byte, bool) {
	for _, sec := range secrets {
		if len(sec) == 0 {
			continue
		}
		want := MAC(sec, timestamp, body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				return want, true
			}
		}
	}
	return nil, false
}

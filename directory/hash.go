package directory

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of the hashes HashPassword makes: the OWASP recommendation for argon2id
// (19 MiB, two passes, one lane), a 16-byte salt and a 32-byte key.
const (
	DefaultMemory  = 19456 // KiB
	DefaultTime    = 2
	DefaultThreads = 1
	DefaultSaltLen = 16
	DefaultKeyLen  = 32
)

// MaxPasswordLen is the longest password, in bytes, that HashPassword accepts and Authenticate
// verifies; longer ones are refused without hashing.
const MaxPasswordLen = 1024

// Bounds a parsed hash must respect, so that a users file cannot make the server burn CPU or
// memory on every login (or store a hash too weak to mean anything).
const (
	minMemory  = 8 * 1024        // KiB: 8 MiB
	maxMemory  = 4 * 1024 * 1024 // KiB: 4 GiB
	minTime    = 1
	maxTime    = 10
	minThreads = 1
	maxThreads = 255
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 128
)

// Errors ParseHash (and so VerifyPassword) wraps; the wrapped text never contains the salt or
// the key.
var (
	// ErrNotArgon2id means the string is not an argon2id PHC string at all (for example a bcrypt
	// or sha512crypt hash, or a plain-text password).
	ErrNotArgon2id = errors.New("not an argon2id hash")
	// ErrMalformedHash means the string starts like an argon2id hash but does not parse.
	ErrMalformedHash = errors.New("malformed argon2id hash")
	// ErrHashParams means the hash parses but a parameter is outside the accepted bounds.
	ErrHashParams = errors.New("argon2id parameters out of bounds")
)

// Hash is a parsed argon2id hash (version 19, the only one supported).
type Hash struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	Salt    []byte
	Key     []byte
}

// String encodes h as a PHC string: $argon2id$v=19$m=M,t=T,p=P$SALT$KEY, with salt and key in
// unpadded standard base64. ParseHash(h.String()) gives h back.
func (h Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.Memory, h.Time, h.Threads,
		b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// b64 is the PHC encoding: standard alphabet, no padding, and (Strict) no stray bits, so every
// hash has exactly one spelling.
var b64 = base64.RawStdEncoding.Strict()

// ParseHash parses an argon2id PHC string as written by HashPassword, Authelia or the argon2
// reference tool. It accepts only the canonical form (version 19; parameters m, t, p in that
// order, decimal without leading zeros; unpadded standard base64) and rejects parameters outside
// the bounds that keep one verification cheap enough: memory 8 MiB to 4 GiB, time 1 to 10,
// threads 1 to 255, salt 8 to 64 bytes, key 16 to 128 bytes.
func ParseHash(encoded string) (Hash, error) {
	rest, ok := strings.CutPrefix(encoded, "$argon2id$")
	if !ok {
		switch {
		case strings.HasPrefix(encoded, "$argon2i$"), strings.HasPrefix(encoded, "$argon2d$"):
			return Hash{}, fmt.Errorf("%w (argon2i and argon2d are not supported)", ErrNotArgon2id)
		}
		return Hash{}, ErrNotArgon2id
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 4 {
		return Hash{}, fmt.Errorf("%w: want 5 $-separated fields, got %d", ErrMalformedHash, len(parts)+1)
	}
	version, params, salt64, key64 := parts[0], parts[1], parts[2], parts[3]

	v, ok := strings.CutPrefix(version, "v=")
	if !ok {
		return Hash{}, fmt.Errorf("%w: missing version (v=19)", ErrMalformedHash)
	}
	if n, err := parseDecimal(v); err != nil || n != argon2.Version {
		return Hash{}, fmt.Errorf("%w: unsupported version (want v=19)", ErrMalformedHash)
	}

	var h Hash
	fields := strings.Split(params, ",")
	if len(fields) != 3 {
		return Hash{}, fmt.Errorf("%w: want parameters m=,t=,p=", ErrMalformedHash)
	}
	var vals [3]uint64
	for i, name := range [3]string{"m", "t", "p"} {
		s, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return Hash{}, fmt.Errorf("%w: want parameters m=,t=,p= in that order", ErrMalformedHash)
		}
		n, err := parseDecimal(s)
		if err != nil {
			return Hash{}, fmt.Errorf("%w: parameter %s: %v", ErrMalformedHash, name, err)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case m < minMemory || m > maxMemory:
		return Hash{}, fmt.Errorf("%w: memory m=%d KiB is outside %d..%d", ErrHashParams, m, minMemory, maxMemory)
	case t < minTime || t > maxTime:
		return Hash{}, fmt.Errorf("%w: time t=%d is outside %d..%d", ErrHashParams, t, minTime, maxTime)
	case p < minThreads || p > maxThreads:
		return Hash{}, fmt.Errorf("%w: threads p=%d is outside %d..%d", ErrHashParams, p, minThreads, maxThreads)
	}
	h.Memory, h.Time, h.Threads = uint32(m), uint32(t), uint8(p)

	// Check lengths before decoding so a huge field costs nothing.
	if n := b64.DecodedLen(len(salt64)); n < minSaltLen || n > maxSaltLen {
		return Hash{}, fmt.Errorf("%w: salt is %d bytes, want %d..%d", ErrHashParams, n, minSaltLen, maxSaltLen)
	}
	if n := b64.DecodedLen(len(key64)); n < minKeyLen || n > maxKeyLen {
		return Hash{}, fmt.Errorf("%w: key is %d bytes, want %d..%d", ErrHashParams, n, minKeyLen, maxKeyLen)
	}
	var ok1, ok2 bool
	h.Salt, ok1 = decodeB64(salt64)
	h.Key, ok2 = decodeB64(key64)
	switch {
	case !ok1:
		return Hash{}, fmt.Errorf("%w: salt is not unpadded standard base64", ErrMalformedHash)
	case !ok2:
		return Hash{}, fmt.Errorf("%w: key is not unpadded standard base64", ErrMalformedHash)
	}
	return h, nil
}

// decodeB64 decodes canonical unpadded standard base64. Unlike the encoding package alone, it
// refuses the CR and LF characters the decoder skips.
func decodeB64(s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return nil, false
		}
	}
	b, err := b64.DecodeString(s)
	return b, err == nil
}

// parseDecimal parses a PHC decimal: ASCII digits only, no sign, no leading zero, at most ten
// digits. Its errors never quote the input.
func parseDecimal(s string) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	if len(s) > 10 {
		return 0, errors.New("number too long")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil { // cannot happen for ten digits; keep the input out of the message anyway
		return 0, errors.New("not a decimal number")
	}
	return n, nil
}

// Verify reports whether password hashes to h's key, comparing in constant time.
func (h Hash) Verify(password string) bool {
	if len(h.Key) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Key)))
	return subtle.ConstantTimeCompare(got, h.Key) == 1
}

// VerifyPassword reports whether password matches the argon2id PHC string encoded. A mismatch is
// false with a nil error; an error means the hash itself is unusable (see ParseHash).
func VerifyPassword(encoded, password string) (bool, error) {
	h, err := ParseHash(encoded)
	if err != nil {
		return false, err
	}
	return h.Verify(password), nil
}

// HashPassword returns an argon2id PHC string for password with the default parameters
// (m=19456 KiB, t=2, p=1, a 16-byte random salt, a 32-byte key). It refuses an empty password and
// one longer than MaxPasswordLen bytes, which Authenticate would never accept.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("hashing password: empty password")
	}
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("hashing password: longer than %d bytes", MaxPasswordLen)
	}
	h, err := newHash(password, DefaultMemory, DefaultTime, DefaultThreads, DefaultSaltLen, DefaultKeyLen)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return h.String(), nil
}

// newHash hashes password with the given parameters and a fresh random salt.
func newHash(password string, memory, time uint32, threads uint8, saltLen, keyLen int) (Hash, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Hash{}, fmt.Errorf("reading random salt: %w", err)
	}
	return Hash{
		Memory:  memory,
		Time:    time,
		Threads: threads,
		Salt:    salt,
		Key:     argon2.IDKey([]byte(password), salt, time, memory, threads, uint32(keyLen)),
	}, nil
}

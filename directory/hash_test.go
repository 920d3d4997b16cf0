package directory

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
)

// Cheap hashes for tests: the smallest memory ParseHash accepts and one pass (a few ms each),
// made once per test binary.
var testHashes = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for _, pw := range []string{"alice-pass", "bob-pass", "dave-pass", "correct horse"} {
		h, err := newHash(pw, minMemory, 1, 1, 16, 32)
		if err != nil {
			panic(err)
		}
		out[pw] = h.String()
	}
	return out
})

// cheapHash returns a cheap test hash of pw (one of the passwords testHashes knows).
func cheapHash(t testing.TB, pw string) string {
	t.Helper()
	h, ok := testHashes()[pw]
	if !ok {
		t.Fatalf("no test hash for %q", pw)
	}
	return h
}

// b64n is n bytes of 0x01..0xff in unpadded standard base64.
func b64n(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i + 1)
	}
	return base64.RawStdEncoding.EncodeToString(b)
}

var (
	salt16 = b64n(16)
	key32  = b64n(32)
)

// autheliaExample is the argon2id hash of "password" from Authelia's documentation: a hash made
// by another implementation, with Authelia's default parameters.
const autheliaExample = "$argon2id$v=19$m=65536,t=3,p=2$BpLnfgDsc2WD8F2q$o/vzA4myCqZZ36bUGsDY//8mKUYNZZaR0t4MFFSs+iM"

var parseHashCases = []struct {
	name    string
	in      string
	wantErr error  // nil: must parse
	detail  string // substring of the error
	want    Hash   // Memory, Time, Threads, salt and key lengths checked when wantErr is nil
}{
	{name: "default params", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32,
		want: Hash{Memory: 19456, Time: 2, Threads: 1, Salt: make([]byte, 16), Key: make([]byte, 32)}},
	{name: "authelia", in: autheliaExample,
		want: Hash{Memory: 65536, Time: 3, Threads: 2, Salt: make([]byte, 12), Key: make([]byte, 32)}},
	{name: "lowest bounds", in: "$argon2id$v=19$m=8192,t=1,p=1$" + b64n(8) + "$" + b64n(16),
		want: Hash{Memory: 8192, Time: 1, Threads: 1, Salt: make([]byte, 8), Key: make([]byte, 16)}},
	{name: "highest bounds", in: "$argon2id$v=19$m=4194304,t=10,p=255$" + b64n(64) + "$" + b64n(128),
		want: Hash{Memory: 4194304, Time: 10, Threads: 255, Salt: make([]byte, 64), Key: make([]byte, 128)}},

	{name: "empty", in: "", wantErr: ErrNotArgon2id},
	{name: "plain text", in: "hunter2", wantErr: ErrNotArgon2id},
	{name: "bcrypt", in: "$2y$10$abcdefghijklmnopqrstuuJ1xYxOq3Vb1qRWvM7pLFmK2TNAqBcdy", wantErr: ErrNotArgon2id},
	{name: "sha512crypt", in: "$6$rounds=50000$BpLnfgDsc2WD8F2q$be7Oyobn", wantErr: ErrNotArgon2id},
	{name: "argon2i", in: "$argon2i$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrNotArgon2id, detail: "argon2i and argon2d"},
	{name: "argon2d", in: "$argon2d$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrNotArgon2id, detail: "argon2i and argon2d"},
	{name: "upper-case id", in: "$ARGON2ID$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrNotArgon2id},
	{name: "leading space", in: " $argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrNotArgon2id},

	{name: "no version", in: "$argon2id$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "want 5"},
	{name: "version field missing v=", in: "$argon2id$19$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "missing version"},
	{name: "version 16", in: "$argon2id$v=16$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "unsupported version"},
	{name: "version 019", in: "$argon2id$v=019$m=19456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "unsupported version"},
	{name: "too few fields", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16, wantErr: ErrMalformedHash, detail: "want 5"},
	{name: "too many fields", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32 + "$", wantErr: ErrMalformedHash, detail: "want 5"},
	{name: "params out of order", in: "$argon2id$v=19$t=2,m=19456,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "in that order"},
	{name: "missing param", in: "$argon2id$v=19$m=19456,t=2$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "want parameters"},
	{name: "extra param", in: "$argon2id$v=19$m=19456,t=2,p=1,keyid=x$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "want parameters"},
	{name: "spaces in params", in: "$argon2id$v=19$m=19456, t=2, p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash},
	{name: "empty number", in: "$argon2id$v=19$m=,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "parameter m: empty number"},
	{name: "leading zero", in: "$argon2id$v=19$m=019456,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "parameter m: leading zero"},
	{name: "plus sign", in: "$argon2id$v=19$m=19456,t=+2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "parameter t: not a decimal"},
	{name: "negative", in: "$argon2id$v=19$m=19456,t=2,p=-1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "parameter p: not a decimal"},
	{name: "hex number", in: "$argon2id$v=19$m=0x4c00,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "parameter m: leading zero"},
	{name: "number too long", in: "$argon2id$v=19$m=99999999999,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrMalformedHash, detail: "number too long"},
	{name: "salt not base64", in: "$argon2id$v=19$m=19456,t=2,p=1$!!!!!!!!!!!!!!!!!!!!!!$" + key32, wantErr: ErrMalformedHash, detail: "salt is not"},
	{name: "salt padded", in: "$argon2id$v=19$m=19456,t=2,p=1$" + base64.StdEncoding.EncodeToString(make([]byte, 16)) + "$" + key32, wantErr: ErrMalformedHash, detail: "salt is not"},
	{name: "salt url alphabet", in: "$argon2id$v=19$m=19456,t=2,p=1$____________________$" + key32, wantErr: ErrMalformedHash, detail: "salt is not"},
	{name: "salt stray bits", in: "$argon2id$v=19$m=19456,t=2,p=1$AQIDBAUGBwgJCgsMDQ4PEB$" + key32, wantErr: ErrMalformedHash, detail: "salt is not"},
	{name: "salt with CR", in: "$argon2id$v=19$m=19456,t=2,p=1$AQIDBAUGBwgJ\rCgsMDQ4PEA$" + key32, wantErr: ErrMalformedHash, detail: "salt is not"},
	{name: "key with LF", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32[:20] + "\n" + key32[20:], wantErr: ErrMalformedHash, detail: "key is not"},
	{name: "key not base64", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + strings.Repeat("*", 43), wantErr: ErrMalformedHash, detail: "key is not"},

	{name: "memory too low", in: "$argon2id$v=19$m=8191,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "memory m=8191 KiB"},
	{name: "memory too high", in: "$argon2id$v=19$m=4194305,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "memory m=4194305 KiB"},
	{name: "memory huge", in: "$argon2id$v=19$m=9999999999,t=2,p=1$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "memory"},
	{name: "time zero", in: "$argon2id$v=19$m=19456,t=0,p=1$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "time t=0"},
	{name: "time too high", in: "$argon2id$v=19$m=19456,t=11,p=1$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "time t=11"},
	{name: "threads zero", in: "$argon2id$v=19$m=19456,t=2,p=0$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "threads p=0"},
	{name: "threads too high", in: "$argon2id$v=19$m=19456,t=2,p=256$" + salt16 + "$" + key32, wantErr: ErrHashParams, detail: "threads p=256"},
	{name: "salt too short", in: "$argon2id$v=19$m=19456,t=2,p=1$" + b64n(7) + "$" + key32, wantErr: ErrHashParams, detail: "salt is 7 bytes"},
	{name: "salt empty", in: "$argon2id$v=19$m=19456,t=2,p=1$$" + key32, wantErr: ErrHashParams, detail: "salt is 0 bytes"},
	{name: "salt too long", in: "$argon2id$v=19$m=19456,t=2,p=1$" + b64n(65) + "$" + key32, wantErr: ErrHashParams, detail: "salt is 65 bytes"},
	{name: "key too short", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + b64n(15), wantErr: ErrHashParams, detail: "key is 15 bytes"},
	{name: "key too long", in: "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + b64n(129), wantErr: ErrHashParams, detail: "key is 129 bytes"},
}

func TestParseHash(t *testing.T) {
	for _, tc := range parseHashCases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHash(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseHash() error = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("ParseHash() error = %q, want it to contain %q", err, tc.detail)
				}
				checkNoEcho(t, tc.in, err)
				return
			}
			if err != nil {
				t.Fatalf("ParseHash() error = %v", err)
			}
			if h.Memory != tc.want.Memory || h.Time != tc.want.Time || h.Threads != tc.want.Threads ||
				len(h.Salt) != len(tc.want.Salt) || len(h.Key) != len(tc.want.Key) {
				t.Errorf("ParseHash() = m=%d t=%d p=%d salt %d key %d, want m=%d t=%d p=%d salt %d key %d",
					h.Memory, h.Time, h.Threads, len(h.Salt), len(h.Key),
					tc.want.Memory, tc.want.Time, tc.want.Threads, len(tc.want.Salt), len(tc.want.Key))
			}
			if got := h.String(); got != tc.in {
				t.Errorf("String() = %q, want the input back", got)
			}
		})
	}
}

// checkNoEcho fails if ParseHash's error for encoded depends on the characters of its salt and
// key fields (beyond their length and validity), which it would if it quoted them.
func checkNoEcho(t *testing.T, encoded string, err error) {
	t.Helper()
	other := rotateSecrets(encoded)
	if other == encoded {
		return
	}
	_, err2 := ParseHash(other)
	if err2 == nil || err2.Error() != err.Error() {
		t.Errorf("ParseHash error depends on salt/key content:\n%q: %v\n%q: %v", encoded, err, other, err2)
	}
}

// rotateSecrets replaces every base64 character in the salt and key fields of an argon2id PHC
// string (the fifth $-separated field on) with the one 16 places on in the alphabet, which keeps
// the length, the validity and the stray low bits of the encoding but changes every character.
func rotateSecrets(encoded string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	parts := strings.Split(encoded, "$")
	if !strings.HasPrefix(encoded, "$argon2id$") || len(parts) < 5 {
		return encoded
	}
	for i := 4; i < len(parts); i++ {
		b := []byte(parts[i])
		for j, c := range b {
			if k := strings.IndexByte(alphabet, c); k >= 0 {
				b[j] = alphabet[(k+16)%64]
			}
		}
		parts[i] = string(b)
	}
	return strings.Join(parts, "$")
}

func TestVerifyPassword(t *testing.T) {
	good := cheapHash(t, "correct horse")
	cases := []struct {
		name     string
		encoded  string
		password string
		want     bool
		wantErr  error
	}{
		{name: "match", encoded: good, password: "correct horse", want: true},
		{name: "wrong password", encoded: good, password: "correct horsf"},
		{name: "empty password", encoded: good, password: ""},
		{name: "prefix of password", encoded: good, password: "correct"},
		{name: "case differs", encoded: good, password: "Correct horse"},
		{name: "key altered", encoded: good[:len(good)-2] + flip(good[len(good)-2]) + good[len(good)-1:], password: "correct horse"},
		{name: "malformed", encoded: strings.TrimSuffix(good, good[strings.LastIndexByte(good, '$'):]), password: "correct horse", wantErr: ErrMalformedHash},
		{name: "not argon2id", encoded: "correct horse", password: "correct horse", wantErr: ErrNotArgon2id},
		{name: "out of bounds", encoded: strings.Replace(good, "t=1,", "t=11,", 1), password: "correct horse", wantErr: ErrHashParams},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyPassword(tc.encoded, tc.password)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("VerifyPassword() error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("VerifyPassword() = %v, want %v", got, tc.want)
			}
		})
	}
}

// flip returns a base64 character other than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestVerifyPasswordAutheliaHash(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB, 3 passes")
	}
	for pw, want := range map[string]bool{"password": true, "Password": false} {
		got, err := VerifyPassword(autheliaExample, pw)
		if err != nil || got != want {
			t.Errorf("VerifyPassword(authelia example, %q) = %v, %v; want %v, nil", pw, got, err, want)
		}
	}
}

func TestHashPassword(t *testing.T) {
	encoded, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHash(encoded)
	if err != nil {
		t.Fatalf("ParseHash(HashPassword()) error = %v", err)
	}
	if h.Memory != 19456 || h.Time != 2 || h.Threads != 1 || len(h.Salt) != 16 || len(h.Key) != 32 {
		t.Errorf("HashPassword() params = m=%d t=%d p=%d salt %d key %d; want m=19456 t=2 p=1 salt 16 key 32",
			h.Memory, h.Time, h.Threads, len(h.Salt), len(h.Key))
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("HashPassword() = %q, want the PHC prefix", encoded)
	}
	if ok, err := VerifyPassword(encoded, "correct horse battery staple"); !ok || err != nil {
		t.Errorf("VerifyPassword(right password) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := VerifyPassword(encoded, "correct horse battery stapler"); ok || err != nil {
		t.Errorf("VerifyPassword(wrong password) = %v, %v; want false, nil", ok, err)
	}

	// A fresh salt each time.
	again, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if again == encoded {
		t.Error("two hashes of one password are equal: salt is not random")
	}
}

func TestHashPasswordRefuses(t *testing.T) {
	cases := []struct {
		name, password, want string
	}{
		{"empty", "", "empty password"},
		{"too long", strings.Repeat("x", MaxPasswordLen+1), "longer than 1024 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HashPassword(tc.password)
			if err == nil || !strings.Contains(err.Error(), tc.want) || got != "" {
				t.Errorf("HashPassword() = %q, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseHash(f *testing.F) {
	for _, tc := range parseHashCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseHash(in)
		if err != nil {
			if !errors.Is(err, ErrNotArgon2id) && !errors.Is(err, ErrMalformedHash) && !errors.Is(err, ErrHashParams) {
				t.Fatalf("ParseHash() error %v wraps none of the sentinels", err)
			}
			checkNoEcho(t, in, err)
			return
		}
		// Accepted hashes are canonical and within bounds.
		if got := h.String(); got != in {
			t.Fatalf("String() = %q, input %q", got, in)
		}
		if h.Memory < minMemory || h.Memory > maxMemory || h.Time < minTime || h.Time > maxTime ||
			h.Threads < minThreads || len(h.Salt) < minSaltLen || len(h.Salt) > maxSaltLen ||
			len(h.Key) < minKeyLen || len(h.Key) > maxKeyLen {
			t.Fatalf("ParseHash() accepted out-of-bounds %+v", h)
		}
	})
}

func BenchmarkParseHash(b *testing.B) {
	in := "$argon2id$v=19$m=19456,t=2,p=1$" + salt16 + "$" + key32
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHash(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	encoded, err := HashPassword("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := VerifyPassword(encoded, "correct horse battery staple"); !ok {
			b.Fatal("no match")
		}
	}
}

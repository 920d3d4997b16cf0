package hmacsig

import (
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := MAC(secret, "1700000000", []byte("body"))
	tests := []struct {
		name    string
		secrets [][]byte
		ts      string
		body    string
		want    bool
	}{
		{"right", [][]byte{secret}, "1700000000", "body", true},
		{"second secret", [][]byte{[]byte("old-old-old-old-old-old-old-old!"), secret}, "1700000000", "body", true},
		{"other body", [][]byte{secret}, "1700000000", "bodY", false},
		{"other timestamp", [][]byte{secret}, "1700000001", "body", false},
		{"empty secret only", [][]byte{nil}, "1700000000", "body", false},
	}
	for _, tt := range tests {
		if _, ok := Match(tt.secrets, tt.ts, []byte(tt.body), [][]byte{good}); ok != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, ok, tt.want)
		}
	}
	sigs, err := ParseHeader("v0=zz, " + Header(good))
	if err != nil || len(sigs) != 1 {
		t.Fatalf("ParseHeader(Header(mac)) = %d, %v", len(sigs), err)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	mac := strings.Repeat("ab", 32)
	tests := []struct{ in, want string }{
		{"", "empty"},
		{strings.Repeat("v1="+mac+",", 8) + "v1=" + mac, "more than 8"},
		{"v1", "want scheme=value"},
		{"v1=abc", "want 64 hex digits"},
		{"v1=" + strings.Repeat("zz", 32), "not hex"},
		{"v0=" + mac, "no v1 entry"},
	}
	for _, tt := range tests {
		if _, err := ParseHeader(tt.in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseHeader(%.20q) error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add("v1=" + strings.Repeat("ab", 32))
	f.Add("v0=x,v1=")
	f.Fuzz(func(t *testing.T, s string) {
		sigs, err := ParseHeader(s)
		if err == nil && len(sigs) == 0 {
			t.Fatal("no error and no signature")
		}
		for _, b := range sigs {
			if len(b) != 32 {
				t.Fatalf("signature of %d bytes", len(b))
			}
		}
	})
}

package gateway

import (
	"net/http"
	"testing"
)

func TestStripOwnCookies(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want []string // nil: no Cookie header left
	}{
		{"none", nil, nil},
		{"only others", []string{"a=1; b=2"}, []string{"a=1; b=2"}},
		{"only ours", []string{"zonegate_session=x; zonegate_csrf=y"}, nil},
		{"mixed", []string{"a=1; zonegate_session=x; b=2"}, []string{"a=1; b=2"}},
		{"several headers", []string{"zonegate_session=x", "a=1", "zonegate_login_abc=z; b=2"}, []string{"a=1; b=2"}},
		{"odd spacing", []string{" zonegate_session=x ;a=1;; "}, []string{"a=1"}},
		{"value mentions us", []string{"pref=zonegate_session"}, []string{"pref=zonegate_session"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.in != nil {
				h["Cookie"] = tc.in
			}
			stripOwnCookies(h)
			got := h["Cookie"]
			if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func BenchmarkStripOwnCookiesNone(b *testing.B) {
	h := http.Header{"Cookie": {"a=1; b=2; theme=dark"}}
	b.ReportAllocs()
	for b.Loop() {
		stripOwnCookies(h)
	}
}

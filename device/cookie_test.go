package device

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDeviceCookie(t *testing.T) {
	c := CookieIdentity{Key: bytes.Repeat([]byte{1}, 32)}
	id := NewCookieDeviceID()
	w := httptest.NewRecorder()
	if err := c.Issue(w, httptest.NewRequest("GET", "/", nil), id, "bob"); err != nil {
		t.Fatal(err)
	}
	ck := w.Result().Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge < 300*24*3600 {
		t.Fatalf("cookie attributes: %+v", ck)
	}
	with := func(v string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: DefaultCookieName, Value: v})
		return r
	}
	parts := strings.Split(ck.Value, ".")
	other := CookieIdentity{Key: bytes.Repeat([]byte{2}, 32)}
	w2 := httptest.NewRecorder()
	_ = other.Issue(w2, httptest.NewRequest("GET", "/", nil), id, "bob")
	tests := []struct {
		name  string
		value string
		user  string
		ok    bool
	}{
		{"right user", ck.Value, "bob", true},
		{"anonymous", ck.Value, "", true},
		{"another user", ck.Value, "alice", false},
		{"user part swapped", parts[0] + ".YWxpY2U." + parts[2], "alice", false},
		{"device part swapped", "YnJvd3Nlci14." + parts[1] + "." + parts[2], "bob", false},
		{"other key", w2.Result().Cookies()[0].Value, "bob", false},
		{"truncated", parts[0] + "." + parts[1], "bob", false},
		{"garbage", "!!.??.**", "bob", false},
		{"huge", strings.Repeat("a", 2000), "bob", false},
	}
	for _, tt := range tests {
		d, u, ok := c.FromRequest(with(tt.value), tt.user)
		if ok != tt.ok || ok && (d != id || u != "bob") {
			t.Errorf("%s: FromRequest = %q %q %v, want ok %v", tt.name, d, u, ok, tt.ok)
		}
	}
	if err := (CookieIdentity{Key: []byte("short")}).Issue(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), id, "bob"); err == nil {
		t.Error("a short key issued a cookie")
	}
}

func FuzzDeviceCookie(f *testing.F) {
	c := CookieIdentity{Key: bytes.Repeat([]byte{1}, 32)}
	f.Add("YQ.Yg.AAAA")
	f.Add("..")
	f.Fuzz(func(t *testing.T, v string) {
		if _, _, ok := c.parse(v); ok {
			t.Fatalf("a value without the key's MAC was accepted: %q", v)
		}
	})
}

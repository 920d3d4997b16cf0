package csrf

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

var key = []byte("0123456789abcdef0123456789abcdef")

// issue returns a token for purpose and the cookie the browser got with it.
func issue(t *testing.T, p *Protector, purpose string) (string, *http.Cookie) {
	t.Helper()
	w := httptest.NewRecorder()
	tok := p.Token(w, httptest.NewRequest("GET", "/login", nil), purpose)
	cs := w.Result().Cookies()
	if len(cs) != 1 || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie: %+v", cs)
	}
	return tok, cs[0]
}

func submit(token string, c *http.Cookie) *http.Request {
	form := url.Values{}
	if token != "" {
		form.Set(FieldName, token)
	}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		r.AddCookie(c)
	}
	return r
}

func TestCheck(t *testing.T) {
	p, err := New(key, "zg_csrf")
	if err != nil {
		t.Fatal(err)
	}
	tok, c := issue(t, p, "login")
	otherTok, otherCookie := issue(t, p, "login")
	other, _ := New([]byte("another-key-another-key-another-k"), "zg_csrf")
	cases := []struct {
		name    string
		r       *http.Request
		purpose string
		ok      bool
	}{
		{"valid", submit(tok, c), "login", true},
		{"missing token", submit("", c), "login", false},
		{"missing cookie", submit(tok, nil), "login", false},
		{"token for another purpose", submit(tok, c), "logout", false},
		{"token of another browser", submit(otherTok, c), "login", false},
		{"cookie of another browser", submit(tok, otherCookie), "login", false},
		{"garbage token", submit("!!!", c), "login", false},
		{"token from another key", submit(other.Token(httptest.NewRecorder(), submit("", c), "login"), c), "login", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Check(tc.r, tc.purpose)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v; want ErrInvalid", err)
			}
		})
	}
}

func TestTokenReusesCookie(t *testing.T) {
	p, _ := New(key, "zg_csrf")
	tok, c := issue(t, p, "login")
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/login", nil)
	r.AddCookie(c)
	if again := p.Token(w, r, "login"); again != tok {
		t.Error("a second form in the same browser got a different token")
	}
	if len(w.Result().Cookies()) != 0 {
		t.Error("cookie set again although the request had a valid one")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New([]byte("short"), "c"); err == nil {
		t.Error("short key accepted")
	}
	if _, err := New(key, ""); err == nil {
		t.Error("empty cookie name accepted")
	}
}

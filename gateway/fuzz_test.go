package gateway

import (
	"net/http"
	"path"
	"strings"
	"testing"
)

// FuzzSafeReturnPath: whatever comes in, what goes out is a path on this site as a browser
// reads it, and an accepted path is returned unchanged.
func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{
		"/", "/app?x=1", "//evil.example", `/\evil`, "https://evil", "/%2F%2Fevil", "/\t/evil",
		"javascript:alert(1)", "", `\\evil`, "/%5Cevil", " /x", "/\u3000/evil", "/\x7f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := safeReturnPath(in)
		if out != "/" && out != in {
			t.Fatalf("safeReturnPath(%q) = %q: neither the input nor /", in, out)
		}
		checkRelative(t, out)
	})
}

// FuzzStripHeaders: a header is removed exactly when its name, lower-cased with '_' read as
// '-', is an identity header name.
func FuzzStripHeaders(f *testing.F) {
	for _, s := range []string{"X-Remote-User", "x_remote_user", "REMOTE-GROUPS", "X-Auth-Request_Email", "Accept", "X-Zonegate-Assertion", "", "X-Remote-User-Extra"} {
		f.Add(s)
	}
	s := mustStripSet(DefaultHeaders)
	want := map[string]bool{}
	for _, p := range []Headers{DefaultHeaders, AutheliaHeaders, OAuth2ProxyHeaders} {
		for _, n := range []string{p.User, p.Email, p.Name, p.Groups, p.Assertion} {
			want[strings.ReplaceAll(strings.ToLower(n), "_", "-")] = true
		}
	}
	f.Fuzz(func(t *testing.T, name string) {
		h := http.Header{name: {"v"}, "Keep": {"k"}}
		s.strip(h)
		_, kept := h[name]
		identity := want[strings.ReplaceAll(strings.ToLower(name), "_", "-")]
		if name != "Keep" && kept == identity {
			t.Fatalf("header %q: kept=%v, identity=%v", name, kept, identity)
		}
		if _, ok := h["Keep"]; !ok {
			t.Fatal("unrelated header removed")
		}
	})
}

// FuzzCleanPath: the result is absolute, stable under cleaning again, and names what
// path.Clean names, with at most a trailing slash more.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"", "/", "/a/", "/a/.", "/a/b/..", "//a//", "a/b", "/../..", "/a/..b/", "/.zonegate/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := cleanPath(in)
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("cleanPath(%q) = %q: not absolute", in, out)
		}
		if again := cleanPath(out); again != out {
			t.Fatalf("cleanPath(%q) = %q, but cleanPath(%q) = %q", in, out, out, again)
		}
		if want := path.Clean("/" + in); path.Clean(out) != want {
			t.Fatalf("cleanPath(%q) = %q, path.Clean gives %q", in, out, want)
		}
	})
}

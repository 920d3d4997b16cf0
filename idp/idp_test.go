package idp

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
)

func TestNewValidatesConfig(t *testing.T) {
	st := openStore(t)
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"ok loopback http", func(c *Config) { c.Issuer = "http://127.0.0.1:9091" }, ""},
		{"ok ipv6 loopback http", func(c *Config) { c.Issuer = "http://[::1]:9091" }, ""},
		{"trailing slash", func(c *Config) { c.Issuer = "https://id.example.com/" }, "trailing slash"},
		{"empty issuer", func(c *Config) { c.Issuer = "" }, "issuer is empty"},
		{"http issuer", func(c *Config) { c.Issuer = "http://id.example.com" }, "plain http is only allowed for localhost"},
		{"issuer with path", func(c *Config) { c.Issuer = "https://id.example.com/oidc" }, "no path, query, fragment"},
		{"issuer with query", func(c *Config) { c.Issuer = "https://id.example.com?x=1" }, "no path, query, fragment"},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://id.example.com#x" }, "no path, query, fragment"},
		{"issuer ftp", func(c *Config) { c.Issuer = "ftp://id.example.com" }, "scheme must be https"},
		{"issuer relative", func(c *Config) { c.Issuer = "id.example.com" }, "scheme must be https"},
		{"issuer user info", func(c *Config) { c.Issuer = "https://u:p@id.example.com" }, "user info"},
		{"no store", func(c *Config) { c.Store = nil }, "no store"},
		{"no users", func(c *Config) { c.Users = nil }, "no user directory"},
		{"no sessions", func(c *Config) { c.Sessions = nil }, "no session manager"},
		{"no csrf", func(c *Config) { c.CSRF = nil }, "no CSRF protector"},
		{"zero crypto key", func(c *Config) { c.CryptoKey = [32]byte{} }, "crypto key is all zeros"},
		{"negative lifetime", func(c *Config) { c.AccessTokenLifetime = -1 }, "lifetimes must be positive"},
		{"duplicate client", func(c *Config) { c.Clients = append(c.Clients, Client{ID: webClientID}) }, `client "web": duplicate client id`},
		{"empty client id", func(c *Config) { c.Clients = append(c.Clients, Client{}) }, "client 3: client id is empty"},
		{"client id with space", func(c *Config) { c.Clients = append(c.Clients, Client{ID: "a b"}) }, "without spaces"},
		{"relative redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", RedirectURIs: []string{"/callback"}})
		}, `client "x": redirect URI 1: "/callback" is relative`},
		{"fragment redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", RedirectURIs: []string{"https://a.example/cb#frag"}})
		}, "must not have a fragment"},
		{"empty fragment redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", RedirectURIs: []string{"https://a.example/cb#"}})
		}, "must not have a fragment"},
		{"custom scheme redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", RedirectURIs: []string{"javascript://a.example/%0aalert(1)"}})
		}, "scheme must be https or http"},
		{"hostless redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", RedirectURIs: []string{"https:///cb"}})
		}, "has no host"},
		{"bad post-logout redirect", func(c *Config) {
			c.Clients = append(c.Clients, Client{ID: "x", PostLogoutRedirectURIs: []string{"bye"}})
		}, `client "x": post-logout redirect URI 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, nil)
			tc.change(&cfg)
			_, err := New(context.Background(), cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("New succeeded, want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestSigningKeyPersists(t *testing.T) {
	st := openStore(t)
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, nil)
	p1, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kid1, key1, err := p1.SigningKey(context.Background())
	if err != nil || kid1 == "" || key1 == nil {
		t.Fatalf("SigningKey: %q %v %v", kid1, key1, err)
	}
	p2, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kid2, key2, _ := p2.SigningKey(context.Background())
	if kid2 != kid1 || !key1.Equal(key2) {
		t.Errorf("second New: kid %q, want %q (same key %v)", kid2, kid1, key1.Equal(key2))
	}

	// The JWKS publishes it, public part only.
	rec := newRecorder()
	p2.ServeHTTP(rec, httptestRequest(http.MethodGet, "https://id.example.com/keys"))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
		t.Fatalf("JWKS: %v: %s", err, rec.Body)
	}
	// Current first, then the next key (published ahead of its rotation).
	if len(set.Keys) != 2 || set.Keys[0].KeyID != kid1 || set.Keys[1].KeyID == kid1 {
		t.Errorf("JWKS = %s", rec.Body)
	}
	for _, k := range set.Keys {
		if k.Algorithm != "ES256" || k.Use != "sig" || !k.IsPublic() {
			t.Errorf("JWKS key %+v", k)
		}
	}
	if pub, ok := set.Keys[0].Key.(*ecdsa.PublicKey); !ok || !pub.Equal(&key1.PublicKey) {
		t.Error("JWKS key is not the signing key's public key")
	}
	if strings.Contains(rec.Body.String(), `"d"`) {
		t.Error("JWKS contains private key material")
	}
}

// Nodes starting together on a fresh store agree on one key.
func TestSigningKeyRace(t *testing.T) {
	st := openStore(t)
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, nil)
	const n = 6
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := New(context.Background(), cfg)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i], _, _ = p.SigningKey(context.Background())
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if kids[i] != kids[0] {
			t.Fatalf("node %d has kid %q, node 0 %q", i, kids[i], kids[0])
		}
	}
}

func TestCorruptSigningKey(t *testing.T) {
	st := openStore(t)
	if err := st.Create(context.Background(), store.Record{Kind: store.KindSecret, ID: signingKeysID, Value: []byte(`{"current":{"kty":"oct","k":"AAAA"}}`)}); err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, nil)
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Errorf("New with a non-EC stored key: %v", err)
	}
}

// The in-process client talks to an issuer nobody listens on.
func TestInProcessClient(t *testing.T) {
	const issuer = "http://localhost:1"
	st := openStore(t)
	dir := newFakeDir()
	cfg := baseConfig(t, issuer, st, dir, &syncBuffer{}, nil)
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := p.InProcessClient()
	ctx := gooidc.ClientContext(context.Background(), hc)
	r := newRP(t, ctx, issuer, webClientID, webClientSecret, webRedirect)

	// The browser, too, reaches the IdP through the in-process transport.
	b := newBrowser(t, issuer, hc.Transport)
	f := r.start()
	code := b.signIn(r, f, "alice", "alice-password")
	tok, idt := r.exchange(code, f)
	if idt.Subject != "u-alice" {
		t.Errorf("sub %q", idt.Subject)
	}
	ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || ui.Email != "alice@example.com" {
		t.Errorf("userinfo %+v %v", ui, err)
	}

	for _, u := range []string{"http://example.com/", "https://localhost:1/", "http://localhost:2/", "http://127.0.0.1:1/"} {
		resp, err := hc.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s through the in-process client succeeded", u)
		}
	}
	if !sameOrigin("https", "id.example.com", "https", "ID.example.com:443") || sameOrigin("http", "id.example.com", "https", "id.example.com") {
		t.Error("sameOrigin")
	}
}

func TestAddClientAndRedirectURI(t *testing.T) {
	e := newEnv(t)
	const gateRedirect = "https://wiki.example.com/.zonegate/callback"
	if err := e.idp.AddClient(Client{ID: "gate", Secret: "gate-secret"}); err != nil {
		t.Fatal(err)
	}
	if err := e.idp.AddClient(Client{ID: "gate"}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate AddClient: %v", err)
	}
	if err := e.idp.AddRedirectURI("nobody", gateRedirect); err == nil {
		t.Error("AddRedirectURI for an unknown client succeeded")
	}
	if err := e.idp.AddRedirectURI("gate", "/relative"); err == nil {
		t.Error("AddRedirectURI with a relative URI succeeded")
	}

	// Registration while flows run (the race detector watches).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			if err := e.idp.AddRedirectURI("gate", fmt.Sprintf("https://h%d.example.com/cb", i)); err != nil {
				t.Error(err)
			}
			if err := e.idp.AddClient(Client{ID: fmt.Sprintf("c%d", i), RedirectURIs: []string{"https://c.example/cb"}}); err != nil {
				t.Error(err)
			}
		}
	}()
	r := e.webRP()
	for range 3 {
		f := r.start()
		r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	}
	wg.Wait()

	if err := e.idp.AddRedirectURI("gate", gateRedirect); err != nil {
		t.Fatal(err)
	}
	if err := e.idp.AddRedirectURI("gate", gateRedirect); err != nil {
		t.Errorf("adding a redirect URI twice: %v", err)
	}
	g := newRP(t, context.Background(), e.issuer, "gate", "gate-secret", gateRedirect)
	f := g.start()
	_, idt := g.exchange(e.browser().signIn(g, f, "bob", "bob-password"), f)
	if idt.Subject != "u-bob" {
		t.Errorf("sub %q", idt.Subject)
	}
}

// The real users file works as the Directory.
func TestWithDirectoryFile(t *testing.T) {
	hash, err := directory.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "users.yml")
	yml := "users:\n  dave:\n    displayname: Dave\n    email: dave@example.com\n    password: \"" + hash + "\"\n    groups: [ops]\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := directory.OpenFile(path, directory.Options{ReloadInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dir.Close() })
	e := newEnv(t, func(c *Config) { c.Users = dir })
	r := e.webRP()
	b := e.browser()
	if p := b.submitLogin(b.get(r.start().url), "dave", "wrong"); p.status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", p.status)
	}
	f := r.start()
	_, idt := r.exchange(b.signIn(r, f, "dave", "correct horse"), f)
	var c idClaims
	_ = idt.Claims(&c)
	if c.Sub != "dave" || c.Email != "dave@example.com" || len(c.Groups) != 1 || c.Groups[0] != "ops" {
		t.Errorf("claims %+v", c)
	}
}

// idp must not depend on Caddy or zap.
func TestImports(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/caddyserver/") || strings.HasPrefix(dep, "go.uber.org/zap") {
			t.Errorf("idp depends on %s", dep)
		}
	}
}

func FuzzParseIssuer(f *testing.F) {
	for _, s := range []string{"https://id.example.com", "http://localhost:9091", "http://[::1]:1", "https://a/b", "http://10.0.0.1", "https://id.example.com/", "https://x#", "https://x?", "", "//x", "https://u@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := parseIssuer(s)
		if err != nil {
			return
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
			t.Fatalf("%q accepted with scheme %q host %q", s, u.Scheme, u.Hostname())
		}
		if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			t.Fatalf("%q accepted as %#v", s, u)
		}
		if _, err := parseIssuer(u.String()); err != nil {
			t.Fatalf("normalised issuer %q of %q refused: %v", u, s, err)
		}
	})
}

func FuzzValidateRedirectURI(f *testing.F) {
	for _, s := range []string{spaRedirect, webRedirect, "/cb", "https://a/cb#x", "https://a/cb#", "javascript:alert(1)", "https:///x", "https://u@a/cb", "http://[::1]:80/cb", "https://a.example/cb?x=1;y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := validateRedirectURI(s); err == nil {
			if strings.Contains(s, "#") || strings.ContainsAny(s, " \t\r\n") {
				t.Fatalf("%q accepted", s)
			}
			if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") && !strings.HasPrefix(strings.ToLower(s), "http") {
				t.Fatalf("%q accepted without an http(s) scheme", s)
			}
		}
		// Whatever the URI, the CSP source built from it is one token without separators.
		o := cspOrigin(s)
		if strings.ContainsAny(o, " ;,'\"\t\r\n") {
			t.Fatalf("cspOrigin(%q) = %q", s, o)
		}
	})
}

// BenchmarkUserinfo measures one userinfo request (token decryption, store read, directory
// lookup), served in memory.
func BenchmarkUserinfo(b *testing.B) {
	e := newEnv(b)
	r := e.webRP()
	f := r.start()
	tok, _ := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	req := httptestRequest(http.MethodGet, e.issuer+"/userinfo")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	b.ReportAllocs()
	for b.Loop() {
		rec := newRecorder()
		e.idp.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("userinfo: %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkAuthorizeSSO measures a single-sign-on authorization: authorize, login (session
// reuse) and callback, up to the redirect with the code.
func BenchmarkAuthorizeSSO(b *testing.B) {
	e := newEnv(b)
	r := e.webRP()
	br := e.browser()
	f := r.start()
	r.exchange(br.signIn(r, f, "alice", "alice-password"), f)
	b.ReportAllocs()
	for b.Loop() {
		f := r.start()
		r.code(br.get(f.url), f)
	}
}

package idp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestCheckClient(t *testing.T) {
	ok := func(c Client) Client {
		if c.ID == "" {
			c.ID = "c"
		}
		return c
	}
	tests := []struct {
		name    string
		c       Client
		wantErr string
	}{
		{"zero values", ok(Client{}), ""},
		{"all grants", ok(Client{Secret: "s", GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}}), ""},
		{"service only", ok(Client{Secret: "s", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"}}), ""},
		{"unknown grant", ok(Client{GrantTypes: []string{"password"}}), `grant type 1: "password" is not one of`},
		{"implicit grant", ok(Client{GrantTypes: []string{"authorization_code", "implicit"}}), `grant type 2: "implicit"`},
		{"refresh without code", ok(Client{Secret: "s", GrantTypes: []string{"refresh_token", "client_credentials"}}), "refresh_token grant needs the authorization_code grant"},
		{"public service account", ok(Client{GrantTypes: []string{"client_credentials"}}), "client_credentials grant needs a client secret"},
		{"service id with colon", Client{ID: "a:b", Secret: "s", GrantTypes: []string{"client_credentials"}}, "client id without ':'"},
		{"negative access lifetime", ok(Client{AccessTokenLifetime: -time.Second}), "access token lifetime -1s is negative"},
		{"negative refresh lifetime", ok(Client{RefreshTokenLifetime: -time.Second}), "refresh token lifetime -1s is negative"},
		{"scopes without openid", ok(Client{Scopes: []string{"profile"}}), `scopes must include "openid"`},
		{"service scopes need no openid", ok(Client{Secret: "s", GrantTypes: []string{"client_credentials"}, Scopes: []string{"x"}}), ""},
		{"scope with space", ok(Client{Scopes: []string{"openid", "a b"}}), `scope 2: "a b": a scope is printable ASCII`},
		{"scope with quote", ok(Client{Scopes: []string{"openid", `a"b`}}), "scope 2"},
		{"empty scope", ok(Client{Scopes: []string{"openid", ""}}), "scope 2: empty"},
		{"custom scopes", ok(Client{Scopes: []string{"openid", "api:read", "https://api.example.com/x"}}), ""},
		{"ES256", ok(Client{SigningAlgorithm: "ES256"}), ""},
		{"RS256", ok(Client{SigningAlgorithm: "RS256"}), ""},
		{"HS256", ok(Client{SigningAlgorithm: "HS256"}), `signing algorithm "HS256" is not ES256 or RS256`},
		{"lower-case alg", ok(Client{SigningAlgorithm: "rs256"}), "signing algorithm"},
		{"origins", ok(Client{CORSOrigins: []string{"http://localhost:9093", "https://App.Example.com:443"}}), ""},
		{"origin with path", ok(Client{CORSOrigins: []string{"https://app.example.com/"}}), "CORS origin 1"},
		{"wildcard origin", ok(Client{CORSOrigins: []string{"*"}}), "CORS origin 1"},
		{"null origin", ok(Client{CORSOrigins: []string{"https://a.example", "null"}}), "CORS origin 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkClient(tc.c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("checkClient: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("checkClient succeeded, want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}

	c, err := checkClient(Client{ID: "c", CORSOrigins: []string{"https://App.Example.com:443", "http://[::1]:80"}})
	if err != nil || !slices.Equal(c.CORSOrigins, []string{"https://app.example.com", "http://[::1]"}) {
		t.Errorf("canonical origins %v, %v", c.CORSOrigins, err)
	}
}

var originCases = []struct {
	in, want, wantErr string
}{
	{"http://localhost:9093", "http://localhost:9093", ""},
	{"https://app.example.com", "https://app.example.com", ""},
	{"HTTPS://APP.example.COM", "https://app.example.com", ""},
	{"https://app.example.com:443", "https://app.example.com", ""},
	{"http://app.example.com:80", "http://app.example.com", ""},
	{"http://app.example.com:443", "http://app.example.com:443", ""},
	{"http://[::1]:8080", "http://[::1]:8080", ""},
	{"http://127.0.0.1:3000", "http://127.0.0.1:3000", ""},
	{"", "", "empty"},
	{"null", "", "scheme must be https or http"},
	{"*", "", "scheme must be https or http"},
	{"app.example.com", "", "scheme must be https or http"},
	{"ftp://app.example.com", "", "scheme must be https or http"},
	{"https://app.example.com/", "", "no path"},
	{"https://app.example.com/cb", "", "no path"},
	{"https://app.example.com?x", "", "not an origin"},
	{"https://app.example.com#x", "", "not an origin"},
	{"https://u@app.example.com", "", "user info"},
	{"https://", "", "no host"},
	{"https://:443", "", "no host"},
	{"https://app.example.com:0", "", "bad port"},
	{"https://app.example.com:065", "", "bad port"},
	{"https://app.example.com:70000", "", "bad port"},
	{"https://app.example.com:x", "", ""}, // url.Parse refuses it: any error will do
	{"https://app.example.com\\@evil.example", "", "not an origin"},
	{"https://app example.com", "", "not an origin"},
}

func TestCanonicalOrigin(t *testing.T) {
	for _, tc := range originCases {
		got, err := canonicalOrigin(tc.in)
		if tc.want != "" {
			if err != nil || got != tc.want {
				t.Errorf("canonicalOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("canonicalOrigin(%q) = %q, want an error", tc.in, got)
		} else if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("canonicalOrigin(%q): error %q, want %q", tc.in, err, tc.wantErr)
		}
	}
}

func FuzzCanonicalOrigin(f *testing.F) {
	for _, tc := range originCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := canonicalOrigin(s)
		if err != nil {
			return
		}
		// A canonical origin is its own canonical form, is lower case, and is nothing but
		// scheme://host[:port].
		again, err := canonicalOrigin(o)
		if err != nil || again != o {
			t.Fatalf("canonicalOrigin(%q) = %q, again %q, %v", s, o, again, err)
		}
		if o != strings.ToLower(o) || !(strings.HasPrefix(o, "https://") || strings.HasPrefix(o, "http://")) {
			t.Fatalf("canonicalOrigin(%q) = %q", s, o)
		}
		if rest := o[strings.Index(o, "://")+3:]; strings.ContainsAny(rest, "/?#@\\ \t\r\n") {
			t.Fatalf("canonicalOrigin(%q) = %q has more than a host", s, o)
		}
	})
}

var scopeCases = []struct {
	in string
	ok bool
}{
	{"openid", true}, {"api:read", true}, {"https://api.example.com/x.read", true}, {"!#[]~", true},
	{"", false}, {"a b", false}, {"a\tb", false}, {`a"b`, false}, {`a\b`, false}, {"é", false}, {"a\x7f", false},
}

func TestValidateScope(t *testing.T) {
	for _, tc := range scopeCases {
		if err := validateScope(tc.in); (err == nil) != tc.ok {
			t.Errorf("validateScope(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func FuzzValidateScope(f *testing.F) {
	for _, tc := range scopeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validateScope(s) != nil {
			return
		}
		// An accepted scope survives a space-delimited scope parameter unchanged.
		if fields := strings.Fields(s); len(fields) != 1 || fields[0] != s || strings.ContainsAny(s, `"\`) {
			t.Fatalf("validateScope accepted %q", s)
		}
	})
}

// Per-client scopes: the standard ones a client may not have are dropped at authorize.
func TestClientScopes(t *testing.T) {
	e := newEnv(t, withClients(Client{
		ID: "narrow", Secret: "narrow-secret", RedirectURIs: []string{"https://narrow.example.com/cb"},
		Scopes: []string{"openid", "email", "api:read"}, IDTokenUserinfoClaims: true,
	}))
	r := newRP(t, context.Background(), e.issuer, "narrow", "narrow-secret", "https://narrow.example.com/cb",
		"openid", "profile", "email", "groups", "api:read", "api:write", "phone")
	f := r.start()
	tok, idt := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	if got, _ := tok.Extra("scope").(string); got != "openid email api:read" {
		t.Errorf("granted scope %q", got)
	}
	var c idClaims
	_ = idt.Claims(&c)
	if c.Email != "alice@example.com" || c.Name != "" || c.PreferredUsername != "" || c.Groups != nil {
		t.Errorf("ID token claims %+v", c)
	}
	m := e.introspect("narrow", "narrow-secret", tok.AccessToken)
	if m["scope"] != "openid email api:read" || m["groups"] != nil || m["name"] != nil {
		t.Errorf("introspection %v", m)
	}
}

const (
	corsOrigin  = "http://localhost:9093"
	otherOrigin = "https://evil.example"
)

func withCORSClient() envOption {
	return withClients(Client{
		ID: "browser-app", RedirectURIs: []string{corsOrigin + "/callback"}, CORSOrigins: []string{corsOrigin},
	})
}

func corsRequest(t *testing.T, method, target, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, target, nil)
	req.Header.Set("Origin", origin)
	if method == http.MethodOptions {
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	return resp
}

func TestCORS(t *testing.T) {
	e := newEnv(t, withCORSClient())
	paths := []string{"/oauth/token", "/userinfo", "/keys", "/.well-known/openid-configuration", "/revoke", "/oauth/introspect"}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			// Preflight from the listed origin.
			resp := corsRequest(t, http.MethodOptions, e.issuer+path, corsOrigin)
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != corsOrigin ||
				h.Get("Access-Control-Allow-Methods") != "POST" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
				t.Errorf("preflight: %d %v", resp.StatusCode, h)
			}
			if h.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("preflight allows credentials")
			}
			if !slices.ContainsFunc(h.Values("Vary"), func(v string) bool { return strings.Contains(v, "Origin") }) {
				t.Errorf("preflight Vary %v", h.Values("Vary"))
			}
			// Actual request from the listed origin.
			resp = corsRequest(t, http.MethodGet, e.issuer+path, corsOrigin)
			if resp.Header.Get("Access-Control-Allow-Origin") != corsOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("GET: %v", resp.Header)
			}
			if !slices.Contains(resp.Header.Values("Vary"), "Origin") {
				t.Errorf("GET Vary %v", resp.Header.Values("Vary"))
			}
			// Nothing for another origin, or a listed one spelled differently.
			for _, o := range []string{otherOrigin, "http://localhost:9094", "HTTP://LOCALHOST:9093", "null"} {
				for _, m := range []string{http.MethodOptions, http.MethodGet} {
					resp := corsRequest(t, m, e.issuer+path, o)
					for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"} {
						if v := resp.Header.Get(name); v != "" {
							t.Errorf("%s from %s: %s: %q", m, o, name, v)
						}
					}
				}
			}
		})
	}
	// Pages and the authorization endpoint never answer cross-origin, even to a listed origin.
	for _, path := range []string{"/authorize", "/login", "/end_session", "/healthz"} {
		for _, m := range []string{http.MethodOptions, http.MethodGet} {
			resp := corsRequest(t, m, e.issuer+path, corsOrigin)
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("%s %s: Access-Control-Allow-Origin %q", m, path, v)
			}
		}
	}
}

// A browser app's code exchange and userinfo call from its origin are readable there.
func TestCORSCodeExchange(t *testing.T) {
	e := newEnv(t, withCORSClient())
	r := newRP(t, context.Background(), e.issuer, "browser-app", "", corsOrigin+"/callback", "openid", "profile")
	r.oauth.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	f := r.start()
	code := e.browser().signIn(r, f, "bob", "bob-password")
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {corsOrigin + "/callback"},
		"client_id": {"browser-app"}, "code_verifier": {f.verifier},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", corsOrigin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != corsOrigin {
		t.Errorf("token exchange from the browser: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// An origin added with a client at run time is allowed from then on.
func TestCORSAddClient(t *testing.T) {
	e := newEnv(t)
	if v := corsRequest(t, http.MethodGet, e.issuer+"/keys", corsOrigin).Header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("before AddClient: %q", v)
	}
	if err := e.idp.AddClient(Client{ID: "late", CORSOrigins: []string{corsOrigin}}); err != nil {
		t.Fatal(err)
	}
	if v := corsRequest(t, http.MethodGet, e.issuer+"/keys", corsOrigin).Header.Get("Access-Control-Allow-Origin"); v != corsOrigin {
		t.Errorf("after AddClient: %q", v)
	}
}

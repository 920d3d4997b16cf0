package idp

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	svcClientID     = "billing-sync"
	svcClientSecret = "svc-secret-0123456789abcdef"
)

func withServiceClients() envOption {
	return withClients(
		Client{ID: svcClientID, Secret: svcClientSecret, GrantTypes: []string{GrantClientCredentials},
			Scopes: []string{"api:read", "api:write", "openid"}, AccessTokenLifetime: 5 * time.Minute},
		Client{ID: "bare-svc", Secret: "bare-secret", GrantTypes: []string{GrantClientCredentials}},
	)
}

func (e *env) serviceConfig(id, secret string, scopes ...string) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/oauth/token", Scopes: scopes,
		AuthStyle: oauth2.AuthStyleInHeader,
	}
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, withServiceClients())
	ctx := context.Background()
	tests := []struct {
		name      string
		id        string
		secret    string
		scopes    []string
		wantScope string
	}{
		{"allowed and unknown scopes", svcClientID, svcClientSecret, []string{"api:read", "admin", "profile"}, "api:read"},
		{"no scope asked: all allowed", svcClientID, svcClientSecret, nil, "api:read api:write"},
		{"openid and offline_access never", svcClientID, svcClientSecret, []string{"openid", "offline_access", "api:write"}, "api:write"},
		{"client without scopes", "bare-svc", "bare-secret", []string{"api:read", "openid"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := e.serviceConfig(tc.id, tc.secret, tc.scopes...).Token(ctx)
			if err != nil {
				t.Fatalf("client_credentials: %v", err)
			}
			if tok.Extra("id_token") != nil || tok.RefreshToken != "" {
				t.Errorf("service token response has an ID or refresh token")
			}
			if got, _ := tok.Extra("scope").(string); got != tc.wantScope {
				t.Errorf("scope %q, want %q", got, tc.wantScope)
			}
			m := e.introspect(tc.id, tc.secret, tok.AccessToken)
			if m["active"] != true || m["sub"] != tc.id || m["client_id"] != tc.id || (tc.wantScope != "" && m["scope"] != tc.wantScope) {
				t.Errorf("introspection %v", m)
			}
			// No user behind it.
			if status, _ := e.userinfoStatus(tok.AccessToken); status != http.StatusUnauthorized {
				t.Errorf("userinfo with a service token: %d, want 401", status)
			}
		})
	}
	if !strings.Contains(e.logs.String(), `msg="idp: service token issued" client_id=billing-sync`) {
		t.Error("service token issuance not logged")
	}
}

func TestClientCredentialsRefused(t *testing.T) {
	e := newEnv(t, withServiceClients())
	ctx := context.Background()
	tests := []struct {
		name, id, secret, want string
	}{
		{"client without the grant", webClientID, webClientSecret, "unauthorized_client"},
		{"wrong secret", svcClientID, "wrong", "invalid_client"},
		{"empty secret", svcClientID, "", "invalid_client"},
		{"unknown client", "nobody", "x", "invalid_client"},
		{"public client", spaClientID, "", "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.serviceConfig(tc.id, tc.secret).Token(ctx)
			if got := retrieveErrorCode(t, err); got != tc.want {
				t.Errorf("error %q, want %q", got, tc.want)
			}
		})
	}
	if strings.Contains(e.logs.String(), svcClientSecret) {
		t.Error("a client secret reached the log")
	}
}

// A service token lives for its client's AccessTokenLifetime and can be revoked.
func TestServiceTokenLifetimeAndRevocation(t *testing.T) {
	e := newEnv(t, withServiceClients())
	tok, err := e.serviceConfig(svcClientID, svcClientSecret, "api:read").Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := e.introspect(svcClientID, svcClientSecret, tok.AccessToken); m["exp"] != float64(e.clock.Now().Add(5*time.Minute).Unix()) {
		t.Errorf("exp %v, want now + 5 minutes", m["exp"])
	}
	// Another client cannot see it.
	if m := e.introspect(webClientID, webClientSecret, tok.AccessToken); m["active"] != false {
		t.Errorf("introspection by another client: %v", m)
	}
	e.clock.Advance(5 * time.Minute)
	if m := e.introspect(svcClientID, svcClientSecret, tok.AccessToken); m["active"] != false {
		t.Errorf("expired service token: %v", m)
	}

	tok, err = e.serviceConfig(svcClientID, svcClientSecret).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if status, body := e.post("/revoke", svcClientID, svcClientSecret, url.Values{"token": {tok.AccessToken}}); status != http.StatusOK {
		t.Fatalf("revocation: %d %s", status, body)
	}
	if m := e.introspect(svcClientID, svcClientSecret, tok.AccessToken); m["active"] != false {
		t.Errorf("revoked service token: %v", m)
	}
}

// A client with only client_credentials cannot sign users in.
func TestServiceClientCannotAuthorize(t *testing.T) {
	e := newEnv(t, withServiceClients())
	q := url.Values{
		"client_id": {svcClientID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {"https://svc.example.com/cb"}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}
	p := e.browser().get(e.issuer + "/authorize?" + q.Encode())
	if isLoginForm(p) || p.status == http.StatusFound || p.status == http.StatusSeeOther {
		t.Errorf("authorize for a service client: %d %s", p.status, p.header.Get("Location"))
	}
	status, body := e.post("/oauth/token", svcClientID, svcClientSecret, url.Values{
		"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"https://svc.example.com/cb"},
	})
	// op redeems the code before it checks the grant: either refusal will do.
	if status != http.StatusBadRequest || !(strings.Contains(body, "unauthorized_client") || strings.Contains(body, "invalid_grant")) {
		t.Errorf("code grant for a service client: %d %s", status, body)
	}
}

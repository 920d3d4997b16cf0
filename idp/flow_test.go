package idp

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func TestCodeFlowPKCE(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	b := e.browser()
	f := r.start()

	form := b.get(f.url)
	if form.status != http.StatusOK || !isLoginForm(form) {
		t.Fatalf("authorize: want the login form, got %d at %s", form.status, form.url)
	}
	if got := form.url.Path; got != "/login" {
		t.Errorf("login form served at %q, want /login", got)
	}
	before := time.Now().Add(-time.Second).Unix()
	code := r.code(b.submitLogin(form, "alice", "alice-password"), f)
	if !b.hasCookie(sessionCookie) {
		t.Error("no SSO session cookie after sign-in")
	}
	tok, idt := r.exchange(code, f)

	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Sub != "u-alice" {
		t.Errorf("sub = %q, want the user id u-alice", c.Sub)
	}
	if c.Email != "alice@example.com" || c.EmailVerified == nil || !*c.EmailVerified {
		t.Errorf("email = %q verified %v, want alice@example.com verified", c.Email, c.EmailVerified)
	}
	if !slices.Equal(c.Groups, []string{"admins", "staff"}) {
		t.Errorf("groups = %v", c.Groups)
	}
	if c.PreferredUsername != "alice" || c.Name != "Alice Admin" {
		t.Errorf("preferred_username %q name %q", c.PreferredUsername, c.Name)
	}
	if !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Errorf("amr = %v, want [pwd]", c.AMR)
	}
	if c.AuthTime < before || c.AuthTime > time.Now().Unix()+1 {
		t.Errorf("auth_time = %d, want about now", c.AuthTime)
	}
	if c.SID == "" {
		t.Error("no sid claim")
	}
	if s, err := e.idp.sessions.Get(context.Background(), c.SID); err != nil || s.UserID != "u-alice" {
		t.Errorf("sid %q does not name alice's SSO session: %v", c.SID, err)
	}
	if idt.Issuer != e.issuer || !slices.Equal(idt.Audience, []string{webClientID}) {
		t.Errorf("iss %q aud %v", idt.Issuer, idt.Audience)
	}

	// Userinfo with the access token.
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uc idClaims
	if err := ui.Claims(&uc); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "u-alice" || ui.Email != "alice@example.com" || !slices.Equal(uc.Groups, []string{"admins", "staff"}) || uc.PreferredUsername != "alice" {
		t.Errorf("userinfo = %+v %+v", ui, uc)
	}
	if uc.SID != "" || len(uc.AMR) != 0 {
		t.Errorf("userinfo carries ID-token-only claims: sid %q amr %v", uc.SID, uc.AMR)
	}
	if tok.Extra("refresh_token") != nil && tok.RefreshToken != "" {
		t.Error("a refresh token was issued")
	}
}

// A client without IDTokenUserinfoClaims gets user claims from userinfo only.
func TestPublicClientClaimsOnlyAtUserinfo(t *testing.T) {
	e := newEnv(t)
	r := e.spaRP()
	b := e.browser()
	f := r.start()
	tok, idt := r.exchange(b.signIn(r, f, "bob", "bob-password"), f)
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.Sub != "u-bob" || c.SID == "" || !slices.Equal(c.AMR, []string{"pwd"}) || c.AuthTime == 0 {
		t.Errorf("ID token core claims: %+v", c)
	}
	if c.Email != "" || c.Groups != nil || c.Name != "" {
		t.Errorf("ID token carries userinfo claims for a client without IDTokenUserinfoClaims: %+v", c)
	}
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uc idClaims
	_ = ui.Claims(&uc)
	if ui.Email != "bob@example.com" || !slices.Equal(uc.Groups, []string{"staff"}) {
		t.Errorf("userinfo: %+v", uc)
	}
}

// Scopes not asked for give no claims.
func TestScopesLimitClaims(t *testing.T) {
	e := newEnv(t)
	r := newRP(t, context.Background(), e.issuer, webClientID, webClientSecret, webRedirect, gooidc.ScopeOpenID)
	b := e.browser()
	f := r.start()
	tok, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	var c idClaims
	_ = idt.Claims(&c)
	if c.Email != "" || c.Groups != nil || c.PreferredUsername != "" {
		t.Errorf("ID token with scope openid only: %+v", c)
	}
	ui, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uc idClaims
	_ = ui.Claims(&uc)
	if uc.Sub != "u-alice" || uc.Email != "" || uc.Groups != nil {
		t.Errorf("userinfo with scope openid only: %+v", uc)
	}
}

func TestReplayedCode(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	f := r.start()
	code := e.browser().signIn(r, f, "alice", "alice-password")
	r.exchange(code, f)
	_, err := r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f.verifier))
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("replayed code: error %q, want invalid_grant", got)
	}
}

// Many simultaneous redemptions of one code: exactly one wins.
func TestConcurrentCodeRedemption(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	f := r.start()
	code := e.browser().signIn(r, f, "alice", "alice-password")

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f.verifier))
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if got := retrieveErrorCode(t, err); got != "invalid_grant" {
			t.Errorf("losing redemption: error %q, want invalid_grant", got)
		}
	}
	if ok != 1 {
		t.Errorf("%d redemptions succeeded, want exactly 1", ok)
	}
}

func TestPKCEVerifier(t *testing.T) {
	tests := []struct {
		name     string
		opts     func(f flow) []oauth2.AuthCodeOption
		wantCode string
	}{
		{"wrong verifier", func(flow) []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{oauth2.VerifierOption(oauth2.GenerateVerifier())}
		}, "invalid_grant"},
		{"no verifier", func(flow) []oauth2.AuthCodeOption { return nil }, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for _, r := range []*rp{e.webRP(), e.spaRP()} {
				f := r.start()
				code := e.browser().signIn(r, f, "alice", "alice-password")
				_, err := r.oauth.Exchange(r.ctx, code, tc.opts(f)...)
				if got := retrieveErrorCode(t, err); got != tc.wantCode {
					t.Errorf("client %s: error %q, want %q", r.oauth.ClientID, got, tc.wantCode)
				}
				// The failed attempt used the code up.
				_, err = r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f.verifier))
				if got := retrieveErrorCode(t, err); got != "invalid_grant" {
					t.Errorf("client %s: right verifier after a failed attempt: %q, want invalid_grant", r.oauth.ClientID, got)
				}
			}
		})
	}
}

func TestConfidentialClientSecret(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	f := r.start()
	code := e.browser().signIn(r, f, "alice", "alice-password")
	bad := r.oauth
	bad.ClientSecret = "wrong"
	_, err := bad.Exchange(r.ctx, code, oauth2.VerifierOption(f.verifier))
	if got := retrieveErrorCode(t, err); got != "invalid_client" {
		t.Errorf("wrong secret: error %q, want invalid_client", got)
	}
}

func TestLoginCSRF(t *testing.T) {
	tests := []struct {
		name  string
		token func(string) (string, bool) // returns the token to send and whether to send it
	}{
		{"missing token", func(string) (string, bool) { return "", false }},
		{"empty token", func(string) (string, bool) { return "", true }},
		{"tampered token", func(tok string) (string, bool) {
			first := "A" // a different first character, whatever the token's is
			if tok[0] == 'A' {
				first = "B"
			}
			return first + tok[1:], true
		}},
		{"token for another form", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.webRP()
			b := e.browser()
			f := r.start()
			form := b.get(f.url)
			fields := hiddenFields(t, form.body)
			switch {
			case tc.token == nil:
				rec := newRecorder()
				fields.Set(csrfFieldName, e.idp.csrf.Token(rec, requestWithCookies(b, e.issuer), csrfPurposeLogout))
			default:
				tok, send := tc.token(fields.Get(csrfFieldName))
				fields.Del(csrfFieldName)
				if send {
					fields.Set(csrfFieldName, tok)
				}
			}
			fields.Set("username", "alice")
			fields.Set("password", "alice-password")
			p := b.post(e.issuer+"/login", fields)
			if p.status != http.StatusForbidden {
				t.Errorf("status %d, want 403", p.status)
			}
			if !strings.Contains(p.body, "Your sign-in form expired, please try again") {
				t.Errorf("page does not say the form expired:\n%s", p.body)
			}
			if n := e.dir.calls.Load(); n != 0 {
				t.Errorf("%d authentication attempts, want none", n)
			}
			if b.hasCookie(sessionCookie) {
				t.Error("an SSO session cookie was set")
			}
			// The re-shown form works.
			r.exchange(r.code(b.submitLogin(p, "alice", "alice-password"), f), f)
		})
	}
}

func TestInvalidCredentialsLookAlike(t *testing.T) {
	tests := []struct {
		name, user, password, reason string
	}{
		{"wrong password", "alice", "nope", "wrong_password"},
		{"unknown user", "mallory", "alice-password", "unknown_user"},
		{"disabled user", "carol", "carol-password", "disabled"},
		{"empty password", "alice", "", "wrong_password"},
	}
	var bodies []string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			form := b.get(e.webRP().start().url)
			p := b.submitLogin(form, tc.user, tc.password)
			if p.status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", p.status)
			}
			if !strings.Contains(p.body, "Invalid username or password.") || !isLoginForm(p) {
				t.Errorf("want the form again with the generic error:\n%s", p.body)
			}
			if b.hasCookie(sessionCookie) {
				t.Error("session cookie set after a failed sign-in")
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "reason="+tc.reason) {
				t.Errorf("log lacks reason=%s:\n%s", tc.reason, logs)
			}
			if tc.password != "" && strings.Contains(logs, tc.password) {
				t.Errorf("log contains the password:\n%s", logs)
			}
			// Normalise the per-request parts to compare pages.
			body := inputRE.ReplaceAllString(p.body, "")
			body = strings.ReplaceAll(body, `value="`+tc.user+`"`, `value=""`)
			bodies = append(bodies, body)
		})
	}
	for i := 1; i < len(bodies); i++ {
		if bodies[i] != bodies[0] {
			t.Errorf("page for %q differs from page for %q", tests[i].name, tests[0].name)
		}
	}
}

func TestRedirectURIExactMatch(t *testing.T) {
	tests := []struct{ name, uri string }{
		{"extra character", spaRedirect + "x"},
		{"missing character", strings.TrimSuffix(spaRedirect, "k")},
		{"one character changed", strings.Replace(spaRedirect, "callback", "callbacc", 1)},
		{"trailing slash", spaRedirect + "/"},
		{"upper case host", strings.Replace(spaRedirect, "app.example.com", "App.example.com", 1)},
		{"added query", spaRedirect + "?next=/"},
		{"other host", "https://evil.example/callback"},
		{"http instead of https", strings.Replace(spaRedirect, "https://", "http://", 1)},
		{"port added", strings.Replace(spaRedirect, "app.example.com", "app.example.com:443", 1)},
	}
	e := newEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.spaRP()
			r.oauth.RedirectURL = tc.uri
			b := e.browser()
			p := b.get(r.start().url)
			if p.status == http.StatusFound || p.status == http.StatusSeeOther || p.header.Get("Location") != "" {
				t.Fatalf("redirected to %q", p.header.Get("Location"))
			}
			if p.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", p.status)
			}
			if isLoginForm(p) {
				t.Error("login form shown for an unregistered redirect URI")
			}
		})
	}
}

func TestPKCERequiredForPublicClient(t *testing.T) {
	e := newEnv(t)
	r := e.spaRP()
	tests := []struct {
		name string
		url  string
		want string // error code in the redirect; "" = login form
	}{
		{"no code_challenge", r.oauth.AuthCodeURL("st", gooidc.Nonce("n")), "invalid_request"},
		{"plain method", r.oauth.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("code_challenge_method", "plain")), "invalid_request"},
		{"challenge without method (plain)", r.oauth.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier())), "invalid_request"},
		{"unknown method", r.oauth.AuthCodeURL("st", oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("code_challenge_method", "S512")), "invalid_request"},
		{"S256", r.oauth.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := e.browser().get(tc.url)
			if tc.want == "" {
				if !isLoginForm(p) {
					t.Fatalf("want the login form, got %d", p.status)
				}
				return
			}
			q := redirectedTo(t, p, spaRedirect)
			if q.Get("error") != tc.want || q.Get("state") != "st" {
				t.Errorf("error %q (%s) state %q, want %s", q.Get("error"), q.Get("error_description"), q.Get("state"), tc.want)
			}
			if q.Get("code") != "" {
				t.Error("a code was issued")
			}
		})
	}
	// A confidential client may go without PKCE.
	w := e.webRP()
	p := e.browser().get(w.oauth.AuthCodeURL("st"))
	if !isLoginForm(p) {
		t.Errorf("confidential client without PKCE: want the login form, got %d", p.status)
	}
}

func TestOpenIDScopeRequired(t *testing.T) {
	e := newEnv(t)
	r := newRP(t, context.Background(), e.issuer, spaClientID, "", spaRedirect, "profile")
	p := e.browser().get(r.start().url)
	q := redirectedTo(t, p, spaRedirect)
	if q.Get("error") != "invalid_scope" {
		t.Errorf("error %q, want invalid_scope", q.Get("error"))
	}
}

func TestSSOSkipsForm(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := e.webRP()
	f1 := r.start()
	_, idt1 := r.exchange(b.signIn(r, f1, "alice", "alice-password"), f1)
	calls := e.dir.calls.Load()

	// Same browser, another client: no form.
	s := e.spaRP()
	f2 := s.start()
	_, idt2 := s.exchange(s.code(b.get(f2.url), f2), f2)
	if n := e.dir.calls.Load(); n != calls {
		t.Errorf("second authorize checked a password (%d calls)", n-calls)
	}
	var c1, c2 idClaims
	_ = idt1.Claims(&c1)
	_ = idt2.Claims(&c2)
	if c2.Sub != "u-alice" || c2.SID != c1.SID || c2.AuthTime != c1.AuthTime || !slices.Equal(c2.AMR, []string{"pwd"}) {
		t.Errorf("SSO ID token %+v, first %+v", c2, c1)
	}
}

func TestPromptLoginAndMaxAge(t *testing.T) {
	tests := []struct {
		name     string
		advance  time.Duration
		opts     []oauth2.AuthCodeOption
		wantForm bool
	}{
		{"no prompt", 0, nil, false},
		{"prompt=login", 0, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login")}, true},
		{"max_age=0", 0, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "0")}, true},
		{"max_age exceeded", 10 * time.Minute, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "300")}, true},
		{"max_age not exceeded", 10 * time.Minute, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("max_age", "3600")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			r := e.webRP()
			f := r.start()
			_, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
			var first idClaims
			_ = idt.Claims(&first)
			e.clock.Advance(tc.advance)

			f2 := r.start(tc.opts...)
			p := b.get(f2.url)
			if !tc.wantForm {
				r.exchange(r.code(p, f2), f2)
				return
			}
			if !isLoginForm(p) {
				t.Fatalf("want the login form, got %d at %s", p.status, p.url)
			}
			if !strings.Contains(p.body, `value="alice"`) {
				t.Error("username not pre-filled")
			}
			_, idt2 := r.exchange(r.code(b.submitLogin(p, "alice", "alice-password"), f2), f2)
			var second idClaims
			_ = idt2.Claims(&second)
			if second.SID == first.SID {
				t.Error("re-authentication kept the old session id")
			}
			if second.AuthTime < first.AuthTime+int64(tc.advance/time.Second) {
				t.Errorf("auth_time %d not renewed (first %d)", second.AuthTime, first.AuthTime)
			}
			if _, err := e.idp.sessions.Get(context.Background(), first.SID); err == nil {
				t.Error("old SSO session still live after re-authentication")
			}
		})
	}
}

func TestPromptNone(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	b := e.browser()
	f := r.start(oauth2.SetAuthURLParam("prompt", "none"))
	q := redirectedTo(t, b.get(f.url), webRedirect)
	if q.Get("error") != "login_required" || q.Get("state") != f.state {
		t.Errorf("prompt=none without session: error %q state %q", q.Get("error"), q.Get("state"))
	}
	f1 := r.start()
	r.exchange(b.signIn(r, f1, "alice", "alice-password"), f1)
	f2 := r.start(oauth2.SetAuthURLParam("prompt", "none"))
	r.exchange(r.code(b.get(f2.url), f2), f2)
}

func TestSessionUserSwitch(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	r := e.webRP()
	f := r.start()
	tok, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	var a idClaims
	_ = idt.Claims(&a)

	f2 := r.start(oauth2.SetAuthURLParam("prompt", "login"))
	_, idt2 := r.exchange(r.code(b.submitLogin(b.get(f2.url), "bob", "bob-password"), f2), f2)
	var c idClaims
	_ = idt2.Claims(&c)
	if c.Sub != "u-bob" {
		t.Errorf("sub %q after switching user, want u-bob", c.Sub)
	}
	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("alice's access token still works after bob took over the browser")
	}
}

func TestDisabledUser(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	b := e.browser()
	f := r.start()
	tok, _ := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)

	f2 := r.start()
	code := r.code(b.get(f2.url), f2) // SSO
	e.dir.setDisabled("alice", true)

	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("userinfo works for a disabled user")
	}
	_, err := r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f2.verifier))
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("token for a disabled user: error %q, want invalid_grant", got)
	}
	// The SSO session no longer signs alice in.
	f3 := r.start()
	if p := b.get(f3.url); !isLoginForm(p) {
		t.Errorf("SSO session of a disabled user completed an authorize (%d)", p.status)
	}

	e.dir.setDisabled("alice", false)
	f4 := r.start()
	code = r.code(b.get(f4.url), f4)
	e.dir.mu.Lock()
	delete(e.dir.users, "alice")
	e.dir.mu.Unlock()
	_, err = r.oauth.Exchange(r.ctx, code, oauth2.VerifierOption(f4.verifier))
	if got := retrieveErrorCode(t, err); got != "invalid_grant" {
		t.Errorf("token for a removed user: error %q, want invalid_grant", got)
	}
}

func TestCORSPreflightRefused(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/oauth/token", "/userinfo", "/.well-known/openid-configuration", "/keys"} {
		req, _ := http.NewRequest(http.MethodOptions, e.issuer+path, nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("preflight %s: %s: %q", path, h, v)
			}
		}
		req, _ = http.NewRequest(http.MethodGet, e.issuer+path, nil)
		req.Header.Set("Origin", "https://evil.example")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("GET %s: Access-Control-Allow-Origin %q", path, v)
		}
	}
}

func TestEndSession(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	b := e.browser()
	f := r.start()
	tok, idt := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	var c idClaims
	_ = idt.Claims(&c)

	if err := e.idp.EndSession(context.Background(), c.SID); err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	if p := b.get(r.start().url); !isLoginForm(p) {
		t.Errorf("authorize after EndSession: want the form, got %d", p.status)
	}
	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("access token of the ended session still works")
	}
	if err := e.idp.EndSession(context.Background(), c.SID); err != nil {
		t.Errorf("ending an ended session: %v", err)
	}
	if err := e.idp.EndSession(context.Background(), ""); err == nil {
		t.Error("EndSession(\"\") succeeded")
	}
}

func TestEndSessionEndpoint(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()

	t.Run("with id_token_hint", func(t *testing.T) {
		b := e.browser()
		f := r.start()
		tok, _ := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
		raw := tok.Extra("id_token").(string)
		u := e.issuer + "/end_session?" + url.Values{
			"id_token_hint":            {raw},
			"post_logout_redirect_uri": {postLogout},
			"state":                    {"bye-state"},
		}.Encode()
		q := redirectedTo(t, b.get(u), postLogout)
		if q.Get("state") != "bye-state" {
			t.Errorf("state %q", q.Get("state"))
		}
		if b.hasCookie(sessionCookie) {
			t.Error("session cookie kept")
		}
		if p := b.get(r.start().url); !isLoginForm(p) {
			t.Errorf("authorize after sign-out: want the form, got %d", p.status)
		}
	})

	t.Run("confirmation", func(t *testing.T) {
		b := e.browser()
		f := r.start()
		r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
		u := e.issuer + "/end_session?" + url.Values{"client_id": {webClientID}, "post_logout_redirect_uri": {postLogout}}.Encode()
		p := b.get(u)
		if p.status != http.StatusOK || !strings.Contains(p.body, "Do you want to sign out?") {
			t.Fatalf("want the confirmation page, got %d:\n%s", p.status, p.body)
		}
		if !strings.Contains(p.header.Get("Content-Security-Policy"), "form-action 'self' https://app.example.com") {
			t.Errorf("CSP %q does not allow the post-logout redirect", p.header.Get("Content-Security-Policy"))
		}
		// Still signed in until confirmed.
		if p := b.get(r.start().url); isLoginForm(p) {
			t.Fatal("signed out without confirmation")
		}
		fields := hiddenFields(t, p.body)
		bad := url.Values{}
		for k, v := range fields {
			bad[k] = v
		}
		bad.Set(csrfFieldName, "x")
		if p := b.post(e.issuer+"/end_session", bad); p.status != http.StatusForbidden {
			t.Errorf("bad CSRF token: status %d, want 403", p.status)
		}
		redirectedTo(t, b.post(e.issuer+"/end_session", fields), postLogout)
		if p := b.get(r.start().url); !isLoginForm(p) {
			t.Errorf("authorize after sign-out: want the form, got %d", p.status)
		}
	})

	t.Run("unregistered post_logout_redirect_uri", func(t *testing.T) {
		b := e.browser()
		u := e.issuer + "/end_session?" + url.Values{"client_id": {webClientID}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode()
		p := b.get(u)
		if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
			t.Errorf("status %d location %q, want 400 and no redirect", p.status, p.header.Get("Location"))
		}
	})

	t.Run("no session", func(t *testing.T) {
		p := e.browser().get(e.issuer + "/end_session")
		if p.status != http.StatusOK || !strings.Contains(p.body, "You have been signed out") {
			t.Errorf("status %d:\n%s", p.status, p.body)
		}
	})
}

// Only the browser whose session completed a request can collect its code.
func TestCallbackBoundToSession(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	victim := e.browser()
	f := r.start()
	r.exchange(victim.signIn(r, f, "alice", "alice-password"), f)

	attacker := e.browser()
	af := r.start()
	form := attacker.get(af.url)
	id := hiddenFields(t, form.body).Get("authRequestID")
	if id == "" {
		t.Fatal("no auth request id in the form")
	}
	// The victim is lured to the attacker's request; it completes with the victim's session
	// and the code goes to the victim's browser at the registered redirect URI.
	redirectedTo(t, victim.get(e.issuer+"/login?authRequestID="+url.QueryEscape(id)), webRedirect)

	p := attacker.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(id))
	if p.status != http.StatusForbidden || p.header.Get("Location") != "" {
		t.Errorf("attacker at the callback: status %d location %q, want 403", p.status, p.header.Get("Location"))
	}
	// Other spellings of the callback path, other methods, and a second id do not get around
	// the check.
	own := attacker.get(r.start().url)
	ownID := hiddenFields(t, own.body).Get("authRequestID")
	for _, u := range []string{
		"/authorize%2Fcallback?id=" + url.QueryEscape(id),
		"/authorize/callbac%6B?id=" + url.QueryEscape(id),
		"//authorize/callback?id=" + url.QueryEscape(id),
		"/authorize/callback/?id=" + url.QueryEscape(id),
		"/authorize/./callback?id=" + url.QueryEscape(id),
		"/authorize/callback?id=" + url.QueryEscape(ownID) + "&id=" + url.QueryEscape(id),
	} {
		if p := attacker.get(e.issuer + u); p.header.Get("Location") != "" && strings.HasPrefix(p.header.Get("Location"), webRedirect) {
			t.Errorf("GET %s: redirected to the client: %s", u, p.header.Get("Location"))
		}
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/authorize/callback?id="+url.QueryEscape(ownID), strings.NewReader("id="+url.QueryEscape(id)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p := attacker.do(req); p.status != http.StatusMethodNotAllowed {
		t.Errorf("POST to the callback: status %d, want 405", p.status)
	}

	// An unauthenticated request id at the callback.
	other := attacker.get(r.start().url)
	id2 := hiddenFields(t, other.body).Get("authRequestID")
	if p := attacker.get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(id2)); p.status != http.StatusForbidden {
		t.Errorf("callback for an unfinished request: status %d, want 403", p.status)
	}
}

func TestExpiredAuthRequest(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, u := range []string{"/login?authRequestID=nope", "/login", "/authorize/callback?id=nope"} {
		p := b.get(e.issuer + u)
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired") {
			t.Errorf("GET %s: status %d, want 400 with an expiry message", u, p.status)
		}
	}
	p := b.post(e.issuer+"/login", url.Values{"authRequestID": {"nope"}, "username": {"alice"}, "password": {"alice-password"}})
	if p.status != http.StatusBadRequest || e.dir.calls.Load() != 0 {
		t.Errorf("POST with unknown request: status %d, %d authentications", p.status, e.dir.calls.Load())
	}
}

func TestPageSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.get(e.webRP().start().url)
	want := map[string]string{
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	}
	for h, v := range want {
		if got := p.header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	csp := p.header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'unsafe-inline'", "frame-ancestors 'none'", "form-action 'self' http://localhost:8080"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if strings.Contains(p.body, "<script") || strings.Contains(p.body, "http://") || strings.Contains(p.body, "https://") {
		t.Error("login page refers to scripts or external assets")
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.issuer + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}

	sick := &sickStore{Store: openStore(t)}
	cfg := baseConfig(t, "https://id.example.com", sick, newFakeDir(), &syncBuffer{}, nil)
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sick.sick.Store(true)
	rec := newRecorder()
	p.ServeHTTP(rec, httptestRequest(http.MethodGet, "https://id.example.com/healthz"))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("healthz with a sick store: %d, want 503", rec.Code)
	}
	if err := p.Health(context.Background()); err == nil {
		t.Error("Health() = nil with a sick store")
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	var d struct {
		Issuer  string   `json:"issuer"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
		Scopes  []string `json:"scopes_supported"`
		Methods []string `json:"code_challenge_methods_supported"`
		Grants  []string `json:"grant_types_supported"`
		EndSess string   `json:"end_session_endpoint"`
	}
	if err := r.provider.Claims(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != e.issuer || !slices.Equal(d.Algs, []string{"ES256"}) || !slices.Equal(d.Methods, []string{"S256"}) {
		t.Errorf("discovery: %+v", d)
	}
	if !slices.Contains(d.Scopes, "groups") || !slices.Contains(d.Scopes, "offline_access") || slices.Contains(d.Scopes, "phone") {
		t.Errorf("scopes_supported %v", d.Scopes)
	}
	for _, g := range []string{"authorization_code", "refresh_token", "client_credentials"} {
		if !slices.Contains(d.Grants, g) {
			t.Errorf("grant_types_supported %v lacks %s", d.Grants, g)
		}
	}
	if d.EndSess != e.issuer+"/end_session" {
		t.Errorf("end_session_endpoint %q", d.EndSess)
	}
}

// A client without the refresh_token grant gets no refresh token, even with offline_access,
// and may not use the grant.
func TestRefreshTokenNeedsGrant(t *testing.T) {
	e := newEnv(t)
	r := newRP(t, context.Background(), e.issuer, webClientID, webClientSecret, webRedirect, gooidc.ScopeOpenID, gooidc.ScopeOfflineAccess)
	f := r.start()
	tok, _ := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	if tok.RefreshToken != "" {
		t.Error("refresh token issued")
	}
	resp, err := http.PostForm(e.issuer+"/oauth/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {webClientID}, "client_secret": {webClientSecret},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "unauthorized_client") {
		t.Errorf("refresh grant: %d %s", resp.StatusCode, body)
	}
}

func TestIntrospectAndRevoke(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	f := r.start()
	tok, _ := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)

	post := func(path, clientID, secret string, form url.Values) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(t, resp)
	}
	status, body := post("/oauth/introspect", webClientID, webClientSecret, url.Values{"token": {tok.AccessToken}})
	if status != http.StatusOK || !strings.Contains(body, `"active":true`) || !strings.Contains(body, `"sub":"u-alice"`) {
		t.Errorf("introspection: %d %s", status, body)
	}
	if status, _ := post("/oauth/introspect", webClientID, "wrong", url.Values{"token": {tok.AccessToken}}); status == http.StatusOK {
		t.Error("introspection with a wrong client secret answered 200")
	}
	if status, body := post("/revoke", webClientID, webClientSecret, url.Values{"token": {tok.AccessToken}}); status != http.StatusOK {
		t.Errorf("revocation: %d %s", status, body)
	}
	if _, err := r.provider.UserInfo(r.ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("revoked access token still works at userinfo")
	}
	status, body = post("/oauth/introspect", webClientID, webClientSecret, url.Values{"token": {tok.AccessToken}})
	if status != http.StatusOK || strings.Contains(body, `"active":true`) {
		t.Errorf("introspection of a revoked token: %d %s", status, body)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// virtualKey plugs a DevTools virtual authenticator into the browser: a CTAP2 USB security
// key that keeps discoverable credentials (passkeys) and verifies its user (a PIN), with
// presence simulated (a touch).
func virtualKey(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportUsb,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("adding a virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

// forgetCookies ends the browser's sessions on every site (as a new browser would be).
func forgetCookies(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clearing cookies: %v", err)
	}
}

// atApp waits until the browser shows the demo app and returns the page's text.
func atApp(t *testing.T, ctx context.Context, app, what string) string {
	t.Helper()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if strings.HasPrefix(loc, app+"/") && strings.Contains(body, "X-Remote-User") {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the browser is at %s, not the app:\n%s", what, loc, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// headerValue returns the value of header name on the demo app's /headers page (a JSON
// object of the request headers).
func headerValue(body, name string) string {
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		return ""
	}
	return h[name]
}

// waitHeading waits until the page's h1 is want.
func waitHeading(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h1, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
		if h1 == want {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("waiting for the page %q: at %s:\n%s", want, loc, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func signInWithPassword(t *testing.T, ctx context.Context, user, pass string) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), pass),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
	)
	if err != nil {
		t.Fatalf("password form: %v", err)
	}
}

// TestBrowserSecurityKeys is the browser acceptance for security keys, on the demo
// (Caddyfile.example, /esign/ needs phishing_resistant): a first sign-in with a password to
// an e-signature page sets up a key on the way; the next sign-in asks for the key after the
// password; a passkey signs in with no username at all; and the gate's e-signature rule
// steps up once its window has passed.
func TestBrowserSecurityKeys(t *testing.T) {
	// A one-minute window, as the step-up case has it (the demo uses five).
	app, idp, g := demoWith(t, func(cfg string) string {
		out := strings.Replace(cfg, "allow phishing_resistant within 5m", "allow phishing_resistant within 1m", 1)
		if out == cfg {
			t.Fatal("Caddyfile.example no longer has the esign rule this test relies on")
		}
		return out
	})
	ctx := browser(t)
	key := virtualKey(t, ctx)

	// 1. First sign-in: password, then set up a key, then the e-signature page.
	if err := chromedp.Do(ctx, chromedp.Navigate(app+"/esign/batch-7/headers")); err != nil {
		t.Fatal(err)
	}
	signInWithPassword(t, ctx, "bob", "bob-demo-pass")
	waitHeading(t, ctx, "Set up a security key")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, idp+"/") {
		t.Fatalf("key set-up at %s, want the IdP", loc)
	}
	shot(t, ctx, "webauthn-enroll.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("zg-webauthn-start"))); err != nil {
		t.Fatal(err)
	}
	body := atApp(t, ctx, app, "after setting up a key")
	if u := headerValue(body, "X-Remote-User"); u != "bob" {
		t.Errorf("X-Remote-User %q, want bob", u)
	}
	amr := headerValue(body, "X-Remote-Auth-Methods")
	for _, want := range []string{"pwd", "hwk", "mfa"} {
		if !strings.Contains(amr, want) {
			t.Errorf("X-Remote-Auth-Methods %q lacks %s", amr, want)
		}
	}
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: key})
	if err != nil || len(creds.Credentials) != 1 || !creds.Credentials[0].IsResidentCredential {
		t.Fatalf("the authenticator holds %+v (%v), want one discoverable credential", creds, err)
	}

	// 2. Next sign-in in a fresh browser session: password, then the key (prompted at once).
	forgetCookies(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(app+"/esign/batch-8/headers")); err != nil {
		t.Fatal(err)
	}
	signInWithPassword(t, ctx, "bob", "bob-demo-pass")
	body = atApp(t, ctx, app, "signing in with password and key")
	if amr := headerValue(body, "X-Remote-Auth-Methods"); !strings.Contains(amr, "pwd") || !strings.Contains(amr, "hwk") {
		t.Errorf("second sign-in X-Remote-Auth-Methods %q, want pwd and hwk", amr)
	}
	if !strings.Contains(g.logs(), "security key accepted") {
		t.Error("the IdP log does not show the key step")
	}

	// 3. A passkey alone, no username typed.
	forgetCookies(t, ctx)
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/headers"),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
	)
	if err != nil {
		t.Fatal(err)
	}
	shot(t, ctx, "webauthn-login.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("zg-webauthn-start"))); err != nil {
		t.Fatal(err)
	}
	body = atApp(t, ctx, app, "signing in with a passkey")
	if u := headerValue(body, "X-Remote-User"); u != "bob" {
		t.Errorf("passkey sign-in: X-Remote-User %q, want bob", u)
	}
	amr = headerValue(body, "X-Remote-Auth-Methods")
	if strings.Contains(amr, "pwd") || !strings.Contains(amr, "hwk") || !strings.Contains(amr, "mfa") {
		t.Errorf("passkey sign-in X-Remote-Auth-Methods %q, want hwk and mfa without pwd", amr)
	}
	signedIn := time.Now()

	// 4. Within the minute the e-signature page opens at once; after it, the gate steps up.
	if err := chromedp.Do(ctx, chromedp.Navigate(app+"/esign/batch-9/headers")); err != nil {
		t.Fatal(err)
	}
	atApp(t, ctx, app, "e-signature within the window")
	time.Sleep(time.Until(signedIn.Add(62 * time.Second)))
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/esign/batch-10/headers"),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, idp+"/") {
		t.Fatalf("after the window the e-signature page did not send the browser to the IdP: at %s", loc)
	}
	shot(t, ctx, "webauthn-stepup.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("zg-webauthn-start"))); err != nil {
		t.Fatal(err)
	}
	atApp(t, ctx, app, "after the step-up")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != app+"/esign/batch-10/headers" {
		t.Errorf("after the step-up the browser is at %s, want the e-signature page", loc)
	}
	stepped := false
	for _, line := range strings.Split(g.logs(), "\n") {
		if strings.Contains(line, "/esign/batch-10/headers") && strings.Contains(line, "step_up (") {
			stepped = true
		}
	}
	if !stepped {
		t.Error("the gate log does not show a step_up decision for the late e-signature")
	}
}

// TestBrowserWrongOriginRefused: an assertion made for another origin is refused, even under
// the same relying party id. The IdP is also served on a second port that is not among the
// configured origins (as a look-alike page would be): the browser signs the challenge there
// with the right key, and the IdP refuses it because of the origin.
func TestBrowserWrongOriginRefused(t *testing.T) {
	other := freePort(t)
	var otherURL string
	app, idp, g := demoWith(t, func(cfg string) string {
		i := strings.Index(cfg, " {\n\tzonegate_idp")
		if i < 0 {
			t.Fatal("no zonegate_idp site in the demo")
		}
		site := cfg[strings.LastIndex(cfg[:i], "\n")+1 : i]
		otherURL = "http://localhost:" + strconv.Itoa(other)
		out := strings.Replace(cfg, "\n"+site+" {\n\tzonegate_idp", "\n"+site+", "+otherURL+" {\n\tzonegate_idp", 1)
		if out == cfg {
			t.Fatalf("could not add a second address to the IdP site %q", site)
		}
		return strings.Replace(out, "\t\twebauthn {\n", "\t\twebauthn {\n\t\t\torigins "+site+"\n", 1)
	})
	ctx := browser(t)
	virtualKey(t, ctx)

	// Set up a key at the real origin.
	if err := chromedp.Do(ctx, chromedp.Navigate(app+"/esign/batch-1/headers")); err != nil {
		t.Fatal(err)
	}
	signInWithPassword(t, ctx, "bob", "bob-demo-pass")
	waitHeading(t, ctx, "Set up a security key")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("zg-webauthn-start"))); err != nil {
		t.Fatal(err)
	}
	atApp(t, ctx, app, "after setting up a key")

	// A new sign-in, continued on the other origin.
	forgetCookies(t, ctx)
	err := chromedp.Do(ctx,
		chromedp.Navigate(app+"/"),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
	)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.HasPrefix(loc, idp+"/") {
		t.Fatalf("sign-in page at %s, want %s", loc, idp)
	}
	err = chromedp.Do(ctx,
		chromedp.Navigate(otherURL+strings.TrimPrefix(loc, idp)),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
		chromedp.Click(chromedp.ID("zg-webauthn-start")),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if strings.Contains(body, "X-Remote-User") || !strings.Contains(body, "did not work") {
		t.Fatalf("a wrong-origin assertion was not refused as it should be:\n%s", body)
	}
	eventually(t, "the refusal in the IdP log", func() bool {
		logs := g.logs()
		return strings.Contains(logs, "passkey sign-in refused") && strings.Contains(logs, "invalid_response") &&
			strings.Contains(strings.ToLower(logs), "origin")
	})
}

// TestBrowserEnrollmentLink: an administrator's one-time link lets a user set up a security
// key without signing in (someone without a password, or who lost every key); the key then
// signs in as a passkey; the link works once.
func TestBrowserEnrollmentLink(t *testing.T) {
	adminPort := freePort(t)
	admin := "localhost:" + strconv.Itoa(adminPort)
	app, _, _ := demoWith(t, func(cfg string) string {
		return strings.Replace(cfg, "\tadmin off\n", "\tadmin "+admin+"\n", 1)
	})
	link, err := zonegateCmd(t, "authenticators", "link", "--admin", admin, "--user", "bob")
	if err != nil || !strings.Contains(link, "/enroll?token=") {
		t.Fatalf("authenticators link: %q %v", link, err)
	}
	if _, err := zonegateCmd(t, "authenticators", "link", "--admin", admin, "--user", "mallory"); err == nil {
		t.Error("a link for an unknown user was made")
	}
	ctx := browser(t)
	virtualKey(t, ctx)
	err = chromedp.Do(ctx,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
		chromedp.Click(chromedp.ID("zg-webauthn-start")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitHeading(t, ctx, "Security key added")

	// The key signs bob in with no username or password.
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/headers"),
		chromedp.WaitVisible(chromedp.ID("zg-webauthn-start")),
		chromedp.Click(chromedp.ID("zg-webauthn-start")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if u := headerValue(atApp(t, ctx, app, "passkey after the link"), "X-Remote-User"); u != "bob" {
		t.Errorf("X-Remote-User %q, want bob", u)
	}

	// The link was used up.
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if !strings.Contains(body, "already used") {
		t.Errorf("the link opened a second time:\n%s", body)
	}
}

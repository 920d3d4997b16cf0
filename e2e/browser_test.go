package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the browser to drive. Without one the test fails in CI (make test
// installs it) and is skipped elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: make test installs it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH; run make test to install it")
	return ""
}

// browser starts a fresh headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 800),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
	}
	opts = append(chromedp.DefaultExecAllocatorOptions[:], opts...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	// No deadline on the first Do: a cancelled first context kills the browser. A watchdog
	// ends a hung test instead.
	watchdog := time.AfterFunc(2*time.Minute, func() { cancel(); cancelA() })
	t.Cleanup(func() { watchdog.Stop() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// demo runs Caddyfile.example itself, with its three ports moved to free ones, from a copy of
// the repository's examples, and returns the app's and the IdP's URLs.
func demo(t *testing.T) (app, idp string) {
	t.Helper()
	app, idp, _ = demoWith(t, nil)
	return app, idp
}

// demoWith is demo with the configuration changed by edit (after the ports are moved) when
// edit is not nil.
func demoWith(t *testing.T, edit func(cfg string) string) (app, idp string, g *gateway) {
	t.Helper()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	for _, p := range []string{"9090", "9091", "9092", "9093"} {
		ports[p] = strconv.Itoa(freePort(t))
	}
	movePorts := func(s string) string {
		for from, to := range ports {
			s = strings.ReplaceAll(s, ":"+from, ":"+to)
		}
		return s
	}
	for _, f := range []string{"users.yaml", "spa/index.html"} {
		b, err := os.ReadFile(filepath.Join(root, "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "examples", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(movePorts(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The demo's global block must stay one block: merge "admin off" into it.
	cfg := strings.Replace(string(raw), "{\n\tzonegate {", "{\n\tadmin off\n\tzonegate {", 1)
	if cfg == string(raw) {
		t.Fatal("Caddyfile.example no longer starts its global options with a zonegate block")
	}
	cfg = movePorts(cfg)
	if edit != nil {
		cfg = edit(cfg)
	}
	app, idp = "http://localhost:"+ports["9090"], "http://localhost:"+ports["9091"]
	spaURL = "http://localhost:" + ports["9093"]
	g = startGateway(t, dir, cfg, idp+"/.well-known/openid-configuration", app+"/.zonegate/logout", spaURL+"/")
	return app, idp, g
}

// spaURL is the demo single-page app of the last demo started.
var spaURL string

// TestBrowserSPASignsInWithPKCE is the README's "Sign an app in with OIDC": the demo SPA, a
// public client, signs in with code + PKCE from the browser (CORS to the token and userinfo
// endpoints) and signs out through end_session.
func TestBrowserSPASignsInWithPKCE(t *testing.T) {
	_, idp := demo(t)
	spa := spaURL
	ctx := browser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(spa+"/"),
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "bob-demo-pass"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.ID("claims")),
	)
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
		t.Fatalf("SPA sign-in: %v (status %q)", err, status)
	}
	claims, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("claims")))
	if err != nil || !strings.Contains(claims, `"bob@example.com"`) || !strings.Contains(claims, `"staff"`) {
		t.Fatalf("SPA userinfo %q, %v", claims, err)
	}
	shot(t, ctx, "spa.png")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("signin")),
	)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("SPA sign-out: %v (at %s)", err, loc)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, spa+"/") {
		t.Errorf("after sign-out the browser is at %s, want the SPA", loc)
	}
	// The IdP session ended too: signing in again asks for the password.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
	)
	if err != nil {
		t.Fatalf("after sign-out the IdP did not ask for a password: %v", err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, idp+"/") {
		t.Errorf("sign-in page at %s, want the IdP", loc)
	}
}

// TestBrowserSignInToDemo is the README's demo, tried as a new user would: open the app,
// get the sign-in page, sign in, land on the app with the identity headers.
func TestBrowserSignInToDemo(t *testing.T) {
	app, idp := demo(t)
	ctx := browser(t)

	err := chromedp.Do(ctx,
		chromedp.Navigate(app+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.HasPrefix(loc, idp+"/") {
		t.Fatalf("the app did not send the browser to the IdP: %q %v", loc, err)
	}
	shot(t, ctx, "login.png")

	// A wrong password shows the one generic error.
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "wrong-pass"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="alert"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil || !strings.Contains(body, "Invalid username or password") {
		t.Fatalf("wrong password page: %q %v", body, err)
	}

	// The form keeps the username and asks for the password again.
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input[name="username"]`))); err != nil || v != "alice" {
		t.Fatalf("username after a wrong password: %q %v", v, err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "alice-demo-pass"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the app page", func() bool {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		return strings.HasPrefix(loc, app+"/")
	})
	h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || !strings.Contains(h1, "Alice Admin") {
		t.Fatalf("app heading %q, %v", h1, err)
	}
	page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	for _, want := range []string{"X-Remote-User", "alice", "X-Remote-Groups", "admins"} {
		if !strings.Contains(page, want) {
			t.Errorf("app page lacks %q:\n%s", want, page)
		}
	}
	shot(t, ctx, "app.png")

	// Sign out through the gate's confirmation form.
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/.zonegate/logout"),
		chromedp.WaitVisible(chromedp.CSS(`form button, form input[type="submit"]`)),
		chromedp.Click(chromedp.CSS(`form button, form input[type="submit"]`)),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Navigate(app+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
	)
	if err != nil {
		t.Fatalf("after sign-out the app did not ask for a sign-in again: %v", err)
	}
}

// shot saves a screenshot under docs/screenshots when ZONEGATE_SCREENSHOTS=1 (for the README).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("ZONEGATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot(t), "docs", "screenshots")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

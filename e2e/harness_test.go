// Package e2e tests the whole system: the zonegate binary built from this module, real HTTP
// clients, real OIDC clients and a real browser.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/syncbuf"
)

// binary is the zonegate binary built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zonegate-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "zonegate")
	args := []string{"build", "-o", binary}
	if os.Getenv("ZONEGATE_E2E_RACE") == "1" {
		args = append(args, "-race")
	}
	args = append(args, "../cmd/zonegate")
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building zonegate:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", binary, time.Since(start).Round(time.Second))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// gateway is one running zonegate process.
type gateway struct {
	t       *testing.T
	dir     string
	config  string
	admin   string
	cmd     *exec.Cmd
	out     *syncbuf.Buffer
	done    chan struct{}
	waitErr error
}

// startGateway writes caddyfile to a fresh directory (or dir, when given) and runs zonegate
// on it until the test ends. ready is a URL polled until it answers.
func startGateway(t *testing.T, dir, caddyfile, ready string, alsoReady ...string) *gateway {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	g := &gateway{t: t, dir: dir, config: filepath.Join(dir, "Caddyfile"), out: new(syncbuf.Buffer)}
	if err := os.WriteFile(g.config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	g.start(ready)
	// Caddy starts its servers one after another: wait for each site the test will use.
	for _, u := range alsoReady {
		eventually(t, u, func() bool {
			resp, err := http.Get(u)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		})
	}
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("zonegate output:\n%s", g.out.String())
		}
	})
	return g
}

func (g *gateway) start(ready string) {
	g.t.Helper()
	g.cmd = exec.Command(binary, "run", "--config", g.config, "--adapter", "caddyfile")
	g.cmd.Dir = g.dir
	g.cmd.Env = append(os.Environ(), "HOME="+g.dir, "XDG_DATA_HOME="+filepath.Join(g.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(g.dir, "config"))
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.done = make(chan struct{})
	go func() { g.waitErr = g.cmd.Wait(); close(g.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-g.done:
			g.t.Fatalf("zonegate exited at start (%v):\n%s", g.waitErr, g.out.String())
		default:
		}
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("zonegate not ready at %s after 60s: %v\n%s", ready, err, g.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	select {
	case <-g.done:
		return
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

// restart stops the process and starts it again on the same config and data.
func (g *gateway) restart(ready string) {
	g.t.Helper()
	g.stop()
	g.start(ready)
}

// logs returns what the process printed so far.
func (g *gateway) logs() string { return g.out.String() }

// client is a browser-like HTTP client: a cookie jar, no automatic redirects, HTML Accept.
type client struct {
	t     *testing.T
	trace []string // "METHOD URL -> status Location" of every request, for failure messages
	http  *http.Client
	jar   *cookiejar.Jar
}

func newClient(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, jar: jar, http: &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

type response struct {
	status int
	header http.Header
	body   string
	url    *url.URL
}

func (r response) location() string { return r.header.Get("Location") }

// do sends one request. headers are "Name: value" pairs.
func (c *client) do(method, rawURL string, body url.Values, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header[strings.TrimSpace(k)] = append(req.Header[strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	c.trace = append(c.trace, fmt.Sprintf("%s %s -> %d %s (%d bytes)", method, rawURL, resp.StatusCode, resp.Header.Get("Location"), len(b)))
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), url: req.URL}
}

// follow sends a GET and follows redirects (up to 10), returning the last response.
func (c *client) follow(rawURL string, headers ...string) response {
	c.t.Helper()
	return c.followUntil(rawURL, "", headers...)
}

// followUntil is follow, stopping at a redirect to a URL that starts with stop (when set).
func (c *client) followUntil(rawURL, stop string, headers ...string) response {
	c.t.Helper()
	r := c.do("GET", rawURL, nil, headers...)
	for i := 0; i < 10 && r.status >= 300 && r.status < 400 && (stop == "" || !strings.HasPrefix(r.location(), stop)); i++ {
		next, err := r.url.Parse(r.location())
		if err != nil {
			c.t.Fatalf("bad Location %q: %v", r.location(), err)
		}
		r = c.do("GET", next.String(), nil, headers...)
	}
	return r
}

var (
	inputRe  = regexp.MustCompile(`(?s)<input\b[^>]*>`)
	attrRe   = regexp.MustCompile(`(\w[\w-]*)\s*=\s*"([^"]*)"`)
	actionRe = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
)

// formInputs returns the name -> value of every input of the page's forms.
func formInputs(html string) url.Values {
	out := url.Values{}
	for _, tag := range inputRe.FindAllString(html, -1) {
		var name, value string
		for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
			switch m[1] {
			case "name":
				name = m[2]
			case "value":
				value = unescape(m[2])
			}
		}
		if name != "" {
			out.Set(name, value)
		}
	}
	return out
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#x2F;", "/", "&#61;", "=").Replace(s)
}

// submitForm posts the page's first form with its inputs, overridden by values.
func (c *client) submitForm(page response, values url.Values) response {
	c.t.Helper()
	m := actionRe.FindStringSubmatch(page.body)
	action := ""
	if m != nil {
		action = unescape(m[1])
	}
	target, err := page.url.Parse(action)
	if err != nil {
		c.t.Fatal(err)
	}
	form := formInputs(page.body)
	for k, v := range values {
		form[k] = v
	}
	return c.do("POST", target.String(), form)
}

// login submits the IdP login form that page (a response showing it) carries, and follows
// the redirects back to the app. It returns the final response.
func (c *client) login(page response, username, password string) response {
	c.t.Helper()
	if page.status != http.StatusOK || !strings.Contains(page.body, `name="password"`) {
		c.t.Fatalf("not a login page (status %d):\n%s", page.status, page.body)
	}
	r := c.submitForm(page, url.Values{"username": {username}, "password": {password}})
	return c.followFrom(r)
}

// followFrom follows the redirects of r.
func (c *client) followFrom(r response) response {
	c.t.Helper()
	for i := 0; i < 10 && r.status >= 300 && r.status < 400; i++ {
		next, err := r.url.Parse(r.location())
		if err != nil {
			c.t.Fatal(err)
		}
		r = c.do("GET", next.String(), nil)
	}
	return r
}

// cookie returns the named cookie the jar holds for rawURL.
func (c *client) cookie(rawURL, name string) *http.Cookie {
	u, _ := url.Parse(rawURL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var _ = context.Background

// Command bench measures the gate against bare Caddy on this machine.
//
// It builds zonegate, starts one zonegate process with two sites in front of the same trivial
// backend (one bare reverse_proxy, one behind zonegate_gate), signs alice in, and drives both
// with wrk in alternating rounds. It prints requests per second and latency for each, the ratio
// gate/bare and a verdict against the target ratio, and writes the summary to
// bench/results/latest.json. Run it from the repository root: go run ./bench (or make bench).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

// modulePath identifies the repository root (the directory whose go.mod declares it).
const modulePath = "github.com/zonegate/zonegate"

// sessionCookie is the gate's session cookie name (caddymodule's Gate).
const sessionCookie = "zonegate_session"

// Demo user (examples/users.yaml), in group admins.
const (
	benchUser     = "alice"
	benchPassword = "alice-demo-pass"
)

// config is the command line.
type config struct {
	Duration    time.Duration
	Warmup      time.Duration
	Rounds      int
	Connections int
	Threads     int
	Target      float64
	Out         string
	Profile     bool
}

// MarshalJSON writes the settings that shape the numbers, durations as text.
func (c config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Duration    string  `json:"duration"`
		Warmup      string  `json:"warmup"`
		Rounds      int     `json:"rounds"`
		Connections int     `json:"connections"`
		Threads     int     `json:"threads"`
		Target      float64 `json:"target_ratio"`
	}{c.Duration.String(), c.Warmup.String(), c.Rounds, c.Connections, c.Threads, c.Target})
}

func parseFlags() config {
	var c config
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each measured wrk run (whole seconds)")
	flag.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measured run (0 for none)")
	flag.IntVar(&c.Rounds, "rounds", 3, "rounds; each round measures bare and gate once")
	flag.IntVar(&c.Connections, "connections", 32, "wrk connections (-c)")
	flag.IntVar(&c.Threads, "threads", 2, "wrk threads (-t)")
	flag.Float64Var(&c.Target, "target", 0.90, "target ratio gate/bare req/s for the verdict")
	flag.StringVar(&c.Out, "out", "bench/results/latest.json", "where to write the JSON summary (relative to the repository root)")
	flag.BoolVar(&c.Profile, "profile", false, "turn on Caddy's admin endpoint (loopback) and save zonegate CPU profiles of round 1 next to -out")
	flag.Parse()
	return c
}

func (c config) validate() error {
	switch {
	case c.Duration < time.Second:
		return fmt.Errorf("-duration %s: want at least 1s", c.Duration)
	case c.Warmup != 0 && c.Warmup < time.Second:
		return fmt.Errorf("-warmup %s: want 0 or at least 1s", c.Warmup)
	case c.Rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", c.Rounds)
	case c.Threads < 1:
		return fmt.Errorf("-threads %d: want at least 1", c.Threads)
	case c.Connections < c.Threads:
		return fmt.Errorf("-connections %d: want at least -threads (%d)", c.Connections, c.Threads)
	case !(c.Target > 0):
		return fmt.Errorf("-target %v: want a positive ratio", c.Target)
	}
	return nil
}

func main() {
	cfg := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			fmt.Fprintln(os.Stderr, "bench: interrupted; everything it started is stopped")
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run does the whole measurement; every process and server it starts is stopped before it
// returns, whatever happens.
func run(ctx context.Context, cfg config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	wrkPath, err := ensureWrk(ctx)
	if err != nil {
		return err
	}
	outPath := cfg.Out
	if !filepath.IsAbs(outPath) {
		outPath = filepath.Join(root, outPath)
	}
	if cfg.Profile {
		if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
			return fmt.Errorf("making the results directory: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "zonegate-bench-")
	if err != nil {
		return fmt.Errorf("making a temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	// 1. The binary, built once, without -race.
	bin := filepath.Join(tmp, "zonegate")
	fmt.Println("building zonegate ...")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/zonegate")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building zonegate: %w", err)
	}

	// 2. The backend both sites proxy to.
	be, err := startBackend()
	if err != nil {
		return err
	}
	defer be.close()

	// 3. One zonegate process: IdP, bare site, gate site.
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	idpURL := "http://localhost:" + strconv.Itoa(ports[0])
	bareURL := "http://localhost:" + strconv.Itoa(ports[1])
	gateURL := "http://localhost:" + strconv.Itoa(ports[2])
	users, err := os.ReadFile(filepath.Join(root, "examples", "users.yaml"))
	if err != nil {
		return fmt.Errorf("reading the demo users: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "users.yaml"), users, 0o600); err != nil {
		return fmt.Errorf("copying the demo users: %w", err)
	}
	adminPort := 0
	if cfg.Profile {
		adminPort = ports[3]
	}
	caddyfile := makeCaddyfile(tmp, ports[0], ports[1], ports[2], be.port, adminPort)
	zg, err := startZonegate(ctx, bin, tmp, caddyfile, []string{idpURL + "/.well-known/openid-configuration", bareURL + "/"})
	if err != nil {
		return err
	}
	defer zg.stop()

	// 4. A valid session for the gate host, checked before measuring.
	fmt.Printf("signing %s in at %s ...\n", benchUser, gateURL)
	cookie, err := signIn(ctx, gateURL, idpURL, benchUser, benchPassword)
	if err != nil {
		return fmt.Errorf("signing %s in: %w (zonegate output:\n%s)", benchUser, err, zg.output())
	}
	cookieHeader := "Cookie: " + sessionCookie + "=" + cookie
	for _, u := range []string{gateURL + "/", bareURL + "/"} {
		if err := checkOK(ctx, u, cookie); err != nil {
			return fmt.Errorf("before measuring: %w", err)
		}
	}

	// 5. Alternating wrk runs.
	load0 := loadAvg()
	res := result{
		Time:          time.Now().UTC().Format(time.RFC3339),
		Go:            runtime.Version(),
		GOOS:          runtime.GOOS,
		GOARCH:        runtime.GOARCH,
		CPUs:          runtime.NumCPU(),
		Wrk:           wrkVersion(wrkPath),
		Config:        cfg,
		LoadAvgBefore: load0,
	}
	est := time.Duration(cfg.Rounds*2) * (cfg.Duration + cfg.Warmup)
	fmt.Printf("load average before: %s\n", orUnknown(load0))
	fmt.Printf("measuring %d round(s) of bare and gate, wrk -t%d -c%d -d%s (warm-up %s each), about %s\n",
		cfg.Rounds, cfg.Threads, cfg.Connections, wrkSeconds(cfg.Duration), cfg.Warmup, est)
	targets := map[string]string{"bare": bareURL + "/", "gate": gateURL + "/"}
	for i := 1; i <= cfg.Rounds; i++ {
		// Odd rounds run bare first, even rounds gate first, so drift hits both alike.
		order := []string{"bare", "gate"}
		if i%2 == 0 {
			order = []string{"gate", "bare"}
		}
		rd := round{Round: i}
		for _, name := range order {
			var prof string
			if cfg.Profile && i == 1 {
				prof = profilePath(outPath, name)
			}
			m, err := measure(ctx, wrkPath, cfg, targets[name], cookieHeader, be, adminPort, prof)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i, name, err)
			}
			if name == "bare" {
				rd.Bare = m
			} else {
				rd.Gate = m
			}
		}
		rd.Ratio = rd.Gate.RequestsPerSec / rd.Bare.RequestsPerSec
		res.Rounds = append(res.Rounds, rd)
		printRound(rd)
	}
	res.LoadAvgAfter = loadAvg()

	// 6. Summary and verdict.
	if cfg.Profile {
		for _, name := range []string{"bare", "gate"} {
			fmt.Printf("CPU profile of zonegate, round 1, %s: %s\n", name, profilePath(outPath, name))
		}
	}
	res.summarize()
	printSummary(res)

	// 7. JSON.
	if err := writeJSON(outPath, res); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", outPath)
	return nil
}

// makeCaddyfile is the config: one process, the IdP, a bare site and a gate site, both
// proxying to the same backend. The admin endpoint is off unless admin (a port) is set.
func makeCaddyfile(dir string, idp, bare, gate, backend, admin int) string {
	adminOpt := "admin off"
	if admin != 0 {
		adminOpt = "admin 127.0.0.1:" + strconv.Itoa(admin)
	}
	r := strings.NewReplacer(
		"{ADMIN}", adminOpt,
		"{DIR}", dir,
		"{IDP}", strconv.Itoa(idp),
		"{BARE}", strconv.Itoa(bare),
		"{GATE}", strconv.Itoa(gate),
		"{BACKEND}", strconv.Itoa(backend),
	)
	return r.Replace(`{
	{ADMIN}
	log {
		level ERROR
	}
	zonegate {
		issuer http://localhost:{IDP}
		users {DIR}/users.yaml
		storage bolt {DIR}/zonegate.db
		zone lab 127.0.0.0/8 ::1
		policy bench {
			rule admins-in-lab {
				allow
				zone lab
				group admins
			}
			default deny
		}
	}
}

http://localhost:{IDP} {
	zonegate_idp
}

http://localhost:{BARE} {
	reverse_proxy 127.0.0.1:{BACKEND}
}

http://localhost:{GATE} {
	zonegate_gate bench {
		url http://localhost:{GATE}
	}
	reverse_proxy 127.0.0.1:{BACKEND}
}
`)
}

// repoRoot walks up from the working directory to the go.mod of this module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(modulePath)+`\s*$`).Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("finding the repository root: no go.mod for %s above the working directory; run from the repository (go run ./bench)", modulePath)
		}
		dir = parent
	}
}

// ensureWrk finds wrk, installing it with apt-get when this is Debian and we are root.
func ensureWrk(ctx context.Context) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	fmt.Fprintln(os.Stderr, "wrk is not installed. On Debian or Ubuntu: sudo apt-get install -y wrk (other systems: https://github.com/wg/wrk)")
	_, debErr := os.Stat("/etc/debian_version")
	apt, aptErr := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || debErr != nil || aptErr != nil {
		return "", errors.New("wrk is missing; install it and run again")
	}
	fmt.Fprintln(os.Stderr, "running as root on Debian: installing wrk with apt-get")
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "install", "-y", "-qq", "wrk")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := install(); err != nil {
		// The package lists may be missing or stale (fresh containers): update once and retry.
		upd := exec.CommandContext(ctx, apt, "update", "-qq")
		upd.Stdout, upd.Stderr = os.Stderr, os.Stderr
		if uerr := upd.Run(); uerr != nil {
			return "", fmt.Errorf("installing wrk: apt-get update: %w", uerr)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("installing wrk with apt-get: %w", err)
		}
	}
	p, err := exec.LookPath("wrk")
	if err != nil {
		return "", fmt.Errorf("wrk still not found after installing it: %w", err)
	}
	return p, nil
}

func wrkVersion(path string) string {
	out, _ := exec.Command(path, "--version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}

// freePorts returns n distinct loopback ports nobody listens on right now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// backend is the trivial app both sites proxy to. It counts requests, so a run can prove that
// every response wrk counted came from the backend (wrk does not count 3xx as errors).
type backend struct {
	port int
	srv  *http.Server
	hits atomic.Int64
}

func startBackend() (*backend, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the backend: %w", err)
	}
	b := &backend{port: l.Addr().(*net.TCPAddr).Port}
	body := []byte("ok")
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go b.srv.Serve(l)
	return b, nil
}

func (b *backend) close() { b.srv.Close() }

// process is the running zonegate.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func startZonegate(ctx context.Context, bin, dir, caddyfile string, ready []string) (*process, error) {
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyfile), 0o600); err != nil {
		return nil, fmt.Errorf("writing the Caddyfile: %w", err)
	}
	p := &process{out: new(syncBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting zonegate: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range ready {
		for {
			select {
			case <-p.done:
				return nil, fmt.Errorf("zonegate exited at start (%v):\n%s", p.err, p.output())
			case <-ctx.Done():
				p.stop()
				return nil, ctx.Err()
			default:
			}
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				p.stop()
				return nil, fmt.Errorf("zonegate not ready at %s after 60s: %w\n%s", u, err, p.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return p, nil
}

// stop ends zonegate: SIGTERM, then SIGKILL after 10s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) output() string { return p.out.String() }

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// page is one response seen while signing in.
type page struct {
	status int
	url    *url.URL
	header http.Header
	body   string
}

var (
	inputRe  = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	attrRe   = regexp.MustCompile(`([\w-]+)\s*=\s*"([^"]*)"`)
	actionRe = regexp.MustCompile(`(?is)<form\b[^>]*\baction="([^"]*)"`)
)

// formInputs returns name -> value of every input of an HTML page.
func formInputs(body string) url.Values {
	out := url.Values{}
	for _, tag := range inputRe.FindAllString(body, -1) {
		var name, value string
		for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
			switch strings.ToLower(m[1]) {
			case "name":
				name = html.UnescapeString(m[2])
			case "value":
				value = html.UnescapeString(m[2])
			}
		}
		if name != "" {
			out.Set(name, value)
		}
	}
	return out
}

// signIn signs user in at the gate the way a browser does and returns the value of the gate
// host's session cookie.
func signIn(ctx context.Context, gateURL, idpURL, user, password string) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	c := &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var trace []string
	do := func(method, rawURL string, form url.Values) (page, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
		if err != nil {
			return page{}, err
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return page{}, fmt.Errorf("%s %s: %w", method, rawURL, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return page{}, fmt.Errorf("%s %s: reading the body: %w", method, rawURL, err)
		}
		trace = append(trace, fmt.Sprintf("%s %s -> %d %s", method, rawURL, resp.StatusCode, resp.Header.Get("Location")))
		return page{status: resp.StatusCode, url: req.URL, header: resp.Header, body: string(b)}, nil
	}
	follow := func(p page, err error) (page, error) {
		for i := 0; err == nil && i < 10 && p.status >= 300 && p.status < 400; i++ {
			next, perr := p.url.Parse(p.header.Get("Location"))
			if perr != nil {
				return p, fmt.Errorf("bad Location %q: %w", p.header.Get("Location"), perr)
			}
			p, err = do("GET", next.String(), nil)
		}
		return p, err
	}
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%s; requests:\n  %s", fmt.Sprintf(format, args...), strings.Join(trace, "\n  "))
	}

	login, err := follow(do("GET", gateURL+"/", nil))
	if err != nil {
		return "", err
	}
	if login.status != http.StatusOK || !strings.HasPrefix(login.url.String(), idpURL+"/") || !strings.Contains(login.body, `name="password"`) {
		return fail("the gate did not lead to the IdP's login form: ended with %d at %s", login.status, login.url)
	}
	form := formInputs(login.body)
	for _, hidden := range []string{"authRequestID", "csrf_token"} {
		if form.Get(hidden) == "" {
			return fail("the login form has no %s input", hidden)
		}
	}
	form.Set("username", user)
	form.Set("password", password)
	action := ""
	if m := actionRe.FindStringSubmatch(login.body); m != nil {
		action = html.UnescapeString(m[1])
	}
	target, err := login.url.Parse(action)
	if err != nil {
		return fail("bad form action %q: %v", action, err)
	}
	final, err := follow(do("POST", target.String(), form))
	if err != nil {
		return "", err
	}
	if final.status != http.StatusOK || !strings.HasPrefix(final.url.String(), gateURL+"/") || final.body != "ok" {
		return fail("after the login form: %d at %s, want 200 \"ok\" from the backend through the gate (body %.200q)", final.status, final.url, final.body)
	}
	u, _ := url.Parse(gateURL)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == sessionCookie && ck.Value != "" {
			return ck.Value, nil
		}
	}
	return fail("signed in, but the jar has no %s cookie for %s", sessionCookie, gateURL)
}

// checkOK sends what wrk will send (only the Cookie header) and wants 200 "ok".
func checkOK(ctx context.Context, rawURL, cookie string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", sessionCookie+"="+cookie)
	c := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s with the session cookie: %w", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || string(b) != "ok" {
		return fmt.Errorf("GET %s with the session cookie: %d %q (Location %q), want 200 \"ok\"", rawURL, resp.StatusCode, b, resp.Header.Get("Location"))
	}
	return nil
}

// measurement is one measured wrk run.
type measurement struct {
	wrkResult
	// BackendHits is how many requests reached the backend during the run.
	BackendHits int64
}

// measure warms up, then runs wrk once against target and checks that every response was the
// backend's. With a profile path, it also saves a CPU profile of zonegate taken during the run
// from the admin endpoint on adminPort.
func measure(ctx context.Context, wrkPath string, cfg config, target, header string, be *backend, adminPort int, profile string) (measurement, error) {
	if cfg.Warmup > 0 {
		if _, err := runWrk(ctx, wrkPath, cfg, cfg.Warmup, target, header); err != nil {
			return measurement{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var profErr chan error
	if profile != "" {
		profErr = make(chan error, 1)
		go func() { profErr <- saveProfile(ctx, adminPort, cfg.Duration, profile) }()
	}
	be.hits.Store(0)
	w, err := runWrk(ctx, wrkPath, cfg, cfg.Duration, target, header)
	if profErr != nil {
		if perr := <-profErr; perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return measurement{}, err
	}
	m := measurement{wrkResult: w, BackendHits: be.hits.Load()}
	if w.Non2xx > 0 {
		return m, fmt.Errorf("%d of %d responses were 4xx/5xx (is the session valid? is the policy allowing alice?)", w.Non2xx, w.Requests)
	}
	if m.BackendHits < w.Requests {
		return m, fmt.Errorf("wrk counted %d responses but only %d reached the backend: the rest were answered by zonegate itself (redirects?)", w.Requests, m.BackendHits)
	}
	if w.Requests == 0 {
		return m, errors.New("wrk completed no requests")
	}
	return m, nil
}

// profilePath is where the CPU profile of target goes: next to the JSON summary.
func profilePath(out, target string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + "-cpu-" + target + ".pprof"
}

// saveProfile fetches a CPU profile of zonegate covering most of a run of length d.
func saveProfile(ctx context.Context, adminPort int, d time.Duration, path string) error {
	secs := max(1, int(d.Seconds())-1)
	u := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", adminPort, secs)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching a CPU profile: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetching a CPU profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching a CPU profile: %s: %.200q", resp.Status, b)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("saving the CPU profile: %w", err)
	}
	return nil
}

// wrkSeconds is d as wrk's -d argument (whole seconds, rounded up).
func wrkSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds()))) + "s"
}

func runWrk(ctx context.Context, wrkPath string, cfg config, d time.Duration, target, header string) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	args := []string{
		"-t" + strconv.Itoa(cfg.Threads), "-c" + strconv.Itoa(cfg.Connections), "-d" + wrkSeconds(d),
		"--latency", "-H", header, target,
	}
	cmd := exec.CommandContext(ctx, wrkPath, args...)
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s%s", target, err, out, stderr.String())
	}
	w, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", target, err, out)
	}
	return w, nil
}

// wrkResult is what we read from wrk's output.
type wrkResult struct {
	// RequestsPerSec is wrk's "Requests/sec".
	RequestsPerSec float64
	// P50 and P99 are the latency distribution's 50% and 99% lines (needs --latency).
	P50 time.Duration
	P99 time.Duration
	// Requests is how many responses completed.
	Requests int64
	// Non2xx is wrk's "Non-2xx or 3xx responses" (which in fact counts status >= 400).
	Non2xx int64
	// SocketErrors is the sum of wrk's connect, read, write and timeout errors.
	SocketErrors int64
}

// MarshalJSON writes the measurement with latencies in microseconds.
func (m measurement) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		RequestsPerSec float64 `json:"requests_per_sec"`
		P50us          float64 `json:"p50_us"`
		P99us          float64 `json:"p99_us"`
		Requests       int64   `json:"requests"`
		Non2xx         int64   `json:"non_2xx"`
		SocketErrors   int64   `json:"socket_errors"`
		BackendHits    int64   `json:"backend_hits"`
	}{m.RequestsPerSec, micros(m.P50), micros(m.P99), m.Requests, m.Non2xx, m.SocketErrors, m.BackendHits})
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

var (
	rpsRe      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9]+(?:\.[0-9]+)?)\s*$`)
	pctRe      = regexp.MustCompile(`(?m)^\s*(50|99)%\s+([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)\s*$`)
	requestsRe = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in `)
	non2xxRe   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses:\s+([0-9]+)\s*$`)
	socketRe   = regexp.MustCompile(`(?m)^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)\s*$`)
)

// parseWrk reads the numbers we need from the output of wrk --latency.
func parseWrk(out string) (wrkResult, error) {
	var w wrkResult
	m := rpsRe.FindStringSubmatch(out)
	if m == nil {
		return w, errors.New(`parsing wrk output: no "Requests/sec:" line`)
	}
	rps, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(rps, 0) {
		return w, fmt.Errorf("parsing wrk output: Requests/sec %q: bad number", m[1])
	}
	w.RequestsPerSec = rps
	var got50, got99 bool
	for _, m := range pctRe.FindAllStringSubmatch(out, -1) {
		d, err := parseWrkLatency(m[2], m[3])
		if err != nil {
			return w, fmt.Errorf("parsing wrk output: latency %s%%: %w", m[1], err)
		}
		if m[1] == "50" {
			w.P50, got50 = d, true
		} else {
			w.P99, got99 = d, true
		}
	}
	if !got50 || !got99 {
		return w, errors.New("parsing wrk output: no 50% and 99% latency lines (was --latency given?)")
	}
	m = requestsRe.FindStringSubmatch(out)
	if m == nil {
		return w, errors.New(`parsing wrk output: no "N requests in" line`)
	}
	if w.Requests, err = strconv.ParseInt(m[1], 10, 64); err != nil {
		return w, fmt.Errorf("parsing wrk output: request count %q: %w", m[1], err)
	}
	if m := non2xxRe.FindStringSubmatch(out); m != nil {
		if w.Non2xx, err = strconv.ParseInt(m[1], 10, 64); err != nil {
			return w, fmt.Errorf("parsing wrk output: non-2xx count %q: %w", m[1], err)
		}
	}
	if m := socketRe.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n > math.MaxInt64-w.SocketErrors {
				return w, fmt.Errorf("parsing wrk output: socket error count %q: bad number", s)
			}
			w.SocketErrors += n
		}
	}
	return w, nil
}

// parseWrkLatency converts one of wrk's latency numbers ("420.00us", "1.23ms", "2.00s",
// "1.50m") to a duration.
func parseWrkLatency(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad number %q", num)
	}
	var scale time.Duration
	switch unit {
	case "us":
		scale = time.Microsecond
	case "ms":
		scale = time.Millisecond
	case "s":
		scale = time.Second
	case "m":
		scale = time.Minute
	case "h":
		scale = time.Hour
	default:
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	f := v * float64(scale)
	if f > float64(math.MaxInt64) {
		return 0, fmt.Errorf("%s%s is out of range", num, unit)
	}
	return time.Duration(math.Round(f)), nil
}

// round is one bare run and one gate run.
type round struct {
	Round int         `json:"round"`
	Bare  measurement `json:"bare"`
	Gate  measurement `json:"gate"`
	// Ratio is gate req/s divided by bare req/s in this round.
	Ratio float64 `json:"ratio"`
}

// side is the summary of one target over all rounds (medians).
type side struct {
	RequestsPerSec float64       `json:"requests_per_sec"`
	P50            time.Duration `json:"-"`
	P99            time.Duration `json:"-"`
	P50us          float64       `json:"p50_us"`
	P99us          float64       `json:"p99_us"`
}

// result is everything one run found; it is also the JSON file.
type result struct {
	Time          string  `json:"time"`
	Go            string  `json:"go"`
	GOOS          string  `json:"goos"`
	GOARCH        string  `json:"goarch"`
	CPUs          int     `json:"cpus"`
	Wrk           string  `json:"wrk"`
	Config        config  `json:"config"`
	LoadAvgBefore string  `json:"loadavg_before,omitempty"`
	LoadAvgAfter  string  `json:"loadavg_after,omitempty"`
	Rounds        []round `json:"rounds"`
	Bare          side    `json:"bare"`
	Gate          side    `json:"gate"`
	// Ratio is the median of the per-round ratios gate/bare.
	Ratio   float64 `json:"ratio"`
	Meets   bool    `json:"meets_target"`
	Verdict string  `json:"verdict"`
	// Warnings say why this run's numbers may not be trusted (a busy machine, rounds that
	// disagree, socket errors).
	Warnings []string `json:"warnings,omitempty"`
}

func (r *result) summarize() {
	pick := func(f func(round) measurement) side {
		var rps, p50, p99 []float64
		for _, rd := range r.Rounds {
			m := f(rd)
			rps = append(rps, m.RequestsPerSec)
			p50 = append(p50, float64(m.P50))
			p99 = append(p99, float64(m.P99))
		}
		s := side{RequestsPerSec: median(rps), P50: time.Duration(median(p50)), P99: time.Duration(median(p99))}
		s.P50us, s.P99us = micros(s.P50), micros(s.P99)
		return s
	}
	r.Bare = pick(func(rd round) measurement { return rd.Bare })
	r.Gate = pick(func(rd round) measurement { return rd.Gate })
	var ratios []float64
	for _, rd := range r.Rounds {
		ratios = append(ratios, rd.Ratio)
	}
	r.Ratio = median(ratios)
	r.Meets = r.Ratio >= r.Config.Target
	r.Warnings = r.noise(ratios)
	if r.Meets {
		r.Verdict = fmt.Sprintf("OK: the gate serves %.3f of bare Caddy's req/s (target %.2f)", r.Ratio, r.Config.Target)
	} else {
		r.Verdict = fmt.Sprintf("BELOW TARGET: the gate serves %.3f of bare Caddy's req/s (target %.2f)", r.Ratio, r.Config.Target)
	}
}

// Thresholds for calling a run noisy.
const (
	// maxRatioSpread is how far apart the rounds' ratios may be.
	maxRatioSpread = 0.15
	// busyLoadPerCPU is the 1-minute load average per CPU, before the run, above which the
	// machine was busy with something else (or a run just before).
	busyLoadPerCPU = 1.0
)

// noise lists what makes this run's ratio doubtful.
func (r *result) noise(ratios []float64) []string {
	var w []string
	if f := strings.Fields(r.LoadAvgBefore); len(f) > 0 && r.CPUs > 0 {
		if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > busyLoadPerCPU*float64(r.CPUs) {
			w = append(w, fmt.Sprintf("the machine was busy before the run (1-minute load %.2f on %d CPUs)", l, r.CPUs))
		}
	}
	if len(ratios) > 1 {
		lo, hi := slices.Min(ratios), slices.Max(ratios)
		if hi-lo > maxRatioSpread {
			w = append(w, fmt.Sprintf("the rounds disagree (ratios %.3f to %.3f)", lo, hi))
		}
	}
	var sockErr int64
	for _, rd := range r.Rounds {
		sockErr += rd.Bare.SocketErrors + rd.Gate.SocketErrors
	}
	if sockErr > 0 {
		w = append(w, fmt.Sprintf("wrk saw %d socket errors (timeouts or resets: overload?)", sockErr))
	}
	return w
}

// median of xs (the mean of the middle two for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fus", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func printRound(rd round) {
	fmt.Printf("\nround %d\n", rd.Round)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttarget\treq/s\tp50\tp99\trequests\tsocket errors\t")
	for _, x := range []struct {
		name string
		m    measurement
	}{{"bare", rd.Bare}, {"gate", rd.Gate}} {
		fmt.Fprintf(tw, "\t%s\t%.0f\t%s\t%s\t%d\t%d\t\n", x.name, x.m.RequestsPerSec, fmtLatency(x.m.P50), fmtLatency(x.m.P99), x.m.Requests, x.m.SocketErrors)
	}
	tw.Flush()
	fmt.Printf("  ratio gate/bare: %.3f\n", rd.Ratio)
}

func printSummary(r result) {
	fmt.Printf("\nsummary (medians over %d round(s))\n", len(r.Rounds))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttarget\treq/s\tp50\tp99\t")
	fmt.Fprintf(tw, "\tbare\t%.0f\t%s\t%s\t\n", r.Bare.RequestsPerSec, fmtLatency(r.Bare.P50), fmtLatency(r.Bare.P99))
	fmt.Fprintf(tw, "\tgate\t%.0f\t%s\t%s\t\n", r.Gate.RequestsPerSec, fmtLatency(r.Gate.P50), fmtLatency(r.Gate.P99))
	tw.Flush()
	fmt.Printf("  ratio gate/bare (median of rounds): %.3f\n", r.Ratio)
	fmt.Printf("  load average before: %s, after: %s (%d CPUs; wrk, zonegate and the backend share them)\n",
		orUnknown(r.LoadAvgBefore), orUnknown(r.LoadAvgAfter), r.CPUs)
	fmt.Println(r.Verdict)
	for _, w := range r.Warnings {
		fmt.Printf("WARNING: %s; run again on a quiet machine before trusting this ratio\n", w)
	}
}

// loadAvg is the first three fields of /proc/loadavg, or "" where there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func writeJSON(path string, r result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the results: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the results: %w", err)
	}
	return nil
}

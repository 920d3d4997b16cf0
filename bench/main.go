// Command bench measures the gate against bare Caddy on this machine.
//
// It builds zonegate and starts, in front of the same trivial backend, one zonegate process with
// two sites (one bare reverse_proxy, one behind zonegate_gate with the embedded bolt store) and,
// unless -redis=false, a second zonegate process keeping its state in a redis-server it starts,
// with a gate site of its own. It signs alice in at each gate and drives every site with wrk in
// rounds whose order changes from round to round. It prints requests per second and latency for
// each, the ratios gate (bolt)/bare and gate (redis)/bare with a verdict against each target ratio, and
// writes the summary to bench/results/latest.json. Run it from the repository root:
// go run ./bench (or make bench).
package main

import (
	"bufio"
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
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/zonegate/zonegate/internal/syncbuf"
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
	// Redis adds the gate (redis) target: a second zonegate on a redis-server.
	Redis bool
	// RedisTarget is the target ratio gate(redis)/bare.
	RedisTarget float64
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
		Redis       bool    `json:"redis"`
		RedisTarget float64 `json:"target_ratio_redis,omitempty"`
	}{c.Duration.String(), c.Warmup.String(), c.Rounds, c.Connections, c.Threads, c.Target, c.Redis, c.redisTarget()})
}

// redisTarget is RedisTarget when the Redis target runs, else 0.
func (c config) redisTarget() float64 {
	if !c.Redis {
		return 0
	}
	return c.RedisTarget
}

func parseFlags() config {
	var c config
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each measured wrk run (whole seconds)")
	flag.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured wrk run before each measured run (0 for none)")
	flag.IntVar(&c.Rounds, "rounds", 3, "rounds; each round measures every target once")
	flag.IntVar(&c.Connections, "connections", 32, "wrk connections (-c)")
	flag.IntVar(&c.Threads, "threads", 2, "wrk threads (-t)")
	flag.Float64Var(&c.Target, "target", 0.90, "target ratio gate/bare req/s (bolt store) for the verdict")
	flag.BoolVar(&c.Redis, "redis", true, "also measure a gate on the Redis store (starts redis-server); -redis=false skips it")
	flag.Float64Var(&c.RedisTarget, "redis-target", 0.85, "target ratio gate(redis)/bare req/s for the verdict")
	flag.StringVar(&c.Out, "out", "bench/results/latest.json", "where to write the JSON summary (relative to the repository root)")
	flag.BoolVar(&c.Profile, "profile", false, "turn on Caddy's admin endpoints (loopback) and save zonegate CPU profiles of round 1 next to -out")
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
	case c.Redis && !(c.RedisTarget > 0):
		return fmt.Errorf("-redis-target %v: want a positive ratio", c.RedisTarget)
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
	wrkPath, err := ensureTool(ctx, "wrk", "wrk", "other systems: https://github.com/wg/wrk")
	if err != nil {
		return err
	}
	var redisPath string
	if cfg.Redis {
		if redisPath, err = ensureTool(ctx, "redis-server", "redis-server", "or run with -redis=false to leave out the Redis target"); err != nil {
			return err
		}
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
	users, err := os.ReadFile(filepath.Join(root, "examples", "users.yaml"))
	if err != nil {
		return fmt.Errorf("reading the demo users: %w", err)
	}

	// 1. The binary, built once, without -race.
	bin := filepath.Join(tmp, "zonegate")
	fmt.Println("building zonegate ...")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/zonegate")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building zonegate: %w", err)
	}

	// 2. The backend every site proxies to.
	be, err := startBackend()
	if err != nil {
		return err
	}
	defer be.close()

	// 3. zonegate on bolt: IdP, bare site, gate site.
	boltNode, err := startNode(ctx, nodeConfig{
		bin: bin, dir: filepath.Join(tmp, "bolt"), users: users, storage: "bolt {DIR}/zonegate.db",
		bare: true, backend: be.port, admin: cfg.Profile,
	})
	if err != nil {
		return err
	}
	defer boltNode.proc.stop()

	// 4. With -redis: redis-server and zonegate on it: IdP, gate site.
	var redisNode *node
	var redisVersion string
	if cfg.Redis {
		redisVersion = redisServerVersion(redisPath)
		rs, err := startRedis(ctx, redisPath, filepath.Join(tmp, "redis-data"))
		if err != nil {
			return err
		}
		defer rs.stop()
		fmt.Printf("redis-server %s on %s\n", orUnknown(redisVersion), rs.addr)
		redisNode, err = startNode(ctx, nodeConfig{
			bin: bin, dir: filepath.Join(tmp, "redis"), users: users, storage: "redis redis://" + rs.addr,
			backend: be.port, admin: cfg.Profile,
		})
		if err != nil {
			return err
		}
		defer redisNode.proc.stop()
	}

	// 5. A valid session at each gate, checked before measuring. bare gets the bolt gate's
	// cookie, so wrk sends it the same bytes as the gate.
	nodes := []*node{boltNode}
	if redisNode != nil {
		nodes = append(nodes, redisNode)
	}
	for _, n := range nodes {
		fmt.Printf("signing %s in at %s (%s) ...\n", benchUser, n.gateURL, n.storage)
		n.cookie, err = signIn(ctx, n.gateURL, n.idpURL, benchUser, benchPassword)
		if err != nil {
			return fmt.Errorf("signing %s in at the %s gate: %w (zonegate output:\n%s)", benchUser, n.storage, err, n.proc.output())
		}
	}
	targets := []target{
		{key: keyBare, label: "bare", url: boltNode.bareURL + "/", cookie: boltNode.cookie, admin: boltNode.adminPort},
		{key: keyGate, label: "gate (bolt)", url: boltNode.gateURL + "/", cookie: boltNode.cookie, admin: boltNode.adminPort},
	}
	if redisNode != nil {
		targets = append(targets, target{key: keyGateRedis, label: "gate (redis)", url: redisNode.gateURL + "/", cookie: redisNode.cookie, admin: redisNode.adminPort})
	}
	for _, t := range targets {
		if err := checkOK(ctx, t.url, t.cookie); err != nil {
			return fmt.Errorf("before measuring %s: %w", t.label, err)
		}
	}

	// 6. Rounds of wrk runs, the order rotating from round to round.
	load0 := loadAvg()
	res := result{
		Time:          time.Now().UTC().Format(time.RFC3339),
		Go:            runtime.Version(),
		GOOS:          runtime.GOOS,
		GOARCH:        runtime.GOARCH,
		CPUs:          runtime.NumCPU(),
		Wrk:           wrkVersion(wrkPath),
		Redis:         redisVersion,
		Config:        cfg,
		LoadAvgBefore: load0,
	}
	est := time.Duration(cfg.Rounds*len(targets)) * (cfg.Duration + cfg.Warmup)
	var labels []string
	for _, t := range targets {
		labels = append(labels, t.label)
	}
	fmt.Printf("load average before: %s\n", orUnknown(load0))
	fmt.Printf("measuring %d round(s) of %s, wrk -t%d -c%d -d%s (warm-up %s each), about %s\n",
		cfg.Rounds, strings.Join(labels, ", "), cfg.Threads, cfg.Connections, wrkSeconds(cfg.Duration), cfg.Warmup, est)
	for i := 1; i <= cfg.Rounds; i++ {
		rd := round{Round: i}
		for _, ti := range roundOrder(i, len(targets)) {
			t := targets[ti]
			var prof string
			if cfg.Profile && i == 1 {
				prof = profilePath(outPath, t.key)
			}
			m, err := measure(ctx, wrkPath, cfg, t.url, "Cookie: "+sessionCookie+"="+t.cookie, be, t.admin, prof)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i, t.label, err)
			}
			rd.Order = append(rd.Order, t.key)
			rd.set(t.key, m)
		}
		rd.setRatios()
		res.Rounds = append(res.Rounds, rd)
		printRound(rd)
	}
	res.LoadAvgAfter = loadAvg()

	// 7. Summary and verdicts.
	if cfg.Profile {
		for _, t := range targets {
			fmt.Printf("CPU profile of zonegate, round 1, %s: %s\n", t.label, profilePath(outPath, t.key))
		}
	}
	res.summarize()
	printSummary(res)

	// 8. JSON.
	if err := writeJSON(outPath, res); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", outPath)
	return nil
}

// Target keys: the field names in the JSON and the suffixes of the profile files.
const (
	keyBare      = "bare"
	keyGate      = "gate"
	keyGateRedis = "gate_redis"
)

// target is one site wrk drives.
type target struct {
	key    string // keyBare, keyGate or keyGateRedis
	label  string // what the tables call it
	url    string
	cookie string // the session cookie wrk sends (a valid one for the gates)
	admin  int    // the admin port of the zonegate serving url; 0 when off
}

// roundOrder is the order in which round i (from 1) measures n targets: a rotation, so that
// over n rounds every target is measured once in every position and drift within a round hits
// all alike. For two targets, odd rounds run 0 then 1, even rounds 1 then 0.
func roundOrder(i, n int) []int {
	order := make([]int, n)
	for j := range order {
		order[j] = (i - 1 + j) % n
	}
	return order
}

// nodeConfig says what one zonegate process serves.
type nodeConfig struct {
	bin     string
	dir     string // its own directory: Caddyfile, users file, HOME, bolt file
	users   []byte // the users file
	storage string // the storage option after "storage"; {DIR} becomes dir
	bare    bool   // also serve a bare reverse_proxy site
	backend int    // the backend's port
	admin   bool   // turn the admin endpoint on (for profiles)
}

// node is one running zonegate process with its sites.
type node struct {
	storage   string // "bolt" or "redis"
	proc      *process
	idpURL    string
	gateURL   string
	bareURL   string // "" without a bare site
	adminPort int    // 0 when the admin endpoint is off
	cookie    string // alice's session at gateURL, once signed in
}

// startNode writes the node's Caddyfile and users file into its directory and starts zonegate,
// returning once the IdP and the sites answer.
func startNode(ctx context.Context, nc nodeConfig) (*node, error) {
	if err := os.MkdirAll(nc.dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the zonegate directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(nc.dir, "users.yaml"), nc.users, 0o600); err != nil {
		return nil, fmt.Errorf("copying the demo users: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	n := &node{
		storage: strings.Fields(nc.storage)[0],
		idpURL:  "http://localhost:" + strconv.Itoa(ports[0]),
		gateURL: "http://localhost:" + strconv.Itoa(ports[1]),
	}
	sc := siteConfig{Dir: nc.dir, Storage: strings.ReplaceAll(nc.storage, "{DIR}", nc.dir), IdP: ports[0], Gate: ports[1], Backend: nc.backend}
	ready := []string{n.idpURL + "/.well-known/openid-configuration"}
	if nc.bare {
		sc.Bare = ports[2]
		n.bareURL = "http://localhost:" + strconv.Itoa(ports[2])
		ready = append(ready, n.bareURL+"/")
	}
	if nc.admin {
		sc.Admin = ports[3]
		n.adminPort = ports[3]
	}
	n.proc, err = startZonegate(ctx, nc.bin, nc.dir, makeCaddyfile(sc), ready)
	if err != nil {
		return nil, fmt.Errorf("zonegate on %s: %w", n.storage, err)
	}
	return n, nil
}

// siteConfig fills the Caddyfile of one zonegate process.
type siteConfig struct {
	Dir     string // the users file is Dir/users.yaml
	Storage string // the storage option, e.g. "bolt /tmp/x/zonegate.db" or "redis redis://127.0.0.1:6379"
	IdP     int    // the issuer's port
	Bare    int    // the bare site's port; 0 for none
	Gate    int    // the gate site's port
	Backend int    // the backend's port
	Admin   int    // the admin endpoint's port; 0 turns it off
}

// makeCaddyfile is the config of one process: the IdP, a gate site and optionally a bare site,
// both proxying to the same backend. The admin endpoint is off unless Admin is set.
func makeCaddyfile(sc siteConfig) string {
	adminOpt := "admin off"
	if sc.Admin != 0 {
		adminOpt = "admin 127.0.0.1:" + strconv.Itoa(sc.Admin)
	}
	bare := ""
	if sc.Bare != 0 {
		bare = `
http://localhost:{BARE} {
	reverse_proxy 127.0.0.1:{BACKEND}
}
`
	}
	r := strings.NewReplacer(
		"{ADMIN}", adminOpt,
		"{DIR}", sc.Dir,
		"{STORAGE}", sc.Storage,
		"{IDP}", strconv.Itoa(sc.IdP),
		"{BARE}", strconv.Itoa(sc.Bare),
		"{GATE}", strconv.Itoa(sc.Gate),
		"{BACKEND}", strconv.Itoa(sc.Backend),
	)
	return r.Replace(`{
	{ADMIN}
	log {
		level ERROR
	}
	zonegate {
		issuer http://localhost:{IDP}
		users {DIR}/users.yaml
		storage {STORAGE}
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
` + bare + `
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

// ensureTool finds the command bin, installing the Debian package pkg with apt-get when this is
// Debian and we are root. Otherwise it says how to install it (and other, any further hint) and
// fails.
func ensureTool(ctx context.Context, bin, pkg, other string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "%s is not installed. On Debian or Ubuntu: sudo apt-get install -y %s (%s)\n", bin, pkg, other)
	_, debErr := os.Stat("/etc/debian_version")
	apt, aptErr := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || debErr != nil || aptErr != nil {
		return "", fmt.Errorf("%s is missing; install it (apt-get install -y %s) and run again", bin, pkg)
	}
	fmt.Fprintf(os.Stderr, "running as root on Debian: installing %s with apt-get\n", pkg)
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "install", "-y", "-qq", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := install(); err != nil {
		// The package lists may be missing or stale (fresh containers): update once and retry.
		upd := exec.CommandContext(ctx, apt, "update", "-qq")
		upd.Stdout, upd.Stderr = os.Stderr, os.Stderr
		if uerr := upd.Run(); uerr != nil {
			return "", fmt.Errorf("installing %s: apt-get update: %w", pkg, uerr)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("installing %s with apt-get: %w", pkg, err)
		}
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s still not found after installing %s: %w", bin, pkg, err)
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

// backend is the trivial app every site proxies to. It counts requests, so a run can prove that
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

// redisServer is the running redis-server the Redis gate keeps its state in.
type redisServer struct {
	*process
	addr string // 127.0.0.1:N
}

// startRedis runs redis-server on a free loopback port, nothing saved to disk, and returns once
// it answers on that port. A port taken between finding it and the server binding it costs a
// retry on another.
func startRedis(ctx context.Context, bin, dir string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the redis-server directory: %w", err)
	}
	var lastErr error
	for range 3 {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		rs, err := startRedisOn(ctx, bin, dir, ports[0])
		if err == nil {
			return rs, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		lastErr = err
	}
	return nil, lastErr
}

func startRedisOn(ctx context.Context, bin, dir string, port int) (*redisServer, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &process{out: new(syncBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", dir)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("redis-server on port %d exited at start (%v):\n%s", port, p.err, p.output())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		default:
		}
		// Our server, not another one that held the port: INFO names the process.
		pid, err := redisPID(addr)
		if err == nil && pid == p.cmd.Process.Pid {
			return &redisServer{process: p, addr: addr}, nil
		}
		if err == nil {
			p.stop()
			return nil, fmt.Errorf("port %d answers as redis-server pid %d, not the one just started (pid %d)", port, pid, p.cmd.Process.Pid)
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("redis-server on port %d not answering after 10s: %w\n%s", port, err, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisPID asks the redis-server at addr for its process id (inline INFO server).
func redisPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	return parseRedisPID(bufio.NewReader(c))
}

// parseRedisPID reads the reply to INFO server up to its process_id line.
func parseRedisPID(r *bufio.Reader) (int, error) {
	first := true
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("reading INFO server: no process_id line: %w", err)
		}
		line = strings.TrimSpace(line)
		if first && strings.HasPrefix(line, "-") {
			return 0, fmt.Errorf("INFO server: %.200s", line)
		}
		first = false
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("INFO server: bad process_id %.50q", v)
			}
			return pid, nil
		}
	}
}

// redisServerVersion is the version redis-server reports ("7.0.15"), or "" if it says none.
func redisServerVersion(path string) string {
	out, _ := exec.Command(path, "--version").CombinedOutput()
	return parseRedisVersion(string(out))
}

// parseRedisVersion reads the version from the output of redis-server --version
// ("Redis server v=7.0.15 sha=..."); "" when there is none.
func parseRedisVersion(out string) string {
	if m := redisVersionRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

var redisVersionRe = regexp.MustCompile(`\bv=([0-9][0-9A-Za-z.\-]*)`)

// syncBuffer collects a process's output safely while it runs.
type syncBuffer = syncbuf.Buffer

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

// round is one measured run of every target.
type round struct {
	Round int `json:"round"`
	// Order lists the targets in the order this round measured them.
	Order []string    `json:"order"`
	Bare  measurement `json:"bare"`
	// Gate is the gate on the bolt store.
	Gate measurement `json:"gate"`
	// GateRedis is the gate on the Redis store; nil with -redis=false.
	GateRedis *measurement `json:"gate_redis,omitempty"`
	// Ratio is gate (bolt) req/s divided by bare req/s in this round.
	Ratio float64 `json:"ratio"`
	// RatioRedis is gate (redis) req/s divided by bare req/s in this round; 0 without Redis.
	RatioRedis float64 `json:"ratio_redis,omitempty"`
}

// set records the measurement of the target key.
func (rd *round) set(key string, m measurement) {
	switch key {
	case keyBare:
		rd.Bare = m
	case keyGate:
		rd.Gate = m
	case keyGateRedis:
		rd.GateRedis = &m
	default:
		panic("bench: unknown target " + key)
	}
}

// setRatios computes the round's ratios from its measurements.
func (rd *round) setRatios() {
	rd.Ratio = rd.Gate.RequestsPerSec / rd.Bare.RequestsPerSec
	rd.RatioRedis = 0
	if rd.GateRedis != nil {
		rd.RatioRedis = rd.GateRedis.RequestsPerSec / rd.Bare.RequestsPerSec
	}
}

// labeled is a measurement with the name the tables give it.
type labeled struct {
	label string
	m     measurement
}

// measurements lists the round's measurements in table order: bare, gate (bolt), gate (redis).
func (rd round) measurements() []labeled {
	out := []labeled{{"bare", rd.Bare}, {"gate (bolt)", rd.Gate}}
	if rd.GateRedis != nil {
		out = append(out, labeled{"gate (redis)", *rd.GateRedis})
	}
	return out
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
	Time   string `json:"time"`
	Go     string `json:"go"`
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Wrk    string `json:"wrk"`
	// Redis is redis-server's version; "" without Redis.
	Redis         string  `json:"redis,omitempty"`
	Config        config  `json:"config"`
	LoadAvgBefore string  `json:"loadavg_before,omitempty"`
	LoadAvgAfter  string  `json:"loadavg_after,omitempty"`
	Rounds        []round `json:"rounds"`
	Bare          side    `json:"bare"`
	// Gate is the gate on the bolt store.
	Gate side `json:"gate"`
	// GateRedis is the gate on the Redis store; nil without Redis.
	GateRedis *side `json:"gate_redis,omitempty"`
	// Ratio is the median of the per-round ratios gate (bolt)/bare; Meets and Verdict compare it
	// with the target.
	Ratio   float64 `json:"ratio"`
	Meets   bool    `json:"meets_target"`
	Verdict string  `json:"verdict"`
	// RatioRedis is the median of the per-round ratios gate (redis)/bare; MeetsRedis and
	// VerdictRedis compare it with the Redis target. Unset without Redis.
	RatioRedis   float64 `json:"ratio_redis,omitempty"`
	MeetsRedis   *bool   `json:"meets_target_redis,omitempty"`
	VerdictRedis string  `json:"verdict_redis,omitempty"`
	// Warnings say why this run's numbers may not be trusted (a busy machine, rounds that
	// disagree, socket errors).
	Warnings []string `json:"warnings,omitempty"`
}

// hasRedis reports whether every round measured the Redis gate.
func (r *result) hasRedis() bool {
	if len(r.Rounds) == 0 {
		return false
	}
	for _, rd := range r.Rounds {
		if rd.GateRedis == nil {
			return false
		}
	}
	return true
}

// summarize fills the medians, ratios, verdicts and warnings from the rounds.
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
	r.Ratio = median(r.ratios(func(rd round) float64 { return rd.Ratio }))
	r.Meets = r.Ratio >= r.Config.Target
	r.Verdict = verdict("gate (bolt)", r.Ratio, r.Config.Target)
	r.GateRedis, r.RatioRedis, r.MeetsRedis, r.VerdictRedis = nil, 0, nil, ""
	if r.hasRedis() {
		s := pick(func(rd round) measurement { return *rd.GateRedis })
		r.GateRedis = &s
		r.RatioRedis = median(r.ratios(func(rd round) float64 { return rd.RatioRedis }))
		meets := r.RatioRedis >= r.Config.RedisTarget
		r.MeetsRedis = &meets
		r.VerdictRedis = verdict("gate (redis)", r.RatioRedis, r.Config.RedisTarget)
	}
	r.Warnings = r.noise()
}

// ratios lists one ratio of every round.
func (r *result) ratios(f func(round) float64) []float64 {
	var out []float64
	for _, rd := range r.Rounds {
		out = append(out, f(rd))
	}
	return out
}

// verdict says whether the gate called what meets the target ratio.
func verdict(what string, ratio, target float64) string {
	if ratio >= target {
		return fmt.Sprintf("OK: the %s serves %.3f of bare Caddy's req/s (target %.2f)", what, ratio, target)
	}
	return fmt.Sprintf("BELOW TARGET: the %s serves %.3f of bare Caddy's req/s (target %.2f)", what, ratio, target)
}

// Thresholds for calling a run noisy.
const (
	// maxRatioSpread is how far apart the rounds' ratios may be.
	maxRatioSpread = 0.15
	// busyLoadPerCPU is the 1-minute load average per CPU, before the run, above which the
	// machine was busy with something else (or a run just before).
	busyLoadPerCPU = 1.0
)

// noise lists what makes this run's ratios doubtful.
func (r *result) noise() []string {
	var w []string
	if f := strings.Fields(r.LoadAvgBefore); len(f) > 0 && r.CPUs > 0 {
		if l, err := strconv.ParseFloat(f[0], 64); err == nil && l > busyLoadPerCPU*float64(r.CPUs) {
			w = append(w, fmt.Sprintf("the machine was busy before the run (1-minute load %.2f on %d CPUs)", l, r.CPUs))
		}
	}
	spread := func(what string, ratios []float64) {
		if len(ratios) < 2 {
			return
		}
		lo, hi := slices.Min(ratios), slices.Max(ratios)
		if hi-lo > maxRatioSpread {
			w = append(w, fmt.Sprintf("the rounds disagree on %s/bare (ratios %.3f to %.3f)", what, lo, hi))
		}
	}
	spread("gate (bolt)", r.ratios(func(rd round) float64 { return rd.Ratio }))
	if r.hasRedis() {
		spread("gate (redis)", r.ratios(func(rd round) float64 { return rd.RatioRedis }))
	}
	var sockErr int64
	for _, rd := range r.Rounds {
		for _, x := range rd.measurements() {
			sockErr += x.m.SocketErrors
		}
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

// orderLabels names the round's order the way the tables do.
func orderLabels(keys []string) string {
	names := map[string]string{keyBare: "bare", keyGate: "gate (bolt)", keyGateRedis: "gate (redis)"}
	var out []string
	for _, k := range keys {
		out = append(out, names[k])
	}
	return strings.Join(out, ", ")
}

func printRound(rd round) {
	fmt.Printf("\nround %d (order: %s)\n", rd.Round, orderLabels(rd.Order))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttarget\treq/s\tp50\tp99\trequests\tsocket errors\t")
	for _, x := range rd.measurements() {
		fmt.Fprintf(tw, "\t%s\t%.0f\t%s\t%s\t%d\t%d\t\n", x.label, x.m.RequestsPerSec, fmtLatency(x.m.P50), fmtLatency(x.m.P99), x.m.Requests, x.m.SocketErrors)
	}
	tw.Flush()
	fmt.Printf("  ratio gate (bolt)/bare: %.3f\n", rd.Ratio)
	if rd.GateRedis != nil {
		fmt.Printf("  ratio gate (redis)/bare: %.3f\n", rd.RatioRedis)
	}
}

func printSummary(r result) {
	fmt.Printf("\nsummary (medians over %d round(s))\n", len(r.Rounds))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttarget\treq/s\tp50\tp99\t")
	type row struct {
		label string
		s     side
	}
	rows := []row{{"bare", r.Bare}, {"gate (bolt)", r.Gate}}
	if r.GateRedis != nil {
		rows = append(rows, row{"gate (redis)", *r.GateRedis})
	}
	for _, x := range rows {
		fmt.Fprintf(tw, "\t%s\t%.0f\t%s\t%s\t\n", x.label, x.s.RequestsPerSec, fmtLatency(x.s.P50), fmtLatency(x.s.P99))
	}
	tw.Flush()
	fmt.Printf("  ratio gate (bolt)/bare (median of rounds): %.3f (target %.2f)\n", r.Ratio, r.Config.Target)
	if r.GateRedis != nil {
		fmt.Printf("  ratio gate (redis)/bare (median of rounds): %.3f (target %.2f)\n", r.RatioRedis, r.Config.RedisTarget)
	}
	sharers := "wrk, zonegate and the backend"
	if r.GateRedis != nil {
		sharers = "wrk, zonegate, redis-server and the backend"
	}
	fmt.Printf("  load average before: %s, after: %s (%d CPUs; %s share them)\n",
		orUnknown(r.LoadAvgBefore), orUnknown(r.LoadAvgAfter), r.CPUs, sharers)
	fmt.Println(r.Verdict)
	if r.VerdictRedis != "" {
		fmt.Println(r.VerdictRedis)
	}
	for _, w := range r.Warnings {
		fmt.Printf("WARNING: %s; run again on a quiet machine before trusting the ratios\n", w)
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

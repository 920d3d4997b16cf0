package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/redistest"
)

// node is one of several gateways sharing a Redis: what a load balancer would spread
// requests over. Every node is configured with the same public URLs.
type node struct {
	gw         *gateway
	gate, idp  string // where this node listens
	publicGate string // the site's public URL, the same on every node
}

// waitForGate waits until the node's gate server answers (Caddy starts servers one by one).
func (nd *node) waitForGate(t *testing.T) {
	t.Helper()
	eventually(t, "the gate's server", func() bool {
		resp, err := http.Get(nd.gate + "/.zonegate/logout")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

// startNodes runs n gateway processes on one Redis. The public URLs are node 0's listeners,
// standing in for the load balancer's address.
func startNodes(t *testing.T, redisAddr string, n int) []*node {
	t.Helper()
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	echoPort := freePort(t)
	gatePorts, idpPorts := make([]int, n), make([]int, n)
	for i := range n {
		gatePorts[i], idpPorts[i] = freePort(t), freePort(t)
	}
	publicGate := "http://localhost:" + strconv.Itoa(gatePorts[0])
	publicIdP := "http://localhost:" + strconv.Itoa(idpPorts[0])
	nodes := make([]*node, n)
	for i := range n {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
			t.Fatal(err)
		}
		echo := ""
		if i == 0 {
			echo = fmt.Sprintf("http://:%d {\n\tbind 127.0.0.1\n\tzonegate_echo\n}\n", echoPort)
		}
		cfg := fmt.Sprintf(`{
	admin off
	zonegate {
		issuer %s
		users %s
		storage redis redis://%s
		session {
			cache_ttl 1h
		}
		zone lab 127.0.0.0/8 ::1
		policy app {
			rule {
				allow
				zone lab
			}
		}
	}
}

http://localhost:%d {
	zonegate_idp
}

http://localhost:%d {
	zonegate_gate app {
		url %s
	}
	reverse_proxy 127.0.0.1:%d
}
%s`, publicIdP, filepath.Join(dir, "users.yaml"), redisAddr, idpPorts[i], gatePorts[i], publicGate, echoPort, echo)
		nd := &node{
			gate:       "http://localhost:" + strconv.Itoa(gatePorts[i]),
			idp:        "http://localhost:" + strconv.Itoa(idpPorts[i]),
			publicGate: publicGate,
		}
		nd.gw = startGateway(t, dir, cfg, nd.idp+"/healthz")
		nd.waitForGate(t)
		nodes[i] = nd
	}
	return nodes
}

// TestNodesShareOneTruth is the many-gateways whole-system test: a session made on one node
// works on another, a sign-out on one is refused on the other within a second (a cache TTL of
// an hour notwithstanding), no request passes while Redis is down, everything recovers when
// it is back, and a restarted node keeps the sessions.
func TestNodesShareOneTruth(t *testing.T) {
	redis := redistest.StartPersistentServer(t)
	nodes := startNodes(t, redis.Addr, 2)
	a, b := nodes[0], nodes[1]

	// Sign in through node A (cookies are per host, not per port: the browser sends the
	// session cookie to both nodes, as it would through one load-balanced name).
	c := newClient(t)
	if got := headersJSON(t, e2eSignIn(t, c, a.gate+"/headers", "alice", "alice-demo-pass")); got["X-Remote-User"] != "alice" {
		t.Fatalf("sign-in on node A: X-Remote-User = %q", got["X-Remote-User"])
	}
	cookie := c.cookie(a.gate, "zonegate_session")
	withCookie := func(base string) int {
		req, _ := http.NewRequest("GET", base+"/headers", nil)
		req.Header.Set("Cookie", "zonegate_session="+cookie.Value)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := headersJSON(t, c.do("GET", b.gate+"/headers", nil)); got["X-Remote-User"] != "alice" {
		t.Fatalf("node B does not know node A's session: %v", got)
	}
	if s := withCookie(a.gate); s != http.StatusOK {
		t.Fatalf("node A with the cookie: %d", s)
	}

	// Sign out on node B; node A has the session cached for an hour but must refuse it now.
	form := c.do("GET", b.gate+"/.zonegate/logout", nil)
	began := time.Now()
	if r := c.submitForm(form, nil); r.status >= 400 {
		t.Fatalf("sign-out on node B: %d", r.status)
	}
	for withCookie(a.gate) == http.StatusOK {
		if time.Since(began) > time.Second {
			t.Fatal("node A still accepts the session 1s after sign-out on node B")
		}
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("e2e: sign-out on node B refused on node A after %s\n", time.Since(began).Round(time.Millisecond))

	// A new session, then Redis goes away under load: nothing passes while it is down.
	c = newClient(t)
	e2eSignIn(t, c, a.gate+"/headers", "alice", "alice-demo-pass")
	cookie = c.cookie(a.gate, "zonegate_session")
	for _, nd := range nodes {
		if s := withCookie(nd.gate); s != http.StatusOK {
			t.Fatalf("before the outage %s: %d", nd.gate, s)
		}
	}
	var stopped atomic.Int64 // unix nanos when Redis was killed, 0 before
	var lastOK atomic.Int64  // latest start of a request that got 200 after the kill
	var during, refused atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Add(1)
		go func(base string) {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				start := time.Now().UnixNano()
				s := withCookie(base)
				if k := stopped.Load(); k != 0 && start > k {
					during.Add(1)
					if s == http.StatusOK {
						for {
							old := lastOK.Load()
							if start <= old || lastOK.CompareAndSwap(old, start) {
								break
							}
						}
					} else if s == http.StatusServiceUnavailable {
						refused.Add(1)
					}
				}
			}
		}(nd.gate)
	}
	time.Sleep(300 * time.Millisecond)
	redis.Stop()
	stopped.Store(time.Now().UnixNano())
	time.Sleep(1500 * time.Millisecond)
	close(done)
	wg.Wait()
	if ok := lastOK.Load(); ok != 0 {
		lag := time.Duration(ok - stopped.Load())
		if lag > 250*time.Millisecond { // the time a node needs to notice its Redis link dropped
			t.Fatalf("a request that started %s after Redis died was allowed", lag)
		}
		fmt.Printf("e2e: last request allowed after Redis died started %s after the kill\n", lag.Round(time.Microsecond))
	}
	fmt.Printf("e2e: %d requests while Redis was down, %d refused with 503\n", during.Load(), refused.Load())
	if during.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("the outage was not exercised: %d requests, %d refused", during.Load(), refused.Load())
	}
	if r := c.do("GET", a.idp+"/healthz", nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("IdP health with Redis down: %d, want 503", r.status)
	}

	// Redis is back: the same session works again on both nodes, without restarting them.
	redis.Restart()
	for _, nd := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for withCookie(nd.gate) != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not recover after Redis came back", nd.gate)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A restarted node keeps every session.
	a.gw.restart(a.idp + "/healthz")
	a.waitForGate(t)
	if s := withCookie(a.gate); s != http.StatusOK {
		t.Fatalf("after restarting node A: %d", s)
	}
	if !strings.Contains(b.gw.logs(), "zonegate") {
		t.Log("node B logged nothing about zonegate")
	}
}

// e2eSignIn follows start to the IdP's form, signs in and follows back.
func e2eSignIn(t *testing.T, c *client, start, username, password string) response {
	t.Helper()
	page := c.follow(start)
	if !strings.Contains(page.body, `name="password"`) {
		t.Fatalf("no sign-in form at %s (%d)", page.url, page.status)
	}
	return c.followFrom(c.submitForm(page, map[string][]string{"username": {username}, "password": {password}}))
}

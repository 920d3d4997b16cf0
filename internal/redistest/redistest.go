// Package redistest runs a real redis-server for tests.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/internal/syncbuf"
)

// hint is what a test says when redis-server is missing.
const hint = "make test installs redis-server (apt-get install -y redis-server)"

// startDeadline bounds how long a server may take to answer PING.
const startDeadline = 10 * time.Second

// Start runs `redis-server --bind 127.0.0.1 --port N --save "" --appendonly no --dir <t.TempDir()>`
// on a free port, waits until PING answers (deadline 10s), and stops it (kill by pid, wait) in
// t.Cleanup. It returns the address "127.0.0.1:N".
//
// When redis-server is not on PATH the test is skipped, or fails if the environment variable CI
// is "true".
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).Addr
}

// Server is a started redis-server that a test can stop and restart, for outage tests. The data
// does not survive a restart (nothing is saved).
type Server struct {
	// Addr is the server's address, "127.0.0.1:N". It stays the same across Restart.
	Addr string

	t       testing.TB
	bin     string
	port    int
	dir     string
	persist bool // append-only file, fsync on every write: data survives Stop and Restart

	mu     sync.Mutex
	proc   *os.Process   // nil while stopped
	exited chan struct{} // closed when proc has exited and been waited for
}

// StartServer starts a server as Start does and returns it, so the test can Stop and Restart it.
// It is stopped in t.Cleanup.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return startServer(t, false)
}

// StartPersistentServer is StartServer with an append-only file synced on every write, so what
// was written survives Stop (a kill) and Restart, as it would on a production Redis.
func StartPersistentServer(t testing.TB) *Server {
	t.Helper()
	return startServer(t, true)
}

func startServer(t testing.TB, persist bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH: %s", hint)
		}
		t.Skipf("redis-server is not on PATH: %s", hint)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), persist: persist}
	t.Cleanup(s.Stop)
	// A free port can be taken between probing it and the server binding it; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// Stop kills the server and waits for it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	_ = s.proc.Kill()
	<-s.exited
	s.proc, s.exited = nil, nil
}

// Restart stops the server if it is running and starts it again on the same port: empty, or
// with its data for a persistent server.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old process has exited, but retry briefly in case the port is not free yet.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restarting: %v", err)
}

// start runs redis-server on s.port and waits for PING; on failure the process is gone.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &syncbuf.Buffer{}
	appendOnly := []string{"--appendonly", "no"}
	if s.persist {
		appendOnly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--save", "", "--dir", s.dir}, appendOnly...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startDeadline)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start (%v): %s", s.port, waitErr, out.String())
		default:
		}
		if ping(s.Addr) == nil {
			// Make sure it is our server answering, not another one that held the port.
			if pid, err := serverPID(s.Addr); err != nil || pid != cmd.Process.Pid {
				_ = cmd.Process.Kill()
				<-exited
				return fmt.Errorf("port %d answers PING, but not from the redis-server just started (pid %d, %v)", s.port, pid, err)
			}
			s.proc, s.exited = cmd.Process, exited
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %s", s.port, startDeadline, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply to PING: " + strings.TrimSpace(line))
	}
	return nil
}

// serverPID asks the server at addr for its process id (INFO server).
func serverPID(addr string) (int, error) {
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
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
}

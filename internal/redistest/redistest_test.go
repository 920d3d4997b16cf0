package redistest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	s := StartServer(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after StartServer: %v", err)
	}
	addr := s.Addr
	s.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // stopping twice is fine
	s.Restart()
	if s.Addr != addr {
		t.Errorf("Restart moved the server from %s to %s", addr, s.Addr)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	s.Restart() // restarting a running server works too
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after a second Restart: %v", err)
	}
}

func TestStartTwiceGivesTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two servers share the address %s", a)
	}
	for _, addr := range []string{a, b} {
		if err := ping(addr); err != nil {
			t.Errorf("PING %s: %v", addr, err)
		}
	}
}

// recordingTB stops a test the way testing.T does, but records how.
type recordingTB struct {
	*testing.T
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestMissingRedisServer(t *testing.T) {
	for _, tt := range []struct {
		ci       string
		wantSkip bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantSkip: false},
	} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv("CI", tt.ci)
			r := &recordingTB{T: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Start(r)
				t.Error("Start returned without redis-server on PATH")
			}()
			<-done
			r.mu.Lock()
			defer r.mu.Unlock()
			got := r.fatal
			if tt.wantSkip {
				got = r.skipped
				if r.fatal != "" {
					t.Errorf("failed with %q, want a skip", r.fatal)
				}
			} else if r.skipped != "" {
				t.Errorf("skipped with %q, want a failure", r.skipped)
			}
			if !strings.Contains(got, hint) {
				t.Errorf("message %q does not carry the install hint", got)
			}
		})
	}
}

package gateway

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

type recordingObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recordingObserver) Decided(outcome, reason string, elapsed time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if elapsed < 0 {
		outcome = "negative-time"
	}
	o.got = append(o.got, outcome+"/"+reason)
}

// TestObserverHearsEveryDecision checks the metrics hook sees each outcome with its reason,
// and nothing for the gate's own pages.
func TestObserverHearsEveryDecision(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(_ *harness, c *Config) { c.Observer = obs })
	alice := h.signIn("alice", "staff", "admins")
	cases := []struct {
		name string
		run  func()
		want string
	}{
		{"allow", func() { h.gate.Check(httptest.NewRecorder(), request("GET", "/app/page", &alice, nil), ipOffice) }, "allow/rule_allow"},
		{"authenticate", func() {
			h.gate.Check(httptest.NewRecorder(), request("GET", "/app/page", nil, map[string]string{"Accept": "text/html"}), ipOffice)
		}, "authenticate/authentication_required"},
		{"blocklist", func() { h.gate.Check(httptest.NewRecorder(), request("GET", "/app/page", &alice, nil), ipBlocked) }, "deny/blocklist_zone"},
		{"own page", func() {
			h.gate.Check(httptest.NewRecorder(), request("GET", "/.zonegate/logout", &alice, nil), ipOffice)
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs.mu.Lock()
			obs.got = nil
			obs.mu.Unlock()
			tc.run()
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if tc.want == "" {
				if len(obs.got) != 0 {
					t.Fatalf("observed %q for the gate's own page", obs.got)
				}
				return
			}
			if len(obs.got) != 1 || obs.got[0] != tc.want {
				t.Fatalf("observed %q, want [%s]", obs.got, tc.want)
			}
		})
	}
}

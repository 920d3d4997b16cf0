package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/zonegate/zonegate/idp"
	"github.com/zonegate/zonegate/policy"
)

// fakeBehavior flags every sign-in with signals, or fails with err; it records what it saw.
type fakeBehavior struct {
	mu      sync.Mutex
	signals []string
	err     error
	trusted []bool
	ips     []netip.Addr
}

func (f *fakeBehavior) Check(_ context.Context, _ string, ip netip.Addr, _ string, trusted bool) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trusted = append(f.trusted, trusted)
	f.ips = append(f.ips, ip)
	return slices.Clone(f.signals), f.err
}

// TestBehaviorAtCallback: the gate judges each sign-in at the callback and keeps the signals in
// the session: a flagged sign-in meets the rule that asks it for one more factor (a step-up), an
// unflagged one passes by it, and a checker that fails refuses the sign-in (503).
func TestBehaviorAtCallback(t *testing.T) {
	fb := &fakeBehavior{}
	var ip *idp.IdP
	h := newHarness(t, withIdP(&ip, true), func(h *harness, c *Config) {
		p, err := policy.Compile(policy.Def{Name: "b", Rules: []policy.RuleDef{
			{Name: "unusual", Action: policy.Allow, Behavior: []string{"impossible_travel"}, Factors: []string{"any_mfa"}},
			{Name: "everyone", Action: policy.Allow},
		}}, h.zones)
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = p
		c.Behavior = fb
	})
	signIn := func(signals []string, err error) (*browser, *http.Response) {
		fb.mu.Lock()
		fb.signals, fb.err = signals, err
		fb.mu.Unlock()
		b := newBrowser(t, h, ip)
		resp := b.get(b.signInAtIdP(b.startLogin("/app"), "alice"))
		return b, resp
	}

	b, resp := signIn(nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("unflagged callback: %d %s", resp.StatusCode, body(t, resp))
	}
	if resp = b.get(siteURL + "/app"); resp.StatusCode != http.StatusOK {
		t.Fatalf("unflagged sign-in: %d, want 200", resp.StatusCode)
	}

	b, resp = signIn([]string{"impossible_travel"}, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("flagged callback: %d %s", resp.StatusCode, body(t, resp))
	}
	resp = b.get(siteURL + "/app")
	if resp.StatusCode != http.StatusFound || mustQuery(t, location(t, resp)).Get("acr_values") != "any_mfa" {
		t.Fatalf("flagged password-only sign-in: %d %q, want a step-up asking any_mfa", resp.StatusCode, resp.Header.Get("Location"))
	}

	_, resp = signIn(nil, errors.New("store: unavailable"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("checker failing: %d, want 503", resp.StatusCode)
	}

	fb.mu.Lock()
	defer fb.mu.Unlock()
	for i, tr := range fb.trusted {
		if tr {
			t.Errorf("sign-in %d with a password only was called trusted", i+1)
		}
		if !fb.ips[i].IsValid() {
			t.Errorf("sign-in %d: no client address given", i+1)
		}
	}
	if !twoFactors([]string{"pwd", "otp"}) || !twoFactors([]string{"hwk", "mfa"}) || twoFactors([]string{"pwd"}) || twoFactors([]string{"hwk", "user"}) {
		t.Error("twoFactors misjudges")
	}
}

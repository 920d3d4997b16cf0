package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/zonegate/zonegate/policy"
)

// TestDevicePosture: the gate gives the policy the device's posture, tells the backend the
// trust level in a header a client cannot forge, and fails closed when the posture cannot be
// read.
func TestDevicePosture(t *testing.T) {
	posture := policy.Device{Trust: "UNKNOWN"}
	var postureErr error
	h := newHarness(t, func(h *harness, c *Config) {
		p, err := policy.Compile(policy.Def{
			Name: "devices",
			Rules: []policy.RuleDef{
				{Name: "compliant devices", Action: policy.Allow, Device: []string{"compliant"}, Paths: []string{"/plant/*"}},
				{Name: "plant from elsewhere", Action: policy.Deny, Paths: []string{"/plant/*"}},
				{Name: "staff", Action: policy.Allow},
			},
		}, h.zones)
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = p
		c.Device = func(*http.Request, string) (policy.Device, error) { return posture, postureErr }
	})
	alice := h.signIn("alice", "staff")
	var got http.Header
	next := func(r *http.Request) { got = r.Header.Clone() }
	run := func(path string) int {
		got = nil
		w := httptest.NewRecorder()
		r := request("GET", path, &alice, map[string]string{"X-Device-Trust": "TRUSTED", "X_Device_Trust": "TRUSTED"})
		if h.gate.Check(w, r, ipOffice) {
			next(r)
			return http.StatusOK
		}
		return w.Code
	}

	cases := []struct {
		name      string
		device    policy.Device
		err       error
		path      string
		status    int
		wantTrust string
	}{
		{"no device, ordinary page", policy.Device{Trust: "UNKNOWN"}, nil, "/app", 200, "UNKNOWN"},
		{"no device, plant page", policy.Device{Trust: "UNKNOWN"}, nil, "/plant/batch", 403, ""},
		{"compliant device", policy.Device{Known: true, Managed: true, Compliant: true, Trust: "TRUSTED"}, nil, "/plant/batch", 200, "TRUSTED"},
		{"non-compliant device", policy.Device{Known: true, Managed: true, Trust: "NOT_TRUSTED"}, nil, "/plant/batch", 403, ""},
		{"registry down", policy.Device{}, errors.New("store: unavailable"), "/app", 503, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			posture, postureErr = tc.device, tc.err
			if s := run(tc.path); s != tc.status {
				t.Fatalf("status %d, want %d", s, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if v := got.Values("X-Device-Trust"); len(v) != 1 || v[0] != tc.wantTrust {
				t.Errorf("X-Device-Trust %q, want [%s]", v, tc.wantTrust)
			}
			if v := got.Get("X_Device_Trust"); v != "" {
				t.Errorf("a spoofed X_Device_Trust reached the backend: %q", v)
			}
		})
	}
}

// TestDeviceTrustHeaderStrippedWithoutDevices: a gate that does not identify devices still
// removes a client's X-Device-Trust, so a backend never trusts a forged one.
func TestDeviceTrustHeaderStrippedWithoutDevices(t *testing.T) {
	h := newHarness(t)
	alice := h.signIn("alice", "staff")
	r := request("GET", "/app", &alice, map[string]string{"X-Device-Trust": "TRUSTED"})
	if !h.gate.Check(httptest.NewRecorder(), r, ipOffice) {
		t.Fatal("not allowed")
	}
	if v := r.Header.Get("X-Device-Trust"); v != "" {
		t.Fatalf("X-Device-Trust %q reached the backend of a gate without devices", v)
	}
}

// TestRegisterDevice: an allowing rule with register_device has the gate register the
// browser for the signed-in user when no device was identified, and not otherwise; a failed
// registration does not refuse the request.
func TestRegisterDevice(t *testing.T) {
	known := false
	var regErr error
	var registered []string
	h := newHarness(t, func(h *harness, c *Config) {
		p, err := policy.Compile(policy.Def{Name: "reg", Rules: []policy.RuleDef{
			{Name: "register", Action: policy.Allow, RegisterDevice: true},
		}}, h.zones)
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = p
		c.Device = func(_ *http.Request, userID string) (policy.Device, error) {
			return policy.Device{Known: known}, nil
		}
		c.RegisterDevice = func(w http.ResponseWriter, _ *http.Request, userID string) error {
			registered = append(registered, userID)
			return regErr
		}
	})
	alice := h.signIn("alice", "staff")
	run := func() bool {
		return h.gate.Check(httptest.NewRecorder(), request("GET", "/app", &alice, nil), ipOffice)
	}
	if !run() || len(registered) != 1 || registered[0] != alice.session.UserID {
		t.Fatalf("unknown device: registered %v", registered)
	}
	known = true
	if !run() || len(registered) != 1 {
		t.Fatalf("known device registered again: %v", registered)
	}
	known, regErr = false, errors.New("store: unavailable")
	if !run() || len(registered) != 2 {
		t.Fatalf("a failed registration refused the request or was not tried: %v", registered)
	}
	if !run() || len(registered) != 3 {
		t.Fatal("the next request did not try again")
	}
	if h.gate.Check(httptest.NewRecorder(), request("GET", "/app", nil, nil), ipOffice) || len(registered) != 3 {
		t.Fatal("an anonymous request registered a device")
	}
}

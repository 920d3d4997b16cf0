package idp

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// deviceHeader marks the test browser's device (standing in for a client certificate).
const deviceHeader = "X-Test-Device"

type withDeviceHeader struct{ id string }

func (d withDeviceHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(deviceHeader, d.id)
	return http.DefaultTransport.RoundTrip(r)
}

func withDevices(trust map[string]string) envOption {
	return func(c *Config) {
		c.DeviceID = func(r *http.Request) (string, bool) {
			id := r.Header.Get(deviceHeader)
			return id, id != ""
		}
		c.DeviceTrust = func(_ context.Context, id string) string { return trust[id] }
	}
}

// TestRevokeDevice: an ID token says how trusted the sign-in's device is; ending a device
// ends the sessions and refresh tokens started from it and nothing else.
func TestRevokeDevice(t *testing.T) {
	e := newEnv(t, withRefreshClients(), withDevices(map[string]string{"plant-7": "TRUSTED"}))
	r := e.appRP()

	onDevice := newBrowser(t, e.issuer, withDeviceHeader{"plant-7"})
	f := r.start()
	tokDevice, idt := r.exchange(onDevice.signIn(r, f, "alice", "alice-password"), f)
	var claims struct {
		DeviceTrust string `json:"device_trust"`
	}
	if err := idt.Claims(&claims); err != nil || claims.DeviceTrust != "TRUSTED" {
		t.Fatalf("device_trust claim %q (%v), want TRUSTED", claims.DeviceTrust, err)
	}
	elsewhere := e.browser()
	f = r.start()
	tokElsewhere, idt := r.exchange(elsewhere.signIn(r, f, "alice", "alice-password"), f)
	if err := idt.Claims(&claims); err != nil || claims.DeviceTrust != "UNKNOWN" {
		t.Fatalf("device_trust without a device %q (%v), want UNKNOWN", claims.DeviceTrust, err)
	}

	n, err := e.idp.RevokeDevice(context.Background(), "u-alice", "plant-7")
	if err != nil || n != 1 {
		t.Fatalf("RevokeDevice = %d, %v; want the one session", n, err)
	}
	if _, err := r.refresh(tokDevice.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh from the revoked device: %v, want invalid_grant", err)
	}
	if p := onDevice.get(r.start().url); !isLoginForm(p) {
		t.Errorf("the revoked device's browser still has its session: %d", p.status)
	}
	if _, err := r.refresh(tokElsewhere.RefreshToken); err != nil {
		t.Errorf("refresh from another browser after the device was revoked: %v", err)
	}
	if p := elsewhere.get(r.start().url); isLoginForm(p) {
		t.Error("the other browser lost its session")
	}
}

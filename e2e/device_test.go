package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// certAuthority makes a CA and device certificates for tests.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *certAuthority {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// deviceCert issues a client certificate whose SAN URI names the device.
func (ca *certAuthority) deviceCert(t *testing.T, deviceID string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("urn:device:udid:" + deviceID)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: deviceID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs: []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestDevicePostureFromMDM: a plant floor app admits only compliant devices. The device's
// client certificate (verified by Caddy) names it, the MDM says it is compliant, the user
// signs in and the backend is told X-Device-Trust: TRUSTED. The MDM then reports it
// non-compliant and the next request is refused; the delay is measured. A forged or replayed
// webhook changes nothing, and a certificate from another CA does not get through TLS.
func TestDevicePostureFromMDM(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "zonegate test device CA")
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.yaml"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	idpPort, gatePort, echoPort := freePort(t), freePort(t), freePort(t)
	idpURL, gateURL := "http://localhost:"+strconv.Itoa(idpPort), "https://localhost:"+strconv.Itoa(gatePort)
	const secret = "mdm-shared-secret-for-the-test"
	cfg := `{
	admin off
	skip_install_trust
	auto_https disable_redirects
	zonegate {
		issuer ` + idpURL + `
		users ` + filepath.Join(dir, "users.yaml") + `
		storage bolt ` + filepath.Join(dir, "z.db") + `
		devices {
			id_from san_uri urn:device:udid:
			mdm_webhook_secret ` + secret + `
		}
		policy plant {
			rule {
				allow
				device compliant
			}
			default deny
		}
	}
}

` + idpURL + ` {
	zonegate_idp
}

` + gateURL + ` {
	tls internal {
		client_auth {
			mode require_and_verify
			trust_pool file ` + filepath.Join(dir, "ca.pem") + `
		}
	}
	zonegate_gate plant {
		url ` + gateURL + `
	}
	reverse_proxy 127.0.0.1:` + strconv.Itoa(echoPort) + `
}

http://:` + strconv.Itoa(echoPort) + ` {
	bind 127.0.0.1
	zonegate_echo
}
`
	gw := startGateway(t, dir, cfg, idpURL+"/healthz")

	webhook := func(body string, ts int64, sig string) int {
		req, _ := http.NewRequest("POST", idpURL+"/api/v1/devices/compliance", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Zonegate-Timestamp", strconv.FormatInt(ts, 10))
		if sig == "" {
			m := hmac.New(sha256.New, []byte(secret))
			fmt.Fprintf(m, "%d.%s", ts, body)
			sig = "v1=" + hex.EncodeToString(m.Sum(nil))
		}
		req.Header.Set("X-Zonegate-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	compliant := `{"device_id":"PLANT-7","compliance":"compliant","managed":true,"platform":"windows","user":"alice"}`
	now := time.Now().Unix()
	if s := webhook(compliant, now, ""); s != http.StatusNoContent {
		t.Fatalf("MDM event: %d", s)
	}
	if s := webhook(compliant, now, ""); s != http.StatusConflict {
		t.Errorf("replayed MDM event: %d, want 409", s)
	}
	if s := webhook(strings.Replace(compliant, "PLANT-7", "PLANT-8", 1), now, "v1="+strings.Repeat("00", 32)); s != http.StatusUnauthorized {
		t.Errorf("MDM event with a bad signature: %d, want 401", s)
	}
	if s := webhook(strings.Replace(compliant, "PLANT-7", "PLANT-9", 1), now-3600, ""); s != http.StatusUnauthorized {
		t.Errorf("MDM event an hour old: %d, want 401", s)
	}

	// The browser of the plant floor PC: its device certificate, Caddy's internal CA accepted.
	jar, _ := cookiejar.New(nil)
	tlsClient := func(cert tls.Certificate) *client {
		return &client{t: t, jar: jar, http: &http.Client{
			Jar: jar, Timeout: 20 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{
				Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, // Caddy's internal CA
			}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	}
	c := tlsClient(ca.deviceCert(t, "PLANT-7"))
	// Caddy issues the site's certificate from its internal CA just after start.
	eventually(t, "the HTTPS site", func() bool {
		resp, err := c.http.Get(gateURL + "/.zonegate/logout")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	got := headersJSON(t, e2eSignIn(t, c, gateURL+"/headers", "alice", "alice-demo-pass"))
	if got["X-Device-Trust"] != "TRUSTED" || got["X-Remote-User"] != "alice" {
		t.Fatalf("compliant device: %v", got)
	}

	// The MDM reports the device non-compliant: refused from the next request on.
	began := time.Now()
	if s := webhook(strings.Replace(compliant, `"compliant"`, `"noncompliant"`, 1), time.Now().Unix(), ""); s != http.StatusNoContent {
		t.Fatalf("non-compliance event: %d", s)
	}
	for {
		r := c.do("GET", gateURL+"/headers", nil)
		if r.status == http.StatusForbidden {
			break
		}
		if time.Since(began) > time.Second {
			t.Fatalf("a non-compliant device still got %d after 1s", r.status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("e2e: non-compliance refused after %s\n", time.Since(began).Round(time.Millisecond))

	// Compliant again: the device may sign in again, but the session it had was ended.
	if s := webhook(compliant, time.Now().Unix()+1, ""); s != http.StatusNoContent {
		t.Fatalf("compliance restored: %d", s)
	}
	if r := c.do("GET", gateURL+"/headers", nil); r.status != http.StatusFound || !strings.HasPrefix(r.location(), idpURL+"/") {
		t.Fatalf("the session from before the non-compliance still works: %d %q", r.status, r.location())
	}
	if !strings.Contains(gw.logs(), "ended the sessions of a suspended device") {
		t.Error("ending the device's sessions was not logged")
	}

	// A certificate from a CA Caddy does not trust gets no device: the handshake fails.
	other := newCA(t, "someone else's CA")
	rogue := tlsClient(other.deviceCert(t, "PLANT-7"))
	if _, err := rogue.http.Get(gateURL + "/headers"); err == nil {
		t.Error("a client certificate from an unknown CA got through TLS")
	}
	if strings.Contains(gw.logs(), secret) {
		t.Error("the webhook secret reached the log")
	}
}

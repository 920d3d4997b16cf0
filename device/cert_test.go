package device

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "device CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a client certificate; edit adjusts the template.
func (ca *testCA) leaf(t testing.TB, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xabc123),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verified returns the connection state Caddy's client_auth leaves after verifying leaf.
func (ca *testCA) verified(t testing.TB, leaf *x509.Certificate) *tls.ConnectionState {
	t.Helper()
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: ca.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatalf("verifying the test leaf: %v", err)
	}
	return &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: chains}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCertIdentity(t *testing.T) {
	ca := newTestCA(t)
	full := ca.leaf(t, func(c *x509.Certificate) {
		c.Subject.CommonName = "cn-device-7"
		c.DNSNames = []string{"other.example.com", "dev-42.devices.example.com"}
		c.URIs = []*url.URL{mustURL(t, "https://example.com/x"), mustURL(t, "urn:device:udid:UDID-0001")}
	})
	bare := ca.leaf(t, nil)
	emptyAfterPrefix := ca.leaf(t, func(c *x509.Certificate) { c.URIs = []*url.URL{mustURL(t, "urn:device:udid:")} })

	tests := []struct {
		name   string
		ident  CertIdentity
		state  *tls.ConnectionState
		wantID string
		wantOK bool
	}{
		{"san_uri with prefix", CertIdentity{FieldSANURI, "urn:device:udid:"}, ca.verified(t, full), "UDID-0001", true},
		{"san_uri wrong prefix", CertIdentity{FieldSANURI, "urn:device:imei:"}, ca.verified(t, full), "", false},
		{"san_uri no prefix takes the first", CertIdentity{FieldSANURI, ""}, ca.verified(t, full), "https://example.com/x", true},
		{"san_uri missing", CertIdentity{FieldSANURI, "urn:device:udid:"}, ca.verified(t, bare), "", false},
		{"san_uri nothing after the prefix", CertIdentity{FieldSANURI, "urn:device:udid:"}, ca.verified(t, emptyAfterPrefix), "", false},
		{"san_dns first", CertIdentity{FieldSANDNS, ""}, ca.verified(t, full), "other.example.com", true},
		{"san_dns first with the prefix", CertIdentity{FieldSANDNS, "dev-"}, ca.verified(t, full), "42.devices.example.com", true},
		{"san_dns missing", CertIdentity{FieldSANDNS, ""}, ca.verified(t, bare), "", false},
		{"cn", CertIdentity{FieldCN, ""}, ca.verified(t, full), "cn-device-7", true},
		{"cn with prefix", CertIdentity{FieldCN, "cn-"}, ca.verified(t, full), "device-7", true},
		{"cn wrong prefix", CertIdentity{FieldCN, "host-"}, ca.verified(t, full), "", false},
		{"cn missing", CertIdentity{FieldCN, ""}, ca.verified(t, bare), "", false},
		{"serial", CertIdentity{FieldSerial, ""}, ca.verified(t, full), "abc123", true},
		{"unknown field", CertIdentity{"email", ""}, ca.verified(t, full), "", false},
		{"unverified certificate", CertIdentity{FieldCN, ""}, &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{full}}, "", false},
		{"empty verified chain", CertIdentity{FieldCN, ""}, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{full}, VerifiedChains: [][]*x509.Certificate{{}}}, "", false},
		{"no certificate", CertIdentity{FieldCN, ""}, &tls.ConnectionState{HandshakeComplete: true}, "", false},
		{"no TLS", CertIdentity{FieldCN, ""}, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://app.example.com/", nil)
			r.TLS = tt.state
			id, ok := tt.ident.FromRequest(r)
			if id != tt.wantID || ok != tt.wantOK {
				t.Errorf("FromRequest = %q, %v; want %q, %v", id, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

func TestCertIdentityValidate(t *testing.T) {
	for _, f := range []IDField{FieldSANURI, FieldSANDNS, FieldCN, FieldSerial} {
		if err := (CertIdentity{Field: f}).Validate(); err != nil {
			t.Errorf("Validate(%q) = %v", f, err)
		}
	}
	for _, f := range []IDField{"", "email", "SAN_URI"} {
		if err := (CertIdentity{Field: f}).Validate(); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", f)
		}
	}
}

func BenchmarkCertIdentityFromRequest(b *testing.B) {
	ca := newTestCA(b)
	leaf := ca.leaf(b, func(c *x509.Certificate) { c.URIs = []*url.URL{mustURL(b, "urn:device:udid:UDID-0001")} })
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	r.TLS = ca.verified(b, leaf)
	ident := CertIdentity{FieldSANURI, "urn:device:udid:"}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ident.FromRequest(r); !ok {
			b.Fatal("no id")
		}
	}
}

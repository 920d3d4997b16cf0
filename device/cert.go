package device

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
)

// IDField names the part of a client certificate that holds the device id.
type IDField string

// The certificate fields a device id can come from.
const (
	// FieldSANURI is a URI subject alternative name, e.g. "urn:device:udid:<id>" with Prefix
	// "urn:device:udid:". The first URI with the prefix wins.
	FieldSANURI IDField = "san_uri"
	// FieldSANDNS is the first DNS subject alternative name (with the prefix, if one is set).
	FieldSANDNS IDField = "san_dns"
	// FieldCN is the subject common name.
	FieldCN IDField = "cn"
	// FieldSerial is the certificate serial number in lowercase hex without separators.
	FieldSerial IDField = "serial"
)

// CertIdentity reads a device id from the client certificate of a request. Only a certificate
// that Caddy's tls client_auth verified counts (r.TLS.VerifiedChains), never one the client
// merely presented.
type CertIdentity struct {
	// Field is the certificate field holding the id.
	Field IDField
	// Prefix, if set, must start the field's value and is stripped from the id; a value without
	// it is not an id. Typical for san_uri ("urn:device:udid:").
	Prefix string
}

// Validate reports a configuration that can never yield an id.
func (c CertIdentity) Validate() error {
	switch c.Field {
	case FieldSANURI, FieldSANDNS, FieldCN, FieldSerial:
		return nil
	default:
		return fmt.Errorf("device certificate identity: unknown field %q (want san_uri, san_dns, cn or serial)", c.Field)
	}
}

// FromRequest returns the device id in the request's verified client certificate. ok is false
// without TLS, without a verified chain, or when the field is missing, lacks the prefix, or
// holds no valid id.
func (c CertIdentity) FromRequest(r *http.Request) (id string, ok bool) {
	if r == nil || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return c.fromCert(r.TLS.VerifiedChains[0][0])
}

func (c CertIdentity) fromCert(leaf *x509.Certificate) (string, bool) {
	if leaf == nil {
		return "", false
	}
	switch c.Field {
	case FieldSANURI:
		for _, u := range leaf.URIs {
			if id, ok := c.match(u.String()); ok {
				return id, true
			}
		}
	case FieldSANDNS:
		for _, n := range leaf.DNSNames {
			if id, ok := c.match(n); ok {
				return id, true
			}
		}
	case FieldCN:
		return c.match(leaf.Subject.CommonName)
	case FieldSerial:
		if leaf.SerialNumber != nil && leaf.SerialNumber.Sign() > 0 {
			return c.match(leaf.SerialNumber.Text(16))
		}
	}
	return "", false
}

// match strips the prefix from v and checks what is left is an id.
func (c CertIdentity) match(v string) (string, bool) {
	id, found := strings.CutPrefix(v, c.Prefix)
	if !found || !validID(id) {
		return "", false
	}
	return id, true
}

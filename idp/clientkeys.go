package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// jwksFetchTimeout bounds one fetch of a client's JWKSURL.
	jwksFetchTimeout = 5 * time.Second
	// jwksCacheTTL is how long fetched client keys are used before they are fetched again.
	jwksCacheTTL = 5 * time.Minute
	// jwksMinRefetch is the least time between two fetches of one client's keys: when an
	// assertion names an unknown key, and while the endpoint fails.
	jwksMinRefetch = 10 * time.Second
	// maxJWKSBytes bounds a fetched key set.
	maxJWKSBytes = 1 << 20
	// minClientRSABits is the smallest RSA key accepted from a client.
	minClientRSABits = 2048
)

// clientKeys are the public keys that verify a private_key_jwt client's assertions: inline
// (static) or fetched from url and cached.
type clientKeys struct {
	static []jose.JSONWebKey
	url    string

	mu        sync.Mutex
	cached    []jose.JSONWebKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last fetch attempt
	lastErr   error     // error of the last attempt, if it failed
}

// refreshable reports whether get(..., true) may find keys get(..., false) did not.
func (k *clientKeys) refreshable() bool { return k.url != "" }

// get returns the keys. Fetched keys are fetched again once jwksCacheTTL old, or when
// refresh asks (an assertion named a key not in the set), but never twice within
// jwksMinRefetch; a failed fetch keeps the keys fetched before.
func (k *clientKeys) get(ctx context.Context, p *IdP, refresh bool) ([]jose.JSONWebKey, error) {
	if k.url == "" {
		return k.static, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := p.now()
	fresh := k.cached != nil && !now.Before(k.fetchedAt) && now.Sub(k.fetchedAt) < jwksCacheTTL
	recent := !k.triedAt.IsZero() && !now.Before(k.triedAt) && now.Sub(k.triedAt) < jwksMinRefetch
	if (fresh && !refresh) || recent {
		if k.cached == nil {
			return nil, fmt.Errorf("fetching %s failed recently: %w", k.url, k.lastErr)
		}
		return k.cached, nil
	}
	k.triedAt = now
	keys, err := p.fetchJWKS(ctx, k.url)
	if err != nil {
		k.lastErr = err
		if k.cached != nil {
			p.log.WarnContext(ctx, "idp: fetching a client's JWKS failed; using the keys fetched before",
				"url", k.url, "error", err)
			return k.cached, nil
		}
		return nil, err
	}
	k.cached, k.fetchedAt, k.lastErr = keys, now, nil
	return keys, nil
}

// newJWKSClient is the HTTP client that fetches clients' key sets: bounded in time, and
// following redirects only to URLs a JWKSURL could name.
func newJWKSClient() *http.Client {
	return &http.Client{
		Timeout: jwksFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return validateServerURL(req.URL.String())
		},
	}
}

// fetchJWKS fetches and checks a client's key set.
func (p *IdP) fetchJWKS(ctx context.Context, u string) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := p.jwksClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetching %s: key set larger than %d bytes", u, maxJWKSBytes)
	}
	keys, err := parseClientJWKS(body, false)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	return keys, nil
}

// parseClientJWKS reads a client's JSON Web Key Set and keeps its public signing keys (RSA
// of at least 2048 bits, EC, Ed25519; use "sig" or unset; alg, if stated, one of
// assertionAlgs). strict (a configured set) refuses a set with any other key, such as a
// private one; otherwise (a fetched set) such keys are skipped. A set without a usable key
// is an error.
func parseClientJWKS(b []byte, strict bool) ([]jose.JSONWebKey, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var out []jose.JSONWebKey
	for i, k := range set.Keys {
		if err := checkClientKey(k); err != nil {
			if strict {
				return nil, fmt.Errorf("key %d (kid %q): %w", i+1, k.KeyID, err)
			}
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no usable public signing key")
	}
	return out, nil
}

// checkClientKey checks one key of a client's set.
func checkClientKey(k jose.JSONWebKey) error {
	if !k.Valid() {
		return errors.New("invalid key")
	}
	if !k.IsPublic() {
		return errors.New("a private or symmetric key: give only public keys")
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("use %q is not sig", k.Use)
	}
	if k.Algorithm != "" && !slices.Contains(assertionAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
		return fmt.Errorf("alg %q is not accepted", k.Algorithm)
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minClientRSABits {
			return fmt.Errorf("RSA key of %d bits: at least %d", pub.N.BitLen(), minClientRSABits)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T", k.Key)
	}
	return nil
}

// validateServerURL checks a URL the IdP calls out to (a client's JWKS or back-channel
// logout endpoint): absolute https, http only for localhost, 127.0.0.1 and ::1, with a
// host, without user info or fragment.
func validateServerURL(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("%q contains white space", s)
	}
	if strings.Contains(s, "#") {
		return fmt.Errorf("%q must not have a fragment", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	switch {
	case !u.IsAbs() || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute https URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return fmt.Errorf("%q must not carry user info", s)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%q: plain http only for localhost, 127.0.0.1 and ::1", s)
	}
	return fmt.Errorf("%q: scheme must be https", s)
}

// validateBackchannelURI checks a client's BackChannelLogoutURI.
func validateBackchannelURI(s string) error { return validateServerURL(s) }

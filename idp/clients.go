package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// scopeGroups asks for the groups claim.
const (
	scopeGroups = "groups"
	claimGroups = "groups"
)

// clientRegistry holds the clients; reads and additions may run concurrently.
type clientRegistry struct {
	p  *IdP
	mu sync.RWMutex
	m  map[string]*Client
}

func newClientRegistry(p *IdP) *clientRegistry {
	return &clientRegistry{p: p, m: make(map[string]*Client)}
}

func (r *clientRegistry) add(c Client) error {
	if err := validateClientID(c.ID); err != nil {
		return err
	}
	c.RedirectURIs = slices.Clone(c.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	for i, u := range c.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return fmt.Errorf("client %q: redirect URI %d: %w", c.ID, i+1, err)
		}
	}
	for i, u := range c.PostLogoutRedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return fmt.Errorf("client %q: post-logout redirect URI %d: %w", c.ID, i+1, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[c.ID]; dup {
		return fmt.Errorf("client %q: duplicate client id", c.ID)
	}
	r.m[c.ID] = &c
	return nil
}

func (r *clientRegistry) addRedirectURI(clientID, uri string) error {
	if err := validateRedirectURI(uri); err != nil {
		return fmt.Errorf("redirect URI: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[clientID]
	if !ok {
		return errors.New("no such client")
	}
	if slices.Contains(c.RedirectURIs, uri) {
		return nil
	}
	// Copy on write: snapshots handed out earlier keep their own slice.
	nc := *c
	nc.RedirectURIs = append(slices.Clone(c.RedirectURIs), uri)
	r.m[clientID] = &nc
	return nil
}

// get returns a snapshot of the client.
func (r *clientRegistry) get(id string) (*Client, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.m[id]
	return c, ok
}

func validateClientID(id string) error {
	if id == "" {
		return errors.New("client id is empty")
	}
	for _, c := range id {
		if !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return fmt.Errorf("client id %q: only printable characters without spaces", id)
		}
	}
	return nil
}

// validateRedirectURI accepts absolute http and https URLs with a host and without user
// info or fragment (RFC 6749 section 3.1.2).
func validateRedirectURI(s string) error {
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
	if !u.IsAbs() {
		return fmt.Errorf("%q is relative; it must be an absolute http or https URL", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: scheme must be https or http", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry user info", s)
	}
	return nil
}

// secretMatches compares a presented client secret with the registered one in constant time
// (hashing first so the length does not leak either).
func secretMatches(registered, presented string) bool {
	a := sha256.Sum256([]byte(registered))
	b := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// opClient is a Client as op sees it.
type opClient struct {
	c               *Client
	loginURL        string
	idTokenLifetime time.Duration
}

var _ op.Client = (*opClient)(nil)

func (c *opClient) GetID() string                    { return c.c.ID }
func (c *opClient) RedirectURIs() []string           { return slices.Clone(c.c.RedirectURIs) }
func (c *opClient) PostLogoutRedirectURIs() []string { return slices.Clone(c.c.PostLogoutRedirectURIs) }
func (c *opClient) LoginURL(id string) string {
	return c.loginURL + "?authRequestID=" + url.QueryEscape(id)
}
func (c *opClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *opClient) IDTokenLifetime() time.Duration      { return c.idTokenLifetime }
func (c *opClient) ClockSkew() time.Duration            { return 0 }
func (c *opClient) IDTokenUserinfoClaimsAssertion() bool {
	return c.c.IDTokenUserinfoClaims
}

// public reports whether the client has no secret (and so must use PKCE).
func (c *opClient) public() bool { return c.c.Secret == "" }

func (c *opClient) ApplicationType() op.ApplicationType {
	if c.public() {
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

func (c *opClient) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode}
}

// DevMode only relaxes op's scheme policy for redirect URIs (plain http for public
// clients). Redirect URIs are still matched exactly against the ones an operator
// registered, and New already checked those.
func (c *opClient) DevMode() bool { return true }

func (c *opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows our one non-standard scope.
func (c *opClient) IsScopeAllowed(scope string) bool { return scope == scopeGroups }

package gateway

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/zonegate/zonegate/websession"
)

// Signer gives the key that signs identity assertions; *idp.IdP satisfies it.
type Signer interface {
	SigningKey(ctx context.Context) (kid string, key *ecdsa.PrivateKey, err error)
}

// maxIdentities bounds the per-session identity cache.
const maxIdentities = 10000

// identity is what the allow path sets on a request for one session, computed once. Its
// header value slices are shared by every request of the session: nobody may write to them.
type identity struct {
	src *websession.Session // the session value it was built from

	user, email, name, groups, authMethods []string

	assertion    []string  // the signed JWT, or nil without a Signer
	assertionExp time.Time // when it expires
}

// identityCache keeps identities by session ID.
type identityCache struct {
	mu sync.RWMutex
	m  map[string]*identity
}

func (c *identityCache) get(id string) *identity {
	c.mu.RLock()
	e := c.m[id]
	c.mu.RUnlock()
	return e
}

func (c *identityCache) put(id string, e *identity, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*identity)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= maxIdentities {
		// Drop what has expired; if that is not enough, drop an arbitrary half.
		for k, v := range c.m {
			if !v.assertionExp.IsZero() && !now.Before(v.assertionExp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxIdentities {
			n := 0
			for k := range c.m {
				if n >= maxIdentities/2 {
					break
				}
				delete(c.m, k)
				n++
			}
		}
	}
	c.m[id] = e
}

func (c *identityCache) remove(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// sameIdentity reports whether two session values would give the same headers and assertion.
func sameIdentity(a, b *websession.Session) bool {
	return a == b || (a.ID == b.ID && a.UserID == b.UserID && a.Username == b.Username &&
		a.Name == b.Name && a.Email == b.Email && a.ParentID == b.ParentID &&
		slices.Equal(a.Groups, b.Groups))
}

// identityFor returns the identity for s, building or re-signing it when needed. It is the
// allow path: when the cached entry is current it takes a read lock and allocates nothing.
func (g *Gate) identityFor(ctx context.Context, s *websession.Session, now time.Time) (*identity, error) {
	e := g.identities.get(s.ID)
	if e != nil && e.src != s && !sameIdentity(e.src, s) {
		e = nil // the session changed: build afresh
	}
	if e != nil && (g.signer == nil || e.assertionExp.Sub(now) >= g.resignBefore) {
		return e, nil
	}
	var fresh *identity
	if e != nil {
		c := *e
		fresh = &c
	} else {
		fresh = g.buildIdentity(s)
	}
	fresh.src = s
	if g.signer != nil {
		tok, exp, err := g.signAssertion(ctx, s, now)
		if err != nil {
			// A still-valid assertion is better than none while the key store recovers.
			if e != nil && now.Before(e.assertionExp) {
				g.log.WarnContext(ctx, "re-signing identity assertion failed; using the current one", "error", err)
				return e, nil
			}
			return nil, err
		}
		fresh.assertion = []string{tok}
		fresh.assertionExp = exp
	}
	g.identities.put(s.ID, fresh, now)
	return fresh, nil
}

func headerValue(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func (g *Gate) buildIdentity(s *websession.Session) *identity {
	return &identity{
		user:   headerValue(s.Username),
		email:  headerValue(s.Email),
		name:   headerValue(s.Name),
		groups: headerValue(strings.Join(s.Groups, ",")),
		// How the user signed in (the amr claim: pwd, otp, mfa, ...), for apps that want a
		// stronger sign-in for some actions.
		authMethods: headerValue(strings.Join(s.AMR, ",")),
	}
}

// setIdentity writes the identity headers on h. Inbound ones were stripped already.
func (g *Gate) setIdentity(h http.Header, e *identity) {
	if g.hdr.user != "" && e.user != nil {
		h[g.hdr.user] = e.user
	}
	if g.hdr.email != "" && e.email != nil {
		h[g.hdr.email] = e.email
	}
	if g.hdr.name != "" && e.name != nil {
		h[g.hdr.name] = e.name
	}
	if g.hdr.groups != "" && e.groups != nil {
		h[g.hdr.groups] = e.groups
	}
	if g.hdr.authMethods != "" && e.authMethods != nil {
		h[g.hdr.authMethods] = e.authMethods
	}
	if e.assertion != nil {
		h[g.hdr.assertion] = e.assertion
	}
}

// assertionClaims are the claims of the identity assertion.
type assertionClaims struct {
	jwt.Claims
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	Name              string   `json:"name,omitempty"`
	Groups            []string `json:"groups"`
	SID               string   `json:"sid,omitempty"`
}

// signAssertion signs a fresh assertion for s.
func (g *Gate) signAssertion(ctx context.Context, s *websession.Session, now time.Time) (string, time.Time, error) {
	kid, key, err := g.signer.SigningKey(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("getting the assertion signing key: %w", err)
	}
	if key == nil {
		return "", time.Time{}, errors.New("getting the assertion signing key: no key")
	}
	sig, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.ES256,
		Key:       jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("creating the assertion signer: %w", err)
	}
	exp := now.Add(g.assertionTTL)
	groups := s.Groups
	if groups == nil {
		groups = []string{}
	}
	c := assertionClaims{
		Claims: jwt.Claims{
			Issuer:   g.issuer,
			Audience: jwt.Audience{g.url},
			Subject:  s.UserID,
			IssuedAt: jwt.NewNumericDate(now),
			// NotBefore a little early so a backend whose clock is slightly behind accepts it.
			NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)),
			Expiry:    jwt.NewNumericDate(exp),
		},
		PreferredUsername: s.Username,
		Email:             s.Email,
		Name:              s.Name,
		Groups:            groups,
		SID:               s.ParentID,
	}
	tok, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing the identity assertion: %w", err)
	}
	// NumericDate has whole seconds: keep the expiry the token states.
	return tok, time.Unix(exp.Unix(), 0), nil
}

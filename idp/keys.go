package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/store"
)

// signingKeysID is the store.KindSecret record that holds the OIDC signing keys.
const signingKeysID = "oidc-signing-keys"

const (
	// keyReloadInterval bounds how long a node signs with its cached key set before reading
	// the store again (to see keys another node added).
	keyReloadInterval = time.Minute
	// minPreviousKeyGrace is the least time the previous key stays in the JWKS after it
	// stopped signing: it covers ID tokens, the gate's identity assertions (minutes) and
	// relying parties that cache the JWKS.
	minPreviousKeyGrace = 24 * time.Hour
	// rsaKeyBits is the size of the RS256 keys.
	rsaKeyBits = 2048
)

// previousKeyGrace is how long a retired key stays published: until every token it signed
// has expired, with a wide margin.
func previousKeyGrace(idTokenLifetime time.Duration) time.Duration {
	return max(minPreviousKeyGrace, idTokenLifetime+time.Hour)
}

// storedKeys is the record: the private keys as JWKs. The EC fields at the top are the
// first version's layout ({current, created}) extended, so a record written by it loads as
// is: its key stays current and a next key is added.
type storedKeys struct {
	// Current signs ES256 tokens.
	Current jose.JSONWebKey `json:"current"`
	// CreatedAt is when Current became current (rotation counts from it).
	CreatedAt time.Time `json:"created"`
	// Next becomes current at the next rotation; it is published ahead of time.
	Next *jose.JSONWebKey `json:"next,omitempty"`
	// Previous was current until RetiredAt; it is published for a while after.
	Previous  *jose.JSONWebKey `json:"previous,omitempty"`
	RetiredAt time.Time        `json:"retired,omitzero"`
	// RSA is the RS256 set, created once a client needs it; it rotates with the EC set.
	RSA *storedRSAKeys `json:"rsa,omitempty"`
}

// storedRSAKeys is the RS256 key set.
type storedRSAKeys struct {
	Current  jose.JSONWebKey  `json:"current"`
	Next     *jose.JSONWebKey `json:"next,omitempty"`
	Previous *jose.JSONWebKey `json:"previous,omitempty"`
}

// signer is one loaded private key.
type signer struct {
	kid     string
	alg     jose.SignatureAlgorithm
	private crypto.Signer
}

// keySlots are the keys of one algorithm; next and previous may be nil.
type keySlots struct {
	current, next, previous *signer
}

// keySet is the loaded record.
type keySet struct {
	createdAt time.Time // when the current keys became current
	retiredAt time.Time // when the previous keys stopped signing
	ec        keySlots
	rsa       *keySlots // nil until a client needs RS256
}

// errKeysUnchanged aborts an Update that another node made unnecessary.
var errKeysUnchanged = errors.New("signing keys already up to date")

// keyManager loads, completes and rotates the key set and caches it.
type keyManager struct {
	st     store.Store
	now    func() time.Time
	period time.Duration // rotation period; <= 0 never
	grace  time.Duration // how long a retired key stays published
	log    *slog.Logger

	mu       sync.Mutex // held across store I/O, so one caller reloads or rotates at a time
	set      *keySet
	loadedAt time.Time
	wantRSA  bool
}

func newKeyManager(st store.Store, now func() time.Time, period, grace time.Duration, log *slog.Logger) *keyManager {
	return &keyManager{st: st, now: now, period: period, grace: grace, log: log}
}

func (m *keyManager) col() store.Collection[storedKeys] {
	return store.Collection[storedKeys]{Store: m.st, Kind: store.KindSecret}
}

// init loads the key set at start, creating it on a fresh store. When two nodes start
// together, the one whose Create loses reads the winner's keys.
func (m *keyManager) init(ctx context.Context, wantRSA bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wantRSA = wantRSA
	return m.load(ctx)
}

// ensureRSA makes sure the RS256 keys exist (a client needs them).
func (m *keyManager) ensureRSA(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wantRSA = true
	if m.set != nil && m.set.rsa != nil {
		return nil
	}
	return m.load(ctx)
}

// get returns the key set, reloading it now and then and rotating it when due. When the
// store cannot be read it keeps serving the cached set (the keys in it are still valid) and
// tries again later.
func (m *keyManager) get(ctx context.Context) (*keySet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.set
	if s != nil && !m.due(s.createdAt, now) && !now.Before(m.loadedAt) && now.Sub(m.loadedAt) < keyReloadInterval {
		return s, nil
	}
	if err := m.load(ctx); err != nil {
		if s == nil {
			return nil, err
		}
		m.log.WarnContext(ctx, "idp: refreshing the signing keys failed; signing with the cached ones", slog.Any("error", err))
		m.loadedAt = now
		return s, nil
	}
	return m.set, nil
}

// due reports whether keys current since createdAt must be rotated at now.
func (m *keyManager) due(createdAt, now time.Time) bool {
	return m.period > 0 && now.Sub(createdAt) >= m.period
}

// needsUpdate reports whether the record must be completed (next key, RSA keys) or rotated.
func (m *keyManager) needsUpdate(k storedKeys, now time.Time) bool {
	return k.Next == nil || (m.wantRSA && k.RSA == nil) || m.due(k.CreatedAt, now)
}

// load reads the record (creating, completing or rotating it as needed) and caches it.
// The caller holds m.mu.
func (m *keyManager) load(ctx context.Context) error {
	now := m.now()
	col := m.col()
	rec, err := col.Get(ctx, signingKeysID)
	if errors.Is(err, store.ErrNotFound) {
		var gen keyGen
		rec, err = m.fresh(&gen, now)
		if err == nil {
			err = col.Create(ctx, signingKeysID, "", time.Time{}, rec)
			if errors.Is(err, store.ErrAlreadyExists) {
				rec, err = col.Get(ctx, signingKeysID)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("loading the signing keys: %w", err)
	}
	// Refuse a damaged record before writing anything back.
	if _, err := parseKeys(rec); err != nil {
		return fmt.Errorf("loading the signing keys: %w", err)
	}
	if m.needsUpdate(rec, now) {
		rec, err = m.update(ctx, now)
		if err != nil {
			return fmt.Errorf("updating the signing keys: %w", err)
		}
	}
	set, err := parseKeys(rec)
	if err != nil {
		return fmt.Errorf("loading the signing keys: %w", err)
	}
	m.set, m.loadedAt = set, now
	return nil
}

// fresh returns a new record: current and next EC keys, and RSA keys if wanted.
func (m *keyManager) fresh(gen *keyGen, now time.Time) (storedKeys, error) {
	cur, err := gen.ec(0)
	if err != nil {
		return storedKeys{}, err
	}
	next, err := gen.ec(1)
	if err != nil {
		return storedKeys{}, err
	}
	k := storedKeys{Current: cur, CreatedAt: now.UTC(), Next: &next}
	if m.wantRSA {
		if k.RSA, err = gen.rsaSet(); err != nil {
			return storedKeys{}, err
		}
	}
	return k, nil
}

// update completes and rotates the record with a compare-and-swap: when several nodes try
// at once, the first write wins and the others find nothing left to do and read it.
func (m *keyManager) update(ctx context.Context, now time.Time) (storedKeys, error) {
	var gen keyGen // generated keys survive a retry of fn
	rec, err := m.col().Update(ctx, signingKeysID, func(old storedKeys) (storedKeys, time.Time, error) {
		if !m.needsUpdate(old, now) {
			return old, time.Time{}, errKeysUnchanged
		}
		if _, err := parseKeys(old); err != nil {
			return old, time.Time{}, err
		}
		k := old
		if k.Next == nil {
			// A record from before rotation: its key becomes current now, with a next.
			next, err := gen.ec(1)
			if err != nil {
				return old, time.Time{}, err
			}
			k.Next, k.CreatedAt = &next, now.UTC()
		}
		if m.wantRSA && k.RSA == nil {
			rs, err := gen.rsaSet()
			if err != nil {
				return old, time.Time{}, err
			}
			k.RSA = rs
		}
		if m.due(k.CreatedAt, now) {
			next, err := gen.ec(2)
			if err != nil {
				return old, time.Time{}, err
			}
			prev := k.Current
			k.Previous, k.Current, k.Next = &prev, *k.Next, &next
			k.CreatedAt, k.RetiredAt = now.UTC(), now.UTC()
			if k.RSA != nil {
				r := *k.RSA
				rnext, err := gen.rsa(2)
				if err != nil {
					return old, time.Time{}, err
				}
				rprev := r.Current
				r.Previous = &rprev
				if r.Next != nil {
					r.Current = *r.Next
				} else if r.Current, err = gen.rsa(3); err != nil {
					return old, time.Time{}, err
				}
				r.Next = &rnext
				k.RSA = &r
			}
		}
		return k, time.Time{}, nil
	})
	if errors.Is(err, errKeysUnchanged) {
		return m.col().Get(ctx, signingKeysID)
	}
	if err == nil {
		m.log.InfoContext(ctx, "idp: signing keys updated", slog.String("current_kid", rec.Current.KeyID))
	}
	return rec, err
}

// keyGen generates keys on demand and keeps them, numbered, so that a compare-and-swap that
// runs its function again writes the same keys.
type keyGen struct {
	ecKeys, rsaKeys map[int]jose.JSONWebKey
}

func (g *keyGen) ec(i int) (jose.JSONWebKey, error) {
	if k, ok := g.ecKeys[i]; ok {
		return k, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generating a signing key: %w", err)
	}
	k, err := newJWK(priv, jose.ES256)
	if err != nil {
		return k, err
	}
	if g.ecKeys == nil {
		g.ecKeys = map[int]jose.JSONWebKey{}
	}
	g.ecKeys[i] = k
	return k, nil
}

func (g *keyGen) rsa(i int) (jose.JSONWebKey, error) {
	if k, ok := g.rsaKeys[i]; ok {
		return k, nil
	}
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generating an RSA signing key: %w", err)
	}
	k, err := newJWK(priv, jose.RS256)
	if err != nil {
		return k, err
	}
	if g.rsaKeys == nil {
		g.rsaKeys = map[int]jose.JSONWebKey{}
	}
	g.rsaKeys[i] = k
	return k, nil
}

// rsaSet returns a new RSA current and next.
func (g *keyGen) rsaSet() (*storedRSAKeys, error) {
	cur, err := g.rsa(0)
	if err != nil {
		return nil, err
	}
	next, err := g.rsa(1)
	if err != nil {
		return nil, err
	}
	return &storedRSAKeys{Current: cur, Next: &next}, nil
}

// newJWK wraps a private key with its RFC 7638 thumbprint as key id: stable, and the same
// on every node.
func newJWK(priv crypto.Signer, alg jose.SignatureAlgorithm) (jose.JSONWebKey, error) {
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(alg), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generating a signing key: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return jwk, nil
}

// parseKeys checks and loads a record. Next and previous may be missing.
func parseKeys(k storedKeys) (*keySet, error) {
	s := &keySet{createdAt: k.CreatedAt, retiredAt: k.RetiredAt}
	var err error
	if s.ec.current, err = parseSigner(&k.Current, jose.ES256); err != nil {
		return nil, fmt.Errorf("current signing key: %w", err)
	}
	if s.ec.next, err = parseSigner(k.Next, jose.ES256); err != nil {
		return nil, fmt.Errorf("next signing key: %w", err)
	}
	if s.ec.previous, err = parseSigner(k.Previous, jose.ES256); err != nil {
		return nil, fmt.Errorf("previous signing key: %w", err)
	}
	if k.RSA != nil {
		r := &keySlots{}
		if r.current, err = parseSigner(&k.RSA.Current, jose.RS256); err != nil {
			return nil, fmt.Errorf("current RSA signing key: %w", err)
		}
		if r.next, err = parseSigner(k.RSA.Next, jose.RS256); err != nil {
			return nil, fmt.Errorf("next RSA signing key: %w", err)
		}
		if r.previous, err = parseSigner(k.RSA.Previous, jose.RS256); err != nil {
			return nil, fmt.Errorf("previous RSA signing key: %w", err)
		}
		s.rsa = r
	}
	return s, nil
}

// parseSigner checks one stored key: a P-256 private key for ES256, an RSA private key of
// at least 2048 bits for RS256, with a key id. nil stays nil.
func parseSigner(jwk *jose.JSONWebKey, alg jose.SignatureAlgorithm) (*signer, error) {
	if jwk == nil {
		return nil, nil
	}
	if jwk.KeyID == "" {
		return nil, errors.New("stored key has no key id")
	}
	switch alg {
	case jose.ES256:
		priv, ok := jwk.Key.(*ecdsa.PrivateKey)
		if !ok || priv.Curve != elliptic.P256() {
			return nil, errors.New("stored key is not a P-256 private key")
		}
		return &signer{kid: jwk.KeyID, alg: alg, private: priv}, nil
	case jose.RS256:
		priv, ok := jwk.Key.(*rsa.PrivateKey)
		if !ok || priv.N.BitLen() < rsaKeyBits {
			return nil, fmt.Errorf("stored key is not an RSA private key of at least %d bits", rsaKeyBits)
		}
		return &signer{kid: jwk.KeyID, alg: alg, private: priv}, nil
	}
	return nil, fmt.Errorf("unsupported algorithm %s", alg)
}

// signingKey returns the current key for alg (ES256 unless RS256).
func (s *keySet) signingKey(alg jose.SignatureAlgorithm) (*signer, bool) {
	if alg == jose.RS256 {
		if s.rsa == nil {
			return nil, false
		}
		return s.rsa.current, true
	}
	return s.ec.current, true
}

// published lists the public keys the JWKS shows at now: current, next, and previous until
// grace after it retired, EC first.
func (s *keySet) published(now time.Time, grace time.Duration) []op.Key {
	prevLive := !s.retiredAt.IsZero() && now.Before(s.retiredAt.Add(grace))
	var out []op.Key
	add := func(k keySlots) {
		out = append(out, opPublicKey{k.current})
		if k.next != nil {
			out = append(out, opPublicKey{k.next})
		}
		if k.previous != nil && prevLive {
			out = append(out, opPublicKey{k.previous})
		}
	}
	add(s.ec)
	if s.rsa != nil {
		add(*s.rsa)
	}
	return out
}

// opSigningKey is a key as op signs with it.
type opSigningKey struct{ k *signer }

func (s opSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return s.k.alg }
func (s opSigningKey) Key() any                                    { return s.k.private }
func (s opSigningKey) ID() string                                  { return s.k.kid }

// opPublicKey is a key as the JWKS publishes it.
type opPublicKey struct{ k *signer }

func (s opPublicKey) ID() string                         { return s.k.kid }
func (s opPublicKey) Algorithm() jose.SignatureAlgorithm { return s.k.alg }
func (s opPublicKey) Use() string                        { return "sig" }
func (s opPublicKey) Key() any                           { return s.k.private.Public() }

var (
	_ op.SigningKey = opSigningKey{}
	_ op.Key        = opPublicKey{}
)

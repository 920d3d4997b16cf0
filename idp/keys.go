package idp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/zonegate/zonegate/store"
)

// signingKeysID is the store.KindSecret record that holds the OIDC signing keys.
const signingKeysID = "oidc-signing-keys"

// storedKeys is the record: the private keys as JWKs. Only Current exists today; a later
// rotation adds the next and previous keys next to it.
type storedKeys struct {
	Current   jose.JSONWebKey `json:"current"`
	CreatedAt time.Time       `json:"created"`
}

// keyPair is the loaded signing key.
type keyPair struct {
	kid     string
	private *ecdsa.PrivateKey
}

// loadOrCreateSigningKey reads the signing key from the store, creating it on first start.
// When two nodes start together, the one whose Create loses reads the winner's key.
func loadOrCreateSigningKey(ctx context.Context, st store.Store, now func() time.Time) (*keyPair, error) {
	col := store.Collection[storedKeys]{Store: st, Kind: store.KindSecret}
	rec, err := col.Get(ctx, signingKeysID)
	if errors.Is(err, store.ErrNotFound) {
		rec, err = newStoredKeys(now())
		if err != nil {
			return nil, err
		}
		err = col.Create(ctx, signingKeysID, "", time.Time{}, rec)
		if errors.Is(err, store.ErrAlreadyExists) {
			rec, err = col.Get(ctx, signingKeysID)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loading the signing key: %w", err)
	}
	return keyPairFromJWK(rec.Current)
}

func newStoredKeys(now time.Time) (storedKeys, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return storedKeys{}, fmt.Errorf("generating the signing key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return storedKeys{}, fmt.Errorf("generating the signing key: %w", err)
	}
	// The RFC 7638 thumbprint: stable, and the same on every node.
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return storedKeys{Current: jwk, CreatedAt: now.UTC()}, nil
}

func keyPairFromJWK(jwk jose.JSONWebKey) (*keyPair, error) {
	priv, ok := jwk.Key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() || jwk.KeyID == "" {
		return nil, errors.New("loading the signing key: stored key is not a P-256 private key with a key id")
	}
	return &keyPair{kid: jwk.KeyID, private: priv}, nil
}

// opSigningKey is the key as op signs with it.
type opSigningKey struct{ k *keyPair }

func (s opSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (s opSigningKey) Key() any                                    { return s.k.private }
func (s opSigningKey) ID() string                                  { return s.k.kid }

// opPublicKey is the key as the JWKS publishes it.
type opPublicKey struct{ k *keyPair }

func (s opPublicKey) ID() string                         { return s.k.kid }
func (s opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (s opPublicKey) Use() string                        { return "sig" }
func (s opPublicKey) Key() any                           { return &s.k.private.PublicKey }

var (
	_ op.SigningKey = opSigningKey{}
	_ op.Key        = opPublicKey{}
)

package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/zonegate/zonegate/store"
)

// secretsID is the store id of the app's generated secrets.
const secretsID = "zonegate-secrets"

// secrets are generated once and kept in the store, so restarts and every node sharing the
// store sign and verify the same cookies and tokens.
type secrets struct {
	CookieKey        []byte   `json:"cookie_key"`
	CSRFKey          []byte   `json:"csrf_key"`
	OIDCCryptoKey    [32]byte `json:"oidc_crypto_key"`
	GateClientSecret string   `json:"gate_client_secret"`
}

func loadSecrets(ctx context.Context, st store.Store) (secrets, error) {
	c := store.Collection[secrets]{Store: st, Kind: store.KindSecret}
	s, err := c.Get(ctx, secretsID)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return s, fmt.Errorf("zonegate: reading secrets from the store: %w", err)
	}
	s = secrets{CookieKey: random(32), CSRFKey: random(32)}
	copy(s.OIDCCryptoKey[:], random(32))
	s.GateClientSecret = base64.RawURLEncoding.EncodeToString(random(32))
	err = c.Create(ctx, secretsID, "", timeZero, s)
	if errors.Is(err, store.ErrAlreadyExists) { // another node made them first
		return c.Get(ctx, secretsID)
	}
	if err != nil {
		return s, fmt.Errorf("zonegate: storing new secrets: %w", err)
	}
	return s, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("zonegate: no randomness: " + err.Error())
	}
	return b
}

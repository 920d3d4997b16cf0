package idp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/zonegate/zonegate/store"
)

// jwks fetches the published key set.
func (e *env) jwks() jose.JSONWebKeySet {
	e.t.Helper()
	resp, err := http.Get(e.issuer + "/keys")
	if err != nil {
		e.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(readAll(e.t, resp)), &set); err != nil {
		e.t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" {
			e.t.Errorf("JWKS key %s: public %v use %q", k.KeyID, k.IsPublic(), k.Use)
		}
	}
	return set
}

func kids(set jose.JSONWebKeySet) []string {
	out := make([]string, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// signInRaw signs a user in through r in a new browser and returns the raw ID token and
// its key id.
func (e *env) signInRaw(r *rp, username, password string) (raw, kid string) {
	e.t.Helper()
	f := r.start()
	tok, _ := r.exchange(e.browser().signIn(r, f, username, password), f)
	raw, _ = tok.Extra("id_token").(string)
	return raw, headerOf(e.t, raw).KeyID
}

func headerOf(t testing.TB, raw string) jose.Header {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parsing an ID token: %v", err)
	}
	return jws.Signatures[0].Header
}

// freshVerifier is a relying party that has never seen the JWKS.
func (e *env) freshVerifier(clientID string) *gooidc.IDTokenVerifier {
	e.t.Helper()
	p, err := gooidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Verifier(&gooidc.Config{ClientID: clientID})
}

func storedKeySet(t testing.TB, st store.Store) storedKeys {
	t.Helper()
	k, err := store.Collection[storedKeys]{Store: st, Kind: store.KindSecret}.Get(context.Background(), signingKeysID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	r := e.webRP()
	raw1, kidA := e.signInRaw(r, "alice", "alice-password")
	set := e.jwks()
	if len(set.Keys) != 2 || set.Keys[0].KeyID != kidA {
		t.Fatalf("JWKS before rotation %v, signing kid %s", kids(set), kidA)
	}
	kidB := set.Keys[1].KeyID // next, published ahead

	// Just before the period ends nothing changes.
	e.clock.Advance(DefaultKeyRotation - time.Minute)
	if kid, _, _ := e.idp.SigningKey(context.Background()); kid != kidA {
		t.Fatalf("rotated early: %s", kid)
	}
	e.clock.Advance(time.Minute)

	// The first sign-in after the period is signed by the former next key.
	raw2, kid2 := e.signInRaw(r, "bob", "bob-password")
	if kid2 != kidB {
		t.Fatalf("ID token after rotation signed by %s, want the next key %s", kid2, kidB)
	}
	if kid, _, _ := e.idp.SigningKey(context.Background()); kid != kidB {
		t.Errorf("SigningKey after rotation: %s, want %s", kid, kidB)
	}
	set = e.jwks()
	got := kids(set)
	if len(got) != 3 || got[0] != kidB || !slices.Contains(got, kidA) || slices.Contains([]string{kidA, kidB}, got[1]) {
		t.Fatalf("JWKS after rotation %v: want current %s, a new next, previous %s", got, kidB, kidA)
	}
	// Both tokens verify for a relying party that fetches the JWKS now.
	v := e.freshVerifier(webClientID)
	for i, raw := range []string{raw1, raw2} {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Errorf("token %d after rotation: %v", i+1, err)
		}
	}
	sk := storedKeySet(t, e.store)
	if sk.Current.KeyID != kidB || sk.Previous == nil || sk.Previous.KeyID != kidA || sk.Next == nil || sk.Next.KeyID != got[1] ||
		!sk.CreatedAt.Equal(e.clock.Now().UTC()) || !sk.RetiredAt.Equal(e.clock.Now().UTC()) {
		t.Errorf("stored set after rotation: current %s previous %v created %v retired %v", sk.Current.KeyID, sk.Previous, sk.CreatedAt, sk.RetiredAt)
	}

	// Once the old key's tokens have expired it leaves the JWKS.
	e.clock.Advance(previousKeyGrace(DefaultIDTokenLifetime))
	if got := kids(e.jwks()); len(got) != 2 || slices.Contains(got, kidA) || got[0] != kidB {
		t.Errorf("JWKS after the grace period %v", got)
	}
	if !strings.Contains(e.logs.String(), "idp: signing keys updated") {
		t.Error("rotation not logged")
	}
}

// Several nodes on one store, due at the same moment, end with one rotation.
func TestKeyRotationConcurrentNodes(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: time.Now()}
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, clk.Now)
	const n = 4
	nodes := make([]*IdP, n)
	for i := range nodes {
		p, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = p
	}
	before := storedKeySet(t, st)
	clk.Advance(DefaultKeyRotation + time.Hour)

	kidsSeen := make([]string, n*3)
	var wg sync.WaitGroup
	for i := range n * 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid, _, err := nodes[i%n].SigningKey(context.Background())
			if err != nil {
				t.Error(err)
			}
			kidsSeen[i] = kid
		}()
	}
	wg.Wait()
	after := storedKeySet(t, st)
	if after.Current.KeyID != before.Next.KeyID || after.Previous == nil || after.Previous.KeyID != before.Current.KeyID {
		t.Fatalf("stored set: current %s previous %v; before current %s next %s", after.Current.KeyID, after.Previous, before.Current.KeyID, before.Next.KeyID)
	}
	for i, kid := range kidsSeen {
		if kid != after.Current.KeyID {
			t.Errorf("caller %d signs with %s, want %s", i, kid, after.Current.KeyID)
		}
	}
}

// A record written before rotation existed ({current, created}) keeps its key current.
func TestKeyMigration(t *testing.T) {
	st := openStore(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old, err := newJWK(priv, jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-400 * 24 * time.Hour).UTC() // older than any rotation period
	v1, _ := json.Marshal(struct {
		Current   jose.JSONWebKey `json:"current"`
		CreatedAt time.Time       `json:"created"`
	}{old, created})
	if err := st.Create(context.Background(), store.Record{Kind: store.KindSecret, ID: signingKeysID, Value: v1}); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, clk.Now)
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kid, key, err := p.SigningKey(context.Background())
	if err != nil || kid != old.KeyID || !key.Equal(priv) {
		t.Fatalf("SigningKey after migration: %s %v, want the stored key %s", kid, err, old.KeyID)
	}
	sk := storedKeySet(t, st)
	if sk.Next == nil || sk.Next.KeyID == old.KeyID || sk.Previous != nil || !sk.CreatedAt.Equal(clk.Now().UTC()) {
		t.Errorf("migrated record: next %v previous %v created %v", sk.Next, sk.Previous, sk.CreatedAt)
	}
	// The rotation period counts from the migration.
	clk.Advance(DefaultKeyRotation)
	if kid, _, _ := p.SigningKey(context.Background()); kid != sk.Next.KeyID {
		t.Errorf("after a period: %s, want the next key %s", kid, sk.Next.KeyID)
	}
}

func TestKeyRotationSettings(t *testing.T) {
	tests := []struct {
		name     string
		rotation time.Duration
		advance  time.Duration
		rotated  bool
	}{
		{"default, before", 0, DefaultKeyRotation - time.Second, false},
		{"default, at", 0, DefaultKeyRotation, true},
		{"hourly", time.Hour, time.Hour, true},
		{"never", -1, 10 * 365 * 24 * time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			clk := &clock{t: time.Now()}
			cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, clk.Now)
			cfg.KeyRotation = tc.rotation
			p, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			kid1, _, _ := p.SigningKey(context.Background())
			clk.Advance(tc.advance)
			kid2, _, _ := p.SigningKey(context.Background())
			if got := kid1 != kid2; got != tc.rotated {
				t.Errorf("rotated %v, want %v", got, tc.rotated)
			}
		})
	}
}

// A key another node added is seen after the reload interval without a restart.
func TestKeyReload(t *testing.T) {
	st := openStore(t)
	clk := &clock{t: time.Now()}
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, clk.Now)
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clients = append(cfg.Clients, Client{ID: "legacy", SigningAlgorithm: AlgRS256})
	if _, err := New(context.Background(), cfg); err != nil { // another node with an RS256 client
		t.Fatal(err)
	}
	keysOf := func() int {
		ks, err := a.storage.KeySet(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	if n := keysOf(); n != 2 {
		t.Fatalf("keys before reload: %d", n)
	}
	clk.Advance(keyReloadInterval)
	if n := keysOf(); n != 4 {
		t.Errorf("keys after reload: %d, want 2 EC and 2 RSA", n)
	}
}

func TestCorruptNextKey(t *testing.T) {
	st := openStore(t)
	cfg := baseConfig(t, "https://id.example.com", st, newFakeDir(), &syncBuffer{}, nil)
	if _, err := New(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(context.Background(), store.KindSecret, signingKeysID, func(r store.Record) (store.Record, error) {
		var k map[string]any
		_ = json.Unmarshal(r.Value, &k)
		k["next"] = map[string]any{"kty": "oct", "k": "AAAA", "kid": "x"}
		r.Value, _ = json.Marshal(k)
		return r, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "next signing key: stored key is not a P-256 private key") {
		t.Errorf("New with a corrupt next key: %v", err)
	}
}

const (
	legacyClientID     = "legacy"
	legacyClientSecret = "legacy-secret-0123456789"
	legacyRedirect     = "https://legacy.example.com/cb"
)

func TestRS256Client(t *testing.T) {
	e := newEnv(t, withClients(Client{
		ID: legacyClientID, Secret: legacyClientSecret, RedirectURIs: []string{legacyRedirect},
		SigningAlgorithm: AlgRS256, GrantTypes: refreshGrants,
	}))
	r := newRP(t, context.Background(), e.issuer, legacyClientID, legacyClientSecret, legacyRedirect, "openid", "offline_access")
	var d struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := r.provider.Claims(&d); err != nil || !slices.Equal(d.Algs, []string{"ES256", "RS256"}) {
		t.Errorf("discovery algorithms %v %v", d.Algs, err)
	}
	set := e.jwks()
	var rsaKids []string
	for _, k := range set.Keys {
		if k.Algorithm == "RS256" {
			rsaKids = append(rsaKids, k.KeyID)
		}
	}
	if len(set.Keys) != 4 || len(rsaKids) != 2 {
		t.Fatalf("JWKS %v: want an EC and an RSA current and next", kids(set))
	}

	// The legacy client's ID tokens are RS256 (exchange verifies them), the others' ES256.
	f := r.start()
	tok, _ := r.exchange(e.browser().signIn(r, f, "alice", "alice-password"), f)
	raw, _ := tok.Extra("id_token").(string)
	if h := headerOf(t, raw); h.Algorithm != "RS256" || h.KeyID != rsaKids[0] {
		t.Errorf("legacy ID token: alg %s kid %s, want RS256 %s", h.Algorithm, h.KeyID, rsaKids[0])
	}
	webRaw, _ := e.signInRaw(e.webRP(), "bob", "bob-password")
	if h := headerOf(t, webRaw); h.Algorithm != "ES256" {
		t.Errorf("web ID token: alg %s", h.Algorithm)
	}
	// A refreshed ID token too.
	tok2, err := r.refresh(tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := tok2.Extra("id_token").(string)
	if h := headerOf(t, raw2); h.Algorithm != "RS256" {
		t.Errorf("refreshed legacy ID token: alg %s", h.Algorithm)
	}
	if _, err := r.verifier.Verify(context.Background(), raw2); err != nil {
		t.Errorf("refreshed legacy ID token: %v", err)
	}
	// The gate's assertions stay ES256.
	if _, key, err := e.idp.SigningKey(context.Background()); err != nil || key == nil {
		t.Errorf("SigningKey: %v", err)
	}

	// The RSA keys rotate with the EC keys.
	e.clock.Advance(DefaultKeyRotation)
	_, kid := e.signInRaw(r, "alice", "alice-password")
	if kid != rsaKids[1] {
		t.Errorf("legacy ID token after rotation signed by %s, want the next RSA key %s", kid, rsaKids[1])
	}
	if got := kids(e.jwks()); len(got) != 6 || !slices.Contains(got, rsaKids[0]) {
		t.Errorf("JWKS after rotation %v", got)
	}
}

// An RS256 ID token works as id_token_hint at end_session, also after a key rotation.
func TestRS256EndSession(t *testing.T) {
	e := newEnv(t, withClients(Client{
		ID: legacyClientID, Secret: legacyClientSecret, RedirectURIs: []string{legacyRedirect},
		PostLogoutRedirectURIs: []string{postLogout}, SigningAlgorithm: AlgRS256,
	}))
	r := newRP(t, context.Background(), e.issuer, legacyClientID, legacyClientSecret, legacyRedirect)
	b := e.browser()
	f := r.start()
	tok, _ := r.exchange(b.signIn(r, f, "alice", "alice-password"), f)
	raw := tok.Extra("id_token").(string)
	// After a rotation the hint's key is the previous one (and the SSO session has expired:
	// the request is honoured because the hint verifies).
	e.clock.Advance(DefaultKeyRotation)
	if _, _, err := e.idp.SigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	u := e.issuer + "/end_session?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {postLogout}}.Encode()
	redirectedTo(t, b.get(u), postLogout)
	if b.hasCookie(sessionCookie) {
		t.Error("session cookie kept")
	}
}

// Adding an RS256 client at run time creates the RSA keys.
func TestRS256AddClient(t *testing.T) {
	e := newEnv(t)
	if got := kids(e.jwks()); len(got) != 2 {
		t.Fatalf("JWKS %v", got)
	}
	if err := e.idp.AddClient(Client{ID: legacyClientID, Secret: legacyClientSecret, RedirectURIs: []string{legacyRedirect}, SigningAlgorithm: AlgRS256}); err != nil {
		t.Fatal(err)
	}
	if got := kids(e.jwks()); len(got) != 4 {
		t.Fatalf("JWKS after AddClient %v", got)
	}
	r := newRP(t, context.Background(), e.issuer, legacyClientID, legacyClientSecret, legacyRedirect)
	raw, _ := e.signInRaw(r, "alice", "alice-password")
	if h := headerOf(t, raw); h.Algorithm != "RS256" {
		t.Errorf("ID token alg %s", h.Algorithm)
	}
}

// BenchmarkSigningKey measures SigningKey on its cached path (the gate asks for every
// assertion it signs; op for every token).
func BenchmarkSigningKey(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.idp.SigningKey(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

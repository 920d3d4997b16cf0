package passkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/google/uuid"
)

// softKey is a software authenticator: one ES256 credential, "none" attestation, authenticator
// data assembled per WebAuthn §6.1, CBOR by the library's encoder.
type softKey struct {
	priv     *ecdsa.PrivateKey
	id       []byte
	aaguid   uuid.UUID
	counting bool   // false: the counter stays 0 (authenticators that never count)
	count    uint32 // last counter value used
	be, bs   bool   // backup eligible / backed up
	handle   []byte // user handle kept at registration (a resident key's user.id)
}

func newSoftKey(t testing.TB, aaguid uuid.UUID) *softKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &softKey{priv: priv, id: id, aaguid: aaguid, counting: true}
}

// knobs says how one ceremony response is produced. newKnobs fills in the honest values.
type knobs struct {
	origin     string
	rpID       string
	up, uv     bool
	be, bs     bool
	count      *uint32 // nil: the next counter value (or 0 when not counting)
	wrongKey   bool    // sign with another key
	userHandle []byte  // assertion userHandle; nil: the handle kept at registration
	noHandle   bool    // send no userHandle
	credProps  *bool   // registration: report credProps.rk
	attachment string
	challenge  string // override the challenge in clientDataJSON
	id         []byte // override the credential id sent
}

func (f *fixture) knobs(k *softKey) knobs {
	return knobs{origin: testOrigin, rpID: testRPID, up: true, uv: true, be: k.be, bs: k.bs, attachment: "cross-platform"}
}

func u32(v uint32) *uint32 { return &v }
func boolp(v bool) *bool   { return &v }

func (k *softKey) nextCount(o knobs) uint32 {
	if o.count != nil {
		return *o.count
	}
	if !k.counting {
		return 0
	}
	k.count++
	return k.count
}

func flagsByte(o knobs, attested bool) byte {
	var f byte
	if o.up {
		f |= 0x01
	}
	if o.uv {
		f |= 0x04
	}
	if o.be {
		f |= 0x08
	}
	if o.bs {
		f |= 0x10
	}
	if attested {
		f |= 0x40
	}
	return f
}

func clientData(t testing.TB, typ, challenge string, o knobs) []byte {
	t.Helper()
	if o.challenge != "" {
		challenge = o.challenge
	}
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": o.origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *softKey) coseKey(t testing.TB) []byte {
	t.Helper()
	pub, err := k.priv.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	b, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         int64(webauthncose.P256),
		XCoord:        raw[1:33],
		YCoord:        raw[33:65],
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// create answers navigator.credentials.create(options) with a PublicKeyCredential as JSON.
func (k *softKey) create(t testing.TB, options []byte, o knobs) []byte {
	t.Helper()
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatalf("creation options: %v", err)
	}
	h, err := b64.DecodeString(opts.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user.id %q: %v", opts.PublicKey.User.ID, err)
	}
	k.handle = h
	k.be, k.bs = o.be, o.bs
	cdj := clientData(t, "webauthn.create", opts.PublicKey.Challenge, o)
	rpHash := sha256.Sum256([]byte(o.rpID))
	ad := append([]byte{}, rpHash[:]...)
	ad = append(ad, flagsByte(o, true))
	ad = binary.BigEndian.AppendUint32(ad, k.nextCount(o))
	ad = append(ad, k.aaguid[:]...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(ad, k.id...)
	ad = append(ad, k.coseKey(t)...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		t.Fatal(err)
	}
	id := k.id
	if o.id != nil {
		id = o.id
	}
	ext := map[string]any{}
	if o.credProps != nil {
		ext["credProps"] = map[string]any{"rk": *o.credProps}
	}
	return mustJSON(t, map[string]any{
		"id":                      b64.EncodeToString(id),
		"rawId":                   b64.EncodeToString(id),
		"type":                    "public-key",
		"authenticatorAttachment": o.attachment,
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cdj),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"usb", "nfc"},
		},
		"clientExtensionResults": ext,
	})
}

// get answers navigator.credentials.get(options) with a PublicKeyCredential as JSON.
func (k *softKey) get(t testing.TB, options []byte, o knobs) []byte {
	t.Helper()
	var opts struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatalf("request options: %v", err)
	}
	cdj := clientData(t, "webauthn.get", opts.PublicKey.Challenge, o)
	rpHash := sha256.Sum256([]byte(o.rpID))
	ad := append([]byte{}, rpHash[:]...)
	ad = append(ad, flagsByte(o, false))
	ad = binary.BigEndian.AppendUint32(ad, k.nextCount(o))
	cdh := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdh[:]...))
	signer := k.priv
	if o.wrongKey {
		var err error
		if signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	sig, err := ecdsa.SignASN1(rand.Reader, signer, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	resp := map[string]any{
		"clientDataJSON":    b64.EncodeToString(cdj),
		"authenticatorData": b64.EncodeToString(ad),
		"signature":         b64.EncodeToString(sig),
	}
	switch {
	case o.noHandle:
	case o.userHandle != nil:
		resp["userHandle"] = b64.EncodeToString(o.userHandle)
	default:
		resp["userHandle"] = b64.EncodeToString(k.handle)
	}
	id := k.id
	if o.id != nil {
		id = o.id
	}
	return mustJSON(t, map[string]any{
		"id":                      b64.EncodeToString(id),
		"rawId":                   b64.EncodeToString(id),
		"type":                    "public-key",
		"authenticatorAttachment": o.attachment,
		"response":                resp,
		"clientExtensionResults":  map[string]any{},
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

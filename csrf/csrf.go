// Package csrf protects state-changing HTML forms with a signed double-submit token.
//
// A random value lives in an HttpOnly cookie; the form carries HMAC(key, purpose, value). A
// cross-site page can make the browser send the cookie but cannot read it, so it cannot compute
// the form field. The purpose binds a token to one form (login, logout, ...).
package csrf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// FieldName is the name of the hidden form input that carries the token.
const FieldName = "csrf_token"

// ErrInvalid means the request carried no token, no cookie, or a token that does not match.
var ErrInvalid = errors.New("csrf: token missing or invalid")

// Protector issues and checks tokens. The zero value is not usable; use New.
type Protector struct {
	key        []byte
	cookieName string
}

// New returns a Protector that signs with key (at least 32 bytes) and keeps its random value in
// a cookie named cookieName.
func New(key []byte, cookieName string) (*Protector, error) {
	if len(key) < 32 {
		return nil, errors.New("csrf: key must be at least 32 bytes")
	}
	if cookieName == "" {
		return nil, errors.New("csrf: cookie name is empty")
	}
	return &Protector{key: append([]byte(nil), key...), cookieName: cookieName}, nil
}

// Token returns the token to put in a form for purpose, setting the cookie when the request
// has none (or a malformed one).
func (p *Protector) Token(w http.ResponseWriter, r *http.Request, purpose string) string {
	v := p.cookieValue(r)
	if v == nil {
		v = make([]byte, 32)
		if _, err := rand.Read(v); err != nil {
			panic("csrf: no randomness: " + err.Error())
		}
		http.SetCookie(w, &http.Cookie{
			Name:     p.cookieName,
			Value:    base64.RawURLEncoding.EncodeToString(v),
			Path:     "/",
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteLaxMode,
		})
	}
	return base64.RawURLEncoding.EncodeToString(p.mac(purpose, v))
}

// Check verifies the form token of a submitted request for purpose. The caller must have
// parsed the form (r.ParseForm) or let Check do it.
func (p *Protector) Check(r *http.Request, purpose string) error {
	v := p.cookieValue(r)
	if v == nil {
		return ErrInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostFormValue(FieldName))
	if err != nil || len(got) == 0 {
		return ErrInvalid
	}
	if !hmac.Equal(got, p.mac(purpose, v)) {
		return ErrInvalid
	}
	return nil
}

func (p *Protector) cookieValue(r *http.Request) []byte {
	c, err := r.Cookie(p.cookieName)
	if err != nil {
		return nil
	}
	v, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(v) != 32 {
		return nil
	}
	return v
}

func (p *Protector) mac(purpose string, v []byte) []byte {
	h := hmac.New(sha256.New, p.key)
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write(v)
	return h.Sum(nil)
}

package device

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"
)

// DefaultCookieName is the device cookie's name.
const DefaultCookieName = "zonegate_device"

// cookieMaxAge is as long as browsers keep a cookie (Chrome caps at 400 days).
const cookieMaxAge = 400 * 24 * time.Hour

// CookieIdentity issues and reads device cookies: a browser registered as a device of a user
// carries "<device id>.<user id>.<MAC>" (each part base64url), signed with HMAC-SHA256 under
// Key. The cookie names its user: it identifies the device only for that user.
type CookieIdentity struct {
	// Key signs the cookies; at least 32 bytes.
	Key []byte
	// Name is the cookie's name; default DefaultCookieName.
	Name string
}

func (c CookieIdentity) name() string {
	if c.Name == "" {
		return DefaultCookieName
	}
	return c.Name
}

func (c CookieIdentity) mac(deviceID, userID string) []byte {
	m := hmac.New(sha256.New, c.Key)
	m.Write([]byte("zonegate device cookie\x00"))
	m.Write([]byte(deviceID))
	m.Write([]byte{0})
	m.Write([]byte(userID))
	return m.Sum(nil)
}

// NewCookieDeviceID returns a fresh device id for a browser: "browser-" and 24 random bytes.
func NewCookieDeviceID() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("device: no randomness: " + err.Error())
	}
	return "browser-" + base64.RawURLEncoding.EncodeToString(b)
}

// Issue sets the device cookie for deviceID and userID on w: long-lived, HttpOnly, Secure on
// HTTPS, SameSite=Lax.
func (c CookieIdentity) Issue(w http.ResponseWriter, r *http.Request, deviceID, userID string) error {
	if len(c.Key) < 32 {
		return errors.New("device cookie: key shorter than 32 bytes")
	}
	if !validID(deviceID) || userID == "" {
		return errors.New("device cookie: bad device or user id")
	}
	enc := base64.RawURLEncoding
	http.SetCookie(w, &http.Cookie{
		Name:     c.name(),
		Value:    enc.EncodeToString([]byte(deviceID)) + "." + enc.EncodeToString([]byte(userID)) + "." + enc.EncodeToString(c.mac(deviceID, userID)),
		Path:     "/",
		MaxAge:   int(cookieMaxAge / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// FromRequest returns the device and user a valid device cookie names. With userID set, the
// cookie counts only when it names that user; "" accepts any (an anonymous request, before
// the user is known).
func (c CookieIdentity) FromRequest(r *http.Request, userID string) (deviceID, owner string, ok bool) {
	if len(c.Key) < 32 {
		return "", "", false
	}
	ck, err := r.Cookie(c.name())
	if err != nil {
		return "", "", false
	}
	deviceID, owner, ok = c.parse(ck.Value)
	if !ok || (userID != "" && userID != owner) {
		return "", "", false
	}
	return deviceID, owner, true
}

// parse checks a cookie value and returns its device and user.
func (c CookieIdentity) parse(v string) (deviceID, userID string, ok bool) {
	if len(v) > 1024 {
		return "", "", false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	enc := base64.RawURLEncoding
	d, err1 := enc.DecodeString(parts[0])
	u, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(u) == 0 || !validID(string(d)) {
		return "", "", false
	}
	if !hmac.Equal(sig, c.mac(string(d), string(u))) {
		return "", "", false
	}
	return string(d), string(u), true
}

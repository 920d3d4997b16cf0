package idp

import (
	"net/http"

	"github.com/rs/cors"
)

// corsMaxAge is how long (seconds) a browser may cache a preflight answer.
const corsMaxAge = 600

// corsOptions configures op's CORS middleware: only the endpoints a browser app calls with
// fetch (token, userinfo, JWKS, discovery, revocation, introspection) and only from an
// origin some client lists in CORSOrigins get CORS headers; the origin is echoed, never
// "*", and credentials (cookies) are never allowed. Every other request gets no CORS header.
func (p *IdP) corsOptions() *cors.Options {
	return &cors.Options{
		AllowOriginVaryRequestFunc: func(r *http.Request, origin string) (bool, []string) {
			return p.corsPaths[r.URL.Path] && p.clients.originAllowed(origin), nil
		},
		AllowedMethods:   []string{http.MethodGet, http.MethodHead, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept", "Accept-Language"},
		ExposedHeaders:   []string{"WWW-Authenticate"},
		AllowCredentials: false,
		MaxAge:           corsMaxAge,
	}
}

// setCORSPaths records the endpoints corsOptions opens (once op knows its endpoints).
func (p *IdP) setCORSPaths() {
	p.corsPaths = map[string]bool{
		p.op.TokenEndpoint().Relative():         true,
		p.op.UserinfoEndpoint().Relative():      true,
		p.op.KeysEndpoint().Relative():          true,
		"/.well-known/openid-configuration":     true,
		p.op.RevocationEndpoint().Relative():    true,
		p.op.IntrospectionEndpoint().Relative(): true,
	}
}

// bearerChallenge makes the userinfo endpoint answer a missing, invalid, expired or revoked
// access token with 401 and a Bearer challenge (RFC 6750 section 3); op answers a token it
// can decrypt but the store refuses with 403.
func bearerChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenge := `Bearer`
		if r.Header.Get("Authorization") != "" {
			challenge = `Bearer error="invalid_token"`
		}
		next.ServeHTTP(&challengeWriter{ResponseWriter: w, challenge: challenge}, r)
	})
}

type challengeWriter struct {
	http.ResponseWriter
	challenge string
	wrote     bool
}

func (c *challengeWriter) WriteHeader(status int) {
	if !c.wrote && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
		status = http.StatusUnauthorized
		if c.Header().Get("WWW-Authenticate") == "" {
			c.Header().Set("WWW-Authenticate", c.challenge)
		}
	}
	c.wrote = true
	c.ResponseWriter.WriteHeader(status)
}

func (c *challengeWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(b)
}

package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/policy"
)

// loginTTL is how long a started sign-in may take.
const loginTTL = 10 * time.Minute

// loginCookiePrefix starts the name of the cookie that ties a pending login to the browser
// that started it. The name carries the start of the state, so sign-ins started in several
// tabs do not overwrite each other's cookie.
const loginCookiePrefix = "zonegate_login_"

// loginCookieNameLen is how many characters of the state go into the cookie name.
const loginCookieNameLen = 12

// pendingLogin is a started sign-in, stored under its state until the callback takes it.
type pendingLogin struct {
	Nonce    string    `json:"nonce"`
	Verifier string    `json:"verifier"` // PKCE code verifier
	Return   string    `json:"return"`   // where to go after sign-in: a path on this site
	Created  time.Time `json:"created"`
	// NeedsFactors: the sign-in was asked for because a rule needs factors (step-up).
	NeedsFactors bool `json:"needs_factors,omitempty"`
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

func loginCookieName(state string) string {
	if len(state) > loginCookieNameLen {
		state = state[:loginCookieNameLen]
	}
	return loginCookiePrefix + state
}

// authenticate answers a request that needs a signed-in user: browsers go to the issuer,
// everything else gets 401.
// needsFactors marks a sign-in asked for because a rule needs factors: its callback checks
// that the new session has them rather than sending the browser round again.
func (g *Gate) authenticate(w http.ResponseWriter, r *http.Request, d policy.Decision, clientIP netip.Addr, needsFactors bool, extra ...oauth2.AuthCodeOption) {
	if !isNavigation(r) {
		if g.log.Enabled(r.Context(), slog.LevelDebug) {
			g.log.LogAttrs(r.Context(), slog.LevelDebug, "authentication required",
				slog.String("decision", d.String()), slog.String("ip", clientIP.String()),
				slog.String("method", r.Method), slog.String("path", r.URL.Path))
		}
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", "application/json")
		h.Set("WWW-Authenticate", `Zonegate realm="`+g.url+`"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write(g.loginJSON)
		return
	}

	ctx := r.Context()
	rp, err := g.relyingParty(ctx)
	if err != nil {
		rid := newRequestID()
		g.log.LogAttrs(ctx, slog.LevelError, "cannot start sign-in: issuer unavailable",
			slog.String("error", err.Error()), slog.String("request_id", rid))
		g.unavailable(w, r, rid)
		return
	}
	now := g.now()
	state, nonce := randomToken(), randomToken()
	pl := pendingLogin{
		Nonce:    nonce,
		Verifier: oauth2.GenerateVerifier(),
		Return:   safeReturnPath(r.URL.RequestURI()),
		Created:  now,

		NeedsFactors: needsFactors,
	}
	if err := g.logins.Create(ctx, state, "", now.Add(loginTTL), pl); err != nil {
		rid := newRequestID()
		g.log.LogAttrs(ctx, slog.LevelError, "cannot start sign-in: storing the pending login failed",
			slog.String("error", err.Error()), slog.String("request_id", rid))
		g.unavailable(w, r, rid)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     loginCookieName(state),
		Value:    state,
		Path:     callbackPath,
		MaxAge:   int(loginTTL / time.Second),
		HttpOnly: true,
		Secure:   g.secure || r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(pl.Verifier)}, extra...)
	target := rp.oauth.AuthCodeURL(state, opts...)
	g.log.LogAttrs(ctx, slog.LevelInfo, "sign-in started",
		slog.String("decision", d.String()), slog.String("ip", clientIP.String()),
		slog.String("path", r.URL.Path))
	h := w.Header()
	securityHeaders(h)
	h.Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/websession"
)

// stepUp answers a signed-in request whose sign-in lacks a factor the rule needs, or is older
// than it allows: browsers sign in again (prompt=login, max_age), API clients get 401 with
// the requirement (RFC 9470's insufficient_user_authentication).
func (g *Gate) stepUp(w http.ResponseWriter, r *http.Request, s *websession.Session, d policy.Decision, clientIP netip.Addr) {
	need := d.Need
	if !isNavigation(r) {
		h := w.Header()
		securityHeaders(h)
		h.Set("Content-Type", "application/json")
		challenge := `Bearer error="insufficient_user_authentication", error_description="a stronger or more recent sign-in is required"`
		if len(need.Factors) > 0 {
			challenge += `, acr_values="` + strings.Join(need.Factors, " ") + `"`
		}
		if need.MaxAge > 0 {
			challenge += `, max_age=` + strconv.Itoa(int(need.MaxAge/time.Second))
		}
		h.Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(struct {
			Error   string   `json:"error"`
			Factors []string `json:"factors,omitempty"`
			MaxAge  int      `json:"max_age,omitempty"`
		}{"step_up_required", need.Factors, int(need.MaxAge / time.Second)})
		return
	}
	extra := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login")}
	if need.MaxAge > 0 {
		extra = append(extra, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(need.MaxAge/time.Second))))
	}
	if len(need.Factors) > 0 {
		extra = append(extra, oauth2.SetAuthURLParam("acr_values", strings.Join(need.Factors, " ")))
	}
	g.authenticate(w, r, d, clientIP, len(need.Factors) > 0, extra...)
}

// stillNeedsFactors is the callback's check after a sign-in asked for because a rule needs
// factors: when the new session still lacks them for the page it returns to (the user has no
// such factor), it shows a page saying what to do instead of sending the browser round again,
// and reports true.
func (g *Gate) stillNeedsFactors(w http.ResponseWriter, r *http.Request, s *websession.Session, ret string, clientIP netip.Addr) bool {
	p := ret
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	f := policy.Facts{
		Zones: g.zones.Lookup(clientIP), Method: http.MethodGet, Path: cleanPath(p),
		Authenticated: true, User: s.Username, Groups: s.Groups, AMR: s.AMR, AuthTime: s.AuthTime, Now: g.now(),
		Behavior: s.Behavior,
	}
	if g.cfg.Device != nil {
		if dev, err := g.cfg.Device(r, s.UserID); err == nil {
			f.Device = dev
		}
	}
	d := g.pol.Evaluate(&f)
	if d.Outcome != policy.OutcomeStepUp || len(d.Need.Factors) == 0 {
		return false
	}
	rid := newRequestID()
	g.logDecision(r, slog.LevelInfo, "step-up impossible: the new sign-in lacks a factor the rule needs", d, s, f.Zones, clientIP, rid)
	g.writePage(w, r, http.StatusForbidden, page{
		Title:   "Two-step verification needed",
		Heading: "Two-step verification needed",
		Messages: []string{
			"This page needs a stronger sign-in than your account offers (" + strings.Join(d.Need.Factors, ", ") + ").",
			"Add an authenticator app to your account, then open this page again.",
		},
		Link:      g.issuer + "/account/totp",
		LinkText:  "Add an authenticator",
		RequestID: rid,
	})
	return true
}

// firstSignIn asks the issuer, at a first sign-in, for what the rule needs (a fresh sign-in is
// always fresh enough, so only the factors go along).
func firstSignIn(need policy.Requirement) []oauth2.AuthCodeOption {
	if len(need.Factors) == 0 {
		return nil
	}
	return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", strings.Join(need.Factors, " "))}
}

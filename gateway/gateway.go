// Package gateway decides one protected request: session, facts, policy, identity headers, outcome.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/websession"
	"github.com/zonegate/zonegate/zones"
)

// ReservedPrefix starts the paths the gate serves itself on a protected site; requests under
// it never reach the backend.
const ReservedPrefix = "/.zonegate/"

// Paths under ReservedPrefix.
const (
	callbackPath = ReservedPrefix + "callback"
	logoutPath   = ReservedPrefix + "logout"
)

// SessionKind is the websession.Session.Kind of gate sessions.
const SessionKind = "gate"

// DefaultAssertionTTL is how long an identity assertion is valid unless Config says otherwise.
const DefaultAssertionTTL = 5 * time.Minute

// Config configures a Gate.
type Config struct {
	// URL is the protected site's external base URL, e.g. "https://app.example.com"; the
	// callback is URL + "/.zonegate/callback". Scheme and host only.
	URL string
	// Policy decides requests.
	Policy *policy.Policy
	// Zones places client addresses in network zones; nil means no zones.
	Zones *zones.Table
	// Sessions keeps the gate sessions (a host-only cookie on the protected host).
	Sessions *websession.Manager
	// Store keeps pending logins.
	Store store.Store
	// CSRF protects the sign-out form.
	CSRF *csrf.Protector
	// OIDC is the issuer the gate sends users to.
	OIDC OIDC
	// Headers names the identity headers. The zero value means DefaultHeaders; an empty
	// Assertion means DefaultAssertionHeader.
	Headers Headers
	// Signer signs identity assertions; nil sends none.
	Signer Signer
	// AssertionTTL is how long an assertion is valid. Default 5 minutes.
	AssertionTTL time.Duration
	// EndIdPSession, when set, makes sign-out also end the IdP session the gate session came
	// from (its ParentID) and, with it, the user's other gate sessions from that IdP session.
	EndIdPSession func(ctx context.Context, sid string) error
	// Logger receives decisions and errors. Nil discards.
	Logger *slog.Logger
	// Observer, when set, hears every decision with how long the gate took (for metrics).
	Observer Observer
	// Behavior, when set, judges each sign-in against the user's history at the callback
	// (new device, IP, country, impossible travel); the signals are kept in the session for
	// the policy's behavior conditions. An error fails the sign-in closed (503).
	Behavior BehaviorChecker
	// Events, when set, receives the system-log events of decisions that deny or ask for a
	// step-up (allowed requests are not logged there: they are the hot path).
	Events EventSink
	// Device, when set, says what is known about the request's device (from a verified
	// client certificate and the device registry); the policy's device conditions and the
	// device trust header use it. An error fails the request closed (503).
	// userID is the signed-in user ("" when anonymous): a device cookie counts only for the
	// user it was issued to.
	Device func(r *http.Request, userID string) (policy.Device, error)
	// DeviceID, when set, names the request's device; a session started from a device records
	// it, so the device's sessions can be ended when it falls out of compliance.
	DeviceID func(r *http.Request, userID string) (string, bool)
	// RegisterDevice, when set, registers the browser as a device of userID (a device cookie
	// on the response) when an allowing rule asks for it and no device was identified.
	RegisterDevice func(w http.ResponseWriter, r *http.Request, userID string) error
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Observer hears about each decision the gate makes: outcome "allow", "deny",
// "authenticate" or "unavailable", the reason (the policy's, or "blocklist_zone",
// "session_store", "identity"), and how long the gate took. It must be cheap and safe for
// concurrent use: it runs on every request.
type Observer interface {
	Decided(outcome, reason string, elapsed time.Duration)
}

// headerNames are the identity header names as sent (canonical form).
type headerNames struct {
	user, email, name, groups, assertion, deviceTrust, authMethods string
}

// Gate runs the gate for one protected site. It is safe for concurrent use.
type Gate struct {
	cfg          Config
	url          string // scheme://host, no trailing slash
	host         string // URL's host (with port, if any)
	secure       bool   // URL is https: cookies get Secure
	callbackURL  string
	issuer       string
	scopes       []string
	pol          *policy.Policy
	zones        *zones.Table
	sessions     *websession.Manager
	logins       store.Collection[pendingLogin]
	csrf         *csrf.Protector
	signer       Signer
	assertionTTL time.Duration
	resignBefore time.Duration
	log          *slog.Logger
	now          func() time.Time

	strip stripSet
	hdr   headerNames

	identities identityCache
	discovery  discovery

	loginJSON []byte // the 401 body, fixed per gate
}

// New checks cfg and returns a Gate. It does not contact the issuer: discovery happens on the
// first sign-in (and is retried after a failure), so a gate starts while its issuer is down.
func New(cfg Config) (*Gate, error) {
	u, err := parseSiteURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	switch {
	case cfg.Policy == nil:
		return nil, errors.New("gateway: no policy")
	case cfg.Sessions == nil:
		return nil, errors.New("gateway: no session manager")
	case cfg.Store == nil:
		return nil, errors.New("gateway: no store")
	case cfg.CSRF == nil:
		return nil, errors.New("gateway: no CSRF protector")
	case cfg.OIDC.ClientID == "":
		return nil, errors.New("gateway: oidc: no client id")
	case cfg.AssertionTTL < 0:
		return nil, errors.New("gateway: assertion TTL must be positive")
	}
	if err := checkIssuer(cfg.OIDC.Issuer); err != nil {
		return nil, fmt.Errorf("gateway: oidc: %w", err)
	}
	if cfg.Headers == (Headers{}) {
		cfg.Headers = DefaultHeaders
	}
	if cfg.Headers.Assertion == "" {
		cfg.Headers.Assertion = DefaultAssertionHeader
	}
	strip, err := buildStripSet(cfg.Headers)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.AssertionTTL == 0 {
		cfg.AssertionTTL = DefaultAssertionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	scopes := slices.Clone(cfg.OIDC.Scopes)
	if len(scopes) == 0 {
		scopes = slices.Clone(DefaultScopes)
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	site := u.Scheme + "://" + u.Host
	g := &Gate{
		cfg:          cfg,
		url:          site,
		host:         u.Host,
		secure:       u.Scheme == "https",
		callbackURL:  site + callbackPath,
		issuer:       cfg.OIDC.Issuer,
		scopes:       scopes,
		pol:          cfg.Policy,
		zones:        cfg.Zones,
		sessions:     cfg.Sessions,
		logins:       store.Collection[pendingLogin]{Store: cfg.Store, Kind: store.KindLoginState},
		csrf:         cfg.CSRF,
		signer:       cfg.Signer,
		assertionTTL: cfg.AssertionTTL,
		resignBefore: min(time.Minute, cfg.AssertionTTL/4),
		log:          cfg.Logger,
		now:          cfg.Now,
		strip:        strip,
		hdr: headerNames{
			user:      canonicalOrEmpty(cfg.Headers.User),
			email:     canonicalOrEmpty(cfg.Headers.Email),
			name:      canonicalOrEmpty(cfg.Headers.Name),
			groups:    canonicalOrEmpty(cfg.Headers.Groups),
			assertion: canonicalOrEmpty(cfg.Headers.Assertion),
			// The trust header is only sent when the gate identifies devices.
			deviceTrust: canonicalOrEmpty(cfg.Headers.DeviceTrust),
			authMethods: canonicalOrEmpty(cfg.Headers.AuthMethods),
		},
	}
	body, err := json.Marshal(struct {
		Error    string `json:"error"`
		LoginURL string `json:"login_url"`
	}{"authentication_required", site + "/"})
	if err != nil {
		return nil, fmt.Errorf("gateway: encoding the 401 body: %w", err)
	}
	g.loginJSON = append(body, '\n')
	return g, nil
}

func canonicalOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return http.CanonicalHeaderKey(s)
}

// parseSiteURL checks the protected site's URL: http or https, a host, nothing else.
func parseSiteURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no site URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("site URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("site URL %q: scheme must be http or https", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("site URL %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("site URL %q: must not carry user info", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return nil, fmt.Errorf("site URL %q: must be scheme and host only (no path, query or fragment)", s)
	}
	return u, nil
}

// checkIssuer checks the issuer URL is absolute http(s).
func checkIssuer(s string) error {
	if s == "" {
		return errors.New("no issuer")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("issuer %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("issuer %q: must be an absolute http or https URL", s)
	}
	return nil
}

// CallbackURL returns the redirect URI to register at the issuer.
func (g *Gate) CallbackURL() string { return g.callbackURL }

// Check runs the gate for one request from clientIP. It returns true when the request may go on
// to the backend (identity headers already rewritten on r); otherwise it has written the response.
func (g *Gate) Check(w http.ResponseWriter, r *http.Request, clientIP netip.Addr) bool {
	if g.cfg.Observer == nil {
		return g.check(w, r, clientIP).pass
	}
	start := time.Now()
	v := g.check(w, r, clientIP)
	if v.outcome != "" {
		g.cfg.Observer.Decided(v.outcome, v.reason, time.Since(start))
	}
	return v.pass
}

// verdict is what check did with a request: passed it on or answered it, and for metrics the
// outcome and reason ("" for the gate's own pages).
type verdict struct {
	pass            bool
	outcome, reason string
}

// Outcomes reported to an Observer besides the policy's allow, deny and authenticate.
const (
	OutcomeUnavailable = "unavailable" // the store or the key could not answer: 503
)

func (g *Gate) check(w http.ResponseWriter, r *http.Request, clientIP netip.Addr) verdict {
	// 1. Whatever happens next, no identity header from the client survives.
	g.strip.strip(r.Header)

	// 2. Zones; blocklists deny before anything else.
	zm := g.zones.Lookup(clientIP)
	if name, blocked := g.zones.Blocked(zm); blocked {
		rid := newRequestID()
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "access denied",
			slog.String("reason", "blocklist_zone"), slog.String("zone", name),
			slog.String("ip", clientIP.String()), slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("request_id", rid))
		g.deny(w, r, rid)
		return verdict{outcome: "deny", reason: "blocklist_zone"}
	}

	// 3. The gate's own paths.
	p := cleanPath(r.URL.Path)
	if p == "/.zonegate" || strings.HasPrefix(p, ReservedPrefix) {
		g.serveReserved(w, r, p, clientIP)
		return verdict{}
	}

	// 4. Session.
	s, err := g.sessions.Load(r)
	switch {
	case errors.Is(err, websession.ErrNoSession):
		s = nil
	case err != nil:
		rid := newRequestID()
		g.log.LogAttrs(r.Context(), slog.LevelError, "loading session failed; refusing the request",
			slog.String("error", err.Error()), slog.String("ip", clientIP.String()), slog.String("request_id", rid))
		g.unavailable(w, r, rid)
		return verdict{outcome: OutcomeUnavailable, reason: "session_store"}
	case s.Kind != SessionKind || s.Host != g.host:
		// A session for something else (an IdP session, another host sharing the store):
		// it does not sign anyone in here.
		s = nil
	}

	// 4b. Device posture, when the gate identifies devices.
	var dev policy.Device
	if g.cfg.Device != nil {
		uid := ""
		if s != nil {
			uid = s.UserID
		}
		if dev, err = g.cfg.Device(r, uid); err != nil {
			rid := newRequestID()
			g.log.LogAttrs(r.Context(), slog.LevelError, "reading the device's posture failed; refusing the request",
				slog.String("error", err.Error()), slog.String("ip", clientIP.String()), slog.String("request_id", rid))
			g.unavailable(w, r, rid)
			return verdict{outcome: OutcomeUnavailable, reason: "device_registry"}
		}
	}

	return g.decide(w, r, clientIP, zm, p, s, dev)
}

// decide evaluates the policy for a request whose zones, cleaned path and session (nil when
// anonymous) are known, and acts on the decision.
func (g *Gate) decide(w http.ResponseWriter, r *http.Request, clientIP netip.Addr, zm zones.Match, p string, s *websession.Session, dev policy.Device) verdict {
	// 5. Policy.
	f := policy.Facts{Zones: zm, Method: r.Method, Path: p, Device: dev}
	if s != nil {
		f.Authenticated = true
		f.User = s.Username
		f.Groups = s.Groups
		f.AMR = s.AMR
		f.Behavior = s.Behavior
		f.AuthTime = s.AuthTime
		f.Now = g.now()
	}
	d := g.pol.Evaluate(&f)

	switch d.Outcome {
	case policy.OutcomeAllow:
		if g.cfg.Device != nil && g.hdr.deviceTrust != "" {
			r.Header[g.hdr.deviceTrust] = trustHeaderValue(dev.Trust)
		}
		if d.RegisterDevice && s != nil && !dev.Known && g.cfg.RegisterDevice != nil {
			// The request is allowed whether or not this works; the next one tries again.
			if err := g.cfg.RegisterDevice(w, r, s.UserID); err != nil {
				g.log.LogAttrs(r.Context(), slog.LevelWarn, "registering the browser as a device failed",
					slog.String("user", s.Username), slog.String("error", err.Error()))
			}
		}
		if !g.allow(w, r, s, d, zm, clientIP) {
			return verdict{outcome: OutcomeUnavailable, reason: "identity"}
		}
		return verdict{pass: true, outcome: "allow", reason: string(d.Reason)}
	case policy.OutcomeAuthenticate:
		g.authenticate(w, r, d, clientIP, len(d.Need.Factors) > 0, firstSignIn(d.Need)...)
		return verdict{outcome: "authenticate", reason: string(d.Reason)}
	case policy.OutcomeStepUp:
		g.event(r, "policy.evaluate_sign_on", audit.OutcomeChallenge, d, s, zm, clientIP, "")
		g.stepUp(w, r, s, d, clientIP)
		return verdict{outcome: "step_up", reason: string(d.Reason)}
	default:
		rid := newRequestID()
		g.logDecision(r, slog.LevelInfo, "access denied", d, s, zm, clientIP, rid)
		g.event(r, "application.access.deny", audit.OutcomeDeny, d, s, zm, clientIP, rid)
		g.deny(w, r, rid)
		return verdict{outcome: "deny", reason: string(d.Reason)}
	}
}

// The device trust header's values, shared so setting the header allocates nothing.
var (
	trustTrusted    = []string{"TRUSTED"}
	trustNotTrusted = []string{"NOT_TRUSTED"}
	trustUnknown    = []string{"UNKNOWN"}
)

func trustHeaderValue(t string) []string {
	switch t {
	case "TRUSTED":
		return trustTrusted
	case "NOT_TRUSTED":
		return trustNotTrusted
	}
	return trustUnknown
}

// cleanPath resolves "." and ".." segments and repeated slashes like path.Clean, but keeps a
// trailing slash the way RFC 3986 dot-segment removal does ("/admin/", "/admin/." and
// "/admin/x/.." all give "/admin/"): a backend serves "/admin/" as the admin index, so the
// policy must see it as "/admin/" too, or a rule for "/admin/*" would not cover it. It does
// not allocate for a path that is already clean.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if c == "/" {
		return c
	}
	if strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		if len(p) == len(c)+1 && p[len(c)] == '/' && p[:len(c)] == c {
			return p
		}
		return c + "/"
	}
	return c
}

// allow sets the identity headers for s (none for an anonymous request) and lets r through.
func (g *Gate) allow(w http.ResponseWriter, r *http.Request, s *websession.Session, d policy.Decision, zm zones.Match, clientIP netip.Addr) bool {
	if s != nil {
		e, err := g.identityFor(r.Context(), s, g.now())
		if err != nil {
			rid := newRequestID()
			g.log.LogAttrs(r.Context(), slog.LevelError, "building identity headers failed; refusing the request",
				slog.String("error", err.Error()), slog.String("user", s.Username), slog.String("request_id", rid))
			g.unavailable(w, r, rid)
			return false
		}
		g.setIdentity(r.Header, e)
	}
	stripOwnCookies(r.Header)
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.logDecision(r, slog.LevelDebug, "access allowed", d, s, zm, clientIP, "")
	}
	return true
}

// logDecision logs a policy decision with what it was about.
func (g *Gate) logDecision(r *http.Request, level slog.Level, msg string, d policy.Decision, s *websession.Session, zm zones.Match, clientIP netip.Addr, rid string) {
	user := ""
	if s != nil {
		user = s.Username
	}
	attrs := []slog.Attr{
		slog.String("decision", d.String()),
		slog.String("reason", string(d.Reason)),
		slog.Int("rule", d.Rule),
		slog.String("rule_name", d.RuleName),
		slog.String("user", user),
		slog.String("ip", clientIP.String()),
		slog.Any("zones", g.zones.Names(zm)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
	}
	if rid != "" {
		attrs = append(attrs, slog.String("request_id", rid))
	}
	g.log.LogAttrs(r.Context(), level, msg, attrs...)
}

// BehaviorChecker judges a sign-in: the signals it was flagged with. trusted says the
// sign-in had two factors, so it may join the user's history even when flagged (a flagged
// single-factor sign-in must not, or the next one would look familiar).
type BehaviorChecker interface {
	Check(ctx context.Context, userID string, ip netip.Addr, deviceID string, trusted bool) ([]string, error)
}

// EventSink receives system-log events (an *audit.Log satisfies it).
type EventSink interface {
	Record(ctx context.Context, e audit.Event)
}

// event records a decision in the system log when an EventSink is configured.
func (g *Gate) event(r *http.Request, typ, outcome string, d policy.Decision, s *websession.Session, zm zones.Match, clientIP netip.Addr, rid string) {
	if g.cfg.Events == nil {
		return
	}
	e := audit.Event{
		Type: typ, Outcome: outcome, Reason: string(d.Reason), RequestID: rid,
		ClientIP: clientIP.String(), Zones: g.zones.Names(zm),
		Targets: []audit.Target{{ID: r.Host, Type: "app", Name: r.Host}},
		Details: map[string]string{"rule": d.RuleName, "method": r.Method, "path": r.URL.Path, "decision": d.String()},
	}
	if s != nil {
		e.Actor = audit.Actor{ID: s.UserID, Type: audit.ActorUser, Name: s.Username}
		e.Device = s.DeviceID
	}
	g.cfg.Events.Record(r.Context(), e)
}

// serveReserved serves the gate's own paths.
func (g *Gate) serveReserved(w http.ResponseWriter, r *http.Request, p string, clientIP netip.Addr) {
	switch p {
	case callbackPath:
		if r.Method != http.MethodGet {
			g.methodNotAllowed(w, r, http.MethodGet)
			return
		}
		g.callback(w, r, clientIP)
	case logoutPath:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			g.logoutForm(w, r)
		case http.MethodPost:
			g.logout(w, r)
		default:
			g.methodNotAllowed(w, r, "GET, POST")
		}
	default:
		g.notFound(w, r)
	}
}

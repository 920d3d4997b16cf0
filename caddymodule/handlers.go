package caddymodule

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/zonegate/zonegate/gateway"
	"github.com/zonegate/zonegate/zones"
)

func init() {
	caddy.RegisterModule(Gate{})
	caddy.RegisterModule(IdPHandler{})
}

// Gate protects a site with a named policy: it signs people in through the IdP, decides each
// request, and passes allowed ones on with fresh identity headers.
type Gate struct {
	// Policy names the policy (from the zonegate app) that decides this site's requests.
	Policy string `json:"policy"`
	// URL is this site's external base URL, e.g. "https://app.example.com". Sign-in returns
	// to URL + "/.zonegate/callback", which the IdP accepts only because the gate registered it.
	URL string `json:"url"`
	// HeaderPreset picks the identity header names: "default" (X-Remote-User, ...),
	// "authelia" (Remote-User, ...) or "oauth2-proxy" (X-Auth-Request-User, ...).
	HeaderPreset string `json:"header_preset,omitempty"`
	// Headers overrides single header names of the preset: keys user, email, name, groups,
	// auth_methods, assertion, device_trust; an empty value turns that header off.
	Headers map[string]string `json:"headers,omitempty"`
	// OIDC signs people in through an external issuer (Okta, Entra ID, another zonegate)
	// instead of the embedded IdP.
	OIDC *GateOIDC `json:"oidc,omitempty"`

	gate  *gateway.Gate
	zones *zones.Table
}

// GateOIDC is a gate's external OpenID Connect issuer.
type GateOIDC struct {
	// Issuer is the issuer URL (discovery at Issuer + /.well-known/openid-configuration).
	Issuer string `json:"issuer"`
	// ClientID and ClientSecret are the gate's client at the issuer; register the redirect URI
	// <url>/.zonegate/callback there.
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// Scopes asked for. Default: openid profile email groups.
	Scopes []string `json:"scopes,omitempty"`
	// GroupsClaim names the claim with the user's groups. Default "groups".
	GroupsClaim string `json:"groups_claim,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.zonegate_gate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision builds the gate from the app's policy, zones and IdP.
func (g *Gate) Provision(ctx caddy.Context) error {
	app, err := zonegateApp(ctx, "zonegate_gate")
	if err != nil {
		return err
	}
	pol, err := app.policy(g.Policy)
	if err != nil {
		return fmt.Errorf("zonegate_gate: %w", err)
	}
	headers, err := g.headerNames()
	if err != nil {
		return err
	}
	sess, err := app.newSessionManager("zonegate_session")
	if err != nil {
		return err
	}
	cfg := gateway.Config{
		URL:      strings.TrimRight(g.URL, "/"),
		Policy:   pol,
		Zones:    app.zones,
		Sessions: sess,
		Store:    app.store,
		CSRF:     app.csrf,
		Headers:  headers,
		Logger:   ctx.Slogger(),
		Observer: app.metrics.forSite(strings.TrimRight(g.URL, "/")),
		Events:   app.audit,
	}
	if app.behavior != nil {
		cfg.Behavior = app.behavior
	}
	if app.devices != nil {
		cfg.Device = app.devices.posture
		cfg.DeviceID = app.devices.deviceID
		cfg.RegisterDevice = app.devices.register
	}
	switch {
	case g.OIDC != nil:
		// {env.NAME} and {file./path} keep the secret out of the config file.
		secret := caddy.NewReplacer().ReplaceKnown(g.OIDC.ClientSecret, "")
		if g.OIDC.ClientSecret != "" && secret == "" {
			return fmt.Errorf("zonegate_gate: oidc client_secret is empty once its placeholders are replaced")
		}
		cfg.OIDC = gateway.OIDC{
			Issuer: g.OIDC.Issuer, ClientID: g.OIDC.ClientID, ClientSecret: secret,
			Scopes: g.OIDC.Scopes, GroupsClaim: g.OIDC.GroupsClaim,
		}
	case app.idp != nil:
		cfg.OIDC = gateway.OIDC{
			Issuer:       app.Issuer,
			ClientID:     gateClientID,
			ClientSecret: app.secrets.GateClientSecret,
			HTTPClient:   app.idp.InProcessClient(),
		}
		cfg.EndIdPSession = app.idp.EndSession
	default:
		return fmt.Errorf("zonegate_gate: no issuer: set issuer in the global zonegate option, or oidc in the gate")
	}
	if app.idp != nil {
		cfg.Signer = app.idp // the assertion header is signed with the embedded IdP's keys
	}
	g.zones = app.zones
	g.gate, err = gateway.New(cfg)
	if err != nil {
		return fmt.Errorf("zonegate_gate: %w", err)
	}
	if g.OIDC != nil {
		return nil
	}
	if err := app.idp.AddRedirectURI(gateClientID, g.gate.CallbackURL()); err != nil {
		return fmt.Errorf("zonegate_gate: registering the callback with the IdP: %w", err)
	}
	return nil
}

func (g *Gate) headerNames() (gateway.Headers, error) {
	preset := g.HeaderPreset
	if preset == "" {
		preset = "default"
	}
	h, ok := gateway.HeaderPreset(preset)
	if !ok {
		return h, fmt.Errorf("zonegate_gate: unknown header preset %q (use default, authelia or oauth2-proxy)", preset)
	}
	for k, v := range g.Headers {
		switch k {
		case "user":
			h.User = v
		case "email":
			h.Email = v
		case "name":
			h.Name = v
		case "groups":
			h.Groups = v
		case "assertion":
			h.Assertion = v
		case "device_trust":
			h.DeviceTrust = v
		case "auth_methods":
			h.AuthMethods = v
		default:
			return h, fmt.Errorf("zonegate_gate: unknown identity header %q (use user, email, name, groups, auth_methods, assertion or device_trust)", k)
		}
	}
	return h, nil
}

// Validate checks the configuration.
func (g *Gate) Validate() error {
	if g.Policy == "" {
		return fmt.Errorf("zonegate_gate: no policy")
	}
	u, err := url.Parse(g.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("zonegate_gate: url %q must be the site's absolute base URL, like https://app.example.com", g.URL)
	}
	if g.OIDC != nil {
		iu, err := url.Parse(g.OIDC.Issuer)
		if err != nil || iu.Host == "" || (iu.Scheme != "http" && iu.Scheme != "https") {
			return fmt.Errorf("zonegate_gate: oidc issuer %q must be an absolute http(s) URL", g.OIDC.Issuer)
		}
		if g.OIDC.ClientID == "" {
			return fmt.Errorf("zonegate_gate: oidc needs a client_id")
		}
	}
	return nil
}

// ServeHTTP decides the request and, when allowed, passes it on.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if g.gate.Check(w, r, clientIP(r)) {
		return next.ServeHTTP(w, r)
	}
	return nil
}

// zonegateApp returns the zonegate app the handler named who belongs to.
func zonegateApp(ctx caddy.Context, who string) (*App, error) {
	a, err := ctx.App("zonegate")
	if err != nil {
		return nil, fmt.Errorf("%s: loading the zonegate app: %w", who, err)
	}
	return a.(*App), nil
}

// clientIP is the address Caddy resolved for the client: the peer, or the address a trusted
// proxy forwarded (the server's trusted_proxies setting). An unreadable value gives the zero
// address, which is in no zone.
func clientIP(r *http.Request) netip.Addr {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if s == "" {
		s = r.RemoteAddr
	}
	ip, err := zones.ParseClientIP(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip
}

// IdPHandler serves the embedded identity provider (the issuer's endpoints and pages) on its
// site. Blocklisted clients are refused before anything else.
type IdPHandler struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (IdPHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.zonegate_idp",
		New: func() caddy.Module { return new(IdPHandler) },
	}
}

// Provision finds the app and its IdP.
func (h *IdPHandler) Provision(ctx caddy.Context) error {
	var err error
	if h.app, err = zonegateApp(ctx, "zonegate_idp"); err != nil {
		return err
	}
	if h.app.idp == nil {
		return fmt.Errorf("zonegate_idp: no issuer: set issuer in the global zonegate option")
	}
	return nil
}

// ServeHTTP serves the IdP. It never calls next: every path on the IdP's site is the IdP's.
func (h *IdPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if name, blocked := h.app.zones.Blocked(h.app.zones.Lookup(clientIP(r))); blocked {
		h.app.logger.Info("request from a blocklisted zone refused", "zone", name, "site", "idp")
		http.Error(w, "Access denied.", http.StatusForbidden)
		return nil
	}
	if h.app.devices != nil && h.app.devices.webhook != nil && r.URL.Path == webhookPath {
		h.app.devices.webhook.ServeHTTP(w, r)
		return nil
	}
	if h.app.adminAPI != nil && strings.HasPrefix(r.URL.Path, "/api/v1/") {
		h.app.adminAPI.ServeHTTP(w, r)
		return nil
	}
	h.app.idp.ServeHTTP(w, r)
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Gate)(nil)
	_ caddy.Validator             = (*Gate)(nil)
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
	_ caddy.Provisioner           = (*IdPHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*IdPHandler)(nil)
)

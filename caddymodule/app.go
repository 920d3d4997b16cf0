// Package caddymodule adapts zonegate to Caddy: the zonegate app, its HTTP handlers, storage
// modules, Caddyfile syntax and subcommands.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/adminapi"
	"github.com/zonegate/zonegate/apitoken"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/csrf"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/idp"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/websession"
	"github.com/zonegate/zonegate/zones"
)

func init() {
	caddy.RegisterModule(App{})
}

// gateClientID is the OIDC client the gates use to sign people in through the embedded IdP.
const gateClientID = "zonegate-gate"

// App is the zonegate Caddy app. It owns the long-lived state that the handlers share: the
// store, the users, the zones, the policies, the session managers and the embedded identity
// provider. It is configured by the global `zonegate` Caddyfile option.
type App struct {
	// Issuer is the embedded IdP's issuer URL, e.g. "https://login.example.com". The site that
	// serves it uses the zonegate_idp handler. Plain http is accepted for localhost only.
	Issuer string `json:"issuer,omitempty"`

	// UsersFile is the YAML users file (Authelia's format). Changes are picked up while running.
	UsersFile string `json:"users_file,omitempty"`

	// StorageRaw is the storage module: bolt (embedded, the default: zonegate/zonegate.db in
	// Caddy's data directory) or redis (several gateways sharing users).
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=zonegate.storage inline_key=module"`

	// Session configures web sessions, at the IdP and at every gate.
	Session SessionConfig `json:"session,omitempty"`

	// Zones are the named network zones, in order.
	Zones []ZoneConfig `json:"zones,omitempty"`

	// GeoIP names the databases for zones by country, region or ASN.
	GeoIP *GeoIPConfig `json:"geoip,omitempty"`

	// Policies are the named policies gates refer to.
	Policies []PolicyConfig `json:"policies,omitempty"`

	// Clients are the OIDC clients (apps) that sign in through the embedded IdP.
	Clients []ClientConfig `json:"clients,omitempty"`

	// TOTP turns on authenticator apps as a second sign-in factor at the embedded IdP: users
	// add one at <issuer>/account/totp, and from then on sign in with password and code.
	TOTP *totp.Settings `json:"totp,omitempty"`
	// WebAuthn turns on security keys and passkeys at the embedded IdP: sign-in with a key
	// after the password or with a passkey alone, a first key set up when a rule asks for one,
	// and the self-service page <issuer>/account. The relying party defaults to the issuer.
	WebAuthn *passkey.Settings `json:"webauthn,omitempty"`

	// Devices makes the gates identify devices by client certificate and read their posture
	// from the device registry (fed by the MDM compliance webhook).
	Devices *DevicesConfig `json:"devices,omitempty"`

	// BruteForce tunes the sign-in limits of the embedded IdP. Defaults: 30 attempts a minute
	// per address; 20 failures in 15m lock an account for 15m; failures against 10 users from
	// one address in 10m block it for 30m.
	BruteForce *BruteForceConfig `json:"brute_force,omitempty"`

	// Behavior keeps a sign-in history per user for the rules' behavior conditions; on by
	// itself when a rule names one. Countries and locations come from geoip's country_db.
	Behavior *BehaviorConfig `json:"behavior,omitempty"`

	// Audit configures the system log (always on) and its event hooks.
	Audit *AuditConfig `json:"audit,omitempty"`

	ctx      caddy.Context
	logger   *slog.Logger
	storeMod StorageModule
	store    store.Store
	users    *directory.File
	zones    *zones.Table
	policies map[string]*policy.Policy
	secrets  secrets
	cache    *websession.Cache
	// stopFollow ends the cache's subscription to revocations from other nodes.
	stopFollow func()
	idp        *idp.IdP
	idpSess    *websession.Manager
	csrf       *csrf.Protector
	metrics    *metrics
	devices    *devices
	audit      *audit.Log
	tokens     *apitoken.Manager
	accounts   *accounts.Manager
	adminAPI   *adminapi.API
	factors    factors
	behavior   *behaviorChecker // nil when no rule names a behavior signal
}

// SessionConfig configures web sessions.
type SessionConfig struct {
	// IdleTimeout ends a session unused for this long. Default 1h.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// AbsoluteTimeout ends a session this long after sign-in. Default 12h.
	AbsoluteTimeout caddy.Duration `json:"absolute_timeout,omitempty"`
	// Persistent keeps the cookies across browser restarts (until the absolute timeout).
	// Default false: cookies end with the browser session.
	Persistent bool `json:"persistent,omitempty"`
	// CacheTTL is how long a gate reuses a session read from the store. Default 2s.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
}

// ZoneConfig is one named network zone. An address is in it when any of its sources say so.
type ZoneConfig struct {
	Name string `json:"name"`
	// Blocklist zones deny every request from them, before any sign-in, on every site.
	Blocklist bool `json:"blocklist,omitempty"`
	// Entries are CIDRs, single addresses and ranges (a-b), IPv4 or IPv6.
	Entries []string `json:"entries,omitempty"`
	// Countries are ISO 3166-1 codes ("DE") or subdivisions ("DE-BY"), from GeoIP.CountryDB.
	Countries []string `json:"countries,omitempty"`
	// ASNs are autonomous system numbers, from GeoIP.ASNDB.
	ASNs []uint32 `json:"asns,omitempty"`
	// Lists are files of addresses, CIDRs and ranges, one per line (Tor exits, anonymizers),
	// re-read when they change.
	Lists []string `json:"lists,omitempty"`
}

// GeoIPConfig names the MaxMind-format databases country and ASN zones are read from.
type GeoIPConfig struct {
	// CountryDB is a GeoIP2/GeoLite2 City or Country .mmdb file (City for regions).
	CountryDB string `json:"country_db,omitempty"`
	// ASNDB is a GeoLite2-ASN-format .mmdb file.
	ASNDB string `json:"asn_db,omitempty"`
	// Reload is how often databases and list files are checked for changes. Default 1m.
	Reload caddy.Duration `json:"reload,omitempty"`
}

// PolicyConfig is one named policy: ordered rules, first match wins.
type PolicyConfig struct {
	Name  string       `json:"name"`
	Rules []RuleConfig `json:"rules,omitempty"`
	// Default is "deny" (the default) or "allow" when no rule matches.
	Default string `json:"default,omitempty"`
	// DefaultAuth is what a default allow needs: "user" (default) or "anyone".
	DefaultAuth string `json:"default_auth,omitempty"`
}

// RuleConfig is one rule. Every condition given must hold for the rule to match.
type RuleConfig struct {
	Name string `json:"name,omitempty"`
	// Action is "allow" or "deny".
	Action string `json:"action"`
	// Auth is what an allow needs: "user" (a signed-in user, the default) or "anyone".
	Auth      string   `json:"auth,omitempty"`
	Zones     []string `json:"zones,omitempty"`
	NotZones  []string `json:"not_zones,omitempty"`
	Users     []string `json:"users,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	NotGroups []string `json:"not_groups,omitempty"`
	Methods   []string `json:"methods,omitempty"`
	Paths     []string `json:"paths,omitempty"`
	// Factors an allow needs from the sign-in: password, otp, webauthn, any_mfa,
	// phishing_resistant. A session without them is sent to sign in again.
	Factors []string `json:"factors,omitempty"`
	// Within is how recent the sign-in must be (step-up for sensitive paths).
	Within caddy.Duration `json:"within,omitempty"`
	// Device conditions, all of which must hold: registered, managed, compliant, trusted,
	// not_trusted, unknown. Needs the devices option.
	Device []string `json:"device,omitempty"`
	// Platforms: the device's platform is one of these.
	Platforms []string `json:"platforms,omitempty"`
	// Behavior: the sign-in was flagged with one of these signals (new_device, new_ip,
	// new_country, impossible_travel). Typically with factors, to ask for one more.
	Behavior []string `json:"behavior,omitempty"`
	// RegisterDevice: an allow by this rule registers the browser as a device of the user
	// (a device cookie) when no device was identified. Needs the devices option.
	RegisterDevice bool `json:"register_device,omitempty"`
}

// BruteForceConfig tunes the IdP's sign-in limits; zero fields keep the defaults.
type BruteForceConfig struct {
	Disabled              bool           `json:"disabled,omitempty"`
	AddressLimit          int            `json:"address_limit,omitempty"`
	AddressWindow         caddy.Duration `json:"address_window,omitempty"`
	AddressBlock          caddy.Duration `json:"address_block,omitempty"`
	UserMaxFailures       int            `json:"user_max_failures,omitempty"`
	UserWindow            caddy.Duration `json:"user_window,omitempty"`
	UserLockout           caddy.Duration `json:"user_lockout,omitempty"`
	StuffingDistinctUsers int            `json:"stuffing_distinct_users,omitempty"`
	StuffingWindow        caddy.Duration `json:"stuffing_window,omitempty"`
	StuffingBlock         caddy.Duration `json:"stuffing_block,omitempty"`
}

func (b *BruteForceConfig) idp() idp.BruteForce {
	if b == nil {
		return idp.BruteForce{}
	}
	return idp.BruteForce{
		Disabled:     b.Disabled,
		AddressLimit: b.AddressLimit, AddressWindow: time.Duration(b.AddressWindow), AddressBlock: time.Duration(b.AddressBlock),
		UserMaxFailures: b.UserMaxFailures, UserWindow: time.Duration(b.UserWindow), UserLockout: time.Duration(b.UserLockout),
		StuffingDistinctUsers: b.StuffingDistinctUsers, StuffingWindow: time.Duration(b.StuffingWindow), StuffingBlock: time.Duration(b.StuffingBlock),
	}
}

// ClientConfig is an OIDC client of the embedded IdP.
type ClientConfig struct {
	ID string `json:"id"`
	// Secret makes a confidential client; without one the client is public and must use PKCE.
	// Placeholders such as {env.NAME} or {file./run/secrets/x} keep it out of the config.
	Secret                 string   `json:"secret,omitempty"`
	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// GrantTypes the client may use: authorization_code (the default), refresh_token,
	// client_credentials.
	GrantTypes []string `json:"grant_types,omitempty"`
	// Scopes the client may be granted. Default: openid profile email groups (and
	// offline_access with the refresh_token grant).
	Scopes []string `json:"scopes,omitempty"`
	// AccessTokenLifetime overrides the default access token lifetime (10m).
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`
	// RefreshTokenLifetime is the absolute lifetime of a refresh token family (default 30 days).
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`
	// CORSOrigins are the browser origins (scheme://host[:port]) allowed to call the token,
	// userinfo, JWKS, discovery, revocation and introspection endpoints. No other origin gets CORS.
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// SigningAlgorithm of the client's ID tokens: ES256 (default) or RS256 for legacy apps.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`
	// AuthMethod holds the client to one way of authenticating at the token endpoint:
	// client_secret_basic, client_secret_post, private_key_jwt or none. Default: a client with
	// a secret may send it either way; one without is public.
	AuthMethod string `json:"auth_method,omitempty"`
	// JWKS (inline JSON) or JWKSURL holds the client's public keys for private_key_jwt.
	JWKS    string `json:"jwks,omitempty"`
	JWKSURL string `json:"jwks_url,omitempty"`
	// Policy names a policy (as the gates use) that decides who may sign in to this client,
	// evaluated with the user's groups and the browser's zones; a deny reaches the client as
	// access_denied.
	Policy string `json:"policy,omitempty"`
	// BackChannelLogoutURI receives a signed logout token when a session the client got tokens
	// under ends.
	BackChannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "zonegate",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens the store and builds users, zones, policies, sessions and the IdP.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Slogger()

	if a.StorageRaw == nil {
		a.StorageRaw = json.RawMessage(`{"module":"bolt"}`)
	}
	mod, err := ctx.LoadModule(a, "StorageRaw")
	if err != nil {
		return fmt.Errorf("loading zonegate storage: %w", err)
	}
	sm, ok := mod.(StorageModule)
	if !ok {
		return fmt.Errorf("zonegate storage module %T is not a StorageModule", mod)
	}
	a.storeMod = sm
	a.store, err = sm.OpenStore(ctx)
	if err != nil {
		return err
	}

	a.secrets, err = loadSecrets(ctx, a.store)
	if err != nil {
		return err
	}
	a.metrics, err = newMetrics(ctx)
	if err != nil {
		return fmt.Errorf("zonegate metrics: %w", err)
	}
	a.store = countStoreErrors(a.store, a.metrics.storeErrs)
	if err := a.openAudit(); err != nil {
		return err
	}
	a.cache = websession.NewCache()
	if n, ok := a.store.(store.Notifier); ok {
		a.stopFollow = a.cache.Follow(n) // revocations on other nodes reach this cache
	}

	a.zones, err = a.compileZones(a.logger, 0)
	if err != nil {
		return err
	}

	if a.Devices != nil {
		if a.devices, err = newDevices(a.Devices, a.store, deviceCookieKey(a.secrets.CookieKey), a.logger.With("component", "devices")); err != nil {
			return err
		}
		a.devices.reg.OnChange(func(ctx context.Context, before, after device.Device) {
			for _, e := range deviceEvents(before, after) {
				a.audit.Record(ctx, e)
			}
		})
	}

	if err := a.openBehavior(); err != nil {
		return err
	}
	a.policies = make(map[string]*policy.Policy, len(a.Policies))
	for _, pc := range a.Policies {
		def, err := pc.def()
		if err != nil {
			return err
		}
		p, err := policy.Compile(def, a.zones)
		if err != nil {
			return fmt.Errorf("zonegate: %w", err)
		}
		if _, dup := a.policies[pc.Name]; dup {
			return fmt.Errorf("zonegate: policy %q is defined twice", pc.Name)
		}
		a.policies[pc.Name] = p
	}

	if a.devices != nil {
		ends, err := a.newSessionManager("zonegate_session")
		if err != nil {
			return err
		}
		a.devices.endSessions = func(ctx context.Context, owner, deviceID string) (int, error) {
			return ends.RevokeMatching(ctx, owner, func(s *websession.Session) bool { return s.DeviceID == deviceID })
		}
	}
	a.csrf, err = csrf.New(a.secrets.CSRFKey, "zonegate_csrf")
	if err != nil {
		return err
	}
	if a.Issuer == "" {
		return nil // no embedded IdP: gates sign people in through an external issuer
	}
	if a.UsersFile == "" {
		return errors.New("zonegate: the embedded IdP (issuer) needs a users file (users <path>)")
	}
	a.users, err = directory.OpenFile(a.UsersFile, directory.Options{Logger: a.logger, OnRevoked: a.endSessionsOf})
	if err != nil {
		return fmt.Errorf("zonegate: %w", err)
	}
	a.idpSess, err = a.newSessionManager("zonegate_idp")
	if err != nil {
		return err
	}
	if err := a.openAdmin(); err != nil {
		return err
	}
	clients := make([]idp.Client, 0, len(a.Clients)+1)
	repl := caddy.NewReplacer() // secrets may be {env.NAME} or {file./path}
	for _, c := range a.Clients {
		secret := repl.ReplaceKnown(c.Secret, "")
		if c.Secret != "" && secret == "" {
			return fmt.Errorf("zonegate: client %q: secret is empty once its placeholders are replaced", c.ID)
		}
		var signOn *policy.Policy
		if c.Policy != "" {
			if signOn, err = a.policy(c.Policy); err != nil {
				return fmt.Errorf("zonegate: client %q: %w", c.ID, err)
			}
		}
		clients = append(clients, idp.Client{
			ID: c.ID, Secret: secret, RedirectURIs: c.RedirectURIs,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
			GrantTypes:             c.GrantTypes,
			Scopes:                 c.Scopes,
			AccessTokenLifetime:    time.Duration(c.AccessTokenLifetime),
			RefreshTokenLifetime:   time.Duration(c.RefreshTokenLifetime),
			CORSOrigins:            c.CORSOrigins,
			SigningAlgorithm:       c.SigningAlgorithm,
			AuthMethod:             c.AuthMethod,
			JWKS:                   c.JWKS,
			JWKSURL:                c.JWKSURL,
			Policy:                 signOn,
			BackChannelLogoutURI:   c.BackChannelLogoutURI,
		})
	}
	clients = append(clients, idp.Client{ID: gateClientID, Secret: a.secrets.GateClientSecret, IDTokenUserinfoClaims: true})
	var otp *totp.Manager
	if a.TOTP != nil {
		settings := *a.TOTP
		if settings.Issuer == "" {
			settings.Issuer = "zonegate"
		}
		if otp, err = totp.New(a.store, settings, nil); err != nil {
			return fmt.Errorf("zonegate totp: %w", err)
		}
	}
	var keys *passkey.Manager
	if a.WebAuthn != nil {
		settings, err := a.webauthnSettings()
		if err != nil {
			return err
		}
		if keys, err = passkey.New(a.store, settings, nil); err != nil {
			return fmt.Errorf("zonegate webauthn: %w", err)
		}
	}
	a.idp, err = idp.New(ctx, idp.Config{
		Issuer:      a.Issuer,
		Store:       a.store,
		Users:       a.users,
		Sessions:    a.idpSess,
		CSRF:        a.csrf,
		CryptoKey:   a.secrets.OIDCCryptoKey,
		Clients:     clients,
		Zones:       a.zones,
		ClientIP:    clientIP,
		BruteForce:  a.BruteForce.idp(),
		SignIns:     a.metrics,
		TOTP:        otp,
		Passkeys:    keys,
		Lifecycle:   lifecycle{a.accounts},
		DeviceID:    a.idpDeviceID(),
		DeviceTrust: a.deviceTrust(),
		OnLockout:   a.lockedOut,
		NotActive:   func(err error) bool { return errors.Is(err, accounts.ErrNotActive) },
		Events:      a.audit,
		Logger:      a.logger.With("component", "idp"),
	})
	if err != nil {
		return fmt.Errorf("zonegate: starting the IdP: %w", err)
	}
	a.factors = factors{keys: keys, codes: otp}
	if a.devices != nil {
		// A device falling out of compliance also ends the IdP sessions and refresh tokens
		// started from it.
		a.devices.endSessions = a.idp.RevokeDevice
	}
	if err := a.openAdminAPI(keys, otp); err != nil {
		return err
	}
	return nil
}

// webauthnSettings are the configured WebAuthn settings with the relying party filled in
// from the issuer: its host as the id, the issuer as the one origin.
func (a *App) webauthnSettings() (passkey.Settings, error) {
	s := *a.WebAuthn
	u, err := url.Parse(a.Issuer)
	if err != nil || u.Hostname() == "" {
		return s, fmt.Errorf("zonegate webauthn: the issuer %q has no host to use as the relying party", a.Issuer)
	}
	if s.RPID == "" {
		s.RPID = u.Hostname()
	}
	if len(s.Origins) == 0 {
		s.Origins = []string{u.Scheme + "://" + u.Host}
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("zonegate webauthn: %w", err)
	}
	return s, nil
}

// zoneDefs turns the configured zones into the zones package's definitions. The app, the
// adapt-time check and the policy check all build zones through it.
func (a *App) zoneDefs() []zones.Def {
	defs := make([]zones.Def, 0, len(a.Zones))
	for _, z := range a.Zones {
		defs = append(defs, zones.Def{
			Name: z.Name, Blocklist: z.Blocklist, Entries: z.Entries,
			Countries: z.Countries, ASNs: z.ASNs, Lists: z.Lists,
		})
	}
	return defs
}

// compileZones compiles the zones, reading databases and list files. reload overrides the
// configured reload interval when not 0 (the policy check passes -1: no reloading).
func (a *App) compileZones(logger *slog.Logger, reload time.Duration) (*zones.Table, error) {
	src := zones.Sources{Logger: logger, Reload: reload}
	if a.GeoIP != nil {
		src.CountryDB, src.ASNDB = a.GeoIP.CountryDB, a.GeoIP.ASNDB
		if reload == 0 {
			src.Reload = time.Duration(a.GeoIP.Reload)
		}
	}
	t, err := zones.CompileWith(a.zoneDefs(), src)
	if err != nil {
		return nil, fmt.Errorf("zonegate zones: %w", err)
	}
	return t, nil
}

// endSessionsOf ends every session (IdP and gates, every node) of users the users file no
// longer lets in: disabled or removed.
func (a *App) endSessionsOf(users []directory.User) {
	if a.idpSess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range users {
		n, err := a.idp.RevokeUser(ctx, u.ID)
		if err != nil {
			a.logger.Error("ending the sessions of a disabled or removed user", "user", u.Username, "error", err)
			continue
		}
		a.logger.Info("ended the sessions of a disabled or removed user", "user", u.Username, "sessions", n)
	}
}

// newSessionManager returns a session manager for one cookie, sharing the app's cache.
func (a *App) newSessionManager(cookie string) (*websession.Manager, error) {
	m, err := websession.New(websession.Config{
		Store:           a.store,
		CookieName:      cookie,
		Keys:            [][]byte{a.secrets.CookieKey},
		Persistent:      a.Session.Persistent,
		IdleTimeout:     time.Duration(a.Session.IdleTimeout),
		AbsoluteTimeout: time.Duration(a.Session.AbsoluteTimeout),
		CacheTTL:        time.Duration(a.Session.CacheTTL),
		Cache:           a.cache,
	})
	if err != nil {
		return nil, fmt.Errorf("zonegate sessions: %w", err)
	}
	return m, nil
}

// Validate checks the configuration.
func (a *App) Validate() error {
	if a.Issuer != "" {
		u, err := url.Parse(a.Issuer)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("zonegate: issuer %q is not an absolute http(s) URL", a.Issuer)
		}
	}
	return nil
}

// Start implements caddy.App: the system log's writer and hook deliveries start, and the
// admin endpoint's zonegate routes serve this config.
func (a *App) Start() error {
	a.audit.Start()
	running.Store(a)
	return nil
}

// Stop implements caddy.App.
func (a *App) Stop() error {
	running.CompareAndSwap(a, nil)
	return nil
}

// Cleanup releases what Provision took (the store goes back to its pool).
func (a *App) Cleanup() error {
	var errs []error
	if a.stopFollow != nil {
		a.stopFollow()
	}
	errs = append(errs, a.behavior.close())
	if a.audit != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs = append(errs, a.audit.Close(ctx)) // writes what is buffered; queued hooks stay in the store
		cancel()
	}
	if a.zones != nil {
		errs = append(errs, a.zones.Close()) // stops re-reading list files and databases
	}
	if a.users != nil {
		errs = append(errs, a.users.Close())
	}
	if a.storeMod != nil {
		errs = append(errs, a.storeMod.CloseStore())
	}
	return errors.Join(errs...)
}

// policy returns a named policy or an error that lists the defined ones.
func (a *App) policy(name string) (*policy.Policy, error) {
	if p, ok := a.policies[name]; ok {
		return p, nil
	}
	names := make([]string, 0, len(a.policies))
	for n := range a.policies {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("unknown policy %q: the zonegate option defines no policies", name)
	}
	return nil, fmt.Errorf("unknown policy %q (defined: %s)", name, strings.Join(names, ", "))
}

func (pc PolicyConfig) def() (policy.Def, error) {
	d := policy.Def{Name: pc.Name}
	var err error
	if d.Default, err = parseAction(pc.Default, "deny"); err != nil {
		return d, fmt.Errorf("zonegate: policy %q: default: %w", pc.Name, err)
	}
	if d.DefaultAuth, err = parseAuth(pc.DefaultAuth); err != nil {
		return d, fmt.Errorf("zonegate: policy %q: default: %w", pc.Name, err)
	}
	for i, rc := range pc.Rules {
		r := policy.RuleDef{
			Name: rc.Name, Zones: rc.Zones, NotZones: rc.NotZones, Users: rc.Users,
			Groups: rc.Groups, NotGroups: rc.NotGroups, Methods: rc.Methods, Paths: rc.Paths,
			Device: rc.Device, Platforms: rc.Platforms, Behavior: rc.Behavior, RegisterDevice: rc.RegisterDevice,
			Factors: rc.Factors, Within: time.Duration(rc.Within),
		}
		if r.Action, err = parseAction(rc.Action, ""); err != nil {
			return d, fmt.Errorf("zonegate: policy %q: rule %d: %w", pc.Name, i+1, err)
		}
		if r.Auth, err = parseAuth(rc.Auth); err != nil {
			return d, fmt.Errorf("zonegate: policy %q: rule %d: %w", pc.Name, i+1, err)
		}
		d.Rules = append(d.Rules, r)
	}
	return d, nil
}

func parseAction(s, def string) (policy.Action, error) {
	if s == "" {
		s = def
	}
	switch s {
	case "allow":
		return policy.Allow, nil
	case "deny":
		return policy.Deny, nil
	}
	return policy.Deny, fmt.Errorf("action %q is not allow or deny", s)
}

func parseAuth(s string) (policy.Auth, error) {
	switch s {
	case "", "user":
		return policy.AuthUser, nil
	case "anyone":
		return policy.AuthNone, nil
	}
	return policy.AuthUser, fmt.Errorf("%q is not user or anyone", s)
}

// Health reports whether the store answers.
func (a *App) Health(ctx context.Context) error { return a.store.Health(ctx) }

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

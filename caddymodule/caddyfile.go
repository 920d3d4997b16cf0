package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/behavior"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/zones"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("zonegate", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("zonegate_gate", parseGate)
	httpcaddyfile.RegisterHandlerDirective("zonegate_idp", parseIdP)
	// The gate decides before anything answers or proxies, after rewrites (so it sees the path
	// the backend will see) and basic_auth.
	httpcaddyfile.RegisterDirectiveOrder("zonegate_gate", httpcaddyfile.After, "basic_auth")
	httpcaddyfile.RegisterDirectiveOrder("zonegate_idp", httpcaddyfile.Before, "respond")
}

// parseGlobalOption parses the global zonegate option into the zonegate app. Syntax:
//
//	zonegate {
//	    issuer <url>                  # the embedded IdP, served by zonegate_idp on that site
//	    users <path>                  # YAML users file (Authelia's format)
//	    storage bolt [<path>]         # default: zonegate/zonegate.db in Caddy's data directory
//	    storage redis [<url>] {       # several gateways sharing users
//	        url redis://host:6379/0   # or rediss:// for TLS
//	        sentinel <master> <addr>...
//	        cluster <addr>...
//	        username <name>
//	        password <password>       # {env.REDIS_PASSWORD} or {file./run/secrets/redis}
//	        key_prefix <prefix>       # default zonegate:
//	    }
//	    session {
//	        idle_timeout <duration>   # default 1h
//	        absolute_timeout <duration> # default 12h
//	        persistent                # cookies survive a browser restart
//	        cache_ttl <duration>      # default 2s
//	    }
//	    totp {                        # authenticator apps as a second factor (enroll at <issuer>/account/totp)
//	        issuer <name>             # shown in the app; default zonegate
//	        digits 6|8
//	        period 30s|60s
//	        algorithm SHA1|SHA256|SHA512
//	        skew <periods>            # default 1
//	        max_devices <n>           # default 5
//	        when_full refuse|replace_oldest|replace_lru
//	        show_secret               # show the secret beside the QR code
//	    }
//	    webauthn {                    # security keys and passkeys (manage at <issuer>/account)
//	        rp_id <domain>            # default: the issuer's host
//	        rp_name <name>            # default zonegate
//	        origins <origin>...       # default: the issuer
//	        user_verification required|preferred|discouraged   # default required
//	        attestation none|indirect|direct                   # default none
//	        resident_key preferred|required|discouraged        # default preferred (passkeys)
//	        attachment platform|cross-platform                 # default any
//	        aaguids <uuid>...         # allow only these authenticator models
//	        max_credentials <n>       # per user, default 10
//	        timeout <duration>        # of one prompt, default 5m
//	    }
//	    audit {                       # the system log (always on) and its event hooks
//	        retention <duration>      # default 90d
//	        hook <name> <url> {       # signed JSON deliveries, queued in the store
//	            secret <secret>       # 32+ bytes; {env.HOOK_SECRET} or {file./run/secrets/hook}
//	            events <type>...      # e.g. user.session.* application.access.deny
//	            max_attempts <n>      # default 12
//	        }
//	    }
//	    behavior {                    # sign-in history for rules' behavior conditions
//	        max_speed <km/h>          # impossible_travel above this; default 900
//	        min_distance <km>         # shorter journeys never count; default 100
//	        history <n>               # sign-ins kept per user; default 50
//	        retention <duration>      # default 180d
//	    }
//	    devices {                     # identify devices by their client certificate
//	        id_from san_uri|san_dns|cn|serial [<prefix>]   # e.g. san_uri urn:device:udid:
//	        mdm_webhook_secret <secret>...  # HMAC keys of the MDM compliance webhook
//	        cache_ttl <duration>      # default 1s
//	    }
//	    brute_force off | {           # sign-in limits of the embedded IdP
//	        address <n>/<window> [block <duration>]      # default 30/1m block 1m
//	        user <n>/<window> [lockout <duration>]       # default 20/15m lockout 15m
//	        stuffing <users>/<window> [block <duration>] # default 10/10m block 30m
//	    }
//	    geoip {                       # MaxMind-format databases, for country/region/asn zones
//	        country_db <path.mmdb>    # GeoIP2/GeoLite2 City (regions) or Country
//	        asn_db <path.mmdb>        # GeoLite2-ASN
//	        reload <duration>         # how often files are checked for changes; default 1m
//	    }
//	    zone <name> [<cidr|ip|a-b>...] {
//	        blocklist                 # deny everything from this zone, before sign-in
//	        <cidr|ip|a-b>...
//	        country <CC>...           # e.g. DE FR
//	        region <CC-SUB>...        # e.g. DE-BY
//	        asn <number>...           # e.g. 64500 AS13335
//	        list <file>...            # addresses/CIDRs/ranges one per line, re-read on change
//	    }
//	    policy <name> {
//	        rule [<name>] {           # first matching rule wins
//	            allow [user|anyone] [<factor>...] [within <duration>]   # or: deny
//	                                  # factors: password otp webauthn any_mfa phishing_resistant
//	            zone <zone>...        # client in any of these zones
//	            not_zone <zone>...
//	            user <username>...
//	            group <group>...
//	            not_group <group>...
//	            method <METHOD>...
//	            path <pattern>...     # /exact, /prefix/*, or a glob
//	            device registered|managed|compliant|trusted|not_trusted|unknown...  # all must hold
//	            platform <name>...    # windows, macos, ios, android, linux
//	        }
//	        default deny|allow [user|anyone]   # when no rule matches; deny if not given
//	    }
//	    client <id> {                 # an OIDC app signing in through the IdP
//	        secret <secret>           # omit for a public client (PKCE required); {env.X} works
//	        redirect_uri <uri>...
//	        post_logout_redirect_uri <uri>...
//	        grant_types authorization_code|refresh_token|client_credentials...
//	        scopes <scope>...         # what it may be granted
//	        access_token_lifetime <duration>
//	        refresh_token_lifetime <duration>
//	        cors_origins <origin>...  # browser apps: https://app.example.com
//	        signing_algorithm ES256|RS256
//	        auth_method client_secret_basic|client_secret_post|private_key_jwt|none
//	        jwks <json> | jwks_url <url>   # the client's keys, for private_key_jwt
//	        policy <name>             # who may sign in to this app (zones, groups)
//	        backchannel_logout_uri <url>
//	    }
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the zonegate option is given twice")
	}
	app := new(App)
	var policyLines []int
	var webauthnLine int
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "issuer":
			if !d.AllArgs(&app.Issuer) {
				return nil, d.ArgErr()
			}
		case "users":
			if !d.AllArgs(&app.UsersFile) {
				return nil, d.ArgErr()
			}
		case "storage":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			switch d.Val() {
			case "bolt":
				var b BoltStorage
				if d.NextArg() {
					b.Path = d.Val()
				}
				if d.NextArg() {
					return nil, d.ArgErr()
				}
				app.StorageRaw = caddyconfig.JSONModuleObject(b, "module", "bolt", nil)
			case "redis":
				rs, err := parseRedisStorage(d)
				if err != nil {
					return nil, err
				}
				app.StorageRaw = caddyconfig.JSONModuleObject(rs, "module", "redis", nil)
			default:
				return nil, d.Errf("unknown storage %q (use bolt or redis)", d.Val())
			}
		case "webauthn":
			webauthnLine = d.Line()
			ws, err := parseWebAuthn(d)
			if err != nil {
				return nil, err
			}
			if app.WebAuthn != nil {
				return nil, d.Err("webauthn: set more than once")
			}
			app.WebAuthn = ws
		case "behavior":
			bc, err := parseBehavior(d)
			if err != nil {
				return nil, err
			}
			if app.Behavior != nil {
				return nil, d.Err("behavior: set more than once")
			}
			app.Behavior = bc
		case "audit":
			ac, err := parseAudit(d)
			if err != nil {
				return nil, err
			}
			if app.Audit != nil {
				return nil, d.Err("audit: set more than once")
			}
			app.Audit = ac
		case "totp":
			ts, err := parseTOTP(d)
			if err != nil {
				return nil, err
			}
			app.TOTP = ts
		case "devices":
			dc, err := parseDevices(d)
			if err != nil {
				return nil, err
			}
			app.Devices = dc
		case "brute_force":
			bf, err := parseBruteForce(d)
			if err != nil {
				return nil, err
			}
			app.BruteForce = bf
		case "geoip":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			g := new(GeoIPConfig)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "country_db":
					if !d.AllArgs(&g.CountryDB) {
						return nil, d.ArgErr()
					}
				case "asn_db":
					if !d.AllArgs(&g.ASNDB) {
						return nil, d.ArgErr()
					}
				case "reload":
					var v string
					if !d.AllArgs(&v) {
						return nil, d.ArgErr()
					}
					dur, err := caddy.ParseDuration(v)
					if err != nil || dur <= 0 {
						return nil, d.Errf("geoip reload: %q is not a positive duration", v)
					}
					g.Reload = caddy.Duration(dur)
				default:
					return nil, d.Errf("unknown geoip option %q (want country_db, asn_db or reload)", d.Val())
				}
			}
			app.GeoIP = g
		case "session":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if err := parseSession(d, &app.Session); err != nil {
				return nil, err
			}
		case "zone":
			z, err := parseZone(d)
			if err != nil {
				return nil, err
			}
			app.Zones = append(app.Zones, z)
		case "policy":
			policyLines = append(policyLines, d.Line())
			p, err := parsePolicy(d)
			if err != nil {
				return nil, err
			}
			for _, other := range app.Policies {
				if other.Name == p.Name {
					return nil, d.Errf("policy %q is defined twice", p.Name)
				}
			}
			app.Policies = append(app.Policies, p)
		case "client":
			c, err := parseClient(d)
			if err != nil {
				return nil, err
			}
			app.Clients = append(app.Clients, c)
		default:
			return nil, d.Errf("unknown zonegate option %q (want issuer, users, storage, session, totp, webauthn, audit, behavior, devices, brute_force, geoip, zone, policy or client)", d.Val())
		}
	}
	if err := checkZonesAndPolicies(d, app, policyLines); err != nil {
		return nil, err
	}
	if app.WebAuthn != nil && app.Issuer != "" {
		if _, err := app.webauthnSettings(); err != nil {
			return nil, d.Errf("%v (webauthn at line %d)", strings.TrimPrefix(err.Error(), "zonegate "), webauthnLine)
		}
	}
	return httpcaddyfile.App{Name: "zonegate", Value: caddyconfig.JSON(app, nil)}, nil
}

// zoneNames resolves zone names to indexes for compiling policies at adapt time.
type zoneNames map[string]int

// Index implements policy.ZoneIndex.
func (z zoneNames) Index(name string) (int, bool) {
	i, ok := z[name]
	return i, ok
}

// checkZonesAndPolicies compiles the zones and policies as the app will, so a mistake (a
// duplicate zone, a rule naming a zone that does not exist, a bad path pattern) is reported
// with the file and line when the Caddyfile is adapted, not later without them.
func checkZonesAndPolicies(d *caddyfile.Dispenser, app *App, policyLines []int) error {
	// Zone names only: databases and list files are read when the config runs (adapting may
	// happen on another machine), and each static entry was checked where it was written.
	table := zoneNames{}
	for i, z := range app.Zones {
		if _, dup := table[z.Name]; dup {
			return d.Errf("zone %q is defined twice", z.Name)
		}
		if len(z.Entries)+len(z.Countries)+len(z.ASNs)+len(z.Lists) == 0 {
			return d.Errf("zone %q: no addresses, countries, ASNs or lists", z.Name)
		}
		if (len(z.Countries) > 0 && (app.GeoIP == nil || app.GeoIP.CountryDB == "")) ||
			(len(z.ASNs) > 0 && (app.GeoIP == nil || app.GeoIP.ASNDB == "")) {
			return d.Errf("zone %q names countries or ASNs: add geoip { country_db ... asn_db ... }", z.Name)
		}
		table[z.Name] = i
	}
	if app.Devices == nil {
		for _, pc := range app.Policies {
			for i, rc := range pc.Rules {
				if len(rc.Device)+len(rc.Platforms) > 0 || rc.RegisterDevice {
					return d.Errf("policy %q: rule %d: device conditions need the devices option (how devices are identified)", pc.Name, i+1)
				}
			}
		}
	}
	for _, c := range app.Clients {
		if c.Policy == "" {
			continue
		}
		if !slices.ContainsFunc(app.Policies, func(p PolicyConfig) bool { return p.Name == c.Policy }) {
			return d.Errf("client %q: unknown policy %q", c.ID, c.Policy)
		}
	}
	for i, pc := range app.Policies {
		def, err := pc.def()
		if err == nil {
			_, err = policy.Compile(def, table)
		}
		if err != nil {
			return d.Errf("%v (policy at line %d)", strings.TrimPrefix(err.Error(), "zonegate: "), policyLines[i])
		}
	}
	return nil
}

func parseTOTP(d *caddyfile.Dispenser) (*totp.Settings, error) {
	ts := new(totp.Settings)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if key == "show_secret" {
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			ts.ShowSecret = true
			continue
		}
		var v string
		if !d.AllArgs(&v) {
			return nil, d.ArgErr()
		}
		switch key {
		case "issuer":
			ts.Issuer = v
		case "algorithm":
			ts.Algorithm = v
		case "when_full":
			ts.WhenFull = v
		case "period":
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return nil, d.Errf("totp period %q: %v", v, err)
			}
			ts.Period = dur
		case "digits", "skew", "max_devices":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, d.Errf("totp %s %q: not a number", key, v)
			}
			switch key {
			case "digits":
				ts.Digits = n
			case "skew":
				ts.Skew = uint(n)
			default:
				ts.MaxDevices = n
			}
		default:
			return nil, d.Errf("unknown totp option %q (want issuer, digits, period, algorithm, skew, max_devices, when_full or show_secret)", key)
		}
	}
	// The totp package checks the values themselves; do it here too so the error has a line.
	if err := ts.Validate(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return ts, nil
}

func parseWebAuthn(d *caddyfile.Dispenser) (*passkey.Settings, error) {
	ws := new(passkey.Settings)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return nil, d.ArgErr()
		}
		multi := key == "origins" || key == "aaguids"
		if !multi && len(args) != 1 {
			return nil, d.Errf("webauthn %s: want one value, got %d", key, len(args))
		}
		switch key {
		case "rp_id":
			ws.RPID = args[0]
		case "rp_name":
			ws.RPDisplayName = args[0]
		case "origins":
			ws.Origins = append(ws.Origins, args...)
		case "user_verification":
			ws.UserVerification = args[0]
		case "attestation":
			ws.Attestation = args[0]
		case "resident_key":
			ws.ResidentKey = args[0]
		case "attachment":
			ws.Attachment = args[0]
		case "aaguids":
			ws.AllowedAAGUIDs = append(ws.AllowedAAGUIDs, args...)
		case "max_credentials":
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return nil, d.Errf("webauthn max_credentials %q: not a positive number", args[0])
			}
			ws.MaxCredentials = n
		case "timeout":
			dur, err := caddy.ParseDuration(args[0])
			if err != nil {
				return nil, d.Errf("webauthn timeout %q: %v", args[0], err)
			}
			ws.Timeout = dur
		default:
			return nil, d.Errf("unknown webauthn option %q (want rp_id, rp_name, origins, user_verification, attestation, resident_key, attachment, aaguids, max_credentials or timeout)", key)
		}
		// Each value is checked where it is written, so the error names its line; the relying
		// party and origins are checked again with the issuer at adapt time.
		if err := probeWebAuthn(*ws); err != nil {
			return nil, d.Errf("webauthn %s: %v", key, err)
		}
	}
	return ws, nil
}

func parseBehavior(d *caddyfile.Dispenser) (*BehaviorConfig, error) {
	bc := new(BehaviorConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.ArgErr()
		}
		switch key {
		case "max_speed", "min_distance":
			f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSuffix(v, "km/h"), "km"), 64)
			if err != nil || f <= 0 || f > 1e6 {
				return nil, d.Errf("behavior %s %q: want a positive number", key, v)
			}
			if key == "max_speed" {
				bc.MaxSpeedKMH = f
			} else {
				bc.MinDistanceKM = f
			}
		case "history":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return nil, d.Errf("behavior history %q: want 1 to 10000", v)
			}
			bc.History = n
		case "retention":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("behavior retention %q: want a positive duration", v)
			}
			bc.Retention = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown behavior option %q (want max_speed, min_distance, history or retention)", key)
		}
	}
	return bc, nil
}

func parseAudit(d *caddyfile.Dispenser) (*AuditConfig, error) {
	ac := new(AuditConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "retention":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < time.Hour {
				return nil, d.Errf("audit retention %q: want a duration of at least 1h", v)
			}
			ac.Retention = caddy.Duration(dur)
		case "hook":
			var h HookConfig
			if !d.AllArgs(&h.Name, &h.URL) {
				return nil, d.Err("audit hook: want hook <name> <url> { secret ... events ... }")
			}
			line := d.Line()
			for hn := d.Nesting(); d.NextBlock(hn); {
				key := d.Val()
				args := d.RemainingArgs()
				switch {
				case key == "secret" && len(args) == 1:
					h.Secret = args[0]
				case key == "events" && len(args) > 0:
					h.Events = append(h.Events, args...)
				case key == "max_attempts" && len(args) == 1:
					n, err := strconv.Atoi(args[0])
					if err != nil || n < 1 {
						return nil, d.Errf("audit hook %s: max_attempts %q: not a positive number", h.Name, args[0])
					}
					h.MaxAttempts = n
				default:
					return nil, d.Errf("audit hook %s: unknown or incomplete option %q (want secret <secret>, events <type>... or max_attempts <n>)", h.Name, key)
				}
			}
			// Placeholders are resolved when the config runs; check the shape here with a
			// stand-in secret when the real one is a placeholder.
			probe := audit.Hook{Name: h.Name, URL: h.URL, Secret: h.Secret, Types: h.Events, MaxAttempts: h.MaxAttempts}
			if strings.Contains(h.Secret, "{") {
				probe.Secret = strings.Repeat("x", 32)
			}
			if err := probe.Validate(); err != nil {
				return nil, d.Errf("audit hook %s (line %d): %v", h.Name, line, err)
			}
			for _, o := range ac.Hooks {
				if o.Name == h.Name {
					return nil, d.Errf("audit hook %q is defined twice", h.Name)
				}
			}
			ac.Hooks = append(ac.Hooks, h)
		default:
			return nil, d.Errf("unknown audit option %q (want retention or hook)", d.Val())
		}
	}
	return ac, nil
}

// probeWebAuthn checks settings whose relying party may still be left to the issuer.
func probeWebAuthn(ws passkey.Settings) error {
	if ws.RPID == "" {
		ws.RPID = "localhost"
		if len(ws.Origins) > 0 {
			if u, err := url.Parse(ws.Origins[0]); err == nil && u.Hostname() != "" {
				ws.RPID = u.Hostname()
			}
		}
	}
	if len(ws.Origins) == 0 {
		ws.Origins = []string{"https://" + ws.RPID}
	}
	return ws.Validate()
}

func parseDevices(d *caddyfile.Dispenser) (*DevicesConfig, error) {
	dc := new(DevicesConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "id_from":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return nil, d.Err("id_from takes a field (san_uri, san_dns, cn or serial) and an optional prefix")
			}
			switch args[0] {
			case "san_uri", "san_dns", "cn", "serial":
			default:
				return nil, d.Errf("id_from %q: want san_uri, san_dns, cn or serial", args[0])
			}
			dc.IDFrom = args[0]
			if len(args) == 2 {
				dc.IDPrefix = args[1]
			}
		case "mdm_webhook_secret":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			dc.WebhookSecrets = append(dc.WebhookSecrets, args...)
		case "cache_ttl":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("devices cache_ttl: %q is not a positive duration", v)
			}
			dc.CacheTTL = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown devices option %q (want id_from, mdm_webhook_secret or cache_ttl)", d.Val())
		}
	}
	if dc.IDFrom == "" {
		return nil, d.Err("devices needs id_from")
	}
	return dc, nil
}

func parseBruteForce(d *caddyfile.Dispenser) (*BruteForceConfig, error) {
	bf := new(BruteForceConfig)
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Err("brute_force takes off, or a block")
		}
		bf.Disabled = true
		return bf, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if len(args) != 1 && len(args) != 3 {
			return nil, d.Errf("brute_force %s: want <n>/<window> [block|lockout <duration>]", key)
		}
		n, window, err := parseRate(args[0])
		if err != nil {
			return nil, d.Errf("brute_force %s: %v", key, err)
		}
		var block time.Duration
		if len(args) == 3 {
			want := "block"
			if key == "user" {
				want = "lockout"
			}
			if args[1] != want {
				return nil, d.Errf("brute_force %s: want %s <duration>, got %q", key, want, args[1])
			}
			if block, err = caddy.ParseDuration(args[2]); err != nil || block <= 0 {
				return nil, d.Errf("brute_force %s: %s %q is not a positive duration", key, want, args[2])
			}
		}
		switch key {
		case "address":
			bf.AddressLimit, bf.AddressWindow, bf.AddressBlock = n, caddy.Duration(window), caddy.Duration(block)
		case "user":
			if n < 2 {
				return nil, d.Err("brute_force user: allow at least 2 failures")
			}
			bf.UserMaxFailures, bf.UserWindow, bf.UserLockout = n, caddy.Duration(window), caddy.Duration(block)
		case "stuffing":
			bf.StuffingDistinctUsers, bf.StuffingWindow, bf.StuffingBlock = n, caddy.Duration(window), caddy.Duration(block)
		default:
			return nil, d.Errf("unknown brute_force option %q (want address, user or stuffing)", key)
		}
	}
	return bf, nil
}

// parseRate reads "<n>/<duration>", such as 20/15m.
func parseRate(s string) (int, time.Duration, error) {
	ns, ds, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n < 1 {
		return 0, 0, fmt.Errorf("%q is not <count>/<window>, like 20/15m", s)
	}
	d, err := caddy.ParseDuration(ds)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: the window is not a positive duration", s)
	}
	return n, d, nil
}

func parseRedisStorage(d *caddyfile.Dispenser) (*RedisStorage, error) {
	rs := new(RedisStorage)
	if d.NextArg() {
		rs.URL = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "url":
			if !d.AllArgs(&rs.URL) {
				return nil, d.ArgErr()
			}
		case "sentinel":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return nil, d.Err("sentinel takes a master name and at least one sentinel address")
			}
			rs.MasterName, rs.SentinelAddrs = args[0], args[1:]
		case "cluster":
			rs.ClusterAddrs = d.RemainingArgs()
			if len(rs.ClusterAddrs) == 0 {
				return nil, d.ArgErr()
			}
		case "username":
			if !d.AllArgs(&rs.Username) {
				return nil, d.ArgErr()
			}
		case "password":
			if !d.AllArgs(&rs.Password) {
				return nil, d.ArgErr()
			}
		case "key_prefix":
			if !d.AllArgs(&rs.KeyPrefix) {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unknown redis storage option %q (want url, sentinel, cluster, username, password or key_prefix)", d.Val())
		}
	}
	n := 0
	for _, set := range []bool{rs.URL != "", rs.MasterName != "", len(rs.ClusterAddrs) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, d.Err("storage redis needs exactly one of: a url, sentinel, or cluster")
	}
	return rs, nil
}

func parseSession(d *caddyfile.Dispenser, s *SessionConfig) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "idle_timeout", "absolute_timeout", "cache_ttl":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("session %s: %q is not a positive duration", opt, v)
			}
			switch opt {
			case "idle_timeout":
				s.IdleTimeout = caddy.Duration(dur)
			case "absolute_timeout":
				s.AbsoluteTimeout = caddy.Duration(dur)
			default:
				s.CacheTTL = caddy.Duration(dur)
			}
		case "persistent":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.Persistent = true
		default:
			return d.Errf("unknown session option %q (want idle_timeout, absolute_timeout, persistent or cache_ttl)", opt)
		}
	}
	if s.IdleTimeout > 0 && s.AbsoluteTimeout > 0 && s.IdleTimeout > s.AbsoluteTimeout {
		return d.Err("session idle_timeout is longer than absolute_timeout")
	}
	return nil
}

func parseZone(d *caddyfile.Dispenser) (ZoneConfig, error) {
	var z ZoneConfig
	if !d.NextArg() {
		return z, d.ArgErr()
	}
	z.Name = d.Val()
	// Each entry is checked where it is written, so the error names its line.
	add := func(entry string) error {
		if _, _, err := zones.ParseEntry(entry); err != nil {
			return d.Errf("zone %q: entry %q: %v", z.Name, entry, err)
		}
		z.Entries = append(z.Entries, entry)
		return nil
	}
	for d.NextArg() {
		if err := add(d.Val()); err != nil {
			return z, err
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "blocklist":
			if d.NextArg() {
				return z, d.ArgErr()
			}
			z.Blocklist = true
			continue
		case "country", "region":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return z, d.ArgErr()
			}
			z.Countries = append(z.Countries, args...)
			continue
		case "asn":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return z, d.ArgErr()
			}
			for _, a := range args {
				n, err := zones.ParseASN(a)
				if err != nil {
					return z, d.Errf("zone %q: asn %q: %v", z.Name, a, err)
				}
				z.ASNs = append(z.ASNs, n)
			}
			continue
		case "list":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return z, d.ArgErr()
			}
			z.Lists = append(z.Lists, args...)
			continue
		}
		if err := add(d.Val()); err != nil {
			return z, err
		}
		for d.NextArg() {
			if err := add(d.Val()); err != nil {
				return z, err
			}
		}
	}
	return z, nil
}

func parsePolicy(d *caddyfile.Dispenser) (PolicyConfig, error) {
	var p PolicyConfig
	if !d.NextArg() {
		return p, d.ArgErr()
	}
	p.Name = d.Val()
	if d.NextArg() {
		return p, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "rule":
			r, err := parseRule(d, len(p.Rules)+1)
			if err != nil {
				return p, err
			}
			p.Rules = append(p.Rules, r)
		case "default":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "deny":
				p.Default = "deny"
			case len(args) >= 1 && len(args) <= 2 && args[0] == "allow":
				p.Default = "allow"
				if len(args) == 2 {
					if args[1] != "user" && args[1] != "anyone" {
						return p, d.Errf("default allow %q: want user or anyone", args[1])
					}
					p.DefaultAuth = args[1]
				}
			default:
				return p, d.Err("default takes deny, or allow [user|anyone]")
			}
		default:
			return p, d.Errf("unknown policy option %q (want rule or default)", d.Val())
		}
	}
	return p, nil
}

func parseRule(d *caddyfile.Dispenser, n int) (RuleConfig, error) {
	var r RuleConfig
	if d.NextArg() {
		r.Name = d.Val()
	}
	if d.NextArg() {
		return r, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		switch key {
		case "allow":
			if r.Action != "" {
				return r, d.Errf("rule %d: more than one action", n)
			}
			r.Action = "allow"
			// allow [user|anyone] [<factor>...] [within <duration>]
			if len(args) > 0 && (args[0] == "user" || args[0] == "anyone") {
				r.Auth, args = args[0], args[1:]
			}
			for len(args) > 0 {
				switch a := args[0]; a {
				case "within":
					if len(args) < 2 {
						return r, d.Errf("rule %d: within needs a duration, like within 5m", n)
					}
					dur, err := caddy.ParseDuration(args[1])
					if err != nil || dur <= 0 {
						return r, d.Errf("rule %d: within %q is not a positive duration", n, args[1])
					}
					r.Within = caddy.Duration(dur)
					args = args[2:]
				case "password", "otp", "webauthn", "any_mfa", "phishing_resistant", "user_verified":
					r.Factors = append(r.Factors, a)
					args = args[1:]
				default:
					return r, d.Errf("rule %d: allow takes user or anyone, then factors (password, otp, webauthn, any_mfa, phishing_resistant, user_verified) and within <duration>; got %q", n, a)
				}
			}
		case "deny":
			if r.Action != "" {
				return r, d.Errf("rule %d: more than one action", n)
			}
			if len(args) != 0 {
				return r, d.ArgErr()
			}
			r.Action = "deny"
		case "register_device":
			if len(args) != 0 {
				return r, d.ArgErr()
			}
			r.RegisterDevice = true
		case "zone", "not_zone", "user", "group", "not_group", "method", "path", "device", "platform", "behavior":
			if len(args) == 0 {
				return r, d.Errf("rule %d: %s needs at least one value", n, key)
			}
			switch key {
			case "zone":
				r.Zones = append(r.Zones, args...)
			case "not_zone":
				r.NotZones = append(r.NotZones, args...)
			case "user":
				r.Users = append(r.Users, args...)
			case "group":
				r.Groups = append(r.Groups, args...)
			case "not_group":
				r.NotGroups = append(r.NotGroups, args...)
			case "method":
				for _, m := range args {
					r.Methods = append(r.Methods, strings.ToUpper(m))
				}
			case "path":
				r.Paths = append(r.Paths, args...)
			case "device":
				r.Device = append(r.Device, args...)
			case "platform":
				r.Platforms = append(r.Platforms, args...)
			case "behavior":
				for _, a := range args {
					if _, err := behavior.ParseSignal(a); err != nil {
						return r, d.Errf("rule %d: %v", n, err)
					}
				}
				r.Behavior = append(r.Behavior, args...)
			}
		default:
			return r, d.Errf("rule %d: unknown condition %q (want allow, deny, zone, not_zone, user, group, not_group, method, path, device, platform, behavior or register_device)", n, key)
		}
	}
	if r.Action == "" {
		return r, d.Errf("rule %d: no action: add allow [user|anyone] or deny", n)
	}
	return r, nil
}

func parseClient(d *caddyfile.Dispenser) (ClientConfig, error) {
	var c ClientConfig
	if !d.NextArg() {
		return c, d.ArgErr()
	}
	c.ID = d.Val()
	if d.NextArg() {
		return c, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "secret":
			if !d.AllArgs(&c.Secret) {
				return c, d.ArgErr()
			}
		case "redirect_uri":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			c.RedirectURIs = append(c.RedirectURIs, args...)
		case "post_logout_redirect_uri":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, args...)
		case "grant_types", "scopes", "cors_origins":
			key := d.Val()
			args := d.RemainingArgs()
			if len(args) == 0 {
				return c, d.ArgErr()
			}
			switch key {
			case "grant_types":
				for _, gt := range args {
					switch gt {
					case "authorization_code", "refresh_token", "client_credentials":
					default:
						return c, d.Errf("client %q: unknown grant type %q (want authorization_code, refresh_token or client_credentials)", c.ID, gt)
					}
				}
				c.GrantTypes = append(c.GrantTypes, args...)
			case "scopes":
				c.Scopes = append(c.Scopes, args...)
			default:
				c.CORSOrigins = append(c.CORSOrigins, args...)
			}
		case "access_token_lifetime", "refresh_token_lifetime":
			key := d.Val()
			var v string
			if !d.AllArgs(&v) {
				return c, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return c, d.Errf("client %q: %s %q is not a positive duration", c.ID, key, v)
			}
			if key == "access_token_lifetime" {
				c.AccessTokenLifetime = caddy.Duration(dur)
			} else {
				c.RefreshTokenLifetime = caddy.Duration(dur)
			}
		case "auth_method":
			if !d.AllArgs(&c.AuthMethod) {
				return c, d.ArgErr()
			}
			switch c.AuthMethod {
			case "client_secret_basic", "client_secret_post", "private_key_jwt", "none":
			default:
				return c, d.Errf("client %q: auth_method %q: want client_secret_basic, client_secret_post, private_key_jwt or none", c.ID, c.AuthMethod)
			}
		case "jwks":
			if !d.AllArgs(&c.JWKS) {
				return c, d.ArgErr()
			}
		case "jwks_url":
			if !d.AllArgs(&c.JWKSURL) {
				return c, d.ArgErr()
			}
		case "policy":
			if !d.AllArgs(&c.Policy) {
				return c, d.ArgErr()
			}
		case "backchannel_logout_uri":
			if !d.AllArgs(&c.BackChannelLogoutURI) {
				return c, d.ArgErr()
			}
		case "signing_algorithm":
			if !d.AllArgs(&c.SigningAlgorithm) {
				return c, d.ArgErr()
			}
			if c.SigningAlgorithm != "ES256" && c.SigningAlgorithm != "RS256" {
				return c, d.Errf("client %q: signing_algorithm %q: want ES256 or RS256", c.ID, c.SigningAlgorithm)
			}
		default:
			return c, d.Errf("client %q: unknown option %q (want secret, redirect_uri, post_logout_redirect_uri, grant_types, scopes, access_token_lifetime, refresh_token_lifetime, cors_origins, signing_algorithm, auth_method, jwks, jwks_url, policy or backchannel_logout_uri)", c.ID, d.Val())
		}
	}
	serviceOnly := len(c.GrantTypes) > 0
	for _, gt := range c.GrantTypes {
		if gt != "client_credentials" {
			serviceOnly = false
		}
	}
	if len(c.RedirectURIs) == 0 && !serviceOnly {
		return c, d.Errf("client %q: no redirect_uri", c.ID)
	}
	return c, nil
}

// parseGate sets up the gate. Syntax:
//
//	zonegate_gate [<policy>] {
//	    policy <name>             # a policy of the zonegate option (or give it as the argument)
//	    url <base url>            # this site's external URL, e.g. https://app.example.com
//	    headers default|authelia|oauth2-proxy   # identity header names (default: X-Remote-*)
//	    header user|email|name|groups|auth_methods|assertion|device_trust <Header-Name|off>
//	    oidc {                    # sign in through an external issuer instead of the embedded IdP
//	        issuer <url>
//	        client_id <id>
//	        client_secret <secret>  # e.g. {env.OKTA_CLIENT_SECRET} or {file./run/secrets/okta}
//	        scopes <scope>...       # default: openid profile email groups
//	        groups_claim <claim>    # default: groups
//	    }
//	}
func parseGate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gate)
	h.Next()
	if h.NextArg() {
		g.Policy = h.Val()
	}
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	for h.NextBlock(0) {
		switch h.Val() {
		case "policy":
			if !h.AllArgs(&g.Policy) {
				return nil, h.ArgErr()
			}
		case "url":
			if !h.AllArgs(&g.URL) {
				return nil, h.ArgErr()
			}
		case "headers":
			if !h.AllArgs(&g.HeaderPreset) {
				return nil, h.ArgErr()
			}
			switch g.HeaderPreset {
			case "default", "authelia", "oauth2-proxy":
			default:
				return nil, h.Errf("unknown header preset %q (want default, authelia or oauth2-proxy)", g.HeaderPreset)
			}
		case "header":
			var which, name string
			if !h.AllArgs(&which, &name) {
				return nil, h.ArgErr()
			}
			switch which {
			case "user", "email", "name", "groups", "auth_methods", "assertion", "device_trust":
			default:
				return nil, h.Errf("unknown identity header %q (want user, email, name, groups, auth_methods, assertion or device_trust)", which)
			}
			if name == "off" {
				name = ""
			}
			if g.Headers == nil {
				g.Headers = make(map[string]string)
			}
			g.Headers[which] = name
		case "oidc":
			if h.NextArg() {
				return nil, h.ArgErr()
			}
			o, err := parseGateOIDC(h.Dispenser)
			if err != nil {
				return nil, err
			}
			g.OIDC = o
		default:
			return nil, h.Errf("unknown zonegate_gate option %q (want policy, url, headers, header or oidc)", h.Val())
		}
	}
	if g.Policy == "" {
		return nil, h.Err("zonegate_gate: no policy (zonegate_gate <policy> or policy <name>)")
	}
	if g.URL == "" {
		return nil, h.Err("zonegate_gate: no url (the site's external base URL, e.g. url https://app.example.com)")
	}
	if err := g.Validate(); err != nil {
		return nil, h.Err(err.Error())
	}
	if err := checkPolicyDefined(h, g.Policy); err != nil {
		return nil, err
	}
	return g, nil
}

func parseGateOIDC(d *caddyfile.Dispenser) (*GateOIDC, error) {
	o := new(GateOIDC)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "issuer":
			if !d.AllArgs(&o.Issuer) {
				return nil, d.ArgErr()
			}
		case "client_id":
			if !d.AllArgs(&o.ClientID) {
				return nil, d.ArgErr()
			}
		case "client_secret":
			if !d.AllArgs(&o.ClientSecret) {
				return nil, d.ArgErr()
			}
		case "scopes":
			o.Scopes = d.RemainingArgs()
			if len(o.Scopes) == 0 {
				return nil, d.ArgErr()
			}
		case "groups_claim":
			if !d.AllArgs(&o.GroupsClaim) {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unknown oidc option %q (want issuer, client_id, client_secret, scopes or groups_claim)", d.Val())
		}
	}
	if o.Issuer == "" || o.ClientID == "" {
		return nil, d.Err("oidc needs issuer and client_id")
	}
	return o, nil
}

// checkPolicyDefined reports, with the file and line of the gate, a policy name that the global
// zonegate option does not define.
func checkPolicyDefined(h httpcaddyfile.Helper, name string) error {
	opt, ok := h.Option("zonegate").(httpcaddyfile.App)
	if !ok {
		return h.Err("zonegate_gate needs the global zonegate option (zones, policies, and issuer and users for the embedded IdP)")
	}
	var app App
	if err := json.Unmarshal(opt.Value, &app); err != nil {
		return h.Errf("reading the zonegate option: %v", err)
	}
	var names []string
	for _, p := range app.Policies {
		if p.Name == name {
			return nil
		}
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return h.Errf("zonegate_gate: unknown policy %q: the zonegate option defines no policies", name)
	}
	return h.Errf("zonegate_gate: unknown policy %q (defined: %s)", name, strings.Join(names, ", "))
}

// parseIdP sets up the IdP handler. Syntax:
//
//	zonegate_idp
func parseIdP(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next()
	if h.NextArg() || h.NextBlock(0) {
		return nil, h.Err("zonegate_idp takes no arguments: the issuer and users are set in the global zonegate option")
	}
	return new(IdPHandler), nil
}

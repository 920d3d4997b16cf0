package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/gateway"
	"github.com/zonegate/zonegate/policy"
	"github.com/zonegate/zonegate/zones"
)

// CheckRequest is one request for [CheckPolicy] to decide and explain, as the gate of a site
// would decide it.
type CheckRequest struct {
	// Config is the path of the Caddyfile, adapted as `zonegate adapt` does; a path ending in
	// ".json" is read as Caddy JSON.
	Config string
	// Site is the protected site: its host as written in the Caddyfile ("app.example.com"); a
	// URL ("https://app.example.com") or host:port works too, the port then picking the server
	// that listens on it, and ":port" names a site without a host.
	Site string
	// User is the signed-in username; empty for an anonymous request.
	User string
	// Groups are the user's groups when GroupsSet is true. Otherwise the user and groups are
	// read from the users file of the config, and a user missing from it is an error.
	Groups []string
	// GroupsSet says Groups were given, so the users file is not read.
	GroupsSet bool
	// IP is the client address ("10.1.2.3", "::1"); empty means none, which is in no zone.
	IP string
	// Method is the HTTP method. Default GET.
	Method string
	// Path is the request path as the client sends it (the query, if any, is ignored).
	Path string
}

// CheckResult is what the gate of a site would do with a request, and why.
type CheckResult struct {
	// Site is the host (or, for a site without one, the listen address) the request matched.
	Site string
	// Policy names the gate's policy; GateURL is the gate's url.
	Policy, GateURL string

	// Authenticated is true when a user was given; User and Groups are theirs.
	Authenticated bool
	User          string
	Groups        []string
	// GroupsFrom says where Groups come from: "users file <path>" or "given".
	GroupsFrom string

	// IP is the client address (the zero Addr when none was given); Zones are its zones.
	IP    netip.Addr
	Zones []string

	// Method is the request method; Path is the path the policy sees (cleaned as the gate
	// cleans it) and RawPath the path as given.
	Method, Path, RawPath string

	// BlockedBy is the blocklist zone that denied the request before any rule, or "".
	BlockedBy string
	// Reserved is true when the path is one the gate serves itself (under /.zonegate/): no
	// policy decides it.
	Reserved bool

	// Decision is the policy's decision: a deny with reason ReasonBlocklist when BlockedBy is
	// set, and the zero Decision with Rule -1 when Reserved. Steps explain it rule by rule;
	// they are empty when the blocklist or a reserved path decided.
	Decision policy.Decision
	Steps    []policy.Step

	// Notes are caveats about the check itself: a disabled user, a rewrite before the gate,
	// route matchers the check could not evaluate.
	Notes []string
}

// ReasonBlocklist is the reason of a decision made by a blocklist zone, as the gate logs it.
const ReasonBlocklist policy.Reason = "blocklist_zone"

// CheckPolicy loads the config named in req, finds the zonegate_gate of req.Site, compiles the
// zones and that gate's policy as the zonegate app does, and decides the request as the gate
// would: blocklist zones first, then the gate's own paths, then the policy, traced rule by rule.
// Relative paths in the config (the users file) are read from the current directory, as
// `caddy run` reads them.
func CheckPolicy(req CheckRequest) (*CheckResult, error) {
	raw, err := loadConfigJSON(req.Config)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Apps struct {
			HTTP *struct {
				Servers map[string]checkServer `json:"servers"`
			} `json:"http"`
			Zonegate *App `json:"zonegate"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("reading the config %q: %w", req.Config, err)
	}
	if cfg.Apps.Zonegate == nil {
		return nil, fmt.Errorf("config %q has no zonegate app (the global zonegate option)", req.Config)
	}
	app := cfg.Apps.Zonegate
	if cfg.Apps.HTTP == nil {
		return nil, fmt.Errorf("config %q has no sites", req.Config)
	}

	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	rawPath, err := requestPath(req.Path)
	if err != nil {
		return nil, err
	}
	site, err := parseSite(req.Site)
	if err != nil {
		return nil, err
	}
	found, notes, err := findGate(cfg.Apps.HTTP.Servers, site, method, rawPath)
	if err != nil {
		return nil, err
	}

	// Zones and the policy, built as App.Provision builds them.
	table, err := app.compileZones(nil, -1)
	if err != nil {
		return nil, err
	}
	defer table.Close()
	pol, err := compileGatePolicy(app, found.gate.Policy, table)
	if err != nil {
		return nil, err
	}

	res := &CheckResult{
		Site:    found.site,
		Policy:  found.gate.Policy,
		GateURL: found.gate.URL,
		Method:  method,
		RawPath: rawPath,
		Path:    gateway.CleanPath(rawPath),
		Notes:   notes,
	}
	if req.IP != "" {
		if res.IP, err = zones.ParseClientIP(req.IP); err != nil {
			return nil, fmt.Errorf("client IP %q: %w", req.IP, err)
		}
	}
	if err := res.setUser(req, app, &found.gate); err != nil {
		return nil, err
	}

	zm := table.Lookup(res.IP)
	res.Zones = table.Names(zm)
	if name, blocked := table.Blocked(zm); blocked {
		res.BlockedBy = name
		res.Decision = policy.Decision{Outcome: policy.OutcomeDeny, Reason: ReasonBlocklist, Rule: -1}
		return res, nil
	}
	if res.Path == "/.zonegate" || strings.HasPrefix(res.Path, gateway.ReservedPrefix) {
		res.Reserved = true
		res.Decision = policy.Decision{Rule: -1}
		return res, nil
	}
	f := policy.Facts{
		Zones: zm, Method: method, Path: res.Path,
		Authenticated: res.Authenticated, User: res.User, Groups: res.Groups,
	}
	res.Decision, res.Steps = pol.TraceWith(&f, policy.TraceOptions{ZoneName: table.Name})
	return res, nil
}

// loadConfigJSON reads the config file: Caddy JSON as is, anything else through the Caddyfile
// adapter.
func loadConfigJSON(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no config file given")
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		return body, nil
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		return nil, errors.New("the caddyfile adapter is not registered")
	}
	out, _, err := adapter.Adapt(body, map[string]any{"filename": path})
	if err != nil {
		return nil, fmt.Errorf("adapting %q: %w", path, err)
	}
	return out, nil
}

// compileGatePolicy compiles the named policy as App.Provision does.
func compileGatePolicy(app *App, name string, table *zones.Table) (*policy.Policy, error) {
	var names []string
	for _, pc := range app.Policies {
		if pc.Name != name {
			names = append(names, pc.Name)
			continue
		}
		def, err := pc.def()
		if err != nil {
			return nil, err
		}
		p, err := policy.Compile(def, table)
		if err != nil {
			return nil, fmt.Errorf("zonegate: %w", err)
		}
		return p, nil
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("the gate's policy %q is not defined: the zonegate option defines no policies", name)
	}
	return nil, fmt.Errorf("the gate's policy %q is not defined (defined: %s)", name, strings.Join(names, ", "))
}

// setUser fills the user and groups: as given, or from the users file of the config.
func (res *CheckResult) setUser(req CheckRequest, app *App, g *Gate) error {
	if req.User == "" {
		if req.GroupsSet {
			return errors.New("groups were given without a user")
		}
		return nil
	}
	res.Authenticated = true
	if req.GroupsSet {
		res.User = req.User
		if g.OIDC == nil {
			// The embedded IdP signs users in under their normalized name.
			res.User = directory.NormalizeUsername(req.User)
		}
		res.Groups = slices.Clone(req.Groups)
		res.GroupsFrom = "given"
		return nil
	}
	if g.OIDC != nil {
		return fmt.Errorf("site %s signs users in through the issuer %s: give the user's groups (--groups)", res.Site, g.OIDC.Issuer)
	}
	if app.UsersFile == "" {
		return errors.New("the zonegate option names no users file: give the user's groups (--groups)")
	}
	users, err := directory.Load(app.UsersFile)
	if err != nil {
		return fmt.Errorf("looking up user %q (relative paths are read from the current directory): %w", req.User, err)
	}
	u, ok := users[directory.NormalizeUsername(req.User)]
	if !ok {
		return fmt.Errorf("unknown user %q: not in the users file %q", req.User, app.UsersFile)
	}
	res.User = u.Username
	res.Groups = u.Groups
	res.GroupsFrom = "users file " + app.UsersFile
	if u.Disabled {
		res.Notes = append(res.Notes, fmt.Sprintf("user %s is disabled and cannot sign in; decided as if signed in", u.Username))
	}
	return nil
}

// requestPath checks the path and returns it as the gate sees it in r.URL.Path: without the
// query, percent-decoded.
func requestPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("no path given")
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q does not start with /", p)
	}
	u, err := url.ParseRequestURI(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return u.Path, nil
}

// checkSite is a site as asked for: a host (lower case, no port) and a port, either of which
// may be empty.
type checkSite struct {
	host, port string
}

func (s checkSite) String() string {
	if s.port == "" {
		return s.host
	}
	return net.JoinHostPort(s.host, s.port)
}

func parseSite(s string) (checkSite, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return checkSite{}, errors.New("no site given")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return checkSite{}, fmt.Errorf("site %q is not a host or a URL", orig)
		}
		s = u.Host
	}
	var site checkSite
	if h, p, err := net.SplitHostPort(s); err == nil {
		site = checkSite{host: h, port: p}
	} else {
		site.host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	site.host = strings.TrimSuffix(strings.ToLower(site.host), ".")
	if site.host == "" && site.port == "" {
		return checkSite{}, fmt.Errorf("site %q has neither a host nor a port", orig)
	}
	return site, nil
}

// checkServer and checkRoute are the parts of the http app's JSON that locate gates.
type checkServer struct {
	Listen []string     `json:"listen"`
	Routes []checkRoute `json:"routes"`
}

type checkRoute struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []json.RawMessage            `json:"handle"`
}

// foundGate is a zonegate_gate handler and where it sits.
type foundGate struct {
	gate Gate
	// hosts are the host matcher values that lead to it; none when it serves every host of
	// its server (then listen says which server).
	hosts  []string
	listen []string
	// chain holds the matcher sets of every route on the way to the gate, outermost first.
	chain [][]map[string]json.RawMessage
	// rewrite is true when a rewrite handler may run before the gate on that way.
	rewrite bool
	// site is what matched the asked-for site: a host value or a listen address.
	site string
}

// names lists how an operator would name the gate's site.
func (g *foundGate) names() []string {
	if len(g.hosts) > 0 {
		return g.hosts
	}
	return g.listen
}

// describe names the gate for notes and errors: its policy and its route matchers.
func (g *foundGate) describe() string {
	var parts []string
	for _, sets := range g.chain {
		for _, set := range sets {
			for k, v := range set {
				if k != "host" {
					parts = append(parts, k+" "+string(v))
				}
			}
		}
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return fmt.Sprintf("the gate with policy %q", g.gate.Policy)
	}
	return fmt.Sprintf("the gate with policy %q (route matchers: %s)", g.gate.Policy, strings.Join(parts, "; "))
}

// walkGates collects the gates of routes, depth first in the order a request meets them.
// rewrite is true when a rewrite handler comes earlier on the way; one in an earlier route of
// the same list counts too (handle_path strips its prefix that way), whatever its matchers, so
// the check only warns.
func walkGates(routes []checkRoute, hosts, listen []string, chain [][]map[string]json.RawMessage, rewrite bool, out *[]foundGate, allHosts map[string]bool) error {
	for _, rt := range routes {
		h := hosts
		var routeHosts []string
		allHaveHost := len(rt.Match) > 0
		for _, set := range rt.Match {
			raw, ok := set["host"]
			if !ok {
				allHaveHost = false
				continue
			}
			var list []string
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("reading a host matcher: %w", err)
			}
			routeHosts = append(routeHosts, list...)
		}
		for _, x := range routeHosts {
			allHosts[strings.ToLower(x)] = true
		}
		if allHaveHost {
			h = routeHosts
		}
		c := chain
		if len(rt.Match) > 0 {
			c = append(slices.Clip(chain), rt.Match)
		}
		for _, raw := range rt.Handle {
			var hd struct {
				Handler string       `json:"handler"`
				Routes  []checkRoute `json:"routes"`
			}
			if err := json.Unmarshal(raw, &hd); err != nil {
				return fmt.Errorf("reading a handler: %w", err)
			}
			switch hd.Handler {
			case "zonegate_gate":
				var g Gate
				if err := json.Unmarshal(raw, &g); err != nil {
					return fmt.Errorf("reading a zonegate_gate handler: %w", err)
				}
				*out = append(*out, foundGate{gate: g, hosts: h, listen: listen, chain: c, rewrite: rewrite})
			case "subroute":
				if err := walkGates(hd.Routes, h, listen, c, rewrite, out, allHosts); err != nil {
					return err
				}
			case "rewrite":
				rewrite = true
			}
		}
	}
	return nil
}

// hostMatches reports whether host (lower case) matches a host matcher value the way Caddy's
// host matcher does for exact names and "*" labels.
func hostMatches(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	if pattern == host {
		return true
	}
	if !strings.Contains(pattern, "*") {
		return false
	}
	pl, hl := strings.Split(pattern, "."), strings.Split(host, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if pl[i] != "*" && pl[i] != hl[i] {
			return false
		}
	}
	return true
}

// listenMatches reports whether a site given as ":port" or "host:port" names a server that
// listens on that port.
func listenMatches(listen []string, port string) (string, bool) {
	for _, l := range listen {
		if _, p, err := net.SplitHostPort(l); err == nil && p == port {
			return l, true
		}
	}
	return "", false
}

// findGate finds the gate that decides a request to site: among the gates whose host matches
// (on a server listening on the site's port, when it gives one), or else the gates without a host
// matcher of a server on the site's port, the first whose route matchers hold for the request.
// Notes say what the check had to assume.
func findGate(servers map[string]checkServer, site checkSite, method, rawPath string) (*foundGate, []string, error) {
	names := make([]string, 0, len(servers))
	for n := range servers {
		names = append(names, n)
	}
	slices.Sort(names) // the adapter names servers srv0, srv1, ...
	var gates []foundGate
	allHosts := map[string]bool{}
	for _, n := range names {
		s := servers[n]
		if err := walkGates(s.Routes, nil, s.Listen, nil, false, &gates, allHosts); err != nil {
			return nil, nil, fmt.Errorf("server %s: %w", n, err)
		}
	}
	if len(gates) == 0 {
		return nil, nil, errors.New("the config has no zonegate_gate")
	}

	var candidates []foundGate
	if site.host != "" {
		for _, g := range gates {
			for _, h := range g.hosts {
				if hostMatches(h, site.host) {
					g.site = h
					candidates = append(candidates, g)
					break
				}
			}
		}
	}
	if site.port != "" {
		// Of the gates for this host, those of servers on the given port.
		var onPort []foundGate
		for _, g := range candidates {
			if _, ok := listenMatches(g.listen, site.port); ok {
				onPort = append(onPort, g)
			}
		}
		candidates = onPort
	}
	if len(candidates) == 0 && site.port != "" {
		// A server without host matchers gates every host on its port.
		for _, g := range gates {
			if l, ok := listenMatches(g.listen, site.port); ok && len(g.hosts) == 0 {
				g.site = l
				candidates = append(candidates, g)
			}
		}
	}
	if len(candidates) == 0 {
		var sites []string
		for _, g := range gates {
			for _, n := range g.names() {
				if !slices.Contains(sites, n) {
					sites = append(sites, n)
				}
			}
		}
		slices.Sort(sites)
		for h := range allHosts {
			if hostMatches(h, site.host) {
				return nil, nil, fmt.Errorf("site %s has no zonegate_gate (sites with gates: %s)", site, strings.Join(sites, ", "))
			}
		}
		return nil, nil, fmt.Errorf("unknown site %s (sites with gates: %s)", site, strings.Join(sites, ", "))
	}

	var notes []string
	var unsure []*foundGate
	for i := range candidates {
		g := &candidates[i]
		switch chainMatches(g.chain, site, method, rawPath) {
		case matchNo:
			continue
		case matchUnknown:
			unsure = append(unsure, g)
			continue
		}
		for _, u := range unsure {
			notes = append(notes, fmt.Sprintf("%s comes first and may apply instead: the check cannot evaluate its matchers", u.describe()))
		}
		if g.rewrite {
			notes = append(notes, "a rewrite may run before the gate: give the path as rewritten, which is what the gate sees")
		}
		return g, notes, nil
	}
	if len(unsure) > 0 {
		g := unsure[0]
		notes = append(notes, fmt.Sprintf("assuming %s applies: the check cannot evaluate its matchers", g.describe()))
		if g.rewrite {
			notes = append(notes, "a rewrite may run before the gate: give the path as rewritten, which is what the gate sees")
		}
		return g, notes, nil
	}
	var descs []string
	for i := range candidates {
		descs = append(descs, candidates[i].describe())
	}
	return nil, nil, fmt.Errorf("no zonegate_gate of site %s handles %s %s, so it would reach the site ungated (gates: %s)",
		site, method, rawPath, strings.Join(descs, ", "))
}

type matchResult int

// Ordered so that the best result of several is their maximum.
const (
	matchNo matchResult = iota
	matchUnknown
	matchYes
)

// chainMatches evaluates the route matchers on the way to a gate: each route needs one of its
// matcher sets to hold. Host, path and method matchers are evaluated as Caddy does; any other
// matcher is unknown.
func chainMatches(chain [][]map[string]json.RawMessage, site checkSite, method, rawPath string) matchResult {
	r := &http.Request{Method: method, URL: &url.URL{Path: rawPath}, Host: site.host}
	r = r.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	for _, sets := range chain {
		route := matchNo
		for _, set := range sets {
			route = max(route, setMatches(set, r, site))
			if route == matchYes {
				break
			}
		}
		if route != matchYes {
			return route
		}
	}
	return matchYes
}

// setMatches evaluates one matcher set: all its matchers must hold.
func setMatches(set map[string]json.RawMessage, r *http.Request, site checkSite) matchResult {
	res := matchYes
	for name, raw := range set {
		var m matchResult
		switch name {
		case "host":
			var hosts []string
			m = matchUnknown
			if json.Unmarshal(raw, &hosts) == nil && site.host != "" {
				m = matchNo
				for _, h := range hosts {
					if hostMatches(h, site.host) {
						m = matchYes
					}
				}
			}
		case "path":
			var mp caddyhttp.MatchPath
			m = matchUnknown
			if json.Unmarshal(raw, &mp) == nil && mp.Provision(caddy.Context{}) == nil {
				if ok, err := mp.MatchWithError(r); err == nil {
					m = matchNo
					if ok {
						m = matchYes
					}
				}
			}
		case "method":
			var mm caddyhttp.MatchMethod
			m = matchUnknown
			if json.Unmarshal(raw, &mm) == nil && mm.Provision(caddy.Context{}) == nil {
				if ok, err := mm.MatchWithError(r); err == nil {
					m = matchNo
					if ok {
						m = matchYes
					}
				}
			}
		default:
			m = matchUnknown
		}
		if m == matchNo {
			return matchNo
		}
		if m == matchUnknown {
			res = matchUnknown
		}
	}
	return res
}

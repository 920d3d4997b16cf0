// Package adminapi serves zonegate's admin API (/api/v1): users, lifecycle, sessions, factors, devices, logs and API tokens, authenticated by bearer API tokens.
//
// The API is shaped after Okta's management API: JSON resources with lowerCamel fields,
// lifecycle operations as POST .../lifecycle/{action}, errors as
// {"errorCode": "E0000007", "errorSummary": "..."} with Okta's codes, and RFC 8288 Link
// headers (rel="next") for paging. docs/openapi.yaml describes every route.
//
// Every request needs an API token (Authorization: Bearer <token>, or SSWS <token> as Okta's
// clients send it). A read token may call the GET routes only. Any kind of bad token gets the
// same 401; a store that cannot answer gets 503 with Retry-After, never a 200 or a 401.
//
// With a system log configured, every authenticated call records a "system.api_token.use"
// event, every change a typed event (user.lifecycle.suspend, device.lifecycle.delete, ...) and
// every refused token a "system.api_token.refused" event. Token secrets are never logged nor
// returned.
package adminapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/apitoken"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/websession"
)

// Prefix is the path every route of the API starts with.
const Prefix = "/api/v1/"

// The types of the audit events the API records.
const (
	// EventTokenUse is recorded for every authenticated call, with its method, path and status.
	EventTokenUse = "system.api_token.use"
	// EventTokenRefused is recorded for every request whose token is missing or refused.
	EventTokenRefused = "system.api_token.refused"
	// EventTokenRevoke is recorded when a token is revoked through the API.
	EventTokenRevoke = "system.api_token.revoke"
	// EventUserLifecycle is the prefix of the lifecycle events; the action follows
	// ("user.lifecycle.suspend").
	EventUserLifecycle = "user.lifecycle."
	// EventFactorReset is recorded when every factor of a user is removed.
	EventFactorReset = "user.mfa.factor.reset_all"
	// EventSessionClear is recorded when every session of a user is ended.
	EventSessionClear = "user.session.clear"
	// EventDeviceSuspend, EventDeviceUnsuspend and EventDeviceDelete are recorded for the
	// device lifecycle operations.
	EventDeviceSuspend   = "device.lifecycle.suspend"
	EventDeviceUnsuspend = "device.lifecycle.unsuspend"
	EventDeviceDelete    = "device.lifecycle.delete"
)

// Users is the directory the API reads users from. *directory.File implements it.
type Users interface {
	// Users returns every user, disabled or not.
	Users() []directory.User
	// Lookup returns the user with this username.
	Lookup(username string) (directory.User, bool)
	// LookupID returns the user whose stable id is id.
	LookupID(id string) (directory.User, bool)
}

// Sessions lists and ends users' web sessions. *websession.Manager implements it.
type Sessions interface {
	// List returns the live sessions of a user.
	List(ctx context.Context, userID string) ([]websession.Session, error)
	// RevokeUser ends every session of a user and says how many there were.
	RevokeUser(ctx context.Context, userID string) (int, error)
}

// Factor types.
const (
	FactorWebAuthn = "webauthn"
	FactorTOTP     = "totp"
)

// Factor is one enrolled authenticator of a user.
type Factor struct {
	// ID identifies the factor among the user's.
	ID string `json:"id"`
	// Type is FactorWebAuthn or FactorTOTP.
	Type string `json:"type"`
	// Name is the label the user gave it (a passkey's name, a TOTP device name).
	Name string `json:"name,omitempty"`
	// Created is when it was enrolled; LastUsed when it last signed the user in (zero: never).
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
}

// Factors lists and removes users' authenticators.
type Factors interface {
	// List returns the factors of a user.
	List(ctx context.Context, userID string) ([]Factor, error)
	// Reset removes every factor of a user and says how many there were.
	Reset(ctx context.Context, userID string) (int, error)
}

// Config configures an API.
type Config struct {
	// Tokens checks the bearer tokens and serves /tokens. Required.
	Tokens *apitoken.Manager
	// Users is the directory. Required.
	Users Users
	// Accounts keeps the users' lifecycle states. Required.
	Accounts *accounts.Manager
	// Sessions lists and ends web sessions. Required.
	Sessions Sessions
	// Factors lists and resets authenticators; nil: the factor routes answer 404.
	Factors Factors
	// Devices is the device registry; nil: the device routes answer 404.
	Devices *device.Registry
	// Log is the system log; nil: /logs answers 404 and nothing is recorded. Otherwise every
	// API call and every change is recorded.
	Log *audit.Log
	// Logger receives the API's own messages (backend failures). Default: discards.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// ClientIP returns the client address recorded in events. Default: the host of
	// RemoteAddr.
	ClientIP func(*http.Request) netip.Addr
}

// API serves the admin API. It is safe for concurrent use.
type API struct {
	tokens   *apitoken.Manager
	users    Users
	accounts *accounts.Manager
	sessions Sessions
	factors  Factors
	devices  *device.Registry
	log      *audit.Log
	logger   *slog.Logger
	now      func() time.Time
	clientIP func(*http.Request) netip.Addr
	mux      *http.ServeMux
}

// New checks cfg and returns an API.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.Tokens == nil:
		return nil, errors.New("admin API: no API token manager")
	case cfg.Users == nil:
		return nil, errors.New("admin API: no users directory")
	case cfg.Accounts == nil:
		return nil, errors.New("admin API: no accounts manager")
	case cfg.Sessions == nil:
		return nil, errors.New("admin API: no session manager")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteIP
	}
	a := &API{
		tokens:   cfg.Tokens,
		users:    cfg.Users,
		accounts: cfg.Accounts,
		sessions: cfg.Sessions,
		factors:  cfg.Factors,
		devices:  cfg.Devices,
		log:      cfg.Log,
		logger:   cfg.Logger,
		now:      cfg.Now,
		clientIP: cfg.ClientIP,
		mux:      http.NewServeMux(),
	}
	for i := range routes {
		rt := &routes[i]
		if !a.has(rt.needs) {
			continue // the route does not exist here: the mux answers 404
		}
		a.mux.Handle(rt.pattern(), a.handler(rt))
	}
	return a, nil
}

// has reports whether the API was configured with what a route needs.
func (a *API) has(f feature) bool {
	switch f {
	case needFactors:
		return a.factors != nil
	case needDevices:
		return a.devices != nil
	case needLog:
		return a.log != nil
	}
	return true
}

// remoteIP is the default Config.ClientIP: the address of RemoteAddr.
func remoteIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if ip, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return ip.Unmap()
	}
	return netip.Addr{}
}

// call is one authenticated request on its way through the API.
type call struct {
	w      http.ResponseWriter
	r      *http.Request // with the path values once routed
	tok    apitoken.Token
	routed bool   // a route's handler ran
	status int    // the status answered
	code   string // the errorCode answered, if an error
}

// callKey carries the *call through the mux to the route handlers.
type callKey struct{}

// ServeHTTP serves one admin API request. It expects the full path (/api/v1/...).
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	presented, ok := apitoken.FromRequest(r)
	if !ok {
		a.refused(r, "", "no bearer token in the Authorization header")
		writeError(w, errInvalidToken)
		return
	}
	tok, err := a.tokens.Check(r.Context(), presented)
	if errors.Is(err, apitoken.ErrInvalidToken) {
		a.refused(r, tokenID(presented), err.Error())
		writeError(w, errInvalidToken)
		return
	}
	if err != nil {
		a.logger.LogAttrs(r.Context(), slog.LevelError, "admin API: cannot check the API token",
			slog.String("method", r.Method), slog.String("path", r.URL.EscapedPath()), slog.String("error", err.Error()))
		writeError(w, errUnavailable)
		return
	}
	c := &call{w: w, r: r, tok: tok}
	a.dispatch(c)
	a.recordUse(c)
}

// dispatch routes an authenticated call and answers it.
func (a *API) dispatch(c *call) {
	if isCompliancePath(c.r.URL.Path) {
		// The MDM compliance webhook is served in front of this handler; a device may not be
		// called "compliance".
		c.fail(errNoEndpoint)
		return
	}
	sink := &sinkWriter{header: http.Header{}}
	a.mux.ServeHTTP(sink, c.r.WithContext(context.WithValue(c.r.Context(), callKey{}, c)))
	if c.routed {
		return
	}
	// The mux answered by itself (into the sink): no route, a route for other methods, or a
	// redirect to a cleaned path. Answer in JSON; redirects are not followed here, the
	// client must use the canonical path.
	if sink.status == http.StatusMethodNotAllowed {
		c.w.Header().Set("Allow", sink.header.Get("Allow"))
		c.fail(errMethod)
		return
	}
	c.fail(errNoEndpoint)
}

// isCompliancePath reports whether p is /api/v1/devices/compliance or below it.
func isCompliancePath(p string) bool {
	rest, ok := strings.CutPrefix(p, Prefix+"devices/compliance")
	return ok && (rest == "" || rest[0] == '/')
}

// handler returns the mux handler of a route: it checks the token's scope and the query
// parameters, runs the route and answers.
func (a *API) handler(rt *route) http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(callKey{}).(*call)
		if c == nil {
			return // not through ServeHTTP: nothing to answer with
		}
		c.routed, c.r = true, r
		if !c.tok.Allows(rt.write) {
			c.fail(errForbidden)
			return
		}
		q, err := parseQuery(r.URL.RawQuery, rt.params)
		if err != nil {
			c.fail(badRequest("%s", err))
			return
		}
		status, body, err := rt.h(a, c, q)
		if err != nil {
			c.fail(a.apiError(c, err))
			return
		}
		c.reply(status, body)
	})
}

// sinkWriter takes what the mux answers by itself, keeping the status and headers.
type sinkWriter struct {
	header http.Header
	status int
}

func (s *sinkWriter) Header() http.Header { return s.header }

func (s *sinkWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}

func (s *sinkWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}

// by is who the call acts as, for the accounts' records.
func (c *call) by() string {
	by := "API token " + strconv.Quote(c.tok.Name) + " (" + c.tok.ID + ")"
	if len(by) > 256 {
		by = "API token " + c.tok.ID
	}
	return by
}

// actor is the audit actor of the call.
func (c *call) actor() audit.Actor {
	return audit.Actor{ID: c.tok.ID, Type: audit.ActorAdminToken, Name: c.tok.Name}
}

// ipString returns the client address for events, or "".
func (a *API) ipString(r *http.Request) string {
	if ip := a.clientIP(r); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// recordUse records the system.api_token.use event of an authenticated call.
func (a *API) recordUse(c *call) {
	if a.log == nil {
		return
	}
	outcome := audit.OutcomeSuccess
	if c.status >= 400 {
		outcome = audit.OutcomeFailure
	}
	d := map[string]string{
		"method": c.r.Method,
		"path":   c.r.URL.EscapedPath(),
		"status": strconv.Itoa(c.status),
	}
	if c.code != "" {
		d["errorCode"] = c.code
	}
	a.log.Record(c.r.Context(), audit.Event{
		Time:     a.now(),
		Type:     EventTokenUse,
		Actor:    c.actor(),
		ClientIP: a.ipString(c.r),
		Outcome:  outcome,
		Details:  d,
	})
}

// recordChange records the typed event of a change the call made.
func (a *API) recordChange(c *call, typ string, target audit.Target, reason string, details map[string]string) {
	if a.log == nil {
		return
	}
	a.log.Record(c.r.Context(), audit.Event{
		Time:     a.now(),
		Type:     typ,
		Actor:    c.actor(),
		Targets:  []audit.Target{target},
		ClientIP: a.ipString(c.r),
		Outcome:  audit.OutcomeSuccess,
		Reason:   reason,
		Details:  details,
	})
}

// refused records a request whose token was missing or refused. id is the token id part of
// the presented string, if it has the form of a token; the string itself is never recorded.
func (a *API) refused(r *http.Request, id, reason string) {
	a.logger.LogAttrs(r.Context(), slog.LevelDebug, "admin API: token refused",
		slog.String("token_id", id), slog.String("reason", reason), slog.String("path", r.URL.EscapedPath()))
	if a.log == nil {
		return
	}
	a.log.Record(r.Context(), audit.Event{
		Time:     a.now(),
		Type:     EventTokenRefused,
		Severity: audit.SeverityWarn,
		Actor:    audit.Actor{ID: id, Type: audit.ActorAdminToken},
		ClientIP: a.ipString(r),
		Outcome:  audit.OutcomeFailure,
		Reason:   reason,
		Details:  map[string]string{"method": r.Method, "path": r.URL.EscapedPath()},
	})
}

// tokenID returns the id part of a presented token ("zgt_" and 8 base32 characters) if the
// whole string has the form of a token, else "". It never returns any of the secret.
func tokenID(s string) string {
	const idLen, tokenLen = 12, 12 + 1 + 43
	if len(s) != tokenLen || !strings.HasPrefix(s, "zgt_") || s[idLen] != '_' {
		return ""
	}
	for _, c := range []byte(s[4:idLen]) {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return ""
		}
	}
	for _, c := range []byte(s[idLen+1:]) {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return ""
		}
	}
	return s[:idLen]
}

// apiError turns a handler's error into the answer: its own *apiError, or 503 for anything
// else (a backend failure), which is logged.
func (a *API) apiError(c *call, err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	a.logger.LogAttrs(c.r.Context(), slog.LevelError, "admin API: backend failed",
		slog.String("method", c.r.Method), slog.String("path", c.r.URL.EscapedPath()),
		slog.String("token_id", c.tok.ID), slog.String("error", err.Error()))
	return errUnavailable
}

// unavailable wraps a backend error with what was being done.
func unavailable(what string, err error) error {
	return fmt.Errorf("admin API: %s: %w", what, err)
}

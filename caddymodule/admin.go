package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/adminapi"
	"github.com/zonegate/zonegate/apitoken"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/passkey"
	"github.com/zonegate/zonegate/totp"
	"github.com/zonegate/zonegate/websession"
)

func init() {
	caddy.RegisterModule(adminRoutes{})
}

// AuditConfig configures the system log and its event hooks.
type AuditConfig struct {
	// Retention is how long events are kept in the store. Default 90 days.
	Retention caddy.Duration `json:"retention,omitempty"`
	// Hooks receive chosen event types as signed JSON.
	Hooks []HookConfig `json:"hooks,omitempty"`
}

// HookConfig is one event hook.
type HookConfig struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Secret signs the deliveries (HMAC-SHA256); at least 32 bytes. {env.X} and {file.path}
	// placeholders keep it out of the config.
	Secret string `json:"secret"`
	// Events are the event types sent: exact, or a prefix ending in "." or "*".
	Events      []string `json:"events"`
	MaxAttempts int      `json:"max_attempts,omitempty"`
}

// hooks returns the audit package's hooks with secrets resolved.
func (c *AuditConfig) hooks() ([]audit.Hook, error) {
	if c == nil {
		return nil, nil
	}
	repl := caddy.NewReplacer()
	out := make([]audit.Hook, 0, len(c.Hooks))
	for _, h := range c.Hooks {
		ah := audit.Hook{Name: h.Name, URL: h.URL, Secret: repl.ReplaceKnown(h.Secret, ""), Types: h.Events, MaxAttempts: h.MaxAttempts}
		if err := ah.Validate(); err != nil {
			return nil, fmt.Errorf("zonegate audit: hook %q: %w", h.Name, err)
		}
		out = append(out, ah)
	}
	return out, nil
}

// hookNames lists the configured hooks' names.
func (c *AuditConfig) hookNames() []string {
	if c == nil {
		return nil
	}
	names := make([]string, len(c.Hooks))
	for i, h := range c.Hooks {
		names[i] = h.Name
	}
	return names
}

// openAudit starts the system log (always on) with its hooks.
func (a *App) openAudit() error {
	hooks, err := a.Audit.hooks()
	if err != nil {
		return err
	}
	cfg := audit.Config{Store: a.store, Hooks: hooks, Logger: a.logger.With("component", "audit")}
	if a.Audit != nil {
		cfg.Retention = time.Duration(a.Audit.Retention)
	}
	if a.audit, err = audit.New(cfg); err != nil {
		return fmt.Errorf("zonegate audit: %w", err)
	}
	return nil
}

// openAdmin builds the account states, API tokens and the /api/v1 handler of the IdP site.
func (a *App) openAdmin() error {
	var err error
	a.tokens, err = apitoken.New(apitoken.Config{Store: a.store})
	if err != nil {
		return fmt.Errorf("zonegate api tokens: %w", err)
	}
	a.accounts, err = accounts.New(accounts.Config{Store: a.store, OnChange: a.accountChanged})
	if err != nil {
		return fmt.Errorf("zonegate accounts: %w", err)
	}
	return nil
}

// openAdminAPI builds the admin API once the IdP exists.
func (a *App) openAdminAPI(keys *passkey.Manager, codes *totp.Manager) error {
	cfg := adminapi.Config{
		Tokens:   a.tokens,
		Users:    a.users,
		Accounts: a.accounts,
		Sessions: userSessions{a},
		Log:      a.audit,
		Logger:   a.logger.With("component", "admin_api"),
		ClientIP: clientIP,
	}
	if keys != nil || codes != nil {
		cfg.Factors = factors{keys: keys, codes: codes}
	}
	if a.devices != nil {
		cfg.Devices = a.devices.reg
	}
	api, err := adminapi.New(cfg)
	if err != nil {
		return fmt.Errorf("zonegate admin api: %w", err)
	}
	a.adminAPI = api
	return nil
}

// accountChanged follows a user's account state: suspending or deprovisioning ends
// everything the user holds; unlocking clears the sign-in failures that locked them out.
func (a *App) accountChanged(ctx context.Context, before, after accounts.State) {
	if a.idp == nil {
		return
	}
	switch after.Status {
	case accounts.Suspended, accounts.Deprovisioned:
		n, err := a.idp.RevokeUser(ctx, after.UserID)
		if err != nil {
			a.logger.Error("ending the sessions of an account that is no longer active", "user_id", after.UserID, "status", string(after.Status), "error", err)
			return
		}
		a.logger.Info("account no longer active: sessions and tokens ended", "user_id", after.UserID,
			"from", string(before.Status), "to", string(after.Status), "sessions", n)
	case accounts.Active:
		if before.Status != accounts.LockedOut {
			return
		}
		if u, ok := a.users.LookupID(after.UserID); ok {
			if err := a.idp.ClearLockout(ctx, u.Username); err != nil {
				a.logger.Error("clearing the sign-in failures of an unlocked account", "user", u.Username, "error", err)
			}
		}
	}
}

// lockedOut records a lockout by the sign-in counters as the account's LOCKED_OUT state,
// until the counters let the user try again.
func (a *App) lockedOut(ctx context.Context, userID string, until time.Time) {
	if _, err := a.accounts.Lock(ctx, userID, until, "too many failed sign-ins"); err != nil && !errors.Is(err, accounts.ErrInvalidTransition) {
		a.logger.Error("recording a lockout", "user_id", userID, "error", err)
	}
}

// lifecycle is the IdP's view of the account states. A LOCKED_OUT account keeps its
// sessions and refresh tokens: the lockout guards the password form (the sign-in counters
// enforce it), so guessing at someone's password cannot throw them out of a session.
type lifecycle struct{ m *accounts.Manager }

func (l lifecycle) CanSignIn(ctx context.Context, userID string) error {
	err := l.m.CanSignIn(ctx, userID)
	var na *accounts.NotActiveError
	if errors.As(err, &na) && na.State.Status == accounts.LockedOut {
		return nil
	}
	return err
}

// userSessions is the admin API's view of a user's sessions: clearing them also revokes the
// user's access and refresh tokens, as suspending does.
type userSessions struct{ a *App }

func (s userSessions) List(ctx context.Context, userID string) ([]websession.Session, error) {
	return s.a.idpSess.List(ctx, userID)
}

func (s userSessions) RevokeUser(ctx context.Context, userID string) (int, error) {
	return s.a.idp.RevokeUser(ctx, userID)
}

// factors is the admin API's view of a user's security keys and authenticator apps.
type factors struct {
	keys  *passkey.Manager
	codes *totp.Manager
}

func (f factors) List(ctx context.Context, userID string) ([]adminapi.Factor, error) {
	var out []adminapi.Factor
	if f.keys != nil {
		creds, err := f.keys.List(ctx, userID)
		if err != nil {
			return nil, err
		}
		for _, c := range creds {
			out = append(out, adminapi.Factor{ID: c.ID, Type: adminapi.FactorWebAuthn, Name: c.Name, Created: c.Created, LastUsed: c.LastUsed})
		}
	}
	if f.codes != nil {
		devs, err := f.codes.List(ctx, userID)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			out = append(out, adminapi.Factor{ID: d.ID, Type: adminapi.FactorTOTP, Name: d.Name, Created: d.Created, LastUsed: d.LastUsed})
		}
	}
	return out, nil
}

func (f factors) Reset(ctx context.Context, userID string) (int, error) {
	n := 0
	if f.keys != nil {
		k, err := f.keys.Reset(ctx, userID)
		if err != nil {
			return n, err
		}
		n += k
	}
	if f.codes != nil {
		k, err := f.codes.Reset(ctx, userID)
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// running is the app of the config Caddy runs now, for the admin endpoint's routes.
var running atomic.Pointer[App]

// adminRoutes adds zonegate's routes to Caddy's admin endpoint (localhost:2019 by default,
// reachable only from the machine): creating API tokens and resetting a user's
// authenticators, which the zonegate subcommands call. They work whatever the store (a
// bbolt file is locked by the running server, so a second process could not open it).
type adminRoutes struct{}

// CaddyModule returns the Caddy module information.
func (adminRoutes) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.zonegate", New: func() caddy.Module { return adminRoutes{} }}
}

// Routes implements caddy.AdminRouter.
func (adminRoutes) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/zonegate/tokens", Handler: caddy.AdminHandlerFunc(adminCreateToken)},
		{Pattern: "/zonegate/reset-factors", Handler: caddy.AdminHandlerFunc(adminResetFactors)},
		{Pattern: "/zonegate/enrollment-link", Handler: caddy.AdminHandlerFunc(adminEnrollmentLink)},
	}
}

func adminApp() (*App, error) {
	a := running.Load()
	if a == nil || a.tokens == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("no zonegate IdP is running in this config")}
	}
	return a, nil
}

func decodeAdmin(r *http.Request, v any) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("use POST")}
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the request: %w", err)}
	}
	return nil
}

// adminCreateToken serves POST /zonegate/tokens {"name","scope"}: the new token, shown once.
func adminCreateToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name  string `json:"name"`
		Scope string `json:"scope"`
	}
	if err := decodeAdmin(r, &req); err != nil {
		return err
	}
	a, err := adminApp()
	if err != nil {
		return err
	}
	scope, err := apitoken.ParseScope(req.Scope)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	secret, tok, err := a.tokens.Create(r.Context(), req.Name, scope, "zonegate token create")
	if err != nil {
		status := http.StatusBadRequest
		if strings.Contains(err.Error(), "store") {
			status = http.StatusServiceUnavailable
		}
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	a.audit.Record(r.Context(), audit.Event{Type: "system.api_token.create", Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{Type: audit.ActorSystem, Name: "zonegate token create"},
		Targets: []audit.Target{{ID: tok.ID, Type: "api_token", Name: tok.Name}}, Details: map[string]string{"scope": string(tok.Scope)}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(struct {
		Token string         `json:"token"`
		Meta  apitoken.Token `json:"meta"`
	}{secret, tok})
}

// adminResetFactors serves POST /zonegate/reset-factors {"user"}: every security key and
// authenticator app of the user removed (the next sign-in that needs one sets one up).
func adminResetFactors(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		User string `json:"user"`
	}
	if err := decodeAdmin(r, &req); err != nil {
		return err
	}
	a, err := adminApp()
	if err != nil {
		return err
	}
	u, ok := a.users.Lookup(req.User)
	if !ok {
		if u, ok = a.users.LookupID(req.User); !ok {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no user %q", req.User)}
		}
	}
	n, err := a.factors.Reset(r.Context(), u.ID)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	a.audit.Record(r.Context(), audit.Event{Type: "user.mfa.factor.reset_all", Outcome: audit.OutcomeSuccess,
		Actor:   audit.Actor{Type: audit.ActorSystem, Name: "zonegate authenticators reset"},
		Targets: []audit.Target{{ID: u.ID, Type: "user", Name: u.Username}}, Details: map[string]string{"removed": fmt.Sprint(n)}})
	a.logger.Info("authenticators reset", "event", "user.mfa.factor.reset_all", "user", u.Username, "removed", n)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(struct {
		User    string `json:"user"`
		Removed int    `json:"removed"`
	}{u.Username, n})
}

// adminEnrollmentLink serves POST /zonegate/enrollment-link {"user"}: a one-time link with
// which the user sets up a security key without signing in.
func adminEnrollmentLink(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		User string `json:"user"`
	}
	if err := decodeAdmin(r, &req); err != nil {
		return err
	}
	a, err := adminApp()
	if err != nil {
		return err
	}
	if a.WebAuthn == nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("enrollment links need the webauthn option")}
	}
	link, exp, err := a.idp.CreateEnrollmentLink(r.Context(), req.User, "zonegate authenticators link", 0)
	if err != nil {
		status := http.StatusServiceUnavailable
		if strings.Contains(err.Error(), "no active user") {
			status = http.StatusNotFound
		}
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(struct {
		URL     string    `json:"url"`
		Expires time.Time `json:"expires"`
	}{link, exp})
}

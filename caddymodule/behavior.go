package caddymodule

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/behavior"
)

// BehaviorConfig tunes the sign-in history behind the rules' behavior conditions.
type BehaviorConfig struct {
	// MaxSpeedKMH: travel between two sign-ins faster than this is impossible. Default 900.
	MaxSpeedKMH float64 `json:"max_speed_kmh,omitempty"`
	// MinDistanceKM: shorter journeys never count as impossible. Default 100.
	MinDistanceKM float64 `json:"min_distance_km,omitempty"`
	// History is how many sign-ins are kept per user. Default 50.
	History int `json:"history,omitempty"`
	// Retention is how long a sign-in is kept. Default 180 days.
	Retention caddy.Duration `json:"retention,omitempty"`
}

// behaviorChecker judges sign-ins for the gates against the users' histories.
type behaviorChecker struct {
	history *behavior.History
	locator *behavior.Locator // nil: no geoip database, countries and locations unknown
	watch   []behavior.Signal // the signals some rule names
	now     func() time.Time
	log     *slog.Logger
}

// watchedSignals are the behavior signals the policies name.
func (a *App) watchedSignals() []behavior.Signal {
	var out []behavior.Signal
	for _, pc := range a.Policies {
		for _, rc := range pc.Rules {
			for _, w := range rc.Behavior {
				if s, err := behavior.ParseSignal(w); err == nil && !slices.Contains(out, s) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// openBehavior starts the sign-in history when a rule uses it (or behavior is configured).
func (a *App) openBehavior() error {
	watch := a.watchedSignals()
	if len(watch) == 0 && a.Behavior == nil {
		return nil
	}
	cfg := behavior.Config{Store: a.store}
	if b := a.Behavior; b != nil {
		cfg.MaxSpeedKMH, cfg.MinDistanceKM, cfg.MaxEntries, cfg.Retention = b.MaxSpeedKMH, b.MinDistanceKM, b.History, time.Duration(b.Retention)
	}
	h, err := behavior.New(cfg)
	if err != nil {
		return fmt.Errorf("zonegate behavior: %w", err)
	}
	c := &behaviorChecker{history: h, watch: watch, now: time.Now, log: a.logger.With("component", "behavior")}
	if a.GeoIP != nil && a.GeoIP.CountryDB != "" {
		if c.locator, err = behavior.OpenLocatorWith(a.GeoIP.CountryDB, behavior.LocatorOptions{Logger: c.log}); err != nil {
			return fmt.Errorf("zonegate behavior: %w", err)
		}
	}
	a.behavior = c
	return nil
}

// Check judges one sign-in: the watched signals it is flagged with. The sign-in joins the
// history when it is flagged with none of them, or had two factors: a flagged single-factor
// sign-in must not, or the next one from the same place would look familiar.
func (c *behaviorChecker) Check(ctx context.Context, userID string, ip netip.Addr, deviceID string, trusted bool) ([]string, error) {
	in := behavior.SignIn{Time: c.now(), IP: ip, Device: deviceID}
	if c.locator != nil {
		in.Country, in.Location = c.locator.Locate(ip)
	}
	as, err := c.history.Assess(ctx, userID, in)
	if err != nil {
		return nil, err
	}
	var flagged []string
	for _, s := range c.watch {
		if v := as.Verdict(s); v.Matched {
			flagged = append(flagged, string(s))
			c.log.InfoContext(ctx, "sign-in flagged", "user_id", userID, "signal", string(s), "reason", v.Reason)
		}
	}
	if len(flagged) == 0 || trusted {
		if err := c.history.Record(ctx, userID, in); err != nil {
			return nil, err
		}
	}
	return flagged, nil
}

func (c *behaviorChecker) close() error {
	if c == nil || c.locator == nil {
		return nil
	}
	return c.locator.Close()
}

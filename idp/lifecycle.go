package idp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/zonegate/zonegate/websession"
)

// Lifecycle says whether a user's account state lets them in (an *accounts.Manager
// satisfies it). CanSignIn returns nil for an active user, an error wrapping
// accounts.ErrNotActive for a suspended, locked-out or deprovisioned one, and any other error
// when it could not tell (the sign-in then fails closed).
type Lifecycle interface {
	CanSignIn(ctx context.Context, userID string) error
}

// errNotActive is what a refused lifecycle check leaves in logs.
var errNotActive = errors.New("account not active")

// lifecycleAllows checks the account state of userID: nil when the user may sign in (or no
// Lifecycle is configured), errNotActive-wrapping when not, another error when unknown.
func (p *IdP) lifecycleAllows(ctx context.Context, userID string) error {
	if p.lifecycle == nil {
		return nil
	}
	err := p.lifecycle.CanSignIn(ctx, userID)
	if err == nil {
		return nil
	}
	if p.notActive != nil && p.notActive(err) {
		return fmt.Errorf("%w: %w", errNotActive, err)
	}
	return fmt.Errorf("checking the account state: %w", err)
}

// RevokeUser ends everything a user holds at once: every session (IdP and gates, every node
// through the store's notifications), access tokens and refresh token families. It is what
// suspending, locking or deprovisioning a user, or disabling them in the users file, does.
// It returns how many sessions ended.
func (p *IdP) RevokeUser(ctx context.Context, userID string) (int, error) {
	if userID == "" {
		return 0, errors.New("idp: revoking a user: empty user id")
	}
	// Tokens first: a session ended while its refresh family lives would let the client
	// carry on.
	if err := p.storage.revokeFamilies(ctx, userID, func(refreshFamily) bool { return true }); err != nil {
		return 0, fmt.Errorf("idp: revoking a user: %w", err)
	}
	if err := p.storage.revokeTokens(ctx, userID, func(t accessToken) bool { return !t.Service }); err != nil {
		return 0, fmt.Errorf("idp: revoking a user: %w", err)
	}
	n, err := p.sessions.RevokeUser(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("idp: revoking a user: %w", err)
	}
	p.log.InfoContext(ctx, "idp: user revoked: sessions and tokens ended", slog.String("user_id", userID), slog.Int("sessions", n))
	return n, nil
}

// RevokeDevice ends what a user holds from one device: the IdP and gate sessions started
// from it and the refresh token families (with their access tokens) issued to it. It is what
// a device falling out of compliance does. It returns how many sessions ended.
func (p *IdP) RevokeDevice(ctx context.Context, userID, deviceID string) (int, error) {
	if userID == "" || deviceID == "" {
		return 0, errors.New("idp: revoking a device: empty user or device id")
	}
	if err := p.storage.revokeFamilies(ctx, userID, func(f refreshFamily) bool { return f.DeviceID == deviceID }); err != nil {
		return 0, fmt.Errorf("idp: revoking a device: %w", err)
	}
	n, err := p.sessions.RevokeMatching(ctx, userID, func(s *websession.Session) bool { return s.DeviceID == deviceID })
	if err != nil {
		return n, fmt.Errorf("idp: revoking a device: %w", err)
	}
	return n, nil
}

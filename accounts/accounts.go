// Package accounts keeps users' lifecycle states: active, suspended, locked out, deprovisioned.
//
// The users file says who exists; this package says what state each user is in. Active is the
// default and is not stored: the store holds only the exceptions, one record per user who is
// not active.
package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zonegate/zonegate/store"
)

// Sentinel errors. Returned errors wrap them; test with errors.Is.
var (
	// ErrInvalidTransition means the action is not allowed from the user's current status.
	// Errors wrapping it are *TransitionError and name the action and both statuses.
	ErrInvalidTransition = errors.New("accounts: invalid lifecycle transition")
	// ErrNotActive means the user may not sign in (CanSignIn). Errors wrapping it are
	// *NotActiveError and carry the user's state.
	ErrNotActive = errors.New("accounts: user is not active")
	// ErrConflict means other writers kept changing the user's state while a transition was
	// tried; trying again later may succeed.
	ErrConflict = errors.New("accounts: concurrent changes to the user's state")
)

// Store layout: one record per user who is not Active.
const (
	KindState   store.Kind = "account_state" // id = user id
	OwnerStates            = "accounts"      // every record's owner, so List finds them
)

// System is the actor of the transitions the system makes (Lock, and auto-unlock).
const System = "system"

const (
	maxUserIDLen   = 512  // bytes
	maxByLen       = 256  // bytes
	maxReasonLen   = 1024 // bytes
	maxAttempts    = 8    // reads and writes of one transition before ErrConflict
	maxQuotedInput = 32   // bytes of an unknown action quoted in errors
)

// removed is the expiry a record gets when the user returns to Active: long past, so the
// record no longer exists for any reader and the backend drops it (a conditional delete).
var removed = time.Unix(1, 0)

// Status is a user's lifecycle status, as Okta names them.
type Status string

// The statuses.
const (
	Active        Status = "ACTIVE"
	Suspended     Status = "SUSPENDED"
	LockedOut     Status = "LOCKED_OUT"
	Deprovisioned Status = "DEPROVISIONED"
)

func (s Status) valid() bool {
	switch s {
	case Active, Suspended, LockedOut, Deprovisioned:
		return true
	}
	return false
}

// State is a user's lifecycle state.
type State struct {
	UserID string `json:"user_id"`
	Status Status `json:"status"`
	// Since is when the user entered Status; zero for a user who was never anything but
	// Active (or whose return to Active is not recorded: Active is not stored).
	Since time.Time `json:"since,omitzero"`
	// By is who made the change: the admin (API token name, operator), or "system".
	By string `json:"by,omitempty"`
	// Reason is the free text given with the change, if any.
	Reason string `json:"reason,omitempty"`
	// LockedUntil is, for a LockedOut user, when the lock ends by itself; zero means it lasts
	// until an admin unlocks.
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// Action is an admin API lifecycle action.
type Action string

// The admin actions (lock is the system's, through Lock).
const (
	ActionSuspend     Action = "suspend"     // ACTIVE or LOCKED_OUT -> SUSPENDED
	ActionUnsuspend   Action = "unsuspend"   // SUSPENDED -> ACTIVE
	ActionUnlock      Action = "unlock"      // LOCKED_OUT -> ACTIVE
	ActionDeprovision Action = "deprovision" // any but DEPROVISIONED -> DEPROVISIONED
	ActionActivate    Action = "activate"    // DEPROVISIONED -> ACTIVE
	actionLock        Action = "lock"        // ACTIVE -> LOCKED_OUT, by the system
)

// ParseAction returns the admin action named s: "suspend", "unsuspend", "unlock",
// "deprovision" or "activate".
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionSuspend, ActionUnsuspend, ActionUnlock, ActionDeprovision, ActionActivate:
		return a, nil
	}
	q := s
	if len(q) > maxQuotedInput {
		q = q[:maxQuotedInput] + "..."
	}
	return "", fmt.Errorf("lifecycle action %q: want suspend, unsuspend, unlock, deprovision or activate", q)
}

// rule is what an action does: the statuses it is allowed from and the status it leads to.
type rule struct {
	from []Status
	to   Status
	desc string // the allowed statuses, for errors
}

var rules = map[Action]rule{
	ActionSuspend:     {[]Status{Active, LockedOut}, Suspended, "ACTIVE or LOCKED_OUT"},
	ActionUnsuspend:   {[]Status{Suspended}, Active, "SUSPENDED"},
	ActionUnlock:      {[]Status{LockedOut}, Active, "LOCKED_OUT"},
	ActionDeprovision: {[]Status{Active, Suspended, LockedOut}, Deprovisioned, "any status but DEPROVISIONED"},
	ActionActivate:    {[]Status{Deprovisioned}, Active, "DEPROVISIONED"},
	actionLock:        {[]Status{Active}, LockedOut, "ACTIVE"},
}

// TransitionError is the error of an action not allowed from the user's status. It wraps
// ErrInvalidTransition.
type TransitionError struct {
	UserID string
	Action Action
	From   Status // the user's status
}

// Error says which action was refused for whom, from which status, and what it needs.
func (e *TransitionError) Error() string {
	r := rules[e.Action]
	return fmt.Sprintf("user %q: cannot %s a user who is %s (allowed from %s, leads to %s)", e.UserID, e.Action, e.From, r.desc, r.to)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// NotActiveError is CanSignIn's answer for a user who may not sign in. It wraps ErrNotActive.
type NotActiveError struct {
	State State
}

// Error names the user and the status (and when a timed lock ends).
func (e *NotActiveError) Error() string {
	if e.State.Status == LockedOut && !e.State.LockedUntil.IsZero() {
		return fmt.Sprintf("user %q is %s until %s", e.State.UserID, e.State.Status, e.State.LockedUntil.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("user %q is %s", e.State.UserID, e.State.Status)
}

// Is makes errors.Is(err, ErrNotActive) true.
func (e *NotActiveError) Is(target error) bool { return target == ErrNotActive }

// Config configures a Manager.
type Config struct {
	// Store keeps the states. Required.
	Store store.Store
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnChange, if set, is called once after every successful transition with the states
	// before and after (the IdP ends the user's sessions and refresh tokens there). It is not
	// called when nothing changed, nor for a lock that ends by itself. Its context is not
	// cancelled with the request's, so the clean-up runs even if the client has gone.
	OnChange func(ctx context.Context, before, after State)
}

// Manager reads and changes users' lifecycle states. It is safe for concurrent use.
type Manager struct {
	st       store.Store
	now      func() time.Time
	onChange func(ctx context.Context, before, after State)
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("accounts: no store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{st: cfg.Store, now: cfg.Now, onChange: cfg.OnChange}, nil
}

// current is a user's state as read, with what is needed to write it back.
type current struct {
	state   State
	version uint64 // of the record; 0 if there is none
}

// load reads userID's state at now. A missing record is Active; a lock whose time has passed
// reads as Active (the record may still be there).
func (m *Manager) load(ctx context.Context, userID string, now time.Time) (current, error) {
	r, err := m.st.Get(ctx, KindState, userID)
	if errors.Is(err, store.ErrNotFound) {
		return current{state: State{UserID: userID, Status: Active}}, nil
	}
	if err != nil {
		return current{}, err
	}
	var s State
	if err := json.Unmarshal(r.Value, &s); err != nil {
		return current{}, fmt.Errorf("decoding its record: %w: %w", store.ErrUnavailable, err)
	}
	if !s.Status.valid() || s.UserID != userID {
		return current{}, fmt.Errorf("decoding its record: %w: status %q of user %q", store.ErrUnavailable, s.Status, s.UserID)
	}
	if s.Status == LockedOut && !s.LockedUntil.IsZero() && !now.Before(s.LockedUntil) {
		// As if there were no record: the backend drops it at LockedUntil on its own clock.
		s = State{UserID: userID, Status: Active}
	}
	return current{state: s, version: r.Version}, nil
}

// Get returns userID's state. A user with no record is Active with a zero Since, and so is a
// LockedOut user whose LockedUntil has passed.
func (m *Manager) Get(ctx context.Context, userID string) (State, error) {
	if err := checkUserID(userID); err != nil {
		return State{}, fmt.Errorf("reading the state of a user: %w", err)
	}
	c, err := m.load(ctx, userID, m.now())
	if err != nil {
		return State{}, fmt.Errorf("reading the state of user %q: %w", userID, err)
	}
	return c.state, nil
}

// CanSignIn is the check for the sign-in and refresh paths: nil if userID is Active, an error
// wrapping ErrNotActive (a *NotActiveError with the state) if not, and any other error when the
// state cannot be read: the caller must then refuse too (fail closed).
func (m *Manager) CanSignIn(ctx context.Context, userID string) error {
	s, err := m.Get(ctx, userID)
	if err != nil {
		return err
	}
	if s.Status != Active {
		return &NotActiveError{State: s}
	}
	return nil
}

// List returns the state of every user who is not Active, by user id.
func (m *Manager) List(ctx context.Context) ([]State, error) {
	rs, err := m.st.ListByOwner(ctx, KindState, OwnerStates)
	if err != nil {
		return nil, fmt.Errorf("listing user states: %w", err)
	}
	now := m.now()
	out := make([]State, 0, len(rs))
	for _, r := range rs {
		var s State
		if err := json.Unmarshal(r.Value, &s); err != nil {
			return nil, fmt.Errorf("listing user states: decoding the state of user %q: %w: %w", r.ID, store.ErrUnavailable, err)
		}
		if s.Status == Active || (s.Status == LockedOut && !s.LockedUntil.IsZero() && !now.Before(s.LockedUntil)) {
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b State) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

// Suspend suspends an Active or LockedOut user: no sign-in until Unsuspend.
func (m *Manager) Suspend(ctx context.Context, userID, by, reason string) (State, error) {
	return m.transition(ctx, userID, ActionSuspend, by, reason, time.Time{})
}

// Unsuspend returns a Suspended user to Active.
func (m *Manager) Unsuspend(ctx context.Context, userID, by string) (State, error) {
	return m.transition(ctx, userID, ActionUnsuspend, by, "", time.Time{})
}

// Unlock returns a LockedOut user to Active before the lock ends by itself.
func (m *Manager) Unlock(ctx context.Context, userID, by string) (State, error) {
	return m.transition(ctx, userID, ActionUnlock, by, "", time.Time{})
}

// Lock locks an Active user out (the system does, after too many failed sign-ins) until until,
// or until an admin unlocks if until is zero. until must be in the future.
func (m *Manager) Lock(ctx context.Context, userID string, until time.Time, reason string) (State, error) {
	return m.transition(ctx, userID, actionLock, System, reason, until)
}

// Deprovision deprovisions a user who is not already Deprovisioned.
func (m *Manager) Deprovision(ctx context.Context, userID, by, reason string) (State, error) {
	return m.transition(ctx, userID, ActionDeprovision, by, reason, time.Time{})
}

// Activate reactivates a Deprovisioned user.
func (m *Manager) Activate(ctx context.Context, userID, by string) (State, error) {
	return m.transition(ctx, userID, ActionActivate, by, "", time.Time{})
}

// Apply performs an admin action (from ParseAction) as the method of the same name does.
// reason is kept only by suspend and deprovision.
func (m *Manager) Apply(ctx context.Context, userID string, a Action, by, reason string) (State, error) {
	switch a {
	case ActionSuspend:
		return m.Suspend(ctx, userID, by, reason)
	case ActionUnsuspend:
		return m.Unsuspend(ctx, userID, by)
	case ActionUnlock:
		return m.Unlock(ctx, userID, by)
	case ActionDeprovision:
		return m.Deprovision(ctx, userID, by, reason)
	case ActionActivate:
		return m.Activate(ctx, userID, by)
	}
	_, err := ParseAction(string(a))
	return State{}, fmt.Errorf("changing the state of user %q: %w", userID, err)
}

// errConflict aborts a write whose record changed since it was read.
var errConflict = errors.New("record changed since read")

// transition performs action a on userID: read the state, check the rule, and write the new
// state only if the record is still the one read (create it if there was none, expire it to
// return to Active). A lost race starts over, so the loser's error describes the state the
// winner made.
func (m *Manager) transition(ctx context.Context, userID string, a Action, by, reason string, until time.Time) (State, error) {
	verb := strings.TrimSuffix(string(a), "e") + "ing" // suspending, unlocking, deprovisioning, activating
	errf := func(format string, args ...any) (State, error) {
		return State{}, fmt.Errorf("%s user %q: "+format, append([]any{verb, userID}, args...)...)
	}
	if err := checkUserID(userID); err != nil {
		return State{}, fmt.Errorf("%s a user: %w", verb, err)
	}
	if err := checkText("actor", by, maxByLen, true); err != nil {
		return errf("%w", err)
	}
	if err := checkText("reason", reason, maxReasonLen, false); err != nil {
		return errf("%w", err)
	}
	r := rules[a]
	for range maxAttempts {
		now := m.now()
		if a == actionLock && !until.IsZero() && !until.After(now) {
			return errf("lock end %s is not in the future", until.UTC().Format(time.RFC3339))
		}
		cur, err := m.load(ctx, userID, now)
		if err != nil {
			return errf("%w", err)
		}
		before := cur.state
		if !slices.Contains(r.from, before.Status) {
			return State{}, &TransitionError{UserID: userID, Action: a, From: before.Status}
		}
		after := State{UserID: userID, Status: r.to, Since: now, By: by}
		if r.to != Active {
			after.Reason = reason
		}
		if a == actionLock {
			after.LockedUntil = until
		}
		err = m.write(ctx, cur, after)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return errf("%w", err)
		}
		if m.onChange != nil {
			m.onChange(context.WithoutCancel(ctx), before, after)
		}
		return after, nil
	}
	return errf("%w: gave up after %d attempts", ErrConflict, maxAttempts)
}

// write stores after in place of cur, if the record is still the one cur was read from; it
// returns errConflict if not.
func (m *Manager) write(ctx context.Context, cur current, after State) error {
	id := after.UserID
	if cur.version == 0 {
		// No record: a user who was Active becomes something else. Create fails if another
		// writer got there first.
		b, err := json.Marshal(after)
		if err != nil {
			return fmt.Errorf("encoding the state: %w", err)
		}
		err = m.st.Create(ctx, store.Record{Kind: KindState, ID: id, Owner: OwnerStates, Value: b, ExpiresAt: after.LockedUntil})
		if errors.Is(err, store.ErrAlreadyExists) {
			return errConflict
		}
		return err
	}
	_, err := m.st.Update(ctx, KindState, id, func(r store.Record) (store.Record, error) {
		if r.Version != cur.version {
			return r, errConflict
		}
		if after.Status == Active {
			// Active is no record: expire this one now, out of the owner index.
			r.Owner, r.ExpiresAt = "", removed
			return r, nil
		}
		b, err := json.Marshal(after)
		if err != nil {
			return r, fmt.Errorf("encoding the state: %w", err)
		}
		r.Owner, r.Value, r.ExpiresAt = OwnerStates, b, after.LockedUntil
		return r, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errConflict // gone since read (expired, or another writer returned it to Active)
	}
	return err
}

// checkUserID checks a user id given to the Manager.
func checkUserID(id string) error {
	switch {
	case id == "":
		return errors.New("no user id")
	case len(id) > maxUserIDLen:
		return fmt.Errorf("user id is longer than %d bytes", maxUserIDLen)
	case !utf8.ValidString(id):
		return errors.New("user id is not UTF-8")
	}
	return nil
}

// checkText checks an actor or a reason.
func checkText(what, s string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return fmt.Errorf("no %s", what)
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes", what, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not UTF-8", what)
	}
	return nil
}

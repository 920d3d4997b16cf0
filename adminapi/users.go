package adminapi

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/websession"
)

// Paging of user lists.
const (
	DefaultUserLimit = 200
	MaxUserLimit     = 1000
)

// actionResetFactors is the lifecycle action that removes every factor (not an accounts
// action).
const actionResetFactors = "reset_factors"

// User is a user as the API shows it.
type User struct {
	ID     string          `json:"id"`
	Status accounts.Status `json:"status"`
	// StatusChanged is when the user entered Status; absent if never recorded.
	StatusChanged time.Time `json:"statusChanged,omitzero"`
	// LockedUntil is when a LOCKED_OUT user's lock ends by itself; absent if it does not.
	LockedUntil time.Time `json:"lockedUntil,omitzero"`
	// Disabled is true when the users file disables the account (it never signs in, whatever
	// Status says).
	Disabled bool        `json:"disabled,omitempty"`
	Profile  UserProfile `json:"profile"`
	Groups   []string    `json:"groups"`
}

// UserProfile is the profile part of a User.
type UserProfile struct {
	Login string `json:"login"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// userView builds the API's User from the directory's and its state.
func userView(u directory.User, s accounts.State) User {
	v := User{
		ID:            u.ID,
		Status:        s.Status,
		StatusChanged: s.Since,
		Disabled:      u.Disabled,
		Profile:       UserProfile{Login: u.Username, Name: u.Name, Email: u.Email},
		Groups:        slices.Clone(u.Groups),
	}
	if v.Status == "" {
		v.Status = accounts.Active
	}
	if v.Status == accounts.LockedOut {
		v.LockedUntil = s.LockedUntil
	}
	if v.Groups == nil {
		v.Groups = []string{}
	}
	return v
}

// user finds the user a path names: by stable id, else by username.
func (a *API) user(id string) (directory.User, error) {
	if u, ok := a.users.LookupID(id); ok {
		return u, nil
	}
	if u, ok := a.users.Lookup(id); ok {
		return u, nil
	}
	return directory.User{}, notFound(id, "User")
}

// listUsers serves GET /api/v1/users.
func (a *API) listUsers(c *call, q url.Values) (int, any, error) {
	return a.userList(c, q, "")
}

// groupUsers serves GET /api/v1/groups/{name}/users.
func (a *API) groupUsers(c *call, q url.Values) (int, any, error) {
	name := c.r.PathValue("name")
	if !slices.ContainsFunc(a.users.Users(), func(u directory.User) bool { return slices.Contains(u.Groups, name) }) {
		return 0, nil, notFound(name, "Group")
	}
	return a.userList(c, q, name)
}

// userList answers a page of users, by login, filtered by q (prefix of login, name or email,
// ignoring case), status and group; limit and after page it.
func (a *API) userList(c *call, q url.Values, group string) (int, any, error) {
	var p struct{ q, status, limit, after string }
	for _, f := range []struct {
		name string
		v    *string
	}{{"q", &p.q}, {"status", &p.status}, {"limit", &p.limit}, {"after", &p.after}} {
		v, err := one(q, f.name)
		if err != nil {
			return 0, nil, err
		}
		*f.v = v
	}
	var status accounts.Status
	if p.status != "" {
		status = accounts.Status(strings.ToUpper(p.status))
		switch status {
		case accounts.Active, accounts.Suspended, accounts.LockedOut, accounts.Deprovisioned:
		default:
			return 0, nil, badRequest("status: %q is not ACTIVE, SUSPENDED, LOCKED_OUT or DEPROVISIONED", clipText(p.status, 32))
		}
	}
	limit, err := parseLimit(p.limit, DefaultUserLimit, MaxUserLimit)
	if err != nil {
		return 0, nil, err
	}
	prefix := strings.ToLower(p.q)

	users := a.users.Users()
	slices.SortFunc(users, func(x, y directory.User) int { return strings.Compare(x.Username, y.Username) })
	list, err := a.accounts.List(c.r.Context())
	if err != nil {
		return 0, nil, unavailable("listing users", err)
	}
	states := make(map[string]accounts.State, len(list))
	for _, s := range list {
		states[s.UserID] = s
	}
	out := []User{}
	for _, u := range users {
		if p.after != "" && u.Username <= p.after {
			continue
		}
		if group != "" && !slices.Contains(u.Groups, group) {
			continue
		}
		if prefix != "" && !hasPrefixFold(u.Username, prefix) && !hasPrefixFold(u.Name, prefix) && !hasPrefixFold(u.Email, prefix) {
			continue
		}
		s, ok := states[u.ID]
		if !ok {
			s = accounts.State{UserID: u.ID, Status: accounts.Active}
		}
		if status != "" && s.Status != status {
			continue
		}
		if len(out) == limit {
			setNextLink(c, q, out[len(out)-1].Profile.Login)
			break
		}
		out = append(out, userView(u, s))
	}
	return http.StatusOK, out, nil
}

// hasPrefixFold reports whether s starts with the lower-case prefix, ignoring case.
func hasPrefixFold(s, prefix string) bool {
	return strings.HasPrefix(strings.ToLower(s), prefix)
}

// parseLimit reads a limit parameter: def when empty, else 1 to max.
func parseLimit(v string, def, max int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badRequest("limit: must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// setNextLink adds the RFC 8288 Link to the next page: the same path and query with after
// set to cursor. The target is a relative reference, so no Host header reaches it.
func setNextLink(c *call, q url.Values, cursor string) {
	next := url.Values{}
	for k, vs := range q {
		next[k] = vs
	}
	next.Set("after", cursor)
	u := url.URL{Path: c.r.URL.Path, RawQuery: next.Encode()}
	c.w.Header().Add("Link", "<"+u.String()+`>; rel="next"`)
}

// getUser serves GET /api/v1/users/{id}.
func (a *API) getUser(c *call, _ url.Values) (int, any, error) {
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	s, err := a.accounts.Get(c.r.Context(), u.ID)
	if err != nil {
		return 0, nil, unavailable("reading a user's state", err)
	}
	return http.StatusOK, userView(u, s), nil
}

// userLifecycle serves POST /api/v1/users/{id}/lifecycle/{action}.
func (a *API) userLifecycle(c *call, _ url.Values) (int, any, error) {
	name := c.r.PathValue("action")
	if name == actionResetFactors {
		if a.factors == nil {
			return 0, nil, errNoEndpoint
		}
		return a.deleteFactors(c, nil)
	}
	act, err := accounts.ParseAction(name)
	if err != nil {
		return 0, nil, badRequest("lifecycle action %q: want suspend, unsuspend, unlock, deprovision, activate or %s", clipText(name, 32), actionResetFactors)
	}
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	s, err := a.accounts.Apply(c.r.Context(), u.ID, act, c.by(), body.Reason)
	var te *accounts.TransitionError
	switch {
	case errors.As(err, &te):
		return 0, nil, badRequest("cannot %s a user who is %s", te.Action, te.From)
	case errors.Is(err, accounts.ErrConflict):
		return 0, nil, &apiError{http.StatusConflict, CodeValidation, "the user's state kept changing meanwhile; try again"}
	case err != nil:
		return 0, nil, unavailable(fmt.Sprintf("applying %s", act), err)
	}
	a.recordChange(c, EventUserLifecycle+string(act), userTarget(u), body.Reason,
		map[string]string{"status": string(s.Status)})
	return http.StatusOK, userView(u, s), nil
}

// userTarget is the audit target of a user.
func userTarget(u directory.User) audit.Target {
	return audit.Target{ID: u.ID, Type: "user", Name: u.Username}
}

// listFactors serves GET /api/v1/users/{id}/factors.
func (a *API) listFactors(c *call, _ url.Values) (int, any, error) {
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	fs, err := a.factors.List(c.r.Context(), u.ID)
	if err != nil {
		return 0, nil, unavailable("listing factors", err)
	}
	out := slices.Clone(fs)
	if out == nil {
		out = []Factor{}
	}
	slices.SortFunc(out, func(x, y Factor) int {
		return cmp.Or(x.Created.Compare(y.Created), strings.Compare(x.ID, y.ID))
	})
	return http.StatusOK, out, nil
}

// Removed is the answer of a factor reset.
type Removed struct {
	Removed int `json:"removed"`
}

// deleteFactors serves DELETE /api/v1/users/{id}/factors and the reset_factors lifecycle
// action.
func (a *API) deleteFactors(c *call, _ url.Values) (int, any, error) {
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	n, err := a.factors.Reset(c.r.Context(), u.ID)
	if err != nil {
		return 0, nil, unavailable("resetting factors", err)
	}
	a.recordChange(c, EventFactorReset, userTarget(u), body.Reason, map[string]string{"removed": strconv.Itoa(n)})
	return http.StatusOK, Removed{Removed: n}, nil
}

// Session is a web session as the API shows it.
type Session struct {
	// ID is the session's store key (a hash of the cookie's secret, not the secret).
	ID string `json:"id"`
	// Kind is "idp" (single sign-on at the issuer) or "gate" (one protected host).
	Kind string `json:"kind"`
	// Host is the protected host of a gate session.
	Host string `json:"host,omitempty"`
	// AuthTime is when the user authenticated.
	AuthTime time.Time `json:"authTime,omitzero"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"lastSeen"`
	// Expires is the absolute expiry; IdleExpires when the session ends unless used.
	Expires     time.Time `json:"expires"`
	IdleExpires time.Time `json:"idleExpires,omitzero"`
	// AMR are the authentication methods used ("pwd", "otp", "hwk", ...).
	AMR []string `json:"amr"`
	// Parent is a gate session's IdP session.
	Parent string `json:"parent,omitempty"`
	// Device is the device a gate session was started from.
	Device string `json:"device,omitempty"`
}

// sessionView builds the API's Session.
func sessionView(s websession.Session) Session {
	v := Session{
		ID:       s.ID,
		Kind:     s.Kind,
		Host:     s.Host,
		AuthTime: s.AuthTime,
		Created:  s.CreatedAt,
		LastSeen: s.LastSeenAt,
		Expires:  s.ExpiresAt,
		AMR:      slices.Clone(s.AMR),
		Parent:   s.ParentID,
		Device:   s.DeviceID,
	}
	if s.IdleTimeout > 0 && !s.LastSeenAt.IsZero() {
		v.IdleExpires = s.LastSeenAt.Add(s.IdleTimeout)
	}
	if v.AMR == nil {
		v.AMR = []string{}
	}
	return v
}

// listSessions serves GET /api/v1/users/{id}/sessions.
func (a *API) listSessions(c *call, _ url.Values) (int, any, error) {
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	ss, err := a.sessions.List(c.r.Context(), u.ID)
	if err != nil {
		return 0, nil, unavailable("listing sessions", err)
	}
	out := make([]Session, 0, len(ss))
	for _, s := range ss {
		out = append(out, sessionView(s))
	}
	slices.SortFunc(out, func(x, y Session) int {
		return cmp.Or(x.Created.Compare(y.Created), strings.Compare(x.ID, y.ID))
	})
	return http.StatusOK, out, nil
}

// Revoked is the answer of a session clear.
type Revoked struct {
	Revoked int `json:"revoked"`
}

// deleteSessions serves DELETE /api/v1/users/{id}/sessions.
func (a *API) deleteSessions(c *call, _ url.Values) (int, any, error) {
	u, err := a.user(c.r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	n, err := a.sessions.RevokeUser(c.r.Context(), u.ID)
	if err != nil {
		return 0, nil, unavailable("ending sessions", err)
	}
	a.recordChange(c, EventSessionClear, userTarget(u), body.Reason, map[string]string{"revoked": strconv.Itoa(n)})
	return http.StatusOK, Revoked{Revoked: n}, nil
}

// Group is a group as the API shows it.
type Group struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

// listGroups serves GET /api/v1/groups: the groups the users are in, by name.
func (a *API) listGroups(_ *call, _ url.Values) (int, any, error) {
	n := map[string]int{}
	for _, u := range a.users.Users() {
		for _, g := range u.Groups {
			n[g]++
		}
	}
	out := make([]Group, 0, len(n))
	for g, k := range n {
		out = append(out, Group{Name: g, Members: k})
	}
	slices.SortFunc(out, func(x, y Group) int { return strings.Compare(x.Name, y.Name) })
	return http.StatusOK, out, nil
}

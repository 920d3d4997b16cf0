package adminapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zonegate/zonegate/apitoken"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/store"
)

// complianceID is the path segment of the MDM webhook (/api/v1/devices/compliance), which is
// never a device id here.
const complianceID = "compliance"

// Device is a device as the API shows it.
type Device struct {
	ID string `json:"id"`
	// Status is ACTIVE, or SUSPENDED when an administrator or non-compliance suspended it.
	Status string `json:"status"`
	// SuspendedBy is "admin" or "compliance" for a suspended device.
	SuspendedBy string `json:"suspendedBy,omitempty"`
	// Owner is the id of the user it belongs to.
	Owner    string `json:"owner,omitempty"`
	Platform string `json:"platform,omitempty"`
	Serial   string `json:"serial,omitempty"`
	// Source says where the record came from ("mdm", "admin", ...).
	Source  string `json:"source,omitempty"`
	Managed bool   `json:"managed"`
	// Compliance is compliant, noncompliant or unknown, since ComplianceSince.
	Compliance      string    `json:"compliance"`
	ComplianceSince time.Time `json:"complianceSince,omitzero"`
	// Trust is the trust level policy sees: TRUSTED, NOT_TRUSTED or UNKNOWN.
	Trust       string    `json:"trust"`
	Created     time.Time `json:"created"`
	LastUpdated time.Time `json:"lastUpdated"`
}

// deviceView builds the API's Device.
func deviceView(d *device.Device) Device {
	v := Device{
		ID:              d.ID,
		Status:          "ACTIVE",
		Owner:           d.Owner,
		Platform:        d.Platform,
		Serial:          d.Serial,
		Source:          d.Source,
		Managed:         d.Managed,
		Compliance:      string(d.Compliance),
		ComplianceSince: d.ComplianceSince,
		Trust:           string(d.Trust()),
		Created:         d.Created,
		LastUpdated:     d.Updated,
	}
	if d.Suspended {
		v.Status, v.SuspendedBy = "SUSPENDED", string(d.SuspendedBy)
	}
	return v
}

// listDevices serves GET /api/v1/devices: the devices of one owner (?owner= a user id or
// username), or of every user in the directory. Devices without an owner are not listed.
func (a *API) listDevices(c *call, q url.Values) (int, any, error) {
	owner, err := one(q, "owner")
	if err != nil {
		return 0, nil, err
	}
	var owners []string
	switch {
	case owner != "":
		if u, err := a.user(owner); err == nil {
			owner = u.ID
		}
		owners = []string{owner} // also a user who left the directory
	default:
		for _, u := range a.users.Users() {
			owners = append(owners, u.ID)
		}
	}
	out := []Device{}
	seen := map[string]bool{}
	for _, o := range owners {
		ds, err := a.devices.List(c.r.Context(), o)
		if err != nil {
			return 0, nil, unavailable("listing devices", err)
		}
		for i := range ds {
			if !seen[ds[i].ID] {
				seen[ds[i].ID] = true
				out = append(out, deviceView(&ds[i]))
			}
		}
	}
	slices.SortFunc(out, func(x, y Device) int { return strings.Compare(x.ID, y.ID) })
	return http.StatusOK, out, nil
}

// deviceID returns the device id of the path; "compliance" is none.
func deviceID(c *call) (string, error) {
	id := c.r.PathValue("id")
	if id == complianceID {
		return "", errNoEndpoint
	}
	return id, nil
}

// deviceErr maps a registry error: not found is 404, anything else a backend failure.
func deviceErr(id, what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound(id, "Device")
	}
	return unavailable(what, err)
}

// getDevice serves GET /api/v1/devices/{id}.
func (a *API) getDevice(c *call, _ url.Values) (int, any, error) {
	id, err := deviceID(c)
	if err != nil {
		return 0, nil, err
	}
	d, err := a.devices.Get(c.r.Context(), id)
	if err != nil {
		return 0, nil, deviceErr(id, "reading a device", err)
	}
	return http.StatusOK, deviceView(d), nil
}

// suspendDevice serves POST /api/v1/devices/{id}/lifecycle/suspend.
func (a *API) suspendDevice(c *call, _ url.Values) (int, any, error) {
	return a.deviceLifecycle(c, EventDeviceSuspend, a.devices.Suspend)
}

// unsuspendDevice serves POST /api/v1/devices/{id}/lifecycle/unsuspend.
func (a *API) unsuspendDevice(c *call, _ url.Values) (int, any, error) {
	return a.deviceLifecycle(c, EventDeviceUnsuspend, a.devices.Unsuspend)
}

func (a *API) deviceLifecycle(c *call, typ string, op func(ctx context.Context, id string) (*device.Device, error)) (int, any, error) {
	id, err := deviceID(c)
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	d, err := op(c.r.Context(), id)
	if err != nil {
		return 0, nil, deviceErr(id, "changing a device", err)
	}
	a.recordChange(c, typ, deviceTarget(d), body.Reason, map[string]string{"status": deviceView(d).Status})
	return http.StatusOK, deviceView(d), nil
}

// deviceTarget is the audit target of a device.
func deviceTarget(d *device.Device) audit.Target {
	return audit.Target{ID: d.ID, Type: "device", Name: d.Platform}
}

// deleteDevice serves DELETE /api/v1/devices/{id}.
func (a *API) deleteDevice(c *call, _ url.Values) (int, any, error) {
	id, err := deviceID(c)
	if err != nil {
		return 0, nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	d, err := a.devices.Get(c.r.Context(), id)
	if err != nil {
		return 0, nil, deviceErr(id, "reading a device", err)
	}
	if err := a.devices.Delete(c.r.Context(), id); err != nil {
		return 0, nil, deviceErr(id, "deleting a device", err)
	}
	a.recordChange(c, EventDeviceDelete, deviceTarget(d), body.Reason, map[string]string{"owner": d.Owner})
	return http.StatusNoContent, nil, nil
}

// listLogs serves GET /api/v1/logs: a page of the system log, with a Link to the next.
func (a *API) listLogs(c *call, q url.Values) (int, any, error) {
	f, err := audit.ParseFilter(q)
	if err != nil {
		return 0, nil, badRequest("%s", strings.TrimPrefix(err.Error(), "audit: "))
	}
	page, err := a.log.Query(c.r.Context(), f)
	if errors.Is(err, audit.ErrInvalidFilter) {
		return 0, nil, badRequest("%s", strings.TrimPrefix(err.Error(), "audit: "))
	}
	if err != nil {
		return 0, nil, unavailable("querying the system log", err)
	}
	if page.Next != "" {
		setNextLink(c, q, page.Next)
	}
	if page.Events == nil {
		page.Events = []audit.Event{}
	}
	return http.StatusOK, page.Events, nil
}

// Token is an API token's metadata as the API shows it. It never holds the secret.
type Token struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Scope     apitoken.Scope `json:"scope"`
	Created   time.Time      `json:"created"`
	CreatedBy string         `json:"createdBy"`
	// LastUsed is when the token was last accepted, to the minute; absent if never.
	LastUsed time.Time `json:"lastUsed,omitzero"`
	// ExpiresAt is when it expires unless used.
	ExpiresAt time.Time `json:"expiresAt"`
}

// listTokens serves GET /api/v1/tokens.
func (a *API) listTokens(c *call, _ url.Values) (int, any, error) {
	ts, err := a.tokens.List(c.r.Context())
	if err != nil {
		return 0, nil, unavailable("listing API tokens", err)
	}
	out := make([]Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, Token{ID: t.ID, Name: t.Name, Scope: t.Scope, Created: t.Created,
			CreatedBy: t.CreatedBy, LastUsed: t.LastUsed, ExpiresAt: t.ExpiresAt})
	}
	return http.StatusOK, out, nil
}

// deleteToken serves DELETE /api/v1/tokens/{id}. A token may revoke itself.
func (a *API) deleteToken(c *call, _ url.Values) (int, any, error) {
	id := c.r.PathValue("id")
	body, err := readBody(c.r)
	if err != nil {
		return 0, nil, err
	}
	ts, err := a.tokens.List(c.r.Context())
	if err != nil {
		return 0, nil, unavailable("listing API tokens", err)
	}
	i := slices.IndexFunc(ts, func(t apitoken.Token) bool { return t.ID == id })
	if i < 0 {
		return 0, nil, notFound(id, "Token")
	}
	err = a.tokens.Revoke(c.r.Context(), id)
	if errors.Is(err, apitoken.ErrNotFound) {
		return 0, nil, notFound(id, "Token") // revoked meanwhile
	}
	if err != nil {
		return 0, nil, unavailable("revoking an API token", err)
	}
	a.recordChange(c, EventTokenRevoke, audit.Target{ID: id, Type: audit.ActorAdminToken, Name: ts[i].Name}, body.Reason, nil)
	return http.StatusNoContent, nil, nil
}

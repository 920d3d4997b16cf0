package adminapi

import (
	"net/url"
)

// feature is what a route needs from the Config to exist.
type feature uint8

const (
	needCore    feature = iota // always there
	needFactors                // Config.Factors
	needDevices                // Config.Devices
	needLog                    // Config.Log
)

// route is one endpoint of the API.
type route struct {
	method string
	path   string // a ServeMux path pattern, as in docs/openapi.yaml
	write  bool   // needs a read-write token
	needs  feature
	params []string // the query parameters it takes
	h      func(a *API, c *call, q url.Values) (status int, body any, err error)
}

// pattern is the route's ServeMux pattern.
func (rt *route) pattern() string { return rt.method + " " + rt.path }

var (
	listParams = []string{"q", "status", "limit", "after"}
	logParams  = []string{"since", "until", "type", "actor", "outcome", "target", "limit", "after"}
)

// routes are the API's endpoints. docs/openapi.yaml describes the same ones (a test checks).
var routes = []route{
	{method: "GET", path: "/api/v1/users", params: listParams, h: (*API).listUsers},
	{method: "GET", path: "/api/v1/users/{id}", h: (*API).getUser},
	{method: "POST", path: "/api/v1/users/{id}/lifecycle/{action}", write: true, h: (*API).userLifecycle},
	{method: "GET", path: "/api/v1/users/{id}/factors", needs: needFactors, h: (*API).listFactors},
	{method: "DELETE", path: "/api/v1/users/{id}/factors", write: true, needs: needFactors, h: (*API).deleteFactors},
	{method: "GET", path: "/api/v1/users/{id}/sessions", h: (*API).listSessions},
	{method: "DELETE", path: "/api/v1/users/{id}/sessions", write: true, h: (*API).deleteSessions},
	{method: "GET", path: "/api/v1/groups", h: (*API).listGroups},
	{method: "GET", path: "/api/v1/groups/{name}/users", params: listParams, h: (*API).groupUsers},
	{method: "GET", path: "/api/v1/devices", needs: needDevices, params: []string{"owner"}, h: (*API).listDevices},
	{method: "GET", path: "/api/v1/devices/{id}", needs: needDevices, h: (*API).getDevice},
	{method: "POST", path: "/api/v1/devices/{id}/lifecycle/suspend", write: true, needs: needDevices, h: (*API).suspendDevice},
	{method: "POST", path: "/api/v1/devices/{id}/lifecycle/unsuspend", write: true, needs: needDevices, h: (*API).unsuspendDevice},
	{method: "DELETE", path: "/api/v1/devices/{id}", write: true, needs: needDevices, h: (*API).deleteDevice},
	{method: "GET", path: "/api/v1/logs", needs: needLog, params: logParams, h: (*API).listLogs},
	{method: "GET", path: "/api/v1/tokens", h: (*API).listTokens},
	{method: "DELETE", path: "/api/v1/tokens/{id}", write: true, h: (*API).deleteToken},
}

package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/accounts"
	"github.com/zonegate/zonegate/audit"
	"github.com/zonegate/zonegate/device"
	"github.com/zonegate/zonegate/directory"
	"github.com/zonegate/zonegate/store"
)

// checkHeaders checks the headers every answer has.
func checkHeaders(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	if rec.Code != http.StatusNoContent && h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", h.Get("Content-Type"))
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", h.Get("Cache-Control"))
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", h.Get("X-Content-Type-Options"))
	}
}

// TestRoutesByToken calls every route with every kind of token and checks the status and
// the error code.
func TestRoutesByToken(t *testing.T) {
	f := newFixture(t, options{})
	_, victim := f.create("victim", "read")

	type tokenKind struct {
		name  string
		token string
	}
	kinds := []tokenKind{
		{"none", ""},
		{"malformed", "not-a-token"},
		{"wrong secret", f.rw[:len(f.rw)-4] + "AAAA"},
		{"unknown id", "zgt_aaaaaaaa_" + f.rw[13:]},
		{"revoked", f.revoked},
		{"idle-expired", f.idle},
		{"read", f.read},
		{"read-write", f.rw},
	}
	cases := []struct {
		pattern string // the route, checked against the route table
		method  string
		path    string
		ok      int // status for a token allowed to call it
	}{
		{"GET /api/v1/users", "GET", "/api/v1/users", 200},
		{"GET /api/v1/users/{id}", "GET", "/api/v1/users/alice", 200},
		{"POST /api/v1/users/{id}/lifecycle/{action}", "POST", "/api/v1/users/erin/lifecycle/suspend", 200},
		{"GET /api/v1/users/{id}/factors", "GET", "/api/v1/users/u-alice/factors", 200},
		{"DELETE /api/v1/users/{id}/factors", "DELETE", "/api/v1/users/u-alice/factors", 200},
		{"GET /api/v1/users/{id}/sessions", "GET", "/api/v1/users/alice/sessions", 200},
		{"DELETE /api/v1/users/{id}/sessions", "DELETE", "/api/v1/users/alice/sessions", 200},
		{"GET /api/v1/groups", "GET", "/api/v1/groups", 200},
		{"GET /api/v1/groups/{name}/users", "GET", "/api/v1/groups/admins/users", 200},
		{"GET /api/v1/devices", "GET", "/api/v1/devices", 200},
		{"GET /api/v1/devices/{id}", "GET", "/api/v1/devices/dev-1", 200},
		{"POST /api/v1/devices/{id}/lifecycle/suspend", "POST", "/api/v1/devices/dev-1/lifecycle/suspend", 200},
		{"POST /api/v1/devices/{id}/lifecycle/unsuspend", "POST", "/api/v1/devices/dev-1/lifecycle/unsuspend", 200},
		{"DELETE /api/v1/devices/{id}", "DELETE", "/api/v1/devices/dev-del", 204},
		{"GET /api/v1/logs", "GET", "/api/v1/logs", 200},
		{"GET /api/v1/tokens", "GET", "/api/v1/tokens", 200},
		{"DELETE /api/v1/tokens/{id}", "DELETE", "/api/v1/tokens/" + victim.ID, 204},
	}
	var covered []string
	for _, tc := range cases {
		i := slices.IndexFunc(routes, func(rt route) bool { return rt.pattern() == tc.pattern })
		if i < 0 {
			t.Fatalf("%s is not a route", tc.pattern)
		}
		rt := routes[i]
		covered = append(covered, tc.pattern)
		for _, k := range kinds {
			t.Run(tc.method+" "+tc.path+"/"+k.name, func(t *testing.T) {
				rec := f.do(request{method: tc.method, path: tc.path, token: k.token})
				checkHeaders(t, rec)
				wantStatus, wantCode := tc.ok, ""
				switch {
				case k.name == "read" && rt.write:
					wantStatus, wantCode = 403, CodeForbidden
				case k.name != "read" && k.name != "read-write":
					wantStatus, wantCode = 401, CodeInvalidToken
				}
				if rec.Code != wantStatus {
					t.Fatalf("status %d, want %d; body %s", rec.Code, wantStatus, rec.Body)
				}
				if wantCode != "" {
					e := errorOf(t, rec)
					if e.Code != wantCode {
						t.Errorf("errorCode %q, want %q", e.Code, wantCode)
					}
					if wantStatus == 401 {
						if e.Summary != "Invalid token provided" {
							t.Errorf("errorSummary %q", e.Summary)
						}
						if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="zonegate", error="invalid_token"` {
							t.Errorf("WWW-Authenticate = %q", got)
						}
					}
					if wantStatus == 403 && e.Summary != "You do not have permission to perform the requested action" {
						t.Errorf("errorSummary %q", e.Summary)
					}
				} else if wantStatus == 200 && !json.Valid(rec.Body.Bytes()) {
					t.Errorf("body is not JSON: %s", rec.Body)
				}
			})
		}
	}
	for _, rt := range routes {
		if !slices.Contains(covered, rt.pattern()) {
			t.Errorf("route %s is not in the table", rt.pattern())
		}
	}
}

// TestSameAnswerForEveryBadToken checks that the 401 body and headers do not say which kind
// of bad token was presented.
func TestSameAnswerForEveryBadToken(t *testing.T) {
	f := newFixture(t, options{})
	var first *httptest.ResponseRecorder
	for _, tok := range []string{"", "x", f.rw + "x", f.rw[:len(f.rw)-1] + "A", f.revoked, f.idle} {
		rec := f.get("/api/v1/users", tok)
		if first == nil {
			first = rec
			continue
		}
		if rec.Code != first.Code || rec.Body.String() != first.Body.String() ||
			rec.Header().Get("WWW-Authenticate") != first.Header().Get("WWW-Authenticate") {
			t.Errorf("token %.16q...: %d %s; first answer %d %s", tok, rec.Code, rec.Body, first.Code, first.Body)
		}
	}
	// Okta's clients send SSWS.
	rec := f.do(request{method: "GET", path: "/api/v1/users", header: http.Header{"Authorization": {"SSWS " + f.read}}})
	if rec.Code != 200 {
		t.Errorf("SSWS token: status %d", rec.Code)
	}
}

// TestLifecycle walks a user through the lifecycle, checking the answers and the 400 texts.
func TestLifecycle(t *testing.T) {
	f := newFixture(t, options{})
	steps := []struct {
		user, action string
		status       int
		code         string
		summary      string          // for errors
		wantStatus   accounts.Status // for 200
	}{
		{"bob", "unsuspend", 400, CodeValidation, "cannot unsuspend a user who is ACTIVE", ""},
		{"bob", "unlock", 400, CodeValidation, "cannot unlock a user who is ACTIVE", ""},
		{"bob", "activate", 400, CodeValidation, "cannot activate a user who is ACTIVE", ""},
		{"bob", "suspend", 200, "", "", accounts.Suspended},
		{"bob", "suspend", 400, CodeValidation, "cannot suspend a user who is SUSPENDED", ""},
		{"bob", "activate", 400, CodeValidation, "cannot activate a user who is SUSPENDED", ""},
		{"bob", "unsuspend", 200, "", "", accounts.Active},
		{"bob", "deprovision", 200, "", "", accounts.Deprovisioned},
		{"bob", "deprovision", 400, CodeValidation, "cannot deprovision a user who is DEPROVISIONED", ""},
		{"bob", "suspend", 400, CodeValidation, "cannot suspend a user who is DEPROVISIONED", ""},
		{"bob", "unsuspend", 400, CodeValidation, "cannot unsuspend a user who is DEPROVISIONED", ""},
		{"bob", "activate", 200, "", "", accounts.Active},
		{"u-alice", "suspend", 200, "", "", accounts.Suspended}, // by id
		{"alice", "unsuspend", 200, "", "", accounts.Active},    // by username
		{"ALICE", "suspend", 200, "", "", accounts.Suspended},   // usernames ignore case
		{"bob", "explode", 400, CodeValidation, `lifecycle action "explode": want suspend, unsuspend, unlock, deprovision, activate or reset_factors`, ""},
		{"nobody", "suspend", 404, CodeNotFound, "Not found: Resource not found: nobody (User)", ""},
		{"nobody", "reset_factors", 404, CodeNotFound, "Not found: Resource not found: nobody (User)", ""},
	}
	for i, s := range steps {
		rec := f.do(request{method: "POST", path: "/api/v1/users/" + s.user + "/lifecycle/" + s.action, token: f.rw})
		checkHeaders(t, rec)
		if rec.Code != s.status {
			t.Fatalf("step %d: %s %s: status %d, want %d; %s", i, s.action, s.user, rec.Code, s.status, rec.Body)
		}
		if s.code != "" {
			if e := errorOf(t, rec); e.Code != s.code || e.Summary != s.summary {
				t.Errorf("step %d: %s %s: %s %q, want %s %q", i, s.action, s.user, e.Code, e.Summary, s.code, s.summary)
			}
			continue
		}
		var u User
		decode(t, rec, &u)
		if u.Status != s.wantStatus {
			t.Errorf("step %d: %s %s: status %s, want %s", i, s.action, s.user, u.Status, s.wantStatus)
		}
		if !u.StatusChanged.Equal(f.clock.Now()) && s.wantStatus != accounts.Active {
			t.Errorf("step %d: statusChanged %s, want %s", i, u.StatusChanged, f.clock.Now())
		}
	}

	// A lock the system set: shown with its end, refused by unsuspend, lifted by unlock.
	until := f.clock.Now().Add(30 * time.Minute)
	if _, err := f.accounts.Lock(t.Context(), "bob", until, "too many failed sign-ins"); err != nil {
		t.Fatal(err)
	}
	var u User
	rec := f.get("/api/v1/users/bob", f.read)
	decode(t, rec, &u)
	if u.Status != accounts.LockedOut || !u.LockedUntil.Equal(until) {
		t.Errorf("locked user: %+v, want LOCKED_OUT until %s", u, until)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/users/bob/lifecycle/unsuspend", token: f.rw})
	if e := errorOf(t, rec); rec.Code != 400 || e.Summary != "cannot unsuspend a user who is LOCKED_OUT" {
		t.Errorf("unsuspend a locked user: %d %+v", rec.Code, e)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/users/bob/lifecycle/unlock", token: f.rw})
	u = User{}
	decode(t, rec, &u)
	if rec.Code != 200 || u.Status != accounts.Active || !u.LockedUntil.IsZero() {
		t.Errorf("unlock: %d %+v", rec.Code, u)
	}
}

// TestReadTokenCannotSuspend checks that a read token changes nothing.
func TestReadTokenCannotSuspend(t *testing.T) {
	f := newFixture(t, options{})
	rec := f.do(request{method: "POST", path: "/api/v1/users/erin/lifecycle/suspend", token: f.read, body: `{"reason":"x"}`})
	if rec.Code != 403 || errorOf(t, rec).Code != CodeForbidden {
		t.Fatalf("read token suspending: %d %s", rec.Code, rec.Body)
	}
	s, err := f.accounts.Get(t.Context(), "u-erin")
	if err != nil || s.Status != accounts.Active {
		t.Errorf("erin after the refused suspend: %+v, %v; want ACTIVE", s, err)
	}
	var u User
	decode(t, f.get("/api/v1/users/erin", f.read), &u)
	if u.Status != accounts.Active {
		t.Errorf("GET erin: %s, want ACTIVE", u.Status)
	}
	if evs := f.events(EventUserLifecycle + "*"); len(evs) != 0 {
		t.Errorf("lifecycle events after a refused call: %+v", evs)
	}
}

// TestChangeEvents checks the events a change records, and that refused tokens are recorded
// without their secret.
func TestChangeEvents(t *testing.T) {
	f := newFixture(t, options{})
	rec := f.do(request{method: "POST", path: "/api/v1/users/erin/lifecycle/suspend", token: f.rw, body: `{"reason":"left the company"}`})
	if rec.Code != 200 {
		t.Fatalf("suspend: %d %s", rec.Code, rec.Body)
	}
	actor := audit.Actor{ID: f.rwTok.ID, Type: audit.ActorAdminToken, Name: "ops automation"}
	evs := f.events("user.lifecycle.suspend")
	if len(evs) != 1 {
		t.Fatalf("suspend events: %+v", evs)
	}
	e := evs[0]
	if e.Actor != actor || len(e.Targets) != 1 || e.Targets[0] != (audit.Target{ID: "u-erin", Type: "user", Name: "erin"}) ||
		e.Reason != "left the company" || e.Outcome != audit.OutcomeSuccess || e.ClientIP != "192.0.2.7" {
		t.Errorf("suspend event: %+v", e)
	}
	s, _ := f.accounts.Get(t.Context(), "u-erin")
	if s.Reason != "left the company" || !strings.Contains(s.By, f.rwTok.ID) {
		t.Errorf("erin's state: %+v", s)
	}

	// The other changes, each with its typed event.
	changes := []struct {
		method, path, typ string
		target            audit.Target
	}{
		{"DELETE", "/api/v1/users/alice/factors", EventFactorReset, audit.Target{ID: "u-alice", Type: "user", Name: "alice"}},
		{"POST", "/api/v1/users/alice/lifecycle/reset_factors", EventFactorReset, audit.Target{ID: "u-alice", Type: "user", Name: "alice"}},
		{"DELETE", "/api/v1/users/alice/sessions", EventSessionClear, audit.Target{ID: "u-alice", Type: "user", Name: "alice"}},
		{"POST", "/api/v1/devices/dev-1/lifecycle/suspend", EventDeviceSuspend, audit.Target{ID: "dev-1", Type: "device", Name: "macOS"}},
		{"POST", "/api/v1/devices/dev-1/lifecycle/unsuspend", EventDeviceUnsuspend, audit.Target{ID: "dev-1", Type: "device", Name: "macOS"}},
		{"DELETE", "/api/v1/devices/dev-del", EventDeviceDelete, audit.Target{ID: "dev-del", Type: "device", Name: "Linux"}},
		{"DELETE", "/api/v1/tokens/" + f.readTok.ID, EventTokenRevoke, audit.Target{ID: f.readTok.ID, Type: "admin_token", Name: "auditor"}},
	}
	for _, c := range changes {
		rec := f.do(request{method: c.method, path: c.path, token: f.rw, body: `{"reason":"test ` + c.typ + `"}`})
		if rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
	}
	for _, c := range changes {
		evs := f.events(c.typ)
		if !slices.ContainsFunc(evs, func(e audit.Event) bool {
			return e.Actor == actor && len(e.Targets) == 1 && e.Targets[0] == c.target && e.Reason == "test "+c.typ
		}) {
			t.Errorf("%s %s: no %s event with target %+v in %+v", c.method, c.path, c.typ, c.target, evs)
		}
	}

	// Every authenticated call: one system.api_token.use event.
	f.get("/api/v1/nothing-here", f.rw)
	uses := f.events(EventTokenUse)
	if len(uses) != 1+len(changes)+1 {
		t.Errorf("%d use events, want %d", len(uses), 1+len(changes)+1)
	}
	first, last := uses[0], uses[len(uses)-1]
	if first.Actor != actor || first.Outcome != audit.OutcomeSuccess || first.Details["method"] != "POST" ||
		first.Details["path"] != "/api/v1/users/erin/lifecycle/suspend" || first.Details["status"] != "200" {
		t.Errorf("first use event: %+v", first)
	}
	if last.Outcome != audit.OutcomeFailure || last.Details["status"] != "404" || last.Details["errorCode"] != CodeNoEndpoint {
		t.Errorf("last use event: %+v", last)
	}

	// Refused tokens: recorded with the id part only.
	wrong := f.rw[:len(f.rw)-4] + "AAAA"
	for _, tok := range []string{wrong, "garbage", ""} {
		if rec := f.get("/api/v1/users", tok); rec.Code != 401 {
			t.Fatalf("token %.12q: %d", tok, rec.Code)
		}
	}
	refused := f.events(EventTokenRefused)
	if len(refused) != 3 {
		t.Fatalf("refused events: %+v", refused)
	}
	if refused[0].Actor.ID != f.rwTok.ID || refused[0].Outcome != audit.OutcomeFailure || !strings.Contains(refused[0].Reason, "wrong secret") {
		t.Errorf("refused event for a wrong secret: %+v", refused[0])
	}
	if refused[1].Actor.ID != "" || refused[2].Actor.ID != "" {
		t.Errorf("refused events for no token id: %+v, %+v", refused[1], refused[2])
	}
	all, err := json.Marshal(f.events("*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{f.rw, f.read, wrong, f.rw[13:], f.read[13:], wrong[13:]} {
		if strings.Contains(string(all), secret) {
			t.Errorf("a token secret is in the system log")
		}
	}
}

// TestLogsPaging follows the Link headers of /logs.
func TestLogsPaging(t *testing.T) {
	f := newFixture(t, options{})
	for i := range 5 {
		f.log.Record(t.Context(), audit.Event{Time: f.clock.Now().Add(time.Duration(i-10) * time.Second), Type: "test.paging", Outcome: audit.OutcomeSuccess})
	}
	f.flush()
	link := regexp.MustCompile(`^<(/api/v1/logs\?[^>]+)>; rel="next"$`)
	path := "/api/v1/logs?type=test.paging&limit=2"
	var got []string
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		rec := f.get(path, f.read)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		var evs []audit.Event
		decode(t, rec, &evs)
		for _, e := range evs {
			got = append(got, e.ID)
		}
		l := rec.Header().Get("Link")
		if l == "" {
			if len(evs) != 1 {
				t.Errorf("last page has %d events, want 1", len(evs))
			}
			break
		}
		if len(evs) != 2 {
			t.Errorf("page %d has %d events, want 2", pages, len(evs))
		}
		m := link.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("Link %q", l)
		}
		if !strings.Contains(m[1], "type=test.paging") || !strings.Contains(m[1], "limit=2") || !strings.Contains(m[1], "after=") {
			t.Errorf("next link %q lost the filter", m[1])
		}
		path = m[1]
	}
	if len(got) != 5 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != 5 {
		t.Errorf("event ids over the pages: %v", got)
	}

	for _, q := range []string{"?limit=0", "?colour=red", "?since=yesterday", "?after=nope"} {
		rec := f.get("/api/v1/logs"+q, f.read)
		if rec.Code != 400 || errorOf(t, rec).Code != CodeValidation {
			t.Errorf("GET /api/v1/logs%s: %d %s", q, rec.Code, rec.Body)
		}
	}
}

// TestStoreFailure checks that a store outage gives 503, never 200 or 401.
func TestStoreFailure(t *testing.T) {
	f := newFixture(t, options{})
	check := func(name string, rec *httptest.ResponseRecorder) {
		t.Helper()
		checkHeaders(t, rec)
		if rec.Code != 503 {
			t.Errorf("%s: status %d, want 503; %s", name, rec.Code, rec.Body)
			return
		}
		if e := errorOf(t, rec); e.Code != CodeUnavailable {
			t.Errorf("%s: errorCode %s", name, e.Code)
		}
		if rec.Header().Get("Retry-After") != "5" {
			t.Errorf("%s: Retry-After %q", name, rec.Header().Get("Retry-After"))
		}
	}

	f.st.setDown(true)
	for _, tok := range []string{f.rw, f.read, f.revoked, f.rw[:len(f.rw)-1] + "A"} {
		check("store down, token "+tok[:12], f.get("/api/v1/users", tok))
	}
	f.st.setDown(false)

	f.st.failKind(accounts.KindState)
	check("users list", f.get("/api/v1/users", f.read))
	check("one user", f.get("/api/v1/users/alice", f.read))
	check("suspend", f.do(request{method: "POST", path: "/api/v1/users/alice/lifecycle/suspend", token: f.rw}))
	f.st.failKind(store.Kind("device"))
	check("device", f.get("/api/v1/devices/dev-1", f.read))
	check("devices", f.get("/api/v1/devices", f.read))
	check("device suspend", f.do(request{method: "POST", path: "/api/v1/devices/dev-1/lifecycle/suspend", token: f.rw}))
	f.st.failKind(audit.KindEvent)
	check("logs", f.get("/api/v1/logs", f.read))

	f.sessions.err = errors.New("session store down")
	check("sessions", f.get("/api/v1/users/alice/sessions", f.read))
	check("clear sessions", f.do(request{method: "DELETE", path: "/api/v1/users/alice/sessions", token: f.rw}))
	f.factors.err = errors.New("passkey store down")
	check("factors", f.get("/api/v1/users/alice/factors", f.read))
	check("reset factors", f.do(request{method: "POST", path: "/api/v1/users/alice/lifecycle/reset_factors", token: f.rw}))
}

// TestBodies checks the decoding of the change bodies.
func TestBodies(t *testing.T) {
	f := newFixture(t, options{})
	cases := []struct {
		name, body, contentType string
		status                  int
		code                    string
	}{
		{"no body", "", "", 200, ""},
		{"reason", `{"reason":"ticket 42"}`, "", 200, ""},
		{"charset", `{"reason":"ticket 42"}`, "application/json; charset=utf-8", 200, ""},
		{"empty object", `{}`, "", 200, ""},
		{"unknown field", `{"reason":"x","force":true}`, "", 400, CodeBadBody},
		{"wrong type", `{"reason":42}`, "", 400, CodeBadBody},
		{"not JSON", `reason=x`, "", 400, CodeBadBody},
		{"two values", `{"reason":"x"}{"reason":"y"}`, "", 400, CodeBadBody},
		{"array", `["x"]`, "", 400, CodeBadBody},
		{"form", `reason=x`, "application/x-www-form-urlencoded", 415, CodeBadBody},
		{"text", `{"reason":"x"}`, "text/plain", 415, CodeBadBody},
		{"latin1", `{"reason":"x"}`, "application/json; charset=latin1", 415, CodeBadBody},
		{"too large", `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "", 413, CodeBadBody},
		{"control character", `{"reason":"a\u0000b"}`, "", 400, CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Sessions: an idempotent change, so every case can succeed.
			rec := f.do(request{method: "DELETE", path: "/api/v1/users/bob/sessions", token: f.rw, body: tc.body, contentType: tc.contentType})
			checkHeaders(t, rec)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; %s", rec.Code, tc.status, rec.Body)
			}
			if tc.code != "" {
				if e := errorOf(t, rec); e.Code != tc.code {
					t.Errorf("errorCode %s, want %s (%s)", e.Code, tc.code, e.Summary)
				}
			}
		})
	}
	// The unknown field is named.
	rec := f.do(request{method: "POST", path: "/api/v1/users/bob/lifecycle/suspend", token: f.rw, body: `{"reasn":"typo"}`})
	if e := errorOf(t, rec); rec.Code != 400 || e.Summary != `The request body was not well-formed: unknown field "reasn"` {
		t.Errorf("unknown field: %d %+v", rec.Code, e)
	}
	if s, _ := f.accounts.Get(t.Context(), "bob"); s.Status != accounts.Active {
		t.Errorf("bob after a refused body: %s", s.Status)
	}
}

// TestRouting checks unknown routes, wrong methods, odd paths and the reserved device id.
func TestRouting(t *testing.T) {
	f := newFixture(t, options{})
	cases := []struct {
		method, path, token string
		status              int
		code                string
		allow               string
	}{
		{"GET", "/api/v1/nothing", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1/nothing", "", 401, CodeInvalidToken, ""},
		{"GET", "/api/v2/users", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1/users/", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1//users", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1/users/x/../alice", f.rw, 404, CodeNoEndpoint, ""},
		{"DELETE", "/api/v1/users", f.rw, 405, CodeNoEndpoint, "GET, HEAD"},
		{"PUT", "/api/v1/users/alice/sessions", f.rw, 405, CodeNoEndpoint, "DELETE, GET, HEAD"},
		{"POST", "/api/v1/users/alice/sessions", f.read, 405, CodeNoEndpoint, "DELETE, GET, HEAD"},
		{"GET", "/api/v1/devices/compliance", f.rw, 404, CodeNoEndpoint, ""},
		{"POST", "/api/v1/devices/compliance", f.rw, 404, CodeNoEndpoint, ""},
		{"DELETE", "/api/v1/devices/compliance", f.rw, 404, CodeNoEndpoint, ""},
		{"POST", "/api/v1/devices/compliance/lifecycle/suspend", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1/devices/%63ompliance", f.rw, 404, CodeNoEndpoint, ""},
		{"GET", "/api/v1/devices/nope", f.rw, 404, CodeNotFound, ""},
		{"DELETE", "/api/v1/devices/nope", f.rw, 404, CodeNotFound, ""},
		{"POST", "/api/v1/devices/nope/lifecycle/suspend", f.rw, 404, CodeNotFound, ""},
		{"GET", "/api/v1/users/nobody", f.rw, 404, CodeNotFound, ""},
		{"GET", "/api/v1/users/nobody/sessions", f.rw, 404, CodeNotFound, ""},
		{"GET", "/api/v1/groups/nope/users", f.rw, 404, CodeNotFound, ""},
		{"DELETE", "/api/v1/tokens/zgt_aaaaaaaa", f.rw, 404, CodeNotFound, ""},
		{"GET", "/api/v1/users/alice?expand=all", f.rw, 400, CodeValidation, ""},
		{"GET", "/api/v1/users?limit=0", f.rw, 400, CodeValidation, ""},
		{"GET", "/api/v1/users?limit=1001", f.rw, 400, CodeValidation, ""},
		{"GET", "/api/v1/users?limit=1&limit=2", f.rw, 400, CodeValidation, ""},
		{"GET", "/api/v1/users?status=GONE", f.rw, 400, CodeValidation, ""},
		{"GET", "/api/v1/users?q=%zz", f.rw, 400, CodeValidation, ""},
		{"HEAD", "/api/v1/users", f.read, 200, "", ""},
	}
	for _, tc := range cases {
		rec := f.do(request{method: tc.method, path: tc.path, token: tc.token})
		checkHeaders(t, rec)
		if rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d; %s", tc.method, tc.path, rec.Code, tc.status, rec.Body)
			continue
		}
		if tc.code != "" {
			if e := errorOf(t, rec); e.Code != tc.code {
				t.Errorf("%s %s: errorCode %s, want %s", tc.method, tc.path, e.Code, tc.code)
			}
		}
		if got := rec.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// TestUnconfigured checks that the routes of a missing backend answer 404.
func TestUnconfigured(t *testing.T) {
	f := newFixture(t, options{noFactors: true, noDevices: true, noLog: true})
	for _, r := range []request{
		{method: "GET", path: "/api/v1/users/alice/factors"},
		{method: "DELETE", path: "/api/v1/users/alice/factors"},
		{method: "POST", path: "/api/v1/users/alice/lifecycle/reset_factors"},
		{method: "GET", path: "/api/v1/devices"},
		{method: "GET", path: "/api/v1/devices/dev-1"},
		{method: "POST", path: "/api/v1/devices/dev-1/lifecycle/suspend"},
		{method: "DELETE", path: "/api/v1/devices/dev-1"},
		{method: "GET", path: "/api/v1/logs"},
	} {
		r.token = f.rw
		rec := f.do(r)
		if rec.Code != 404 || errorOf(t, rec).Code != CodeNoEndpoint {
			t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
	if rec := f.get("/api/v1/users/alice", f.read); rec.Code != 200 {
		t.Errorf("users without the optional backends: %d", rec.Code)
	}
}

// TestNew checks the required configuration.
func TestNew(t *testing.T) {
	f := newFixture(t, options{})
	full := Config{Tokens: f.tokens, Users: f.users, Accounts: f.accounts, Sessions: f.sessions}
	cases := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"complete", func(*Config) {}, ""},
		{"no tokens", func(c *Config) { c.Tokens = nil }, "admin API: no API token manager"},
		{"no users", func(c *Config) { c.Users = nil }, "admin API: no users directory"},
		{"no accounts", func(c *Config) { c.Accounts = nil }, "admin API: no accounts manager"},
		{"no sessions", func(c *Config) { c.Sessions = nil }, "admin API: no session manager"},
	}
	for _, tc := range cases {
		cfg := full
		tc.edit(&cfg)
		_, err := New(cfg)
		if got := errText(err); got != tc.err {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.err)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestUsers checks the user listing: view, filters, paging.
func TestUsers(t *testing.T) {
	f := newFixture(t, options{})
	for i := range 7 {
		name := "zed" + string(rune('a'+i))
		f.users.add(directoryUser(name))
	}
	if _, err := f.accounts.Suspend(t.Context(), "bob", "test", "why"); err != nil {
		t.Fatal(err)
	}
	logins := func(rec *httptest.ResponseRecorder) []string {
		t.Helper()
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var us []User
		decode(t, rec, &us)
		var out []string
		for _, u := range us {
			out = append(out, u.Profile.Login)
		}
		return out
	}
	cases := []struct {
		query string
		want  []string
		next  string
	}{
		{"", []string{"alice", "bob", "carol", "dave", "erin", "zeda", "zedb", "zedc", "zedd", "zede", "zedf", "zedg"}, ""},
		{"?status=SUSPENDED", []string{"bob"}, ""},
		{"?status=active&q=zed&limit=3", []string{"zeda", "zedb", "zedc"}, "</api/v1/users?after=zedc&limit=3&q=zed&status=active>; rel=\"next\""},
		{"?q=zed&limit=3&after=zedc&status=active", []string{"zedd", "zede", "zedf"}, "</api/v1/users?after=zedf&limit=3&q=zed&status=active>; rel=\"next\""},
		{"?q=zed&limit=3&after=zedf", []string{"zedg"}, ""},
		{"?q=zed&limit=7", []string{"zeda", "zedb", "zedc", "zedd", "zede", "zedf", "zedg"}, ""},
		{"?q=CAROL", []string{"carol"}, ""},               // login, ignoring case
		{"?q=bob%20b", []string{"bob"}, ""},               // name
		{"?q=carol%40example.org", []string{"carol"}, ""}, // email
		{"?q=example.com", nil, ""},                       // prefixes only
		{"?after=zz", nil, ""},                            // past the end
		{"?q=al&status=DEPROVISIONED", nil, ""},           // both filters
		{"?status=LOCKED_OUT", nil, ""},                   //
		{"?q=a&limit=1", []string{"alice"}, ""},           // exactly the limit: no next page
		{"?q=d&limit=1", []string{"dave"}, ""},            // name "Dave Disabled" and login dave: once
		{"?q=e", []string{"erin"}, ""},                    //
		{"?q=b&status=suspended", []string{"bob"}, ""},    //
		{"?q=&status=", []string{"alice", "bob", "carol", "dave", "erin", "zeda", "zedb", "zedc", "zedd", "zede", "zedf", "zedg"}, ""},
	}
	for _, tc := range cases {
		rec := f.get("/api/v1/users"+tc.query, f.read)
		if got := logins(rec); !slices.Equal(got, tc.want) {
			t.Errorf("GET /api/v1/users%s: %v, want %v", tc.query, got, tc.want)
		}
		if got := rec.Header().Get("Link"); got != tc.next {
			t.Errorf("GET /api/v1/users%s: Link %q, want %q", tc.query, got, tc.next)
		}
	}
	if got := logins(f.get("/api/v1/groups/staff/users?limit=2", f.read)); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("staff: %v", got)
	}

	var u User
	decode(t, f.get("/api/v1/users/u-alice", f.read), &u)
	want := User{ID: "u-alice", Status: accounts.Active, Groups: []string{"admins", "staff"},
		Profile: UserProfile{Login: "alice", Name: "Alice Admin", Email: "alice@example.com"}}
	if !jsonEqual(u, want) {
		t.Errorf("alice: %+v, want %+v", u, want)
	}
	decode(t, f.get("/api/v1/users/bob", f.read), &u)
	if u.Status != accounts.Suspended || !u.StatusChanged.Equal(f.clock.Now()) {
		t.Errorf("bob: %+v", u)
	}
	rec := f.get("/api/v1/users/dave", f.read)
	if !strings.Contains(rec.Body.String(), `"disabled":true`) {
		t.Errorf("dave: %s", rec.Body)
	}
	if rec := f.get("/api/v1/users/carol", f.read); !strings.Contains(rec.Body.String(), `"groups":[]`) {
		t.Errorf("carol's groups are not an empty list: %s", rec.Body)
	}

	var gs []Group
	decode(t, f.get("/api/v1/groups", f.read), &gs)
	if want := []Group{{"admins", 1}, {"staff", 3}}; !slices.Equal(gs, want) {
		t.Errorf("groups: %+v, want %+v", gs, want)
	}
}

func directoryUser(name string) directory.User {
	return directory.User{ID: "id-" + name, Username: name, Name: strings.ToUpper(name)}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestSessionsFactorsDevicesTokens checks the other resources' views and changes.
func TestSessionsFactorsDevicesTokens(t *testing.T) {
	f := newFixture(t, options{})

	var ss []Session
	decode(t, f.get("/api/v1/users/alice/sessions", f.read), &ss)
	if len(ss) != 2 || ss[0].ID != "s1" || ss[1].ID != "s2" || ss[1].Parent != "s1" || ss[1].Host != "app.example.com" ||
		!slices.Equal(ss[0].AMR, []string{"pwd", "hwk"}) || !ss[0].IdleExpires.Equal(t0.Add(time.Hour)) {
		t.Errorf("sessions: %+v", ss)
	}
	rec := f.do(request{method: "DELETE", path: "/api/v1/users/alice/sessions", token: f.rw})
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"revoked":2}` {
		t.Errorf("clear sessions: %d %s", rec.Code, rec.Body)
	}
	if rec := f.get("/api/v1/users/alice/sessions", f.read); strings.TrimSpace(rec.Body.String()) != `[]` {
		t.Errorf("sessions after clearing: %s", rec.Body)
	}

	var fs []Factor
	decode(t, f.get("/api/v1/users/alice/factors", f.read), &fs)
	if len(fs) != 2 || fs[0].ID != "pk-1" || fs[0].Type != FactorWebAuthn || fs[1].Type != FactorTOTP {
		t.Errorf("factors: %+v", fs)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/users/alice/lifecycle/reset_factors", token: f.rw})
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"removed":2}` {
		t.Errorf("reset factors: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "DELETE", path: "/api/v1/users/alice/factors", token: f.rw})
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"removed":0}` {
		t.Errorf("reset factors again: %d %s", rec.Code, rec.Body)
	}

	var ds []Device
	decode(t, f.get("/api/v1/devices", f.read), &ds)
	if len(ds) != 3 || ds[0].ID != "dev-1" || ds[0].Trust != string(device.Trusted) || ds[0].Status != "ACTIVE" {
		t.Errorf("devices: %+v", ds)
	}
	for _, owner := range []string{"bob", "BOB"} {
		decode(t, f.get("/api/v1/devices?owner="+owner, f.read), &ds)
		if len(ds) != 2 || ds[0].ID != "dev-2" || ds[1].ID != "dev-del" {
			t.Errorf("devices of %s: %+v", owner, ds)
		}
	}
	decode(t, f.get("/api/v1/devices?owner=u-alice", f.read), &ds)
	if len(ds) != 1 {
		t.Errorf("devices of u-alice: %+v", ds)
	}
	var d Device
	decode(t, f.do(request{method: "POST", path: "/api/v1/devices/dev-1/lifecycle/suspend", token: f.rw}), &d)
	if d.Status != "SUSPENDED" || d.SuspendedBy != "admin" || d.Trust != string(device.NotTrusted) {
		t.Errorf("suspended device: %+v", d)
	}
	d = Device{}
	decode(t, f.do(request{method: "POST", path: "/api/v1/devices/dev-1/lifecycle/unsuspend", token: f.rw}), &d)
	if d.Status != "ACTIVE" || d.Trust != string(device.Trusted) {
		t.Errorf("unsuspended device: %+v", d)
	}
	if rec := f.do(request{method: "DELETE", path: "/api/v1/devices/dev-del", token: f.rw}); rec.Code != 204 || rec.Body.Len() != 0 {
		t.Errorf("delete device: %d %q", rec.Code, rec.Body)
	}
	if rec := f.get("/api/v1/devices/dev-del", f.read); rec.Code != 404 {
		t.Errorf("deleted device: %d", rec.Code)
	}

	rec = f.get("/api/v1/tokens", f.read)
	var ts []Token
	decode(t, rec, &ts)
	slices.SortFunc(ts, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	if len(ts) != 2 || ts[0].Name != "auditor" || ts[0].Scope != "read" || ts[1].Name != "ops automation" || ts[1].Scope != "read-write" ||
		ts[1].ID != f.rwTok.ID || ts[1].CreatedBy != "test" || ts[1].LastUsed.IsZero() {
		t.Errorf("tokens: %+v", ts)
	}
	for _, secret := range []string{f.rw[13:], f.read[13:]} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Error("a token secret is in the token list")
		}
	}
	// A token may revoke itself; it is refused from then on.
	if rec := f.do(request{method: "DELETE", path: "/api/v1/tokens/" + f.rwTok.ID, token: f.rw}); rec.Code != 204 {
		t.Errorf("self-revoke: %d %s", rec.Code, rec.Body)
	}
	if rec := f.get("/api/v1/tokens", f.rw); rec.Code != 401 {
		t.Errorf("revoked token: %d", rec.Code)
	}
}

// TestClientIP checks that events carry the address Config.ClientIP returns.
func TestClientIP(t *testing.T) {
	f := newFixture(t, options{})
	f.api.clientIP = func(*http.Request) netip.Addr { return netip.MustParseAddr("2001:db8::1") }
	f.get("/api/v1/groups", f.read)
	evs := f.events(EventTokenUse)
	if len(evs) != 1 || evs[0].ClientIP != "2001:db8::1" {
		t.Errorf("use events: %+v", evs)
	}
}

// BenchmarkGetUser measures one authenticated read through the whole handler.
func BenchmarkGetUser(b *testing.B) {
	f := newFixture(b, options{noLog: true})
	req := httptest.NewRequest("GET", "/api/v1/users/alice", nil)
	req.Header.Set("Authorization", "Bearer "+f.read)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.api.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkListUsers measures a page of 200 out of 5000 users.
func BenchmarkListUsers(b *testing.B) {
	f := newFixture(b, options{noLog: true})
	for i := range 5000 {
		f.users.add(directoryUser(fmt.Sprintf("user%04d", i)))
	}
	ctx := context.Background()
	for i := range 50 {
		if _, err := f.accounts.Suspend(ctx, fmt.Sprintf("id-user%04d", i*7), "bench", ""); err != nil {
			b.Fatal(err)
		}
	}
	req := httptest.NewRequest("GET", "/api/v1/users?limit=200&after=user1000", nil)
	req.Header.Set("Authorization", "Bearer "+f.read)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		f.api.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zonegate/zonegate/audit"
)

const hookSecret = "e2e-hook-secret-0123456789abcdef0123"

// hookReceiver is an event hook endpoint: it answers the verification handshake and keeps
// the events of deliveries whose signature checks out (and counts those that do not).
type hookReceiver struct {
	mu     sync.Mutex
	events []audit.Event
	forged int
	down   bool
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if c := r.Header.Get(audit.HeaderChallenge); r.Method == http.MethodGet && c != "" {
		_ = json.NewEncoder(w).Encode(map[string]string{"verification": c})
		return
	}
	body, _ := io.ReadAll(r.Body)
	err := audit.Verify([]byte(hookSecret), r.Header.Get(audit.HeaderTimestamp), body, r.Header.Get(audit.HeaderSignature), time.Now(), 0)
	if err != nil {
		h.forged++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p audit.HookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.events = append(h.events, p.Data.Events...)
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// has reports whether a delivered event has type typ and actor name actor.
func (h *hookReceiver) has(typ, actor string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Type == typ && e.Actor.Name == actor {
			return true
		}
	}
	return false
}

// zonegateCmd runs the zonegate binary with args and returns its standard output.
func zonegateCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		t.Logf("zonegate %s: %s", strings.Join(args, " "), errb.String())
	}
	return strings.TrimSpace(out.String()), err
}

// api calls the admin API with token and returns the status and body.
func api(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAuditHooksAndAdminAPI is the production acceptance, on a real gateway: a hook
// receiver gets a signed event after a sign-in, and also gets the one made while it was
// down once the gateway has restarted; API tokens come from the zonegate subcommand; a read
// token cannot suspend a user, a read-write one can and that ends the user's sessions at
// once; a revoked token gets 401; the system log answers /api/v1/logs.
func TestAuditHooksAndAdminAPI(t *testing.T) {
	hook := &hookReceiver{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	e := startEnv(t, "\t\taudit {\n\t\t\thook siem "+srv.URL+"/zonegate {\n\t\t\t\tsecret "+hookSecret+
		"\n\t\t\t\tevents user.session.* user.lifecycle.* application.access.deny\n\t\t\t}\n\t\t}")

	// A sign-in reaches the hook, signed.
	bob := newClient(t)
	if r := e.signIn(bob, "/headers", "bob", "bob-demo-pass"); r.status != http.StatusOK {
		t.Fatalf("bob's sign-in: %d", r.status)
	}
	eventually(t, "the sign-in event at the hook", func() bool { return hook.has("user.session.start", "bob") })

	// While the receiver is down, alice signs in; the gateway restarts; the event still arrives.
	hook.setDown(true)
	alice := newClient(t)
	if r := e.signIn(alice, "/headers", "alice", "alice-demo-pass"); r.status != http.StatusOK {
		t.Fatalf("alice's sign-in: %d", r.status)
	}
	time.Sleep(1500 * time.Millisecond) // a delivery attempt fails and is queued again
	e.gw.restart(e.idp + "/.well-known/openid-configuration")
	e.waitForGate(t)
	hook.setDown(false)
	eventually(t, "the event queued across the restart", func() bool { return hook.has("user.session.start", "alice") })
	if hook.forged != 0 {
		t.Errorf("%d deliveries had a bad signature", hook.forged)
	}

	// Tokens from the subcommand, through the admin endpoint.
	read, err := zonegateCmd(t, "token", "create", "--admin", e.admin, "--name", "auditor", "--scope", "read")
	if err != nil || !strings.HasPrefix(read, "zgt_") {
		t.Fatalf("token create (read): %q %v", read, err)
	}
	write, err := zonegateCmd(t, "token", "create", "--admin", e.admin, "--name", "ops", "--scope", "read-write")
	if err != nil || !strings.HasPrefix(write, "zgt_") {
		t.Fatalf("token create (read-write): %q %v", write, err)
	}
	users := e.idp + "/api/v1/users"
	if st, body := api(t, "GET", users, read, ""); st != http.StatusOK || !strings.Contains(body, `"bob"`) {
		t.Fatalf("GET /api/v1/users with a read token: %d %s", st, body)
	}
	if st, body := api(t, "GET", users, "", ""); st != http.StatusUnauthorized || !strings.Contains(body, "E0000011") {
		t.Errorf("GET /api/v1/users without a token: %d %s", st, body)
	}
	if st, body := api(t, "GET", users, read[:len(read)-2]+"xx", ""); st != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/users with a forged token: %d %s", st, body)
	}

	// A read token cannot suspend; bob stays in.
	if st, body := api(t, "POST", users+"/bob/lifecycle/suspend", read, ""); st != http.StatusForbidden || !strings.Contains(body, "E0000006") {
		t.Fatalf("suspend with a read token: %d %s", st, body)
	}
	if r := bob.do("GET", e.gate+"/headers", nil); r.status != http.StatusOK {
		t.Fatalf("bob after a refused suspend: %d", r.status)
	}

	// A read-write token suspends bob: his session ends at once, and signing in again fails
	// with the message of a wrong password.
	if st, body := api(t, "POST", users+"/bob/lifecycle/suspend", write, `{"reason":"left the company"}`); st != http.StatusOK || !strings.Contains(body, "SUSPENDED") {
		t.Fatalf("suspend with a read-write token: %d %s", st, body)
	}
	if r := bob.do("GET", e.gate+"/headers", nil); r.status == http.StatusOK {
		t.Fatal("bob's session still works after he was suspended")
	}
	again := newClient(t)
	page := again.follow(e.gate + "/headers")
	r := again.login(page, "bob", "bob-demo-pass")
	if r.status == http.StatusOK && strings.Contains(r.body, "X-Remote-User") || !strings.Contains(r.body, "Invalid username or password") {
		t.Fatalf("a suspended bob signing in: %d\n%s", r.status, r.body)
	}
	eventually(t, "the suspension at the hook", func() bool { return hook.has("user.lifecycle.suspend", "ops") })

	// The system log answers with the filtered events.
	eventually(t, "the refused sign-in in the system log", func() bool {
		st, body := api(t, "GET", e.idp+"/api/v1/logs?type=user.session.start&outcome=FAILURE", read, "")
		return st == http.StatusOK && strings.Contains(body, "account_not_active")
	})

	// The admin reset of a user's authenticators, from the subcommand, is in the system log.
	out, err := zonegateCmd(t, "authenticators", "reset", "--admin", e.admin, "--user", "alice")
	if err != nil || !strings.Contains(out, `"removed":0`) {
		t.Errorf("authenticators reset: %q %v", out, err)
	}
	if _, err := zonegateCmd(t, "authenticators", "reset", "--admin", e.admin, "--user", "mallory"); err == nil {
		t.Error("authenticators reset of an unknown user succeeded")
	}
	eventually(t, "the reset in the system log", func() bool {
		st, body := api(t, "GET", e.idp+"/api/v1/logs?type=user.mfa.factor.reset_all", read, "")
		return st == http.StatusOK && strings.Contains(body, `"alice"`)
	})

	// A revoked token gets 401.
	id := strings.Join(strings.SplitN(read, "_", 3)[:2], "_")
	if st, body := api(t, "DELETE", e.idp+"/api/v1/tokens/"+id, write, ""); st != http.StatusNoContent {
		t.Fatalf("revoking the read token: %d %s", st, body)
	}
	if st, _ := api(t, "GET", users, read, ""); st != http.StatusUnauthorized {
		t.Errorf("a revoked token got %d, want 401", st)
	}
	// The hook backlog is a metric on the admin endpoint.
	resp, err := http.Get("http://" + e.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `zonegate_audit_hook_backlog{hook="siem"}`) {
		t.Errorf("no hook backlog metric:\n%s", metrics)
	}
	if strings.Contains(e.gw.logs(), read) || strings.Contains(e.gw.logs(), write) || strings.Contains(e.gw.logs(), hookSecret) {
		t.Error("a token or the hook secret reached the log")
	}
}

// TestLockoutShownAndUnlocked: repeated wrong passwords lock alice out; the admin API shows
// her LOCKED_OUT, her open session keeps working (guessing her password cannot throw her
// out), and an administrator's unlock lets the right password in at once.
func TestLockoutShownAndUnlocked(t *testing.T) {
	e := startEnv(t, "\t\tbrute_force {\n\t\t\tuser 3/1m lockout 10m\n\t\t}")
	write, err := zonegateCmd(t, "token", "create", "--admin", e.admin, "--name", "ops", "--scope", "read-write")
	if err != nil {
		t.Fatal(err)
	}
	alice := newClient(t)
	if r := e.signIn(alice, "/headers", "alice", "alice-demo-pass"); r.status != http.StatusOK {
		t.Fatalf("alice's sign-in: %d", r.status)
	}
	attacker := newClient(t)
	for range 3 {
		page := attacker.follow(e.gate + "/headers")
		attacker.login(page, "alice", "wrong-password")
	}
	user := e.idp + "/api/v1/users/alice"
	eventually(t, "alice LOCKED_OUT in the admin API", func() bool {
		st, body := api(t, "GET", user, write, "")
		return st == http.StatusOK && strings.Contains(body, `"LOCKED_OUT"`)
	})
	if r := alice.do("GET", e.gate+"/headers", nil); r.status != http.StatusOK {
		t.Fatalf("alice's open session after the lockout: %d", r.status)
	}
	fresh := newClient(t)
	if r := fresh.login(fresh.follow(e.gate+"/headers"), "alice", "alice-demo-pass"); strings.Contains(r.body, "X-Remote-User") {
		t.Fatal("the right password worked while alice was locked out")
	}
	if st, body := api(t, "POST", user+"/lifecycle/unlock", write, ""); st != http.StatusOK || !strings.Contains(body, `"ACTIVE"`) {
		t.Fatalf("unlock: %d %s", st, body)
	}
	fresh = newClient(t)
	if r := e.signIn(fresh, "/headers", "alice", "alice-demo-pass"); r.status != http.StatusOK || !strings.Contains(r.body, "X-Remote-User") {
		t.Fatalf("alice after the unlock: %d\n%s", r.status, r.body)
	}
}

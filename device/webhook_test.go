package device

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store"
)

var (
	secretOld = []byte("0123456789abcdef-old-secret")
	secretNew = []byte("0123456789abcdef-new-secret")
)

func (e *env) webhook() *Webhook {
	return &Webhook{Registry: e.reg, Secrets: [][]byte{secretOld, secretNew}, Now: e.clock.Now, Log: e.reg.log}
}

// signed builds a webhook request signed with secret at the clock's time plus offset.
func signed(secret []byte, at time.Time, body string) *http.Request {
	ts := strconv.FormatInt(at.Unix(), 10)
	r := httptest.NewRequest(http.MethodPost, "/mdm/compliance", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, "v1="+hex.EncodeToString(sign(secret, ts, []byte(body))))
	return r
}

// serve runs one request and returns the status and the error message of the JSON body.
func serve(t testing.TB, h http.Handler, r *http.Request) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusNoContent {
		if len(b) != 0 {
			t.Errorf("204 with a body %q", b)
		}
		return res.StatusCode, ""
	}
	var msg struct{ Error string }
	if err := json.Unmarshal(b, &msg); err != nil || msg.Error == "" {
		t.Errorf("status %d: body %q is not a JSON error", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("status %d: Content-Type %q", res.StatusCode, ct)
	}
	return res.StatusCode, msg.Error
}

func TestWebhookCreatesAndUpdates(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	ctx := t.Context()

	code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"UDID-1","serial":"SN1","compliance":"compliant","platform":"macOS","managed":true,"user":"alice"}`))
	if code != http.StatusNoContent {
		t.Fatalf("create: %d %s", code, msg)
	}
	d, err := e.reg.Get(ctx, "UDID-1")
	if err != nil {
		t.Fatal(err)
	}
	want := Device{ID: "UDID-1", Owner: "alice", Platform: "macOS", Serial: "SN1", Source: SourceMDM, Managed: true, Compliance: Compliant,
		ComplianceSince: t0, Created: t0, Updated: t0}
	if *d != want {
		t.Errorf("created %+v\nwant %+v", *d, want)
	}

	// An update that leaves out platform, managed and user keeps them.
	e.clock.Advance(time.Minute)
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"UDID-1","compliance":"unknown"}`)); code != http.StatusNoContent {
		t.Fatalf("update: %d %s", code, msg)
	}
	d, _ = e.reg.Get(ctx, "UDID-1")
	want.Compliance, want.ComplianceSince, want.Updated = Unknown, e.clock.Now(), e.clock.Now()
	if *d != want {
		t.Errorf("updated %+v\nwant %+v", *d, want)
	}

	// A known device registered by an admin keeps its source.
	if _, err := e.reg.Register(ctx, Device{ID: "laptop-2", Source: "admin"}); err != nil {
		t.Fatal(err)
	}
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"laptop-2","compliance":"compliant","managed":true}`)); code != http.StatusNoContent {
		t.Fatalf("update admin device: %d %s", code, msg)
	}
	if d, _ := e.reg.Get(ctx, "laptop-2"); d.Source != "admin" || !d.Managed || d.Trust() != Trusted {
		t.Errorf("admin device after the report: %+v", d)
	}
}

func TestWebhookBySerial(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	ctx := t.Context()
	if _, err := e.reg.Register(ctx, Device{ID: "UDID-7", Serial: "C02XYZ"}); err != nil {
		t.Fatal(err)
	}
	// A serial-only report updates the device holding the serial.
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"serial":"C02XYZ","compliance":"noncompliant"}`)); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	if d, _ := e.reg.Get(ctx, "UDID-7"); d.Compliance != NonCompliant || !d.Suspended {
		t.Errorf("device by serial: %+v", d)
	}
	// An unknown serial creates a device whose id is the serial.
	e.clock.Advance(time.Second)
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"serial":"NEW-SN","compliance":"compliant","managed":true}`)); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, msg)
	}
	if d, err := e.reg.FindBySerial(ctx, "NEW-SN"); err != nil || d.ID != "NEW-SN" || d.Source != SourceMDM {
		t.Errorf("created by serial: %+v, %v", d, err)
	}
	// A serial that is the id of a device with another serial is a conflict, and nothing changes.
	if _, err := e.reg.Register(ctx, Device{ID: "X1", Serial: "OTHER"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	req := `{"serial":"X1","compliance":"noncompliant"}`
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), req)); code != http.StatusConflict || !strings.Contains(msg, "serial") {
		t.Errorf("serial conflict: %d %q, want 409 about the serial", code, msg)
	}
	if d, _ := e.reg.Get(ctx, "X1"); d.Compliance != Unknown || d.Serial != "OTHER" {
		t.Errorf("conflicting report changed the device: %+v", d)
	}
}

func TestWebhookRejects(t *testing.T) {
	const body = `{"device_id":"UDID-1","compliance":"noncompliant"}`
	sig := func(r *http.Request) string { return r.Header.Get(HeaderSignature) }
	tests := []struct {
		name     string
		req      func(e *env) *http.Request
		wantCode int
		wantMsg  string
	}{
		{"wrong method", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Method = http.MethodPut
			return r
		}, 405, "use POST"},
		{"GET", func(e *env) *http.Request { return httptest.NewRequest("GET", "/mdm/compliance", nil) }, 405, "use POST"},
		{"no content type", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Del("Content-Type")
			return r
		}, 415, "application/json"},
		{"form content type", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, 415, "application/json"},
		{"body too large", func(e *env) *http.Request {
			big := `{"device_id":"UDID-1","compliance":"compliant","platform":"` + strings.Repeat("x", MaxWebhookBody) + `"}`
			return signed(secretOld, e.clock.Now(), big)
		}, 413, "body over"},
		{"missing signature", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Del(HeaderSignature)
			return r
		}, 401, "missing"},
		{"missing timestamp", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Del(HeaderTimestamp)
			return r
		}, 401, "missing"},
		{"two signature headers", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Add(HeaderSignature, sig(r))
			return r
		}, 401, "missing"},
		{"malformed timestamp", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Set(HeaderTimestamp, "-"+r.Header.Get(HeaderTimestamp))
			return r
		}, 401, "malformed timestamp"},
		{"malformed signature", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Set(HeaderSignature, strings.TrimPrefix(sig(r), "v1="))
			return r
		}, 401, "malformed signature"},
		{"signature with an unknown secret", func(e *env) *http.Request {
			return signed([]byte("0123456789abcdef-not-ours"), e.clock.Now(), body)
		}, 401, "bad signature"},
		{"signature of another timestamp", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			r.Header.Set(HeaderTimestamp, strconv.FormatInt(e.clock.Now().Unix()+1, 10))
			return r
		}, 401, "bad signature"},
		{"tampered body with the old signature", func(e *env) *http.Request {
			r := signed(secretOld, e.clock.Now(), body)
			tampered := signed(secretOld, e.clock.Now(), strings.Replace(body, "noncompliant", "compliant", 1))
			tampered.Header.Set(HeaderSignature, sig(r))
			return tampered
		}, 401, "bad signature"},
		{"old timestamp", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now().Add(-DefaultMaxSkew-time.Second), body)
		}, 401, "stale"},
		{"future timestamp beyond skew", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now().Add(DefaultMaxSkew+time.Second), body)
		}, 401, "stale"},
		{"bad JSON", func(e *env) *http.Request { return signed(secretOld, e.clock.Now(), `{"device_id":`) }, 400, "bad JSON"},
		{"trailing data", func(e *env) *http.Request { return signed(secretOld, e.clock.Now(), body+`{}`) }, 400, "bad JSON"},
		{"unknown field", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now(), `{"device_id":"d","compliance":"compliant","complaince":"x"}`)
		}, 400, "unknown field"},
		{"no device", func(e *env) *http.Request { return signed(secretOld, e.clock.Now(), `{"compliance":"compliant"}`) }, 400, "device_id or serial"},
		{"no compliance", func(e *env) *http.Request { return signed(secretOld, e.clock.Now(), `{"device_id":"d"}`) }, 400, "compliance is required"},
		{"bad compliance", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now(), `{"device_id":"d","compliance":"green"}`)
		}, 400, "compliance must be"},
		{"bad device id", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now(), `{"device_id":"a b","compliance":"compliant"}`)
		}, 400, "device_id must be"},
		{"bad user", func(e *env) *http.Request {
			return signed(secretOld, e.clock.Now(), `{"device_id":"d","compliance":"compliant","user":"a\nb"}`)
		}, 400, "user must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			code, msg := serve(t, e.webhook(), tt.req(e))
			if code != tt.wantCode || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", code, msg, tt.wantCode, tt.wantMsg)
			}
			if _, err := e.reg.Get(t.Context(), "UDID-1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a refused request changed the registry (%v)", err)
			}
		})
	}
}

func TestWebhookReplay(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	body := `{"device_id":"UDID-1","compliance":"compliant"}`
	first := signed(secretOld, e.clock.Now(), body)
	again := signed(secretOld, e.clock.Now(), body) // the exact same request
	if code, msg := serve(t, h, first); code != http.StatusNoContent {
		t.Fatalf("first: %d %s", code, msg)
	}
	e.clock.Advance(DefaultMaxSkew) // still inside the window
	if code, msg := serve(t, h, again); code != http.StatusConflict || !strings.Contains(msg, "replay") {
		t.Errorf("replay: %d %q, want 409 replay", code, msg)
	}
	// Another node sharing the store sees it too.
	other := &Webhook{Registry: NewRegistry(e.st, e.clock.Now, nil), Secrets: [][]byte{secretOld}, Now: e.clock.Now}
	if code, _ := serve(t, other, signed(secretOld, e.clock.Now().Add(-DefaultMaxSkew), body)); code != http.StatusConflict {
		t.Errorf("replay on another node: %d, want 409", code)
	}
	// Past the window the timestamp itself is stale.
	e.clock.Advance(2 * time.Second)
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now().Add(-DefaultMaxSkew-2*time.Second), body)); code != http.StatusUnauthorized || msg != "stale timestamp" {
		t.Errorf("after the window: %d %q, want 401 stale", code, msg)
	}
	// The same body at a new time is a new report.
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), body)); code != http.StatusNoContent {
		t.Errorf("same body, new timestamp: %d %s", code, msg)
	}
}

func TestWebhookSecretRotation(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	body := `{"device_id":"UDID-1","compliance":"compliant"}`
	if code, msg := serve(t, h, signed(secretNew, e.clock.Now(), body)); code != http.StatusNoContent {
		t.Errorf("second secret: %d %s", code, msg)
	}
	// A sender in mid-rotation lists both signatures; unknown schemes are skipped.
	e.clock.Advance(time.Second)
	r := signed(secretOld, e.clock.Now(), body)
	good := r.Header.Get(HeaderSignature)
	r.Header.Set(HeaderSignature, "v0=abc, v1="+strings.Repeat("00", 32)+", "+good)
	if code, msg := serve(t, h, r); code != http.StatusNoContent {
		t.Errorf("list of signatures: %d %s", code, msg)
	}
	// With the old secret removed, its signatures fail.
	h.Secrets = [][]byte{secretNew}
	e.clock.Advance(time.Second)
	if code, _ := serve(t, h, signed(secretOld, e.clock.Now(), body)); code != http.StatusUnauthorized {
		t.Errorf("removed secret: %d, want 401", code)
	}
	// No secret (or an empty one) verifies nothing.
	for _, secrets := range [][][]byte{nil, {{}}} {
		h.Secrets = secrets
		if code, _ := serve(t, h, signed(nil, e.clock.Now(), body)); code != http.StatusUnauthorized {
			t.Errorf("secrets %q: %d, want 401", secrets, code)
		}
	}
}

func TestWebhookCompliance(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	ctx := t.Context()
	report := func(c string) {
		t.Helper()
		e.clock.Advance(time.Second)
		if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"UDID-1","managed":true,"compliance":"`+c+`"}`)); code != http.StatusNoContent {
			t.Fatalf("report %s: %d %s", c, code, msg)
		}
	}
	report("compliant")
	changes := e.recordChanges()

	report("noncompliant")
	d, _ := e.reg.Get(ctx, "UDID-1")
	if !d.Suspended || d.SuspendedBy != SuspendedByCompliance || d.Trust() != NotTrusted {
		t.Errorf("after noncompliant: %+v", d)
	}
	if len(*changes) != 1 || (*changes)[0].before.Compliance != Compliant || (*changes)[0].before.Suspended ||
		(*changes)[0].after != *d {
		t.Errorf("OnChange after noncompliant: %+v", *changes)
	}

	report("compliant")
	d, _ = e.reg.Get(ctx, "UDID-1")
	if d.Suspended || d.Trust() != Trusted {
		t.Errorf("compliant again: %+v, want the compliance suspension lifted", d)
	}
	if len(*changes) != 2 || (*changes)[1].after != *d {
		t.Errorf("OnChange after compliant: %+v", *changes)
	}

	if _, err := e.reg.Suspend(ctx, "UDID-1"); err != nil {
		t.Fatal(err)
	}
	report("noncompliant")
	report("compliant")
	d, _ = e.reg.Get(ctx, "UDID-1")
	if !d.Suspended || d.SuspendedBy != SuspendedByAdmin || d.Trust() != NotTrusted {
		t.Errorf("compliant after an admin suspension: %+v, want still suspended by admin", d)
	}
}

func TestWebhookStoreFailure(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	e.st.Close()
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"UDID-1","compliance":"compliant"}`)); code != http.StatusServiceUnavailable {
		t.Errorf("closed store: %d %q, want 503", code, msg)
	}
	h.Registry = nil
	if code, _ := serve(t, h, signed(secretOld, e.clock.Now(), `{"device_id":"UDID-1","compliance":"compliant"}`)); code != http.StatusServiceUnavailable {
		t.Errorf("no registry: %d, want 503", code)
	}
}

// TestWebhookFailedReportCanBeRetried checks that a report the registry could not apply does
// not leave its signature behind as a replay.
func TestWebhookFailedReportCanBeRetried(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	ctx := t.Context()
	if _, err := e.reg.Register(ctx, Device{ID: "X1", Serial: "OTHER"}); err != nil {
		t.Fatal(err)
	}
	body := `{"serial":"X1","compliance":"compliant"}`
	if code, _ := serve(t, h, signed(secretOld, e.clock.Now(), body)); code != http.StatusConflict {
		t.Fatalf("conflict: %d", code)
	}
	// Fix the conflict, then retry the exact same request.
	if err := e.reg.Delete(ctx, "X1"); err != nil {
		t.Fatal(err)
	}
	if code, msg := serve(t, h, signed(secretOld, e.clock.Now(), body)); code != http.StatusNoContent {
		t.Errorf("retry: %d %s", code, msg)
	}
}

func TestWebhookLogsNoSecrets(t *testing.T) {
	e := newEnv(t)
	h := e.webhook()
	body := `{"device_id":"UDID-1","compliance":"noncompliant"}`
	ok := signed(secretOld, e.clock.Now(), body)
	replay := signed(secretOld, e.clock.Now(), body)
	bad := signed([]byte("0123456789abcdef-not-ours"), e.clock.Now(), body)
	for _, r := range []*http.Request{ok, replay, bad} {
		serve(t, h, r)
	}
	logs := e.logs.String()
	for _, s := range []string{string(secretOld), string(secretNew), ok.Header.Get(HeaderSignature)[3:], bad.Header.Get(HeaderSignature)[3:]} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain a secret or signature %q:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "replayed request") || !strings.Contains(logs, "bad signature") {
		t.Errorf("logs lack the rejections:\n%s", logs)
	}
}

func TestWebhookValidate(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name    string
		h       Webhook
		wantErr string
	}{
		{"ok", Webhook{Registry: e.reg, Secrets: [][]byte{secretOld}}, ""},
		{"no registry", Webhook{Secrets: [][]byte{secretOld}}, "no registry"},
		{"no secret", Webhook{Registry: e.reg}, "no secret"},
		{"short secret", Webhook{Registry: e.reg, Secrets: [][]byte{secretOld, []byte("short")}}, "secret 2 is 5 bytes"},
		{"negative skew", Webhook{Registry: e.reg, Secrets: [][]byte{secretOld}, MaxSkew: -time.Second}, "negative max skew"},
	}
	for _, tt := range tests {
		err := tt.h.Validate()
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
}

var signatureHeaderCases = []struct {
	in      string
	wantN   int
	wantErr string
}{
	{"v1=" + strings.Repeat("ab", 32), 1, ""},
	{"v1=" + strings.Repeat("AB", 32), 1, ""},
	{" v1=" + strings.Repeat("ab", 32) + " , v1=" + strings.Repeat("cd", 32), 2, ""},
	{"v0=zz,v1=" + strings.Repeat("ab", 32), 1, ""},
	{"", 0, "empty"},
	{"v1=", 0, "want 64 hex digits"},
	{"v1=" + strings.Repeat("ab", 31), 0, "want 64 hex digits"},
	{"v1=" + strings.Repeat("zz", 32), 0, "not hex"},
	{strings.Repeat("ab", 32), 0, "want scheme=value"},
	{"=abc", 0, "want scheme=value"},
	{"v0=abc", 0, "no v1 entry"},
	{"v1=" + strings.Repeat("ab", 32) + ",", 0, "entry 2"},
	{strings.Repeat("v0=a,", 8) + "v1=" + strings.Repeat("ab", 32), 0, "at most 8"},
}

func TestParseSignatureHeader(t *testing.T) {
	for _, tt := range signatureHeaderCases {
		sigs, err := parseSignatureHeader(tt.in)
		if len(sigs) != tt.wantN || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("parseSignatureHeader(%q) = %d sigs, %v; want %d, %q", tt.in, len(sigs), err, tt.wantN, tt.wantErr)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1893553445", 1893553445, true},
		{"0", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5", 0, false},
		{" 1", 0, false},
		{"1234567890123", 0, false},
	} {
		got, err := parseTimestamp(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseTimestamp(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

package device

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

// FuzzWebhookBody sends arbitrary bodies and headers: nothing panics, and nothing is applied
// (204) without a signature the secret made. Each input is then sent again properly signed to
// exercise the body checks: the answer is 204, 400 or 409 and the registry keeps its invariant.
func FuzzWebhookBody(f *testing.F) {
	clock := storetest.NewClock(t0)
	st, err := bolt.Open(filepath.Join(f.TempDir(), "z.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	reg := NewRegistry(st, clock.Now, nil)
	h := &Webhook{Registry: reg, Secrets: [][]byte{secretOld}, Now: clock.Now}
	ts := strconv.FormatInt(t0.Unix(), 10)

	for _, body := range []string{
		`{"device_id":"UDID-1","serial":"SN1","compliance":"compliant","platform":"macOS","managed":true,"user":"alice"}`,
		`{"serial":"SN1","compliance":"noncompliant"}`,
		`{"device_id":"a b","compliance":"compliant"}`,
		`{"device_id":"d","compliance":"green"}`,
		`{"device_id":"d","compliance":"compliant"}{}`,
		`{"device_id":`, ``, `null`, `[]`,
	} {
		f.Add([]byte(body), ts, "v1="+hex.EncodeToString(sign(secretOld, ts, []byte(body))))
		f.Add([]byte(body), ts, "v1="+strings.Repeat("00", 32))
	}
	for _, c := range signatureHeaderCases {
		f.Add([]byte(`{"device_id":"d","compliance":"compliant"}`), ts, c.in)
	}

	f.Fuzz(func(t *testing.T, body []byte, tsHeader, sigHeader string) {
		clock.Advance(time.Second)
		r := httptest.NewRequest(http.MethodPost, "/mdm", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(HeaderTimestamp, tsHeader)
		r.Header.Set(HeaderSignature, sigHeader)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusNoContent && !validlySigned(tsHeader, sigHeader, body, clock.Now()) {
			t.Fatalf("204 without a valid signature: ts %q sig %q", tsHeader, sigHeader)
		}

		now := strconv.FormatInt(clock.Now().Unix(), 10)
		r = httptest.NewRequest(http.MethodPost, "/mdm", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set(HeaderTimestamp, now)
		r.Header.Set(HeaderSignature, "v1="+hex.EncodeToString(sign(secretOld, now, body)))
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusConflict:
		case http.StatusRequestEntityTooLarge:
			if len(body) <= MaxWebhookBody {
				t.Fatalf("413 for %d bytes", len(body))
			}
		default:
			t.Fatalf("signed request: status %d: %s", w.Code, w.Body)
		}
		if w.Code == http.StatusNoContent {
			ev, err := parseEvent(body)
			if err != nil {
				t.Fatalf("204 for a body parseEvent refuses: %v", err)
			}
			id := ev.DeviceID
			if id == "" {
				d, err := reg.FindBySerial(t.Context(), ev.Serial)
				if err != nil {
					t.Fatalf("applied serial %q not found: %v", ev.Serial, err)
				}
				id = d.ID
			}
			d, err := reg.Get(t.Context(), id)
			if err != nil {
				t.Fatalf("applied device %q not found: %v", id, err)
			}
			if d.Compliance != ev.Compliance || (d.Compliance == NonCompliant && !d.Suspended) {
				t.Fatalf("device after the report: %+v", d)
			}
		}
	})
}

// validlySigned is the reference check: a fresh timestamp and a v1 entry that is the MAC.
func validlySigned(ts, header string, body []byte, now time.Time) bool {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || n < now.Add(-DefaultMaxSkew).Unix() || n > now.Add(DefaultMaxSkew).Unix() {
		return false
	}
	want := "v1=" + hex.EncodeToString(sign(secretOld, ts, body))
	for _, p := range strings.Split(header, ",") {
		if strings.EqualFold(strings.TrimSpace(p), want) {
			return true
		}
	}
	return false
}

func FuzzParseSignatureHeader(f *testing.F) {
	for _, c := range signatureHeaderCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sigs, err := parseSignatureHeader(s)
		if err != nil {
			if sigs != nil {
				t.Fatalf("error %v with %d signatures", err, len(sigs))
			}
			return
		}
		if len(sigs) == 0 || len(sigs) > maxSignatures {
			t.Fatalf("%d signatures without an error", len(sigs))
		}
		for _, sig := range sigs {
			if len(sig) != 32 {
				t.Fatalf("signature of %d bytes", len(sig))
			}
			if !strings.Contains(strings.ToLower(s), "v1="+hex.EncodeToString(sig)) {
				t.Fatalf("signature %x is not in %q", sig, s)
			}
		}
	})
}

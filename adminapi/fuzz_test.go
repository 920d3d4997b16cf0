package adminapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
)

// bodyCases are the body decoder's table: content type, body, the status of the answer (0:
// accepted) and the reason decoded.
var bodyCases = []struct {
	contentType string
	body        string
	status      int
	reason      string
}{
	{"", "", 0, ""},
	{"text/plain", "  \n", 0, ""},
	{"application/json", `{"reason":"ticket 42"}`, 0, "ticket 42"},
	{"application/json; charset=UTF-8", `{"reason":"é"}`, 0, "é"},
	{"application/json", `null`, 0, ""},
	{"application/json", `{}`, 0, ""},
	{"application/json", `{"reason":"x","extra":1}`, 400, ""},
	{"application/json", `{"reason":"x"} {}`, 400, ""},
	{"application/json", `{"reason":"a\nb"}`, 400, ""},
	{"application/json", "{\"reason\":\"\xff\"}", 400, ""},
	{"application/json", `[1]`, 400, ""},
	{"application/json", `{"reason":`, 400, ""},
	{"application/jsonx", `{}`, 415, ""},
	{"", `{}`, 415, ""},
	{"application/json; charset=utf-16", `{}`, 415, ""},
	{"application/json", `{"reason":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, ""},
}

// TestDecodeBody runs the body table.
func TestDecodeBody(t *testing.T) {
	for _, tc := range bodyCases {
		var ct []string
		if tc.contentType != "" {
			ct = []string{tc.contentType}
		}
		req, err := decodeBody(ct, []byte(tc.body))
		status := 0
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.Status
		} else if err != nil {
			t.Fatalf("%q %.40q: error %v is not an API error", tc.contentType, tc.body, err)
		}
		if status != tc.status || req.Reason != tc.reason {
			t.Errorf("%q %.40q: status %d reason %q (%v), want %d %q", tc.contentType, tc.body, status, req.Reason, err, tc.status, tc.reason)
		}
	}
	// Two Content-Type headers are refused.
	if _, err := decodeBody([]string{"application/json", "application/json"}, []byte(`{}`)); err == nil {
		t.Error("two Content-Type headers accepted")
	}
}

// FuzzDecodeBody checks that the decoder accepts only small bodies whose reason is printable,
// and refuses everything else with a 400, 413 or 415.
func FuzzDecodeBody(f *testing.F) {
	for _, tc := range bodyCases {
		f.Add(tc.contentType, []byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := decodeBody([]string{contentType}, body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an API error", err)
			}
			switch ae.Status {
			case 400, 413, 415:
			default:
				t.Fatalf("status %d", ae.Status)
			}
			if req != (changeRequest{}) {
				t.Fatalf("refused body decoded to %+v", req)
			}
			return
		}
		if len(body) > MaxBodyBytes {
			t.Fatalf("accepted %d bytes", len(body))
		}
		if strings.IndexFunc(req.Reason, unicode.IsControl) >= 0 {
			t.Fatalf("accepted reason %q", req.Reason)
		}
	})
}

// tokenIDCases are presented strings and the id tokenID finds in them.
var tokenIDCases = []struct{ in, id string }{
	{"zgt_abcdefgh_" + strings.Repeat("A", 43), "zgt_abcdefgh"},
	{"zgt_abcdefgh_" + strings.Repeat("A", 42), ""},
	{"zgt_abcdefgh_" + strings.Repeat("A", 44), ""},
	{"zgt_abcdefg1_" + strings.Repeat("A", 43), ""},
	{"zgt_abcdefgh-" + strings.Repeat("A", 43), ""},
	{"zgt_abcdefgh_" + strings.Repeat("A", 42) + "=", ""},
	{"xyz_abcdefgh_" + strings.Repeat("A", 43), ""},
	{"", ""},
	{"zgt_", ""},
}

// TestTokenID runs the token id table.
func TestTokenID(t *testing.T) {
	for _, tc := range tokenIDCases {
		if got := tokenID(tc.in); got != tc.id {
			t.Errorf("tokenID(%q) = %q, want %q", tc.in, got, tc.id)
		}
	}
}

// FuzzTokenID checks that tokenID returns nothing of a presented string beyond its id part.
func FuzzTokenID(f *testing.F) {
	for _, tc := range tokenIDCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id := tokenID(s)
		if id == "" {
			return
		}
		if len(id) != 12 || !strings.HasPrefix(s, id+"_") || len(s) != 56 {
			t.Fatalf("tokenID(%q) = %q", s, id)
		}
	})
}

// FuzzRequest sends arbitrary methods and paths through the whole handler with a read-write
// token: the answer is always JSON with an expected status, never a 5xx, and nothing under
// /api/v1/devices/compliance is ever served.
func FuzzRequest(f *testing.F) {
	fx := newFixture(f, options{noLog: true})
	for _, rt := range routes {
		p := strings.NewReplacer("{id}", "alice", "{action}", "suspend", "{name}", "staff").Replace(rt.path)
		f.Add(rt.method, p, "")
	}
	for _, s := range []struct{ method, path, body string }{
		{"GET", "/api/v1/devices/compliance", ""},
		{"POST", "/api/v1/devices/%63ompliance/lifecycle/suspend", ""},
		{"GET", "/api/v1/users?limit=3&after=b&q=a&status=active", ""},
		{"GET", "/api/v1/logs?type=user.*&limit=1", ""},
		{"GET", "/api/v1/users/a%2Fb", ""},
		{"POST", "/api/v1/users/bob/lifecycle/deprovision", `{"reason":"x"}`},
		{"DELETE", "/api/v1/devices/dev-2", `{"reason":1}`},
		{"PATCH", "/api/v1//users/../tokens", ""},
	} {
		f.Add(s.method, s.path, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		req, err := http.NewRequest(method, "http://idp.example.com"+path, strings.NewReader(body))
		if err != nil || req.URL.Host != "idp.example.com" || !strings.HasPrefix(req.URL.Path, "/") {
			return
		}
		req.RemoteAddr = "192.0.2.7:50000"
		req.Header.Set("Authorization", "Bearer "+fx.rw)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		fx.api.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 204, 400, 401, 403, 404, 405, 409, 413, 415:
		default:
			t.Fatalf("%s %q: status %d: %s", method, path, rec.Code, rec.Body)
		}
		if rec.Code != 204 && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %q: Content-Type %q", method, path, rec.Header().Get("Content-Type"))
		}
		if rec.Code < 300 && isCompliancePath(req.URL.Path) {
			t.Fatalf("%s %q: the compliance path was served: %d", method, path, rec.Code)
		}
		if rec.Code < 300 && req.PathValue("id") == complianceID {
			t.Fatalf("%s %q: device id compliance was served", method, path)
		}
	})
}

package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestAdminRoutesRefuse: zonegate's routes on Caddy's admin endpoint take POST with exactly
// the documented JSON, and answer 503 when no zonegate IdP runs.
func TestAdminRoutesRefuse(t *testing.T) {
	running.Store(nil)
	tests := []struct {
		name   string
		fn     func(http.ResponseWriter, *http.Request) error
		method string
		body   string
		status int
	}{
		{"token: GET", adminCreateToken, http.MethodGet, "", http.StatusMethodNotAllowed},
		{"token: unknown field", adminCreateToken, http.MethodPost, `{"name":"x","scope":"read","admin":true}`, http.StatusBadRequest},
		{"token: not JSON", adminCreateToken, http.MethodPost, `name=x`, http.StatusBadRequest},
		{"token: no app", adminCreateToken, http.MethodPost, `{"name":"x","scope":"read"}`, http.StatusServiceUnavailable},
		{"reset: unknown field", adminResetFactors, http.MethodPost, `{"username":"bob"}`, http.StatusBadRequest},
		{"reset: no app", adminResetFactors, http.MethodPost, `{"user":"bob"}`, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/zonegate/x", strings.NewReader(tt.body))
			err := tt.fn(httptest.NewRecorder(), req)
			var ae caddy.APIError
			if !errors.As(err, &ae) || ae.HTTPStatus != tt.status {
				t.Fatalf("error %v, want an APIError with status %d", err, tt.status)
			}
		})
	}
}

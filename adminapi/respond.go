package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 1024

// Okta's error codes, as the API uses them.
const (
	CodeValidation   = "E0000001" // the request is not valid (400, 409)
	CodeBadBody      = "E0000003" // the request body is not well-formed JSON of the right shape (400, 413, 415)
	CodeForbidden    = "E0000006" // the token may not do this (403)
	CodeNotFound     = "E0000007" // no such user, group, device or token (404)
	CodeUnavailable  = "E0000009" // a backend failed; retry later (503)
	CodeInvalidToken = "E0000011" // no valid token (401)
	CodeNoEndpoint   = "E0000022" // no such route, or not this method (404, 405)
)

// apiError is an error answer: the status and Okta's error object.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"errorCode"`
	Summary string `json:"errorSummary"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Summary }

// The fixed answers.
var (
	errInvalidToken = &apiError{http.StatusUnauthorized, CodeInvalidToken, "Invalid token provided"}
	errForbidden    = &apiError{http.StatusForbidden, CodeForbidden, "You do not have permission to perform the requested action"}
	errUnavailable  = &apiError{http.StatusServiceUnavailable, CodeUnavailable, "The service is temporarily unavailable; try again later"}
	errNoEndpoint   = &apiError{http.StatusNotFound, CodeNoEndpoint, "Not found: no such endpoint"}
	errMethod       = &apiError{http.StatusMethodNotAllowed, CodeNoEndpoint, "The endpoint does not support the provided HTTP method"}
)

// badRequest is a 400 E0000001 answer.
func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeValidation, fmt.Sprintf(format, args...)}
}

// notFound is a 404 E0000007 answer about a resource of a kind ("User", "Device").
func notFound(id, kind string) *apiError {
	return &apiError{http.StatusNotFound, CodeNotFound, fmt.Sprintf("Not found: Resource not found: %s (%s)", clipText(id, 64), kind)}
}

// badBody is an answer about the request body.
func badBody(status int, format string, args ...any) *apiError {
	return &apiError{status, CodeBadBody, "The request body was not well-formed: " + fmt.Sprintf(format, args...)}
}

// writeError writes an error answer; the JSON headers are already set.
func writeError(w http.ResponseWriter, e *apiError) {
	switch e.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="zonegate", error="invalid_token"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	}
	b, _ := json.Marshal(e) // two strings: cannot fail
	w.WriteHeader(e.Status)
	w.Write(append(b, '\n'))
}

// fail answers the call with an error.
func (c *call) fail(e *apiError) {
	c.status, c.code = e.Status, e.Code
	writeError(c.w, e)
}

// reply answers the call with status and body (none for 204). The body is encoded before
// anything is written, so an encoding failure is still a clean error answer.
func (c *call) reply(status int, body any) {
	if status == http.StatusNoContent {
		c.w.Header().Del("Content-Type")
		c.status = status
		c.w.WriteHeader(status)
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(body); err != nil {
		c.fail(errUnavailable)
		return
	}
	c.status = status
	c.w.WriteHeader(status)
	c.w.Write(buf.Bytes())
}

// parseQuery parses a raw query string and refuses parameters other than allowed, so a typo
// does not silently widen a listing.
func parseQuery(raw string, allowed []string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, errors.New("the query string is malformed")
	}
	for k := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return nil, fmt.Errorf("unknown query parameter %q (this endpoint takes none)", clipText(k, 32))
			}
			return nil, fmt.Errorf("unknown query parameter %q (want %s)", clipText(k, 32), strings.Join(allowed, ", "))
		}
	}
	return q, nil
}

// one returns the single value of a query parameter ("" if absent), refusing repeats.
func one(q url.Values, name string) (string, error) {
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", badRequest("query parameter %q is given more than once", name)
}

// changeRequest is the optional body of the routes that change something.
type changeRequest struct {
	// Reason is why, for the system log (and the user's state, for suspend and deprovision).
	Reason string `json:"reason"`
}

// readBody reads and decodes the optional body of a change.
func readBody(r *http.Request) (changeRequest, error) {
	if r.ContentLength > MaxBodyBytes {
		return changeRequest{}, badBody(http.StatusRequestEntityTooLarge, "larger than %d bytes", MaxBodyBytes)
	}
	var b []byte
	if r.Body != nil {
		var err error
		b, err = io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			return changeRequest{}, badBody(http.StatusBadRequest, "reading it failed")
		}
	}
	return decodeBody(r.Header.Values("Content-Type"), b)
}

// decodeBody decodes a change's body: nothing (empty or white space), or one JSON object of
// at most MaxBodyBytes with only known fields, sent as application/json.
func decodeBody(contentType []string, b []byte) (changeRequest, error) {
	var req changeRequest
	if len(b) > MaxBodyBytes {
		return req, badBody(http.StatusRequestEntityTooLarge, "larger than %d bytes", MaxBodyBytes)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return req, nil
	}
	if len(contentType) != 1 {
		return req, badBody(http.StatusUnsupportedMediaType, "the Content-Type must be application/json")
	}
	mt, params, err := mime.ParseMediaType(contentType[0])
	if err != nil || mt != "application/json" {
		return req, badBody(http.StatusUnsupportedMediaType, "the Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return req, badBody(http.StatusUnsupportedMediaType, "the charset must be utf-8")
	}
	if !utf8.Valid(b) {
		return req, badBody(http.StatusBadRequest, "not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return changeRequest{}, badBody(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return changeRequest{}, badBody(http.StatusBadRequest, "more than one JSON value")
	}
	if strings.IndexFunc(req.Reason, unicode.IsControl) >= 0 {
		return changeRequest{}, badRequest("reason: must be printable text, without control characters")
	}
	return req, nil
}

// clipText shortens s to at most n bytes (at a UTF-8 boundary) for an error message.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

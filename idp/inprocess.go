package idp

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// InProcessClient returns an http.Client whose requests to the issuer (same scheme and host)
// are served by calling ServeHTTP in memory, without the network. Any other URL is an error,
// so a client configured with the embedded IdP cannot be led elsewhere. It has no cookie jar.
func (p *IdP) InProcessClient() *http.Client {
	return &http.Client{Transport: &inProcessTransport{p: p}}
}

type inProcessTransport struct {
	p *IdP
}

// maxInProcessResponse bounds a response body held in memory (discovery, JWKS, tokens and
// userinfo are a few kilobytes).
const maxInProcessResponse = 1 << 20

// RoundTrip serves req with the IdP's handler.
func (t *inProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if req.URL == nil || !sameOrigin(req.URL.Scheme, req.URL.Host, t.p.issuerURL.Scheme, t.p.issuerURL.Host) {
		return nil, fmt.Errorf("idp: in-process client: %s is not on the issuer %s", redactURL(req), t.p.issuer)
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}

	in := req.Clone(req.Context())
	in.Host = req.URL.Host
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "in-process"
	in.Proto, in.ProtoMajor, in.ProtoMinor = "HTTP/1.1", 1, 1
	if req.Body == nil || req.Body == http.NoBody {
		in.Body = http.NoBody
	} else {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, fmt.Errorf("idp: in-process client: reading the request body: %w", err)
		}
		in.Body = io.NopCloser(bytes.NewReader(body))
		in.ContentLength = int64(len(body))
	}

	rw := &memoryResponse{header: make(http.Header)}
	t.p.ServeHTTP(rw, in)
	if rw.tooBig {
		return nil, fmt.Errorf("idp: in-process client: response to %s larger than %d bytes", req.URL.Path, maxInProcessResponse)
	}
	status := rw.status
	if status == 0 {
		status = http.StatusOK
	}
	resp := &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.header,
		Body:          io.NopCloser(bytes.NewReader(rw.body.Bytes())),
		ContentLength: int64(rw.body.Len()),
		Request:       req,
	}
	return resp, nil
}

// redactURL names a request's target without its query (which may hold a code or token).
func redactURL(req *http.Request) string {
	if req.URL == nil {
		return "request without URL"
	}
	return req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
}

// sameOrigin compares scheme and host, with default ports made explicit.
func sameOrigin(scheme, host, wantScheme, wantHost string) bool {
	if !strings.EqualFold(scheme, wantScheme) {
		return false
	}
	return strings.EqualFold(hostPort(scheme, host), hostPort(wantScheme, wantHost))
}

func hostPort(scheme, host string) string {
	if h, port, err := net.SplitHostPort(host); err == nil {
		return net.JoinHostPort(h, port)
	}
	port := "443"
	if strings.EqualFold(scheme, "http") {
		port = "80"
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), port)
}

// memoryResponse is an http.ResponseWriter that keeps the response in memory.
type memoryResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
	tooBig bool
}

func (m *memoryResponse) Header() http.Header { return m.header }

func (m *memoryResponse) WriteHeader(status int) {
	if m.status == 0 {
		m.status = status
	}
}

func (m *memoryResponse) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	if m.body.Len()+len(b) > maxInProcessResponse {
		m.tooBig = true
		return 0, fmt.Errorf("response too large")
	}
	return m.body.Write(b)
}

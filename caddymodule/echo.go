package caddymodule

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Echo{})
	httpcaddyfile.RegisterHandlerDirective("zonegate_echo", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		e := new(Echo)
		return e, e.UnmarshalCaddyfile(h.Dispenser)
	})
	httpcaddyfile.RegisterDirectiveOrder("zonegate_echo", httpcaddyfile.Before, "respond")
}

// Echo is a demo backend: it shows what a legacy app behind the gate receives. GET /headers
// answers a JSON object of the request headers (name -> value); GET / shows a small page with
// the identity headers. Any other path ending in /headers answers like /headers, so a test can
// see what a backend gets under any rule. It is meant for demos and debugging, never for production traffic.
type Echo struct{}

// CaddyModule returns the Caddy module information.
func (Echo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.zonegate_echo",
		New: func() caddy.Module { return new(Echo) },
	}
}

// UnmarshalCaddyfile sets up the handler. Syntax:
//
//	zonegate_echo
func (e *Echo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("zonegate_echo takes no arguments")
	}
	return nil
}

var echoPage = template.Must(template.New("echo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zonegate demo app</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1f2933}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e4e7eb;font-size:.95rem;vertical-align:top}td:first-child{white-space:nowrap}
th{color:#52606d;font-weight:600}code{background:#f0f4f8;padding:.1rem .3rem;border-radius:3px;word-break:break-all}
.btn{display:inline-block;margin-top:1.5rem;padding:.5rem 1rem;border:1px solid #9aa5b1;border-radius:6px;color:#1f2933;text-decoration:none}
</style></head><body>
<h1>Hello{{with .User}}, {{.}}{{end}}</h1>
<p>This is the demo app behind the zonegate gate. It is the legacy app: it trusts the identity headers the gate sets and never sees a password.</p>
<table><tr><th>Header</th><th>Value</th></tr>
{{range .Headers}}<tr><td><code>{{.Name}}</code></td><td><code>{{.Value}}</code></td></tr>{{end}}
</table>
<a class="btn" href="/headers">All request headers (JSON)</a>
<a class="btn" href="/.zonegate/logout">Sign out</a>
</body></html>`))

// ServeHTTP answers /headers and /.
func (Echo) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/headers" || strings.HasSuffix(r.URL.Path, "/headers"):
		out := make(map[string]string, len(r.Header))
		for k, v := range r.Header {
			out[k] = strings.Join(v, ", ")
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case r.URL.Path == "/":
		type row struct{ Name, Value string }
		var rows []row
		for k, v := range r.Header {
			lk := strings.ToLower(k)
			if strings.HasPrefix(lk, "x-remote-") || strings.HasPrefix(lk, "remote-") ||
				strings.HasPrefix(lk, "x-auth-request-") || strings.HasPrefix(lk, "x-zonegate-") {
				val := strings.Join(v, ", ")
				if len(val) > 60 { // the signed assertion: show its start
					val = val[:60] + "…"
				}
				rows = append(rows, row{k, val})
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
		user := r.Header.Get("X-Remote-Name")
		if user == "" {
			user = r.Header.Get("X-Remote-User")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		return echoPage.Execute(w, struct {
			User    string
			Headers []row
		}{user, rows})
	}
	http.NotFound(w, r)
	return nil
}

var _ caddyhttp.MiddlewareHandler = Echo{}

package adminapi

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/zonegate/zonegate/audit"
)

// openAPIPath is the API's description, kept next to the code it describes.
const openAPIPath = "../docs/openapi.yaml"

// loadOpenAPI parses docs/openapi.yaml.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	return doc
}

// node returns doc's value at the path of keys, or nil.
func node(doc any, keys ...string) any {
	for _, k := range keys {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[k]
	}
	return doc
}

// resolve follows a local $ref ("#/components/...").
func resolve(t *testing.T, doc map[string]any, v any) any {
	t.Helper()
	for range 8 {
		ref, ok := node(v, "$ref").(string)
		if !ok {
			return v
		}
		p, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			t.Fatalf("$ref %q is not local", ref)
		}
		v = node(doc, strings.Split(p, "/")...)
		if v == nil {
			t.Fatalf("$ref %q does not resolve", ref)
		}
	}
	return v
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPI checks docs/openapi.yaml against the route table: the same operations, the
// scope each needs, the auth answers, path parameters, and schemas that match the JSON the
// handlers write.
func TestOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	if s := node(doc, "components", "securitySchemes", "bearer"); node(s, "type") != "http" || node(s, "scheme") != "bearer" {
		t.Errorf("securitySchemes.bearer: %v", s)
	}
	sec, _ := doc["security"].([]any)
	if len(sec) != 1 || node(sec[0], "bearer") == nil {
		t.Errorf("top-level security: %v, want bearer", doc["security"])
	}

	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				resolve(t, doc, v)
			}
			for _, w := range v {
				walk(w)
			}
		case []any:
			for _, w := range v {
				walk(w)
			}
		}
	}
	walk(doc)

	paths, _ := doc["paths"].(map[string]any)
	var documented []string
	wildcard := regexp.MustCompile(`\{([a-z]+)\}`)
	for p, item := range paths {
		for _, m := range httpMethods {
			op := node(item, m)
			if op == nil {
				continue
			}
			pattern := strings.ToUpper(m) + " " + p
			documented = append(documented, pattern)
			i := slices.IndexFunc(routes, func(rt route) bool { return rt.pattern() == pattern })
			if i < 0 {
				t.Errorf("%s is documented but not served", pattern)
				continue
			}
			rt := routes[i]
			wantScope := "read"
			if rt.write {
				wantScope = "read-write"
			}
			if got := node(op, "x-scope"); got != wantScope {
				t.Errorf("%s: x-scope %v, want %s", pattern, got, wantScope)
			}
			responses, _ := node(op, "responses").(map[string]any)
			want := []string{"401", "503"}
			if rt.write {
				want = append(want, "403")
			}
			for _, code := range want {
				if responses[code] == nil {
					t.Errorf("%s: no %s response", pattern, code)
				}
			}
			// Path parameters: each wildcard is declared, on the path or the operation.
			var params []any
			if ps, ok := node(item, "parameters").([]any); ok {
				params = append(params, ps...)
			}
			if ps, ok := node(op, "parameters").([]any); ok {
				params = append(params, ps...)
			}
			var inPath, inQuery []string
			for _, p := range params {
				p = resolve(t, doc, p)
				name, _ := node(p, "name").(string)
				switch node(p, "in") {
				case "path":
					inPath = append(inPath, name)
				case "query":
					inQuery = append(inQuery, name)
				}
			}
			for _, m := range wildcard.FindAllStringSubmatch(p, -1) {
				if !slices.Contains(inPath, m[1]) {
					t.Errorf("%s: path parameter %q is not declared", pattern, m[1])
				}
			}
			slices.Sort(inQuery)
			served := slices.Sorted(slices.Values(rt.params))
			if !slices.Equal(inQuery, served) {
				t.Errorf("%s: query parameters %v documented, %v served", pattern, inQuery, served)
			}
		}
	}
	for _, rt := range routes {
		if !slices.Contains(documented, rt.pattern()) {
			t.Errorf("%s is served but not documented", rt.pattern())
		}
	}

	// The schemas have the fields the handlers write.
	for name, v := range map[string]any{
		"User": User{}, "Factor": Factor{}, "Session": Session{}, "Device": Device{}, "Token": Token{},
		"Event": audit.Event{}, "Error": apiError{}, "Group": Group{}, "Removed": Removed{}, "Revoked": Revoked{},
		"ChangeRequest": changeRequest{},
	} {
		props, _ := node(doc, "components", "schemas", name, "properties").(map[string]any)
		if props == nil {
			t.Errorf("schema %s is missing", name)
			continue
		}
		documented := slices.Sorted(func(yield func(string) bool) {
			for k := range props {
				if !yield(k) {
					return
				}
			}
		})
		if got := jsonFields(reflect.TypeOf(v)); !slices.Equal(got, documented) {
			t.Errorf("schema %s: properties %v, JSON fields %v", name, documented, got)
		}
	}
}

// jsonFields returns the JSON names of a struct's fields, sorted.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

package adminapi

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allowedImports are the non-standard packages the admin API may import: no Caddy, no zap,
// no storage backend.
var allowedImports = []string{
	"github.com/zonegate/zonegate/accounts",
	"github.com/zonegate/zonegate/apitoken",
	"github.com/zonegate/zonegate/audit",
	"github.com/zonegate/zonegate/device",
	"github.com/zonegate/zonegate/directory",
	"github.com/zonegate/zonegate/store",
	"github.com/zonegate/zonegate/websession",
}

// TestImports keeps the package plain Go on top of zonegate's own packages.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && !slices.Contains(allowedImports, p) {
				t.Errorf("%s imports %q: only the standard library and %v are allowed", name, p, allowedImports)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

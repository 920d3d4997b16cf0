package policy

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package pure: the standard library (without I/O, networking or
// logging) and the zones package only.
func TestImports(t *testing.T) {
	forbidden := map[string]bool{
		"io": true, "io/fs": true, "io/ioutil": true, "os": true, "os/exec": true, "syscall": true,
		"net": true, "net/http": true, "log": true, "log/slog": true, "bufio": true,
	}
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
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
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
			stdlib := !strings.Contains(first, ".")
			switch {
			case p == "github.com/zonegate/zonegate/zones":
			case !stdlib:
				t.Errorf("%s imports %q: only the standard library and zones are allowed", name, p)
			case forbidden[p]:
				t.Errorf("%s imports %q: policy does no I/O, networking or logging", name, p)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found")
	}
}

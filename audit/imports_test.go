package audit

import (
	"context"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zonegate/zonegate/store"
)

// TestImports keeps the package plain Go: the standard library and zonegate's store only.
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
			if p != "github.com/zonegate/zonegate/store" && p != "github.com/zonegate/zonegate/internal/hmacsig" && strings.Contains(first, ".") {
				t.Errorf("%s imports %q: only the standard library, store and internal/hmacsig are allowed", name, p)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

// nopStore is a store that accepts every write and holds nothing, for benchmarks.
type nopStore struct{}

func (nopStore) Create(context.Context, store.Record) error { return nil }
func (nopStore) Get(context.Context, store.Kind, string) (store.Record, error) {
	return store.Record{}, store.ErrNotFound
}
func (nopStore) Update(context.Context, store.Kind, string, func(store.Record) (store.Record, error)) (store.Record, error) {
	return store.Record{}, store.ErrNotFound
}
func (nopStore) Delete(context.Context, store.Kind, string) error { return nil }
func (nopStore) Take(context.Context, store.Kind, string) (store.Record, error) {
	return store.Record{}, store.ErrNotFound
}
func (nopStore) ListByOwner(context.Context, store.Kind, string) ([]store.Record, error) {
	return nil, nil
}
func (nopStore) DeleteByOwner(context.Context, store.Kind, string) (int, error) { return 0, nil }
func (nopStore) Health(context.Context) error                                   { return nil }
func (nopStore) Close() error                                                   { return nil }

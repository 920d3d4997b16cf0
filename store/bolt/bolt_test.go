package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) store.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "zonegate.db"), bolt.Options{Now: clock.Now, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

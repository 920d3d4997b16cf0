package caddymodule

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
)

func init() {
	caddy.RegisterModule(BoltStorage{})
}

var timeZero time.Time

// StorageModule is a zonegate.storage module: it opens the store the app keeps its state in.
type StorageModule interface {
	// OpenStore opens (or reuses, across config reloads) the store.
	OpenStore(ctx caddy.Context) (store.Store, error)
	// CloseStore gives the store back; the last user closes it.
	CloseStore() error
}

// stores keeps open stores across config reloads: a reload provisions the new config before
// the old one is cleaned up, and a bolt file can only be opened once.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// BoltStorage is the embedded store: one bbolt file, nothing to install. The default.
type BoltStorage struct {
	// Path of the database file. Default: zonegate/zonegate.db in Caddy's data directory.
	Path string `json:"path,omitempty"`

	key string
}

// CaddyModule returns the Caddy module information.
func (BoltStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "zonegate.storage.bolt",
		New: func() caddy.Module { return new(BoltStorage) },
	}
}

// OpenStore opens the bolt file, or reuses it when a previous config has it open.
func (b *BoltStorage) OpenStore(ctx caddy.Context) (store.Store, error) {
	path := b.Path
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "zonegate", "zonegate.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("zonegate storage: %w", err)
	}
	b.key = "bolt:" + abs
	v, _, err := stores.LoadOrNew(b.key, func() (caddy.Destructor, error) {
		st, err := bolt.Open(abs, bolt.Options{Logger: ctx.Slogger()})
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("zonegate storage: %w", err)
	}
	return v.(pooledStore).Store, nil
}

// CloseStore releases this config's use of the file.
func (b *BoltStorage) CloseStore() error {
	if b.key == "" {
		return nil
	}
	_, err := stores.Delete(b.key)
	return err
}

var _ StorageModule = (*BoltStorage)(nil)

package caddymodule

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/zonegate/zonegate/store"
	"github.com/zonegate/zonegate/store/bolt"
	"github.com/zonegate/zonegate/store/redis"
)

func init() {
	caddy.RegisterModule(BoltStorage{})
	caddy.RegisterModule(RedisStorage{})
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
	return openPooled(b.key, func() (store.Store, error) {
		return bolt.Open(abs, bolt.Options{Logger: ctx.Slogger()})
	})
}

// CloseStore releases this config's use of the file.
func (b *BoltStorage) CloseStore() error { return closePooled(b.key) }

// openPooled returns the open store under key, or opens one with open and keeps it there.
func openPooled(key string, open func() (store.Store, error)) (store.Store, error) {
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := open()
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

// closePooled gives back one use of the store under key; the last use closes it.
func closePooled(key string) error {
	if key == "" {
		return nil
	}
	_, err := stores.Delete(key)
	return err
}

var _ StorageModule = (*BoltStorage)(nil)

// RedisStorage keeps zonegate's state in Redis (standalone, Sentinel or Cluster), so several
// gateways share sessions, keys and revocations.
type RedisStorage struct {
	// URL of a standalone server: redis://[user[:password]@]host:port[/db], rediss:// for TLS.
	URL string `json:"url,omitempty"`
	// MasterName and SentinelAddrs select a Sentinel-managed primary.
	MasterName    string   `json:"master_name,omitempty"`
	SentinelAddrs []string `json:"sentinel_addrs,omitempty"`
	// ClusterAddrs are seed nodes of a Redis Cluster.
	ClusterAddrs []string `json:"cluster_addrs,omitempty"`
	// Username and Password override the URL's; {env.NAME} and {file./path} work.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// KeyPrefix starts every key. Default "zonegate:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	key string
}

// CaddyModule returns the Caddy module information.
func (RedisStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "zonegate.storage.redis",
		New: func() caddy.Module { return new(RedisStorage) },
	}
}

// OpenStore connects to Redis, or reuses the connection of a previous config.
func (r *RedisStorage) OpenStore(ctx caddy.Context) (store.Store, error) {
	repl := caddy.NewReplacer()
	opts := redis.Options{
		URL:           repl.ReplaceKnown(r.URL, ""),
		MasterName:    r.MasterName,
		SentinelAddrs: r.SentinelAddrs,
		ClusterAddrs:  r.ClusterAddrs,
		Username:      repl.ReplaceKnown(r.Username, ""),
		Password:      repl.ReplaceKnown(r.Password, ""),
		KeyPrefix:     r.KeyPrefix,
		Logger:        ctx.Slogger(),
	}
	// The pool key must tell configurations apart without holding a password.
	r.key = "redis:" + strings.Join([]string{r.URL, r.MasterName, strings.Join(r.SentinelAddrs, ","),
		strings.Join(r.ClusterAddrs, ","), r.Username, r.Password, r.KeyPrefix}, "|")
	return openPooled(r.key, func() (store.Store, error) {
		openCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return redis.Open(openCtx, opts)
	})
}

// CloseStore releases this config's use of the connection.
func (r *RedisStorage) CloseStore() error { return closePooled(r.key) }

var _ StorageModule = (*RedisStorage)(nil)

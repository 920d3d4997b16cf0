// Package zonegate registers zonegate's Caddy modules. Import it for its side effect, or build
// a Caddy with it: xcaddy build --with github.com/zonegate/zonegate
package zonegate

import _ "github.com/zonegate/zonegate/caddymodule" // the app, handlers, storage and Caddyfile syntax

// Command zonegate is Caddy with its standard modules plus the zonegate gateway: every Caddy
// subcommand works (run, adapt, validate, reload), and zonegate adds its own.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/zonegate/zonegate/caddymodule"
)

func main() {
	// Caddy's own hash-password makes hashes for basic_auth; zonegate's makes the argon2id
	// hashes of its users file, so it takes the name in this binary.
	if len(os.Args) > 1 && os.Args[1] == "hash-password" {
		code, err := hashPassword(os.Args[2:], os.Stdin, os.Stdout, os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "zonegate hash-password:", err)
		}
		os.Exit(code)
	}
	// zonegate policy check explains what a gate would decide for one request.
	if len(os.Args) > 1 && os.Args[1] == "policy" {
		os.Exit(policyCommand(os.Args[2:], os.Stdout, os.Stderr))
	}
	// zonegate token create / authenticators reset act on the running gateway.
	if len(os.Args) > 1 && (os.Args[1] == "token" || os.Args[1] == "authenticators") {
		os.Exit(adminCommand(os.Args[1:], os.Stdout, os.Stderr))
	}
	caddycmd.Main()
}

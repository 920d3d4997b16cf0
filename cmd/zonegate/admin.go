package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// adminCommand runs the subcommands that change a running gateway through Caddy's admin
// endpoint (zonegate's routes there): "token create" and "authenticators reset". They
// work whatever the store, since the running server does the work.
func adminCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "usage: zonegate token create --name <name> --scope read|read-write [--admin <addr>]\n       zonegate authenticators reset --user <username> [--admin <addr>]\n       zonegate authenticators link --user <username> [--admin <addr>]")
		return 2
	}
	what := args[0] + " " + args[1]
	fs := flag.NewFlagSet("zonegate "+what, flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "localhost:2019", "the running gateway's admin endpoint (host:port)")
	var path string
	var body any
	switch what {
	case "token create":
		name := fs.String("name", "", "a label for the token (who or what uses it)")
		scope := fs.String("scope", "read", "read or read-write")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if *name == "" {
			fmt.Fprintln(stderr, "zonegate token create: --name is required")
			return 2
		}
		path, body = "/zonegate/tokens", map[string]string{"name": *name, "scope": *scope}
	case "authenticators reset":
		user := fs.String("user", "", "the user whose security keys and authenticator apps are removed")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if *user == "" {
			fmt.Fprintln(stderr, "zonegate authenticators reset: --user is required")
			return 2
		}
		path, body = "/zonegate/reset-factors", map[string]string{"user": *user}
	case "authenticators link":
		user := fs.String("user", "", "the user who sets up a security key with the link")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if *user == "" {
			fmt.Fprintln(stderr, "zonegate authenticators link: --user is required")
			return 2
		}
		path, body = "/zonegate/enrollment-link", map[string]string{"user": *user}
	default:
		fmt.Fprintf(stderr, "zonegate: unknown command %q (want token create, authenticators reset or authenticators link)\n", what)
		return 2
	}
	raw, _ := json.Marshal(body)
	url := "http://" + strings.TrimPrefix(*admin, "http://") + path
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		fmt.Fprintf(stderr, "zonegate %s: reaching the admin endpoint at %s: %v (is the gateway running, with its admin endpoint on?)\n", what, *admin, err)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			fmt.Fprintf(stderr, "zonegate %s: %s\n", what, e.Error)
		} else {
			fmt.Fprintf(stderr, "zonegate %s: %s: %s\n", what, resp.Status, strings.TrimSpace(string(out)))
		}
		return 1
	}
	if what == "token create" {
		var r struct {
			Token string         `json:"token"`
			Meta  map[string]any `json:"meta"`
		}
		if err := json.Unmarshal(out, &r); err != nil || r.Token == "" {
			fmt.Fprintf(stderr, "zonegate token create: unexpected answer: %s\n", out)
			return 1
		}
		fmt.Fprintf(stderr, "Token %v (%v) created. It is shown this once: keep it in a secret store.\n", r.Meta["id"], r.Meta["scope"])
		fmt.Fprintln(stdout, r.Token)
		return 0
	}
	if what == "authenticators link" {
		var r struct {
			URL     string `json:"url"`
			Expires string `json:"expires"`
		}
		if err := json.Unmarshal(out, &r); err != nil || r.URL == "" {
			fmt.Fprintf(stderr, "zonegate authenticators link: unexpected answer: %s\n", out)
			return 1
		}
		fmt.Fprintf(stderr, "One-time link, valid until %s. Give it to the user over a channel you trust.\n", r.Expires)
		fmt.Fprintln(stdout, r.URL)
		return 0
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(out)))
	return 0
}

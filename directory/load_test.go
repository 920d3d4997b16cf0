package directory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A well-formed hash for Load tests (Load never runs argon2, so it need not match anything).
const someHash = "$argon2id$v=19$m=19456,t=2,p=1$odBiy0DTyKTyq8V+3+TQ5Q$KkMx3vqWEpnOToialH8qy2aGKfbZtiV1tAyWgN1mp/I"

// lines joins its arguments into a file, one per line, so tests can count lines.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// writeUsers writes content to a new users.yaml in a temp dir and returns its path.
func writeUsers(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := writeUsers(t, lines(
		"# comment",
		"users:",
		"  Alice:",
		`    displayname: "Alice Admin"`,
		"    email: alice@example.com",
		`    password: "`+someHash+`"`,
		"    groups: [admins, staff, admins]",
		"    disabled: false",
		"  bob:",
		"    password: "+someHash, // unquoted works too
		"    id: 6f0c2a3e-bob",
		"    groups:",
		"      - staff",
		"    given_name: Bob", // Authelia profile fields are accepted and ignored
		"    locale: en-GB",
		"    address:",
		"      locality: Berlin",
		"    extra:",
		"      shoe_size: 44",
		"  carol:",
		"    disabled: true", // a disabled user needs no password
		"    groups: ~",
	))
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]User{
		"alice": {ID: "alice", Username: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins", "staff"}},
		"bob":   {ID: "6f0c2a3e-bob", Username: "bob", Name: "bob", Groups: []string{"staff"}},
		"carol": {ID: "carol", Username: "carol", Name: "carol", Disabled: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadEmptyUsers(t *testing.T) {
	for _, content := range []string{"users: {}\n", "users:\n", "users: ~\n"} {
		got, err := Load(writeUsers(t, content))
		if err != nil || len(got) != 0 {
			t.Errorf("Load(%q) = %v, %v; want no users, nil", content, got, err)
		}
	}
}

func TestLoadAliases(t *testing.T) {
	path := writeUsers(t, lines(
		"common: &staff [staff, vpn]",
		"users:",
		"  alice:",
		"    password: &pw "+someHash,
		"    groups: *staff",
		"  bob:",
		"    password: *pw",
		"    groups: *staff",
	))
	// "common" is not a known top-level key, so aliases must be defined inside users.
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), `unknown top-level field "common"`) {
		t.Fatalf("Load() error = %v, want unknown top-level field", err)
	}
	path = writeUsers(t, lines(
		"users:",
		"  alice:",
		"    password: &pw "+someHash,
		"    groups: &staff [staff, vpn]",
		"  bob:",
		"    password: *pw",
		"    groups: *staff",
	))
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if g := got["bob"].Groups; !reflect.DeepEqual(g, []string{"staff", "vpn"}) {
		t.Errorf("bob's groups = %v, want [staff vpn]", g)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    string // the message after `users file "PATH": `
	}{
		{
			name: "not argon2id",
			content: lines(
				"users:",
				"  alice:",
				"    password: "+someHash,
				"  bob:",
				"    displayname: Bob",
				"    email: bob@example.com",
				`    password: "$6$rounds=50000$BpLnfgDsc2WD8F2q$be7OyobnQ8K09dyDiGjY"`,
			),
			want: `line 7: user "bob": password is not an argon2id hash`,
		},
		{
			name:    "plain-text password",
			content: lines("users:", "  bob:", "    password: hunter2"),
			want:    `line 3: user "bob": password is not an argon2id hash`,
		},
		{
			name:    "argon2i",
			content: lines("users:", "  bob:", "    password: $argon2i$v=19$m=19456,t=2,p=1$"+salt16+"$"+key32),
			want:    `line 3: user "bob": password is not an argon2id hash (argon2i and argon2d are not supported)`,
		},
		{
			name:    "malformed hash",
			content: lines("users:", "  bob:", "    password: $argon2id$v=19$m=19456,t=2,p=1$"+salt16),
			want:    `line 3: user "bob": password: malformed argon2id hash: want 5 $-separated fields, got 4`,
		},
		{
			name:    "memory too high",
			content: lines("users:", "  bob:", "    password: $argon2id$v=19$m=8388608,t=2,p=1$"+salt16+"$"+key32),
			want:    `line 3: user "bob": password: argon2id parameters out of bounds: memory m=8388608 KiB is outside 8192..4194304`,
		},
		{
			name:    "time too high",
			content: lines("users:", "  bob:", "    password: $argon2id$v=19$m=19456,t=100,p=1$"+salt16+"$"+key32),
			want:    `line 3: user "bob": password: argon2id parameters out of bounds: time t=100 is outside 1..10`,
		},
		{
			name:    "short salt",
			content: lines("users:", "  bob:", "    password: $argon2id$v=19$m=19456,t=2,p=1$"+b64n(4)+"$"+key32),
			want:    `line 3: user "bob": password: argon2id parameters out of bounds: salt is 4 bytes, want 8..64`,
		},
		{
			name:    "empty password",
			content: lines("users:", "  bob:", "    email: bob@example.com", `    password: ""`),
			want:    `line 4: user "bob": password is empty (allowed only for a disabled user)`,
		},
		{
			name:    "no password field",
			content: lines("users:", "  bob:", "    email: bob@example.com"),
			want:    `line 2: user "bob": password is empty (allowed only for a disabled user)`,
		},
		{
			name:    "user with no fields",
			content: lines("users:", "  bob:"),
			want:    `line 2: user "bob": password is empty (allowed only for a disabled user)`,
		},
		{
			name: "duplicate user after lower-casing",
			content: lines(
				"users:",
				"  bob:",
				"    password: "+someHash,
				"  Bob:",
				"    password: "+someHash,
			),
			want: `line 4: user "Bob": duplicate user: same as user "bob" on line 2 (usernames are case-insensitive)`,
		},
		{
			name: "duplicate id",
			content: lines(
				"users:",
				"  alice:",
				"    password: "+someHash,
				"  bob:",
				"    id: alice",
				"    password: "+someHash,
			),
			want: `line 4: user "bob": id "alice" is already the id of user "alice" on line 2`,
		},
		{
			name:    "empty id",
			content: lines("users:", "  bob:", "    id: ''", "    password: "+someHash),
			want:    `line 3: user "bob": id is empty`,
		},
		{
			name:    "bad email",
			content: lines("users:", "  bob:", "    password: "+someHash, "    email: bob.example.com"),
			want:    `line 4: user "bob": email "bob.example.com" is not an email address (want name@domain)`,
		},
		{
			name:    "email with display name",
			content: lines("users:", "  bob:", "    password: "+someHash, "    email: Bob <bob@example.com>"),
			want:    `line 4: user "bob": email "Bob <bob@example.com>" is not an email address (want name@domain)`,
		},
		{
			name:    "email with two @",
			content: lines("users:", "  bob:", "    password: "+someHash, "    email: bob@x@example.com"),
			want:    `line 4: user "bob": email "bob@x@example.com" is not an email address (want name@domain)`,
		},
		{
			name:    "typo in field",
			content: lines("users:", "  bob:", "    pasword: "+someHash),
			want:    `line 3: user "bob": unknown field "pasword" (did you mean "password"?)`,
		},
		{
			name:    "unknown field",
			content: lines("users:", "  bob:", "    password: "+someHash, "    shell: /bin/zsh"),
			want:    `line 4: user "bob": unknown field "shell"`,
		},
		{
			name:    "display_name is not displayname",
			content: lines("users:", "  bob:", "    password: "+someHash, "    display_name: Bob"),
			want:    `line 4: user "bob": unknown field "display_name" (did you mean "displayname"?)`,
		},
		{
			name:    "hash split by flow syntax",
			content: lines("users:", "  bob: {password: "+someHash+"}"),
			want: `line 2: user "bob": unknown field "t=2"` + "\n" +
				`users file "PATH": line 2: user "bob": unknown field "p=1..."` + "\n" +
				`users file "PATH": line 2: user "bob": password: malformed argon2id hash: want 5 $-separated fields, got 3`,
		},
		{
			name:    "duplicate field",
			content: lines("users:", "  bob:", "    password: "+someHash, "    groups: [a]", "    groups: [b]"),
			want:    `line 5: user "bob": duplicate field "groups" (first on line 4)`,
		},
		{
			name:    "groups not a list",
			content: lines("users:", "  bob:", "    password: "+someHash, "    groups: admins"),
			want:    `line 4: user "bob": groups must be a list of group names`,
		},
		{
			name:    "group not a name",
			content: lines("users:", "  bob:", "    password: "+someHash, "    groups: [admins, {x: 1}]"),
			want:    `line 4: user "bob": groups entry 2 must be a group name`,
		},
		{
			name:    "empty group",
			content: lines("users:", "  bob:", "    password: "+someHash, "    groups: [admins, '']"),
			want:    `line 4: user "bob": groups entry 2: group name is empty`,
		},
		{
			name:    "disabled not a bool",
			content: lines("users:", "  bob:", "    password: "+someHash, "    disabled: maybe"),
			want:    `line 4: user "bob": disabled must be true or false`,
		},
		{
			name:    "displayname not a string",
			content: lines("users:", "  bob:", "    password: "+someHash, "    displayname: [Bob]"),
			want:    `line 4: user "bob": displayname must be a string`,
		},
		{
			name:    "control character in displayname",
			content: lines("users:", "  bob:", "    password: "+someHash, `    displayname: "Bob\r\nX-Admin: yes"`),
			want:    `line 4: user "bob": displayname contains a control character`,
		},
		{
			name:    "username with spaces",
			content: lines("users:", `  " bob":`, "    password: "+someHash),
			want:    `line 2: user " bob": username has leading or trailing spaces`,
		},
		{
			name:    "empty username",
			content: lines("users:", `  "":`, "    password: "+someHash),
			want:    `line 2: username is empty`,
		},
		{
			name:    "username not a string",
			content: lines("users:", "  [a, b]:", "    password: "+someHash),
			want:    `line 2: usernames must be strings`,
		},
		{
			name:    "user not a mapping",
			content: lines("users:", "  bob: "+someHash),
			want:    `line 2: user "bob": must be a mapping of fields (password, displayname, email, groups, disabled)`,
		},
		{
			name:    "merge key",
			content: lines("users:", "  alice: &a", "    password: "+someHash, "  bob:", "    <<: *a"),
			want:    `line 5: user "bob": merge keys (<<) are not supported`,
		},
		{
			name:    "users not a mapping",
			content: lines("users:", "  - alice"),
			want:    `line 1: "users" must be a mapping of username to user`,
		},
		{
			name:    "missing users",
			content: lines("user:", "  alice:", "    password: "+someHash),
			want:    `line 1: unknown top-level field "user" (want only "users")` + "\n" + `users file "PATH": line 1: missing "users" key`,
		},
		{
			name:    "duplicate users key",
			content: lines("users: {}", "users: {}"),
			want:    `line 2: duplicate "users" key (first on line 1)`,
		},
		{
			name:    "top level a list",
			content: lines("- users"),
			want:    `line 1: top level must be a mapping with a "users" key`,
		},
		{
			name:    "top level a scalar",
			content: lines("hello"),
			want:    `line 1: top level must be a mapping with a "users" key`,
		},
		{
			name:    "empty file",
			content: "",
			want:    `no YAML document (the file is empty or all comments)`,
		},
		{
			name:    "only comments",
			content: lines("# users:", "#   alice:"),
			want:    `no YAML document (the file is empty or all comments)`,
		},
		{
			name:    "two documents",
			content: lines("users: {}", "---", "users: {}"),
			want:    `line 2: more than one YAML document`,
		},
		{
			name:    "yaml syntax error",
			content: lines("users:", "  bob:", "    password: "+someHash, "    groups: a: b"),
			want:    `parsing YAML: yaml: line 4: mapping values are not allowed in this context`,
		},
		{
			name:    "tab indentation",
			content: lines("users:", "\tbob:"),
			want:    `parsing YAML: yaml: line 2: found character that cannot start any token`,
		},
		{
			name: "several problems",
			content: lines(
				"users:",
				"  alice:",
				"    password: hunter2",
				"  bob:",
				"    password: "+someHash,
				"    emial: bob@example.com",
			),
			want: `line 3: user "alice": password is not an argon2id hash` + "\n" +
				`users file "PATH": line 6: user "bob": unknown field "emial" (did you mean "email"?)`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeUsers(t, tc.content)
			users, err := Load(path)
			if err == nil {
				t.Fatalf("Load() = %v, nil; want error %q", users, tc.want)
			}
			want := fmt.Sprintf("users file %q: ", path) + strings.ReplaceAll(tc.want, "PATH", path)
			if got := err.Error(); got != want {
				t.Errorf("Load() error\n got: %s\nwant: %s", got, want)
			}
			if strings.Contains(err.Error(), "KKMx3vq") || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "BpLnfgDsc2WD8F2q") {
				t.Errorf("Load() error %q contains a password or hash", err)
			}
		})
	}
}

func TestLoadManyProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("users:\n")
	for i := range 15 {
		fmt.Fprintf(&b, "  user%d:\n    password: plain\n", i)
	}
	_, err := Load(writeUsers(t, b.String()))
	if err == nil {
		t.Fatal("Load() = nil error")
	}
	msg := err.Error()
	if n := strings.Count(msg, "\n") + 1; n != maxProblems+1 {
		t.Errorf("Load() error has %d lines, want %d:\n%s", n, maxProblems+1, msg)
	}
	if !strings.HasSuffix(msg, ": 5 more problems") {
		t.Errorf("Load() error does not end with the count of the rest:\n%s", msg)
	}
}

func TestLoadFileProblems(t *testing.T) {
	dir := t.TempDir()

	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `users file "`+filepath.Join(dir, "missing.yaml")+`"`) {
		t.Errorf("Load(missing) error = %v, want ErrNotExist naming the file", err)
	}

	_, err = Load(dir)
	if err == nil || !strings.HasSuffix(err.Error(), "not a regular file") {
		t.Errorf("Load(dir) error = %v, want not a regular file", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("users: {}\n"+strings.Repeat("#", maxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(big)
	if err == nil || !strings.HasSuffix(err.Error(), "larger than 8 MiB") {
		t.Errorf("Load(big) error = %v, want larger than 8 MiB", err)
	}
}

// A small file whose aliases expand to many nodes is refused quickly instead of being walked.
func TestLoadAliasExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("users:\n  u0:\n    password: " + someHash + "\n    groups: &g [")
	for i := range 4000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "g%d", i)
	}
	b.WriteString("]\n")
	for i := 1; i < 400; i++ {
		fmt.Fprintf(&b, "  u%d: {password: %q, groups: *g}\n", i, someHash)
	}
	start := time.Now()
	_, err := Load(writeUsers(t, b.String()))
	if err == nil || !strings.Contains(err.Error(), "too many YAML nodes") {
		t.Fatalf("Load() error = %v, want too many YAML nodes", err)
	}
	t.Logf("refused in %v", time.Since(start))
}

func TestLoadExampleUsersFile(t *testing.T) {
	users, err := Load("../examples/users.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]User{
		"alice": {ID: "alice", Username: "alice", Name: "Alice Admin", Email: "alice@example.com", Groups: []string{"admins"}},
		"bob":   {ID: "bob", Username: "bob", Name: "Bob Builder", Email: "bob@example.com", Groups: []string{"staff"}},
	}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("Load(examples/users.yaml) =\n%+v\nwant\n%+v", users, want)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(lines("users:", "  alice:", "    password: "+someHash, "    groups: [a, b]", "    email: a@b.c")))
	f.Add([]byte(lines("users:", "  alice: &a", "    password: "+someHash, "  bob:", "    <<: *a")))
	f.Add([]byte(lines("users:", "  x: {disabled: true, id: y, displayname: z}", "  y: {password: ~}")))
	f.Add([]byte("users: {a: {password: [1]}, A: {groups: *x}}"))
	f.Add([]byte("&a [*a]"))
	f.Add([]byte("users: &u {alice: *u}"))
	if data, err := os.ReadFile("../examples/users.yaml"); err == nil {
		f.Add(data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "users.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		users, err := Load(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("users file %q: ", path)) {
				t.Fatalf("Load() error %q does not name the file", err)
			}
			return
		}
		ids := map[string]bool{}
		for name, u := range users {
			if name != u.Username || strings.ToLower(name) != name || name == "" {
				t.Fatalf("user keyed %q has username %q", name, u.Username)
			}
			if u.ID == "" || ids[u.ID] {
				t.Fatalf("user %q has empty or duplicate id %q", name, u.ID)
			}
			ids[u.ID] = true
		}
	})
}

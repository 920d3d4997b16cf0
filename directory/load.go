package directory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Limits on what a users file may make the loader do.
const (
	maxFileSize    = 8 << 20 // bytes
	maxNodes       = 1 << 20 // YAML nodes visited, aliases counted each time they are followed
	maxProblems    = 10      // problems reported before the rest are only counted
	maxNameLen     = 256     // bytes, for usernames, ids, group names
	maxEmailLen    = 254     // bytes
	maxDisplayName = 1024    // bytes
)

// Fields of a user entry that zonegate uses.
const (
	fieldPassword    = "password"
	fieldDisplayName = "displayname"
	fieldEmail       = "email"
	fieldGroups      = "groups"
	fieldDisabled    = "disabled"
	fieldID          = "id"
)

// autheliaFields are the optional profile fields of Authelia's file backend: accepted, so an
// Authelia file loads unchanged, and ignored.
var autheliaFields = map[string]bool{
	"given_name": true, "middle_name": true, "family_name": true, "nickname": true, "gender": true,
	"birthdate": true, "website": true, "profile": true, "picture": true, "zoneinfo": true,
	"locale": true, "phone_number": true, "phone_extension": true, "address": true, "extra": true,
}

// knownFields lists every field name for "did you mean" suggestions.
var knownFields = func() []string {
	names := []string{fieldPassword, fieldDisplayName, fieldEmail, fieldGroups, fieldDisabled, fieldID}
	for name := range autheliaFields {
		names = append(names, name)
	}
	return names
}()

// entry is one user as loaded, with the password hash that never leaves the package.
type entry struct {
	user    User
	hash    Hash
	hasHash bool // false only for a disabled user with an empty password
}

// Load reads, parses and validates the users file at path and returns its users by username. It
// is what OpenFile and every reload run, without keeping anything: use it to check a file.
//
// Errors name the file, the line, the user and the problem, for example
//
//	users file "users.yaml": line 7: user "bob": password is not an argon2id hash
//
// and several problems are reported together (one per line). They never contain a password or
// a hash.
func Load(path string) (map[string]User, error) {
	entries, _, err := loadFile(path)
	if err != nil {
		return nil, err
	}
	users := make(map[string]User, len(entries))
	for name, e := range entries {
		users[name] = e.user.clone()
	}
	return users, nil
}

// loadFile reads and parses path, returning the entries and the FileInfo of the file it read
// (taken from the open file, so it describes the content read; set whenever the file was read,
// even if its content is bad).
func loadFile(path string) (map[string]*entry, os.FileInfo, error) {
	data, info, err := readFile(path)
	if err != nil {
		return nil, info, fmt.Errorf("users file %q: %w", path, err)
	}
	entries, err := parseUsers(path, data)
	if err != nil {
		return nil, info, err
	}
	return entries, info, nil
}

// readFile reads at most maxFileSize bytes of path.
func readFile(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, info, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, info, fmt.Errorf("reading: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, info, fmt.Errorf("larger than %d MiB", maxFileSize>>20)
	}
	return data, info, nil
}

// walker collects the problems of one users file.
type walker struct {
	path     string
	problems []error
	more     int  // problems beyond maxProblems
	nodes    int  // nodes visited, against maxNodes
	broken   bool // the walk stopped early (node budget spent or a dangling alias)
}

// fail records a problem at line (0: none) about user (empty: none).
func (p *walker) fail(line int, user string, err error) {
	if len(p.problems) >= maxProblems {
		p.more++
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "users file %q: ", p.path)
	if line > 0 {
		fmt.Fprintf(&b, "line %d: ", line)
	}
	if user != "" {
		fmt.Fprintf(&b, "user %q: ", user)
	}
	p.problems = append(p.problems, fmt.Errorf("%s%w", b.String(), err))
}

// failf is fail with a formatted message.
func (p *walker) failf(line int, user, format string, args ...any) {
	p.fail(line, user, fmt.Errorf(format, args...))
}

// err returns the recorded problems as one error, or nil.
func (p *walker) err() error {
	switch {
	case len(p.problems) == 0:
		return nil
	case len(p.problems) == 1:
		return p.problems[0]
	}
	errs := p.problems
	if p.more > 0 {
		errs = append(errs, fmt.Errorf("users file %q: %d more problems", p.path, p.more))
	}
	return errors.Join(errs...)
}

// errTooComplex is the problem recorded when the walk stopped early.
var errTooComplex = errors.New("too many YAML nodes, counting each use of an alias, or a dangling alias")

// resolve follows aliases and counts the node against the budget. It returns nil, and marks the
// walk broken, for a dangling alias or when the budget is spent.
func (p *walker) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == 8 {
			n = nil
			break
		}
		n = n.Alias
	}
	p.nodes++
	if n == nil || p.nodes > maxNodes {
		p.broken = true
		return nil
	}
	return n
}

// parseUsers parses and validates a users file's content; path is only for messages.
func parseUsers(path string, data []byte) (map[string]*entry, error) {
	p := &walker{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("users file %q: no YAML document (the file is empty or all comments)", path)
		}
		return nil, fmt.Errorf("users file %q: parsing YAML: %w", path, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, fmt.Errorf("users file %q: line %d: more than one YAML document", path, next.Line)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("users file %q: parsing YAML: %w", path, err)
	}

	entries := p.walkRoot(&doc)
	if p.broken {
		p.fail(0, "", errTooComplex)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return entries, nil
}

// walkRoot checks the document's top level and walks the users mapping.
func (p *walker) walkRoot(doc *yaml.Node) map[string]*entry {
	entries := map[string]*entry{}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.failf(doc.Line, "", "top level must be a mapping with a %q key", "users")
		return entries
	}
	root := p.resolve(doc.Content[0])
	if root == nil || root.Kind != yaml.MappingNode {
		p.failf(doc.Line, "", "top level must be a mapping with a %q key", "users")
		return entries
	}
	var users *yaml.Node
	usersLine := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := p.resolve(root.Content[i])
		if k == nil {
			return entries
		}
		switch name, ok := keyName(k); {
		case !ok:
			p.failf(k.Line, "", "top-level keys must be strings")
		case name == "users" && users != nil:
			p.failf(k.Line, "", "duplicate %q key (first on line %d)", "users", usersLine)
		case name == "users":
			users, usersLine = root.Content[i+1], k.Line
		default:
			p.failf(k.Line, "", "unknown top-level field %q (want only %q)", shown(name), "users")
		}
	}
	if users == nil {
		p.failf(root.Line, "", "missing %q key", "users")
		return entries
	}
	um := p.resolve(users)
	switch {
	case um == nil:
		return entries
	case isNull(um):
		return entries // "users:" with nothing under it: an explicit empty directory
	case um.Kind != yaml.MappingNode:
		p.failf(usersLine, "", "%q must be a mapping of username to user", "users")
		return entries
	}

	type owner struct {
		user string
		line int
	}
	byName := map[string]owner{}
	byID := map[string]owner{}
	for i := 0; i+1 < len(um.Content); i += 2 {
		k := p.resolve(um.Content[i])
		if k == nil {
			return entries
		}
		raw, ok := keyName(k)
		switch {
		case !ok:
			p.failf(k.Line, "", "usernames must be strings")
			continue
		case k.ShortTag() == "!!merge":
			p.failf(k.Line, "", "merge keys (<<) are not supported")
			continue
		}
		if err := checkName(raw); err != nil {
			p.fail(k.Line, raw, fmt.Errorf("username %w", err))
			continue
		}
		name := strings.ToLower(raw)
		if first, dup := byName[name]; dup {
			p.failf(k.Line, raw, "duplicate user: same as user %q on line %d (usernames are case-insensitive)", first.user, first.line)
			continue
		}
		byName[name] = owner{raw, k.Line}

		e, ok := p.walkUser(raw, name, k.Line, um.Content[i+1])
		if !ok {
			continue
		}
		if first, dup := byID[e.user.ID]; dup {
			p.failf(k.Line, raw, "id %q is already the id of user %q on line %d", e.user.ID, first.user, first.line)
			continue
		}
		byID[e.user.ID] = owner{raw, k.Line}
		entries[name] = e
	}
	return entries
}

// walkUser parses one user's fields. raw is the username as written, name lower-cased, line the
// line of the username. ok is false when a problem was recorded.
func (p *walker) walkUser(raw, name string, line int, node *yaml.Node) (_ *entry, ok bool) {
	before := len(p.problems) + p.more
	fail := func(line int, format string, args ...any) { p.failf(line, raw, format, args...) }

	n := p.resolve(node)
	if n == nil {
		return nil, false
	}
	var fields []*yaml.Node
	switch {
	case isNull(n):
		// A user with no fields: reported below as an empty password.
	case n.Kind == yaml.MappingNode:
		fields = n.Content
	default:
		fail(line, "must be a mapping of fields (password, displayname, email, groups, disabled)")
		return nil, false
	}

	var (
		password, displayName, email, id string
		groups                           []string
		disabled, hasID                  bool
		passwordLine                     = line
		seen                             = map[string]int{}
	)
	for i := 0; i+1 < len(fields); i += 2 {
		k := p.resolve(fields[i])
		if k == nil {
			return nil, false
		}
		field, ok := keyName(k)
		if !ok {
			fail(k.Line, "field names must be strings")
			continue
		}
		if k.ShortTag() == "!!merge" {
			fail(k.Line, "merge keys (<<) are not supported")
			continue
		}
		if first, dup := seen[field]; dup {
			fail(k.Line, "duplicate field %q (first on line %d)", shown(field), first)
			continue
		}
		seen[field] = k.Line
		v := p.resolve(fields[i+1])
		if v == nil {
			return nil, false
		}
		var err error
		switch field {
		case fieldPassword:
			password, err = scalarString(v)
			passwordLine = k.Line
		case fieldDisplayName:
			if displayName, err = scalarString(v); err == nil {
				err = checkText(displayName, maxDisplayName)
			}
		case fieldEmail:
			if email, err = scalarString(v); err == nil && email != "" {
				err = checkEmail(email)
			}
		case fieldID:
			hasID = true
			if id, err = scalarString(v); err == nil {
				err = checkName(id)
			}
		case fieldGroups:
			groups, err = p.groupList(v)
		case fieldDisabled:
			disabled, err = scalarBool(v)
		default:
			if autheliaFields[field] {
				continue
			}
			if s := suggest(field); s != "" {
				fail(k.Line, "unknown field %q (did you mean %q?)", shown(field), s)
			} else {
				fail(k.Line, "unknown field %q", shown(field))
			}
			continue
		}
		if err != nil {
			fail(k.Line, "%s %w", field, err)
		}
	}

	e := &entry{user: User{
		ID:       name,
		Username: name,
		Name:     displayName,
		Email:    email,
		Groups:   groups,
		Disabled: disabled,
	}}
	if hasID {
		e.user.ID = id
	}
	if e.user.Name == "" {
		e.user.Name = name
	}
	switch h, err := ParseHash(password); {
	case password == "":
		// Not worth saying when the user already has a problem (likely a misspelt password).
		if !disabled && len(p.problems)+p.more == before {
			fail(passwordLine, "password is empty (allowed only for a disabled user)")
		}
	case errors.Is(err, ErrNotArgon2id):
		fail(passwordLine, "password is %w", err)
	case err != nil:
		fail(passwordLine, "password: %w", err)
	default:
		e.hash, e.hasHash = h, true
	}
	if len(p.problems)+p.more != before {
		return nil, false
	}
	return e, true
}

// groupList parses a list of group names, dropping duplicates.
func (p *walker) groupList(n *yaml.Node) ([]string, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("must be a list of group names")
	}
	var groups []string
	seen := map[string]bool{}
	for i, item := range n.Content {
		item = p.resolve(item)
		if item == nil {
			return nil, errTooComplex
		}
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return nil, fmt.Errorf("entry %d must be a group name", i+1)
		}
		if err := checkName(item.Value); err != nil {
			return nil, fmt.Errorf("entry %d: group name %w", i+1, err)
		}
		if !seen[item.Value] {
			seen[item.Value] = true
			groups = append(groups, item.Value)
		}
	}
	return groups, nil
}

// keyName returns a mapping key's text; ok is false for a key that is not a plain scalar.
func keyName(k *yaml.Node) (string, bool) {
	if k.Kind != yaml.ScalarNode || isNull(k) {
		return "", false
	}
	return k.Value, true
}

// isNull reports whether n is a null scalar ("", "~", "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// scalarString returns a scalar's text ("" for null). The error never quotes the value.
func scalarString(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errors.New("must be a string")
	}
	if isNull(n) {
		return "", nil
	}
	return n.Value, nil
}

// scalarBool parses true/false (null is false).
func scalarBool(n *yaml.Node) (bool, error) {
	if n.Kind != yaml.ScalarNode {
		return false, errors.New("must be true or false")
	}
	if isNull(n) {
		return false, nil
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, errors.New("must be true or false")
	}
	return b, nil
}

// checkName validates a username, id or group name: not empty, at most maxNameLen bytes, valid
// UTF-8, no control characters, no leading or trailing spaces. The error reads after the name of
// the thing ("username is empty").
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case strings.TrimSpace(s) != s:
		return errors.New("has leading or trailing spaces")
	}
	return checkText(s, maxNameLen)
}

// checkText validates free text that may end up in an HTTP header: valid UTF-8, no control
// characters, at most max bytes.
func checkText(s string, max int) error {
	switch {
	case len(s) > max:
		return fmt.Errorf("is longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("contains a control character")
	}
	return nil
}

// checkEmail accepts a bare address (local@domain), as net/mail parses it, and nothing else:
// no display name, no comments, no spaces.
func checkEmail(s string) error {
	if err := checkText(s, maxEmailLen); err != nil {
		return err
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || strings.ContainsAny(s, " \t") {
		return fmt.Errorf("%q is not an email address (want name@domain)", s)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.HasPrefix(s[at+1:], "[") {
		return fmt.Errorf("%q is not an email address (want name@domain)", s)
	}
	return nil
}

// shown returns a field name as quoted in messages: cut at the first "$" and after 40 bytes, so
// a hash pasted in the wrong place (or split by flow syntax) does not reach the logs.
func shown(s string) string {
	cut := false
	if i := strings.IndexByte(s, '$'); i >= 0 {
		s, cut = s[:i], true
	}
	if len(s) > 40 {
		s, cut = strings.ToValidUTF8(s[:40], ""), true
	}
	if cut {
		s += "..."
	}
	return s
}

// suggest returns the known field closest to an unknown one, if it is a likely typo.
func suggest(field string) string {
	best, bestDist := "", 3
	for _, k := range knownFields {
		if d := editDistance(strings.ToLower(field), k); d < bestDist && d < len(field) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes; field names are ASCII).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

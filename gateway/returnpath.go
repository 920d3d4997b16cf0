package gateway

// maxReturnPath is the longest return path kept for after sign-in; a longer one becomes "/".
const maxReturnPath = 2048

// safeReturnPath returns p when it is a path on this site that no browser can read as another
// origin, and "/" otherwise. It accepts only a string that starts with a single "/" (not "//"
// and not "/\", which browsers treat as "//"), has no backslash anywhere, and has no control
// characters, spaces or non-ASCII bytes (browsers drop tabs and newlines from URLs, so
// "/\t/evil.example" would become "//evil.example").
func safeReturnPath(p string) string {
	if !isSafeReturnPath(p) {
		return "/"
	}
	return p
}

func isSafeReturnPath(p string) bool {
	if len(p) == 0 || len(p) > maxReturnPath || p[0] != '/' {
		return false
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

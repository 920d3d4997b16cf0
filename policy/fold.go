package policy

import (
	"unicode"
	"unicode/utf8"
)

// MaxGlobPath is the longest request path, in bytes after case folding, that a glob path
// pattern is matched against. Longer paths fail closed (see [RuleDef.Paths]).
const MaxGlobPath = 1024

// foldRune maps r to one representative of its Unicode simple case-folding orbit, the same for
// every rune that strings.EqualFold treats as equal to r: lower case for ASCII letters (so "K",
// "k" and the Kelvin sign all become "k"), otherwise the smallest rune of the orbit.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	lowest := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		lowest = min(lowest, f)
	}
	if 'A' <= lowest && lowest <= 'Z' {
		lowest += 'a' - 'A'
	}
	return lowest
}

// foldInto writes s case-folded into dst and returns the length written, or false when it does
// not fit. Bytes that are not valid UTF-8 are copied unchanged.
func foldInto(dst []byte, s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if n >= len(dst) {
				return n, false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst[n] = c
			n++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if n >= len(dst) {
				return n, false
			}
			dst[n] = s[i]
			n++
			i++
			continue
		}
		r = foldRune(r)
		if n+utf8.RuneLen(r) > len(dst) {
			return n, false
		}
		n += utf8.EncodeRune(dst[n:], r)
		i += size
	}
	return n, true
}

// foldString returns s case-folded as foldInto does, at any length.
func foldString(s string) string {
	buf := make([]byte, utf8.UTFMax*len(s))
	n, _ := foldInto(buf, s) // a rune folds to at most UTFMax bytes, so it always fits
	return string(buf[:n])
}

// foldEqualRune reports whether a and b are equal under simple case folding, as strings.EqualFold
// compares runes.
func foldEqualRune(a, b rune) bool {
	return a == b || foldRune(a) == foldRune(b)
}

// hasPrefixFold reports whether s begins with prefix under simple case folding, comparing rune by
// rune as strings.EqualFold does (so the prefix of s may differ in length from prefix).
func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		var a, b rune
		var na, nb int
		if c := s[0]; c < utf8.RuneSelf {
			a, na = rune(c), 1
		} else {
			a, na = utf8.DecodeRuneInString(s)
		}
		if c := prefix[0]; c < utf8.RuneSelf {
			b, nb = rune(c), 1
		} else {
			b, nb = utf8.DecodeRuneInString(prefix)
		}
		if !foldEqualRune(a, b) {
			return false
		}
		s, prefix = s[na:], prefix[nb:]
	}
	return true
}

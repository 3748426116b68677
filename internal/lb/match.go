package lb

import (
	"net"
	"strings"
	"unicode/utf8"
)

// wildcardMatch reports whether s matches pattern, where * matches any run of characters
// (including none and including "/") and ? matches exactly one character. Everything else matches
// itself, byte for byte. It runs in O(len(pattern)·len(s)) time at worst and never allocates, so a
// hostile path cannot make it blow up.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	// Where to resume after the last *: the pattern index after it and the string index it
	// currently stands for the end of.
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p+1, i
				p++
				continue
			case '?':
				_, size := utf8.DecodeRuneInString(s[i:])
				p++
				i += size
				continue
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last * swallow one more character and retry from there.
		_, size := utf8.DecodeRuneInString(s[starI:])
		starI += size
		p, i = starP, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func anyMatch(patterns []string, s string) bool {
	for _, p := range patterns {
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// hostWithoutPort strips a port from a Host header value; "[::1]:80" becomes "::1".
func hostWithoutPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

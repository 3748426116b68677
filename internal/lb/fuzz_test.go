package lb

import (
	"testing"
	"unicode/utf8"
)

// wildcardReference is an exhaustive, memoized matcher with the same semantics as wildcardMatch
// (* any run of characters, ? one character, literal bytes otherwise), written differently so the
// two can check each other.
func wildcardReference(pattern, s string) bool {
	memo := map[[2]int]bool{}
	var match func(p, i int) bool
	match = func(p, i int) bool {
		key := [2]int{p, i}
		if v, ok := memo[key]; ok {
			return v
		}
		var ok bool
		switch {
		case p == len(pattern):
			ok = i == len(s)
		case pattern[p] == '*':
			// Skip the star, or let it take one more character.
			ok = match(p+1, i)
			if !ok && i < len(s) {
				_, size := utf8.DecodeRuneInString(s[i:])
				ok = match(p, i+size)
			}
		case i == len(s):
			ok = false
		case pattern[p] == '?':
			_, size := utf8.DecodeRuneInString(s[i:])
			ok = match(p+1, i+size)
		default:
			ok = pattern[p] == s[i] && match(p+1, i+1)
		}
		memo[key] = ok
		return ok
	}
	return match(0, 0)
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"/items", "/items", true},
		{"/items", "/items/", false},
		{"/items/*", "/items/", true},
		{"/items/*", "/items/1/2", true},
		{"/items/*", "/items", false},
		{"*", "", true},
		{"*", "/anything", true},
		{"", "", true},
		{"", "x", false},
		{"?", "", false},
		{"?", "é", true}, // one character, two bytes
		{"/?/x", "/é/x", true},
		{"/a?c", "/abc", true},
		{"/a?c", "/ac", false},
		{"/a*b*c", "/aXXbYYc", true},
		{"/a*b*c", "/aXXbYY", false},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "example.com", false},
		{"/Items", "/items", false},
		{"**a**", "bab", true},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if got := wildcardReference(tt.pattern, tt.s); got != tt.want {
			t.Errorf("reference(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// FuzzWildcardMatch checks the matcher against the exhaustive reference on arbitrary patterns and
// request paths or hosts (which reach it straight from the network).
func FuzzWildcardMatch(f *testing.F) {
	f.Add("/items/*", "/items/42")
	f.Add("*.example.com", "API.example.com")
	f.Add("/a?c*", "/a\xffc")
	f.Add("*?*", "é")
	f.Add("a*b?c**", "aXbYcZZ")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return // keep the reference's memo small
		}
		got, want := wildcardMatch(pattern, s), wildcardReference(pattern, s)
		if got != want {
			t.Fatalf("wildcardMatch(%q, %q) = %v, reference says %v", pattern, s, got, want)
		}
	})
}

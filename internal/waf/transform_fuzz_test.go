package waf

import (
	"slices"
	"strings"
	"testing"
)

// FuzzTransforms runs every text transformation, alone and chained, on arbitrary input. None may
// panic, decoders never grow their input, and the cleaning ones leave nothing of what they remove
// and are idempotent, so that an attacker cannot get a value past a rule by encoding it once more
// than the rule decodes (the chain is the rule's to choose, not the input's).
func FuzzTransforms(f *testing.F) {
	for _, s := range []string{
		"", "%27%20OR%201=1--", "%u0027%u003cscript%u003e", "%zz%2", "&lt;script&gt;&#x61;&#97;&amp;",
		"PHNjcmlwdD4=", "3c736372697074", "c^a\"t /e't'c/pa\\ss", "/a/./b/../../../etc//passwd",
		"a\x00b\x00", "/* x */SEL/**/ECT", "  \t\n a  \r\v\f b ", "ÀÉÎ İ K", "\xff\xfe%ff",
	} {
		f.Add(s, uint16(0))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range transforms {
			if !yield(n) {
				return
			}
		}
	})
	f.Fuzz(func(t *testing.T, s string, pick uint16) {
		for _, n := range names {
			out := transforms[n](s)
			switch n {
			case "URL_DECODE", "URL_DECODE_UNI", "BASE64_DECODE", "HEX_DECODE", "REMOVE_NULLS", "COMPRESS_WHITE_SPACE":
				if len(out) > len(s) {
					t.Fatalf("%s grew %q into %q", n, s, out)
				}
			}
			switch n {
			case "REMOVE_NULLS":
				if strings.Contains(out, "\x00") {
					t.Fatalf("REMOVE_NULLS(%q) = %q", s, out)
				}
			case "COMPRESS_WHITE_SPACE":
				if strings.Contains(out, "  ") || strings.ContainsAny(out, "\t\n\v\f\r") {
					t.Fatalf("COMPRESS_WHITE_SPACE(%q) = %q", s, out)
				}
			case "LOWERCASE":
				if strings.ContainsAny(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
					t.Fatalf("LOWERCASE(%q) = %q", s, out)
				}
			}
			switch n {
			case "LOWERCASE", "REMOVE_NULLS", "COMPRESS_WHITE_SPACE":
				if again := transforms[n](out); again != out {
					t.Fatalf("%s is not idempotent on %q: %q then %q", n, s, out, again)
				}
			}
		}
		// A chain of up to four transformations chosen by pick compiles and runs.
		var chain []string
		for p := pick; len(chain) < 4 && p > 0; p /= uint16(len(names)) {
			chain = append(chain, names[int(p)%len(names)])
		}
		tr, err := compileTransforms(chain, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		if tr != nil {
			_ = tr(s)
		}
	})
}

package waf

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"path"
	"strings"
	"unicode/utf8"
)

// transform is a compiled chain of text transformations, applied in order before a statement
// compares a value. A nil transform is the identity.
type transform func(string) string

// transforms maps the AWS WAF names to their implementations. Each returns its input unchanged
// (no allocation) when there is nothing to transform.
var transforms = map[string]func(string) string{
	"NONE":                 func(s string) string { return s },
	"LOWERCASE":            lowercase,
	"URL_DECODE":           func(s string) string { return urlDecode(s, false) },
	"URL_DECODE_UNI":       func(s string) string { return urlDecode(s, true) },
	"HTML_ENTITY_DECODE":   html.UnescapeString,
	"COMPRESS_WHITE_SPACE": compressWhiteSpace,
	"BASE64_DECODE":        base64Decode,
	"HEX_DECODE":           hexDecode,
	"CMD_LINE":             cmdLine,
	"NORMALIZE_PATH":       normalizePath,
	"REMOVE_NULLS":         func(s string) string { return strings.ReplaceAll(s, "\x00", "") },
	"REPLACE_COMMENTS":     replaceComments,
}

// compileTransforms returns the chain of names, or nil when there is nothing to do.
func compileTransforms(names []string, at string) (transform, error) {
	var chain []func(string) string
	for i, n := range names {
		f, ok := transforms[n]
		if !ok {
			return nil, fmt.Errorf("%s.text_transformations[%d]: unknown text transformation %q", at, i, n)
		}
		if n != "NONE" {
			chain = append(chain, f)
		}
	}
	switch len(chain) {
	case 0:
		return nil, nil
	case 1:
		return chain[0], nil
	}
	return func(s string) string {
		for _, f := range chain {
			s = f(s)
		}
		return s
	}, nil
}

func lowercase(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(s)
		}
	}
	return s
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// urlDecode decodes %XX and '+' leniently, as a WAF must: an invalid escape is kept as written
// rather than making the value unmatchable. With uni, %uXXXX is decoded too (as UTF-8).
func urlDecode(s string, uni bool) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && uni && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U'):
			var r rune
			ok := true
			for _, h := range []byte(s[i+2 : i+6]) {
				v, good := unhex(h)
				ok = ok && good
				r = r<<4 | rune(v)
			}
			if !ok {
				b = append(b, c)
				continue
			}
			// Full-width ASCII (U+FF01-U+FF5E) maps to ASCII, as IIS does: %uFF1C is '<'.
			if r >= 0xFF01 && r <= 0xFF5E {
				r -= 0xFEE0
			}
			b = utf8.AppendRune(b, r)
			i += 5
		case c == '%' && i+2 < len(s):
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				b = append(b, c)
				continue
			}
			b = append(b, hi<<4|lo)
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// isSpace is the white space of COMPRESS_WHITE_SPACE and CMD_LINE: tab, LF, VT, FF, CR and space.
// (NBSP is left alone: byte 0xA0 is also part of multi-byte UTF-8 characters.)
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// compressWhiteSpace turns every run of white space into one space.
func compressWhiteSpace(s string) string {
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			if !space {
				b = append(b, ' ')
			}
			space = true
			continue
		}
		space = false
		b = append(b, s[i])
	}
	return string(b)
}

// base64Decode decodes standard or URL-safe base64, padded or not. A value that is not base64
// is kept as it is.
func base64Decode(s string) string {
	t := strings.TrimRight(s, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(t); err == nil {
			return string(d)
		}
	}
	return s
}

// hexDecode decodes a string of hex digit pairs; anything else is kept as it is.
func hexDecode(s string) string {
	if d, err := hex.DecodeString(s); err == nil {
		return string(d)
	}
	return s
}

// cmdLine is ModSecurity's cmdLine: it deletes \ " ' ^, deletes spaces before / and (, turns
// , and ; into spaces, compresses white space and lowercases, so that c^a"t /e't'c/pa\ss and
// cat /etc/passwd look alike.
func cmdLine(s string) string {
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"' || c == '\'' || c == '^':
			continue
		case isSpace(c) || c == ',' || c == ';':
			if !space {
				b = append(b, ' ')
				space = true
			}
			continue
		case c == '/' || c == '(':
			if space {
				b = b[:len(b)-1]
			}
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		space = false
		b = append(b, c)
	}
	return string(b)
}

// normalizePath removes repeated slashes and resolves . and .. segments; a trailing slash is
// kept, and a relative path stays relative.
func normalizePath(s string) string {
	if s == "" {
		return s
	}
	p := path.Clean(s)
	if strings.HasSuffix(s, "/") && p != "/" {
		p += "/"
	}
	return p
}

// replaceComments replaces each C-style comment (/* … */, or an unterminated /* … at the end)
// with a single space.
func replaceComments(s string) string {
	if !strings.Contains(s, "/*") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "/*")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		j := strings.Index(s[i+2:], "*/")
		if j < 0 {
			break
		}
		s = s[i+2+j+2:]
	}
	return b.String()
}

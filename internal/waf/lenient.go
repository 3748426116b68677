package waf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
)

// parseArgsLenient splits a query string or an application/x-www-form-urlencoded body into
// arguments the way the most lenient backend would, and never drops one. url.ParseQuery drops
// a pair it cannot decode (a bad escape such as %zz) or that holds a ";", yet PHP and others
// still hand the backend that pair, so a WAF that parsed strictly would never look at it.
//
//   - Pairs are separated by "&". A pair that holds ";" is also split at ";" (Rack, older
//     Python and Java servlets treat ";" as a separator); both readings are kept, so
//     "a=1;id=X" gives a = "1;id=X" and a = "1", id = "X".
//   - Names and values are decoded as the URL_DECODE transformation does (urlDecode): valid %XX
//     escapes and "+" are decoded, an invalid escape is kept as written (as PHP's urldecode does).
//   - A pair without "=" is a name with an empty value; empty pairs are skipped.
func parseArgsLenient(s string) url.Values {
	v := url.Values{}
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		addPair(v, pair)
		if strings.Contains(pair, ";") {
			for _, sub := range strings.Split(pair, ";") {
				if sub != "" {
					addPair(v, sub)
				}
			}
		}
	}
	return v
}

func addPair(v url.Values, pair string) {
	k, val, _ := strings.Cut(pair, "=")
	k = urlDecode(k, false)
	v[k] = append(v[k], urlDecode(val, false))
}

// jsonWalk visits every key and scalar value of the JSON document data, in document order,
// through json.Decoder.Token, so that a key given twice in one object is seen twice (decoding
// into a map keeps only the last one, and backends differ in which one they use). Numbers are
// as written; true, false and null are their literals. value also gets the key of the innermost
// object member the value is in ("" at the top level), which names it in the WAF log and lets
// the log redact a "password" member's value. It reports false, with what it visited
// so far, when data is not exactly one JSON value. The work is bounded by len(data), which the
// caller bounds by the body inspection limit.
func jsonWalk(data []byte, key func(k string), value func(k, v string)) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// inObject[i] tells whether the i-th open container is an object; wantKey whether the next
	// string in the innermost object is a key.
	var inObject []bool
	var keys []string // keys[i]: the last key read in the i-th open container ("" in an array)
	wantKey, done := false, false
	afterValue := func() { wantKey = len(inObject) > 0 && inObject[len(inObject)-1] }
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return done
		}
		if err != nil || done {
			return false // malformed, or data after the first value
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				k := ""
				if n := len(keys); n > 0 {
					k = keys[n-1]
				}
				inObject, keys = append(inObject, t == '{'), append(keys, k)
				wantKey = t == '{'
				continue
			default:
				inObject, keys = inObject[:len(inObject)-1], keys[:len(keys)-1]
			}
		case string:
			if wantKey {
				key(t)
				keys[len(keys)-1] = t
				wantKey = false
				continue
			}
			value(cur(keys), t)
		case json.Number:
			value(cur(keys), t.String())
		case bool:
			if t {
				value(cur(keys), "true")
			} else {
				value(cur(keys), "false")
			}
		case nil:
			value(cur(keys), "null")
		}
		afterValue()
		done = len(inObject) == 0
	}
}

func cur(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[len(keys)-1]
}

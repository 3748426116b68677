package waf

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
)

// TestFieldsSeeWhatLenientBackendsSee: payloads hidden in pairs url.ParseQuery drops (a bad
// escape, a ";"), or in the first copy of a duplicated JSON key, are still inspected.
func TestFieldsSeeWhatLenientBackendsSee(t *testing.T) {
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	tests := []struct {
		name      string
		statement string
		req       req
		want      bool
	}{
		{"sqli single arg with bad escape", `{sqli_match: {field_to_match: {single_query_argument: id}}}`,
			req{target: "/?id=1%27%20OR%20%271%27%3D%271%zz"}, true},
		{"sqli all args with bad escape", `{sqli_match: {field_to_match: {all_query_arguments: {match_scope: VALUE}}}}`,
			req{target: "/?id=1%27%20OR%20%271%27%3D%271%zz"}, true},
		{"sqli after semicolon", `{sqli_match: {field_to_match: {single_query_argument: id}}}`,
			req{target: "/?a=1;id=1%27%20OR%20%271%27%3D%271"}, true},
		{"semicolon pair read whole too", `{byte_match: {field_to_match: {single_query_argument: a}, positional_constraint: EXACTLY, search_string: "1;id=2"}}`,
			req{target: "/?a=1;id=2"}, true},
		{"key with bad escape", `{byte_match: {field_to_match: {all_query_arguments: {match_scope: KEY}}, positional_constraint: EXACTLY, search_string: "debug%"}}`,
			req{target: "/?debug%=1"}, true},
		{"xss form field with bad escape", `{xss_match: {field_to_match: {form_field: c}}}`,
			req{method: "POST", body: "c=%3Cscript%3Ealert(1)%3C/script%3E%zz", headers: form}, true},
		{"sqli form field after semicolon", `{sqli_match: {field_to_match: {form_field: id}}}`,
			req{method: "POST", body: "a=1;id=1' OR '1'='1", headers: form}, true},
		{"xss json duplicate key, first copy", `{xss_match: {field_to_match: {json_body: {match_scope: VALUE}}}}`,
			req{method: "POST", body: `{"q":"<script>alert(1)</script>","q":"x"}`}, true},
		{"json duplicate key seen twice", `{byte_match: {field_to_match: {json_body: {match_scope: KEY}}, positional_constraint: EXACTLY, search_string: admin}}`,
			req{method: "POST", body: `{"admin":true,"a":[{"admin":1}],"admin":false}`}, true},
		{"json trailing data is text", `{byte_match: {field_to_match: {json_body: {match_scope: VALUE}}, positional_constraint: CONTAINS, search_string: "<script"}}`,
			req{method: "POST", body: `{"a":1} "<script>"`}, true},
		{"benign args", `{sqli_match: {field_to_match: {all_query_arguments: {match_scope: ALL}}}}`,
			req{target: "/?a=1;b=2&c=%zz&d"}, false},
	}
	for _, tt := range tests {
		a := aclFromYAML(t, ruleYAML(tt.statement), nil)
		if got := a.Evaluate(tt.req.build()).Action == "block"; got != tt.want {
			t.Errorf("%s: matched = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseArgsLenient(t *testing.T) {
	got := parseArgsLenient("a=1%zz&b=%41+b&&c&;d=4;e=5&f=%4")
	want := url.Values{
		"a": {"1%zz"}, "b": {"A b"}, "c": {""},
		";d": {"4;e=5"}, "d": {"4"}, "e": {"5"}, "f": {"%4"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%q = %q, want %q (all: %q)", k, got[k], v, got)
		}
	}
}

func TestJSONWalk(t *testing.T) {
	for _, tt := range []struct {
		in           string
		ok           bool
		keys, values []string
	}{
		{`{"q":"a","q":"b","n":{"k":[1,true,null,"s"]},"e":{}}`, true, []string{"q", "q", "n", "k", "e"}, []string{"a", "b", "1", "true", "null", "s"}},
		{`["k",{"k":"v"}]`, true, []string{"k"}, []string{"k", "v"}},
		{`"s"`, true, nil, []string{"s"}},
		{`1.50e3`, true, nil, []string{"1.50e3"}},
		{`{"a":1} {"b":2}`, false, nil, nil},
		{`{"a" 1}`, false, nil, nil},
		{`{"a":1`, false, nil, nil},
		{``, false, nil, nil},
	} {
		var keys, values []string
		ok := jsonWalk([]byte(tt.in), func(k string) { keys = append(keys, k) }, func(_, v string) { values = append(values, v) })
		if ok != tt.ok {
			t.Errorf("%s: ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if ok && (!slices.Equal(keys, tt.keys) || !slices.Equal(values, tt.values)) {
			t.Errorf("%s: keys %q values %q, want %q %q", tt.in, keys, values, tt.keys, tt.values)
		}
	}
}

// FuzzParseArgsLenient: the lenient parser never panics and never loses a pair url.ParseQuery
// keeps.
func FuzzParseArgsLenient(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "a=1;b=2", "a=%zz", "a=%4", "=&=;", "a+b=c+d", "%41=%42"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseArgsLenient(s)
		strict, _ := url.ParseQuery(s)
		for k, vs := range strict {
			for _, v := range vs {
				if !slices.Contains(got[k], v) {
					t.Fatalf("%q: pair %q=%q of url.ParseQuery is missing from %q", s, k, v, got)
				}
			}
		}
	})
}

// FuzzJSONWalk: jsonWalk never panics, accepts exactly one valid JSON value, and sees every
// string that decoding the document sees.
func FuzzJSONWalk(f *testing.F) {
	for _, s := range []string{`{"a":"b","a":"c"}`, `[1,2,{"x":null}]`, `"s"`, `{"a":}`, `{} {}`, `[`, `{"\u0000":"\ud800"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var seen []string
		ok := jsonWalk([]byte(s), func(k string) { seen = append(seen, k) }, func(_, v string) { seen = append(seen, v) })
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		var v any
		valid := json.Valid([]byte(s))
		if ok != valid {
			t.Fatalf("%q: jsonWalk ok = %v, json.Valid = %v", s, ok, valid)
		}
		if !valid || dec.Decode(&v) != nil {
			return
		}
		var check func(v any)
		check = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, e := range x {
					if !slices.Contains(seen, k) {
						t.Fatalf("%q: key %q not visited", s, k)
					}
					check(e)
				}
			case []any:
				for _, e := range x {
					check(e)
				}
			case string:
				if !slices.Contains(seen, x) {
					t.Fatalf("%q: value %q not visited", s, x)
				}
			}
		}
		check(v)
	})
}

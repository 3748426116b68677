package waf

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// FuzzEvaluate feeds arbitrary header values to every kind of statement. Evaluation must never
// panic, origin_verify must match only a single copy of an active secret, and byte_match must
// agree with the plain strings functions.
func FuzzEvaluate(f *testing.F) {
	f.Add("", "", "", false)
	f.Add(currentSecret, "", "secret", false)
	f.Add(currentSecret, currentSecret, "", true)
	f.Add(previousSecret, "x", "-", true)
	f.Add(retiredSecret, "", "retired", false)
	f.Add(currentSecret[:len(currentSecret)-1], "\x00\xff", "\xff", true)
	keyrings := testKeyrings(f)
	constraints := []string{config.MatchExactly, config.MatchStartsWith, config.MatchEndsWith, config.MatchContains}
	reference := map[string]func(v, s string) bool{
		config.MatchExactly:    func(v, s string) bool { return v == s },
		config.MatchStartsWith: strings.HasPrefix,
		config.MatchEndsWith:   strings.HasSuffix,
		config.MatchContains:   strings.Contains,
	}

	f.Fuzz(func(t *testing.T, value, second, search string, repeat bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		values := []string{value}
		if repeat {
			values = append(values, second)
		}
		r.Header["X-Origin-Verify"] = values
		r.Header["X-Data"] = values

		secretOK := len(values) == 1 && (value == currentSecret || value == previousSecret)
		for _, c := range constraints {
			a, err := New(config.WebACL{
				Name: "fuzz", DefaultAction: config.ActionBlock,
				Rules: []config.WAFRule{
					{Name: "count-data", Priority: 0, Action: config.ActionCount, Statement: bm("X-Data", c, search)},
					{Name: "gate", Priority: 1, Action: config.ActionBlock, Statement: config.Statement{Not: ov("X-Origin-Verify")}},
					{Name: "both", Priority: 2, Action: config.ActionAllow, Statement: config.Statement{And: []config.Statement{
						*ov("X-Origin-Verify"),
						{Or: []config.Statement{bm("X-Data", c, search), {Not: &config.Statement{ByteMatch: &config.ByteMatchStatement{Header: "X-Data", PositionalConstraint: c, SearchString: search}}}}},
					}}},
				},
			}, keyrings, nil)
			if err != nil {
				t.Fatal(err)
			}
			d := a.Evaluate(r)
			wantCount := reference[c](strings.Join(values, ", "), search)
			if got := len(d.Counted) == 1; got != wantCount {
				t.Fatalf("%s %q on %q: counted = %v, want %v", c, search, values, got, wantCount)
			}
			if secretOK {
				if d.Action != config.ActionAllow || d.Rule != "both" {
					t.Fatalf("valid secret: %+v, want allow by both", d)
				}
			} else if d.Action != config.ActionBlock || d.Rule != "gate" {
				t.Fatalf("values %q: %+v, want block by gate", values, d)
			}
		}
	})
}

// FuzzStatements sends arbitrary query, header and body values through an ACL that uses every
// field and statement kind. Evaluation must not panic or fail closed, and the body must reach
// the next reader unchanged, whatever its size relative to the inspection limit.
func FuzzStatements(f *testing.F) {
	f.Add("id=1%27%20OR%201=1", "<script>alert(1)</script>", `{"a":["x",1,null]}`)
	f.Add("%u003c%zz", "\x00\xff", "a=1&b=%ZZ")
	f.Add("", "", strings.Repeat("A", 300))
	var cfg config.WebACL
	cfg.Name, cfg.DefaultAction, cfg.BodyInspectionLimit = "fuzz", "allow", 128
	all := config.TextTransformationNames()
	fields := []config.FieldToMatch{
		{SingleHeader: "X-Data"}, {AllHeaders: &config.MatchScope{}}, {Cookie: "c"}, {AllCookies: &config.MatchScope{MatchScope: "KEY"}},
		{URIPath: &config.Whole{}}, {QueryString: &config.Whole{}}, {SingleQueryArgument: "id"}, {AllQueryArguments: &config.MatchScope{}},
		{Method: &config.Whole{}}, {Body: &config.Whole{}}, {JSONBody: &config.MatchScope{}}, {FormField: "a"},
	}
	for i, fld := range fields {
		cfg.Rules = append(cfg.Rules,
			config.WAFRule{Name: "b" + strconv.Itoa(i), Priority: 4 * i, Action: "count", Labels: []string{"l:" + strconv.Itoa(i)}, Statement: config.Statement{ByteMatch: &config.ByteMatchStatement{FieldToMatch: &fld, PositionalConstraint: config.MatchContainsWord, SearchString: "x", TextTransformations: all}}},
			config.WAFRule{Name: "s" + strconv.Itoa(i), Priority: 4*i + 1, Action: "count", Statement: config.Statement{SQLiMatch: &config.InjectionMatchStatement{FieldToMatch: fld, TextTransformations: []string{"URL_DECODE_UNI"}}}},
			config.WAFRule{Name: "x" + strconv.Itoa(i), Priority: 4*i + 2, Action: "count", Statement: config.Statement{XSSMatch: &config.InjectionMatchStatement{FieldToMatch: fld, TextTransformations: []string{"HTML_ENTITY_DECODE"}}}},
			config.WAFRule{Name: "z" + strconv.Itoa(i), Priority: 4*i + 3, Action: "count", Statement: config.Statement{Or: []config.Statement{
				{SizeConstraint: &config.SizeConstraintStatement{FieldToMatch: fld, ComparisonOperator: "GT", Size: 3}},
				{RegexMatch: &config.RegexMatchStatement{FieldToMatch: fld, Regex: `(?i)select|<`}},
			}}},
		)
	}
	cfg.Rules = append(cfg.Rules, config.WAFRule{Name: "ip", Priority: 1000, Action: "count", Statement: config.Statement{And: []config.Statement{
		{IPSet: &config.IPSetStatement{Addresses: []string{"0.0.0.0/0", "::/0"}, ForwardedIP: &config.ForwardedIP{Header: "X-Data", Position: "ANY"}}},
		{LabelMatch: &config.LabelMatchStatement{Scope: "NAMESPACE", Key: "l:"}},
	}}})
	a, err := New(cfg, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query, header, body string) {
		r := httptest.NewRequest(http.MethodPost, "/p", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header["X-Data"] = []string{header}
		r.Header["Cookie"] = []string{"c=" + header}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		d := a.Evaluate(r)
		if d.Action != config.ActionAllow || d.Status != 0 {
			t.Fatalf("decision %+v, want allow", d)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || string(got) != body {
			t.Fatalf("body after evaluation = %q (%v), want %q", got, err, body)
		}
	})
}

package waf

import (
	"net/http"
	"net/http/httptest"
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

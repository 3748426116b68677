package waf

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/internal/config"
)

// aclFromYAML builds an ACL from the YAML of one web_acls entry, as a user writes it.
func aclFromYAML(t testing.TB, src string, logger *slog.Logger) *WebACL {
	t.Helper()
	var cfg config.WebACL
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	if cfg.DefaultAction == "" {
		cfg.DefaultAction = config.ActionAllow
	}
	a, err := New(cfg, testKeyrings(t), logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// ruleYAML is an ACL with one block rule of the given statement.
func ruleYAML(statement string) string {
	return "name: t\nrules:\n  - name: r\n    priority: 1\n    action: block\n    statement: " + statement + "\n"
}

type req struct {
	method, target, body string
	headers              []string
	remote               string
}

func (q req) build() *http.Request {
	method := q.method
	if method == "" {
		method = http.MethodGet
	}
	target := q.target
	if target == "" {
		target = "/"
	}
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(q.headers); i += 2 {
		if strings.EqualFold(q.headers[i], "Host") {
			r.Host = q.headers[i+1]
			continue
		}
		r.Header.Add(q.headers[i], q.headers[i+1])
	}
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	return r
}

func TestStatements(t *testing.T) {
	tests := []struct {
		name      string
		statement string
		req       req
		want      bool
	}{
		// byte_match: shorthand and field_to_match, every constraint, transformations.
		{"shorthand header", `{byte_match: {header: User-Agent, positional_constraint: CONTAINS, search_string: bot}}`, req{headers: []string{"User-Agent", "a bot"}}, true},
		{"header case-sensitive", `{byte_match: {field_to_match: {single_header: user-agent}, positional_constraint: CONTAINS, search_string: bot}}`, req{headers: []string{"User-Agent", "a BOT"}}, false},
		{"header lowercase", `{byte_match: {field_to_match: {single_header: user-agent}, positional_constraint: CONTAINS, search_string: bot, text_transformations: [LOWERCASE]}}`, req{headers: []string{"User-Agent", "a BOT"}}, true},
		{"host header", `{byte_match: {field_to_match: {single_header: Host}, positional_constraint: EXACTLY, search_string: evil.example}}`, req{headers: []string{"Host", "evil.example"}}, true},
		{"contains word", `{byte_match: {field_to_match: {query_string: {}}, positional_constraint: CONTAINS_WORD, search_string: admin}}`, req{target: "/?role=admin&x=1"}, true},
		{"contains word inside word", `{byte_match: {field_to_match: {query_string: {}}, positional_constraint: CONTAINS_WORD, search_string: admin}}`, req{target: "/?role=administrator"}, false},
		{"contains word second occurrence", `{byte_match: {field_to_match: {query_string: {}}, positional_constraint: CONTAINS_WORD, search_string: admin}}`, req{target: "/?a=admins&b=admin"}, true},
		{"starts with path", `{byte_match: {field_to_match: {uri_path: {}}, positional_constraint: STARTS_WITH, search_string: /admin}}`, req{target: "/admin/x"}, true},
		{"ends with path", `{byte_match: {field_to_match: {uri_path: {}}, positional_constraint: ENDS_WITH, search_string: .php}}`, req{target: "/x.php?a=1"}, true},
		{"raw path is not decoded", `{byte_match: {field_to_match: {uri_path: {}}, positional_constraint: CONTAINS, search_string: "../"}}`, req{target: "/a/%2e%2e/b"}, false},
		{"url decode then normalize", `{byte_match: {field_to_match: {uri_path: {}}, positional_constraint: EXACTLY, search_string: /etc/passwd, text_transformations: [URL_DECODE, NORMALIZE_PATH]}}`, req{target: "/a/%2e%2e//etc/./passwd"}, true},
		{"method", `{byte_match: {field_to_match: {method: {}}, positional_constraint: EXACTLY, search_string: DELETE}}`, req{method: "DELETE"}, true},
		{"single query argument any case", `{byte_match: {field_to_match: {single_query_argument: ID}, positional_constraint: EXACTLY, search_string: "7"}}`, req{target: "/?x=1&id=7"}, true},
		{"all query arguments key", `{byte_match: {field_to_match: {all_query_arguments: {match_scope: KEY}}, positional_constraint: EXACTLY, search_string: debug}}`, req{target: "/?debug=1"}, true},
		{"all query arguments value only", `{byte_match: {field_to_match: {all_query_arguments: {match_scope: VALUE}}, positional_constraint: EXACTLY, search_string: debug}}`, req{target: "/?debug=1"}, false},
		{"cookie", `{byte_match: {field_to_match: {cookie: role}, positional_constraint: EXACTLY, search_string: admin}}`, req{headers: []string{"Cookie", "a=1; role=admin"}}, true},
		{"all cookies key", `{byte_match: {field_to_match: {all_cookies: {match_scope: KEY}}, positional_constraint: EXACTLY, search_string: role}}`, req{headers: []string{"Cookie", "a=1; role=admin"}}, true},
		{"all headers value", `{byte_match: {field_to_match: {all_headers: {match_scope: VALUE}}, positional_constraint: CONTAINS, search_string: "${jndi:"}}`, req{headers: []string{"X-Anything", "${jndi:ldap://x}"}}, true},
		{"body", `{byte_match: {field_to_match: {body: {}}, positional_constraint: CONTAINS, search_string: secret}}`, req{method: "POST", body: "a=1&b=secret"}, true},
		{"form field", `{byte_match: {field_to_match: {form_field: b}, positional_constraint: EXACTLY, search_string: "x y"}}`, req{method: "POST", body: "a=1&b=x+y", headers: []string{"Content-Type", "application/x-www-form-urlencoded"}}, true},
		{"form field needs form type", `{byte_match: {field_to_match: {form_field: b}, positional_constraint: EXACTLY, search_string: "x y"}}`, req{method: "POST", body: "a=1&b=x+y", headers: []string{"Content-Type", "text/plain"}}, false},
		{"json value", `{byte_match: {field_to_match: {json_body: {match_scope: VALUE}}, positional_constraint: EXACTLY, search_string: root}}`, req{method: "POST", body: `{"user":{"name":["x","root"]}}`}, true},
		{"json key not value", `{byte_match: {field_to_match: {json_body: {match_scope: VALUE}}, positional_constraint: EXACTLY, search_string: user}}`, req{method: "POST", body: `{"user":1}`}, false},
		{"json key", `{byte_match: {field_to_match: {json_body: {match_scope: KEY}}, positional_constraint: EXACTLY, search_string: __proto__}}`, req{method: "POST", body: `{"a":{"__proto__":{}}}`}, true},
		{"invalid json as text", `{byte_match: {field_to_match: {json_body: {}}, positional_constraint: CONTAINS, search_string: "<script"}}`, req{method: "POST", body: `{"a": "<script>"`}, true},

		// regex_match
		{"regex", `{regex_match: {field_to_match: {single_header: User-Agent}, regex: "^(curl|wget)/[0-9]"}}`, req{headers: []string{"User-Agent", "curl/8.1"}}, true},
		{"regex no match", `{regex_match: {field_to_match: {single_header: User-Agent}, regex: "^(curl|wget)/[0-9]"}}`, req{headers: []string{"User-Agent", "Mozilla curl/8"}}, false},
		{"regex after base64", `{regex_match: {field_to_match: {single_query_argument: q}, regex: "<script", text_transformations: [BASE64_DECODE]}}`, req{target: "/?q=PHNjcmlwdD4"}, true},

		// ip_set
		{"ip source v4", `{ip_set: {addresses: [10.0.0.0/8]}}`, req{remote: "10.1.2.3:5555"}, true},
		{"ip source outside", `{ip_set: {addresses: [10.0.0.0/8]}}`, req{remote: "11.1.2.3:5555"}, false},
		{"ip source v6", `{ip_set: {addresses: ["2001:db8::/32"]}}`, req{remote: "[2001:db8::1]:443"}, true},
		{"ip single address", `{ip_set: {addresses: [192.0.2.7]}}`, req{remote: "192.0.2.7:1"}, true},
		{"ip mapped v4", `{ip_set: {addresses: [192.0.2.0/24]}}`, req{remote: "[::ffff:192.0.2.9]:1"}, true},
		{"xff first", `{ip_set: {addresses: [203.0.113.0/24], forwarded_ip: {header: X-Forwarded-For, position: FIRST}}}`, req{headers: []string{"X-Forwarded-For", "203.0.113.5, 10.0.0.1"}}, true},
		{"xff first not last", `{ip_set: {addresses: [10.0.0.0/8], forwarded_ip: {header: X-Forwarded-For, position: FIRST}}}`, req{headers: []string{"X-Forwarded-For", "203.0.113.5, 10.0.0.1"}}, false},
		{"xff last", `{ip_set: {addresses: [10.0.0.0/8], forwarded_ip: {header: X-Forwarded-For, position: LAST}}}`, req{headers: []string{"X-Forwarded-For", "203.0.113.5, 10.0.0.1"}}, true},
		{"xff any across lines", `{ip_set: {addresses: [198.51.100.0/24], forwarded_ip: {header: X-Forwarded-For, position: ANY}}}`, req{headers: []string{"X-Forwarded-For", "203.0.113.5", "X-Forwarded-For", "198.51.100.1"}}, true},
		{"xff absent no match", `{ip_set: {addresses: [0.0.0.0/0], forwarded_ip: {header: X-Forwarded-For}}}`, req{}, false},
		{"xff absent fallback match", `{ip_set: {addresses: [10.0.0.0/8], forwarded_ip: {header: X-Forwarded-For, fallback_behavior: MATCH}}}`, req{}, true},
		{"xff invalid fallback", `{ip_set: {addresses: [0.0.0.0/0], forwarded_ip: {header: X-Forwarded-For, position: ANY, fallback_behavior: NO_MATCH}}}`, req{headers: []string{"X-Forwarded-For", "1.2.3.4, junk"}}, false},

		// size_constraint
		{"size of query", `{size_constraint: {field_to_match: {query_string: {}}, comparison_operator: GT, size: 5}}`, req{target: "/?abcdef"}, true},
		{"size of query le", `{size_constraint: {field_to_match: {query_string: {}}, comparison_operator: GT, size: 6}}`, req{target: "/?abcdef"}, false},
		{"size of body by content length", `{size_constraint: {field_to_match: {body: {}}, comparison_operator: GE, size: 100000}}`, req{method: "POST", body: strings.Repeat("x", 100000)}, true},
		{"size eq header", `{size_constraint: {field_to_match: {single_header: X-T}, comparison_operator: EQ, size: 3}}`, req{headers: []string{"X-T", "abc"}}, true},
		{"size after decode", `{size_constraint: {field_to_match: {single_header: X-T}, comparison_operator: LT, size: 3, text_transformations: [URL_DECODE]}}`, req{headers: []string{"X-T", "%41%42"}}, true},

		// sqli_match / xss_match
		{"sqli query", `{sqli_match: {field_to_match: {single_query_argument: id}, text_transformations: [URL_DECODE]}}`, req{target: "/?id=1%27%20OR%20%271%27%3D%271"}, true},
		{"sqli benign", `{sqli_match: {field_to_match: {single_query_argument: id}}}`, req{target: "/?id=42"}, false},
		{"sqli json body", `{sqli_match: {field_to_match: {json_body: {match_scope: VALUE}}}}`, req{method: "POST", body: `{"q":"1 UNION SELECT password FROM users--"}`}, true},
		{"xss body", `{xss_match: {field_to_match: {body: {}}, text_transformations: [HTML_ENTITY_DECODE]}}`, req{method: "POST", body: "c=&lt;script&gt;alert(1)&lt;/script&gt;"}, true},
		{"xss benign", `{xss_match: {field_to_match: {body: {}}}}`, req{method: "POST", body: "hello world"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := aclFromYAML(t, ruleYAML(tt.statement), nil)
			d := a.Evaluate(tt.req.build())
			if got := d.Action == config.ActionBlock; got != tt.want {
				t.Errorf("match = %v, want %v (decision %+v)", got, tt.want, d)
			}
		})
	}
}

func TestLabelsAndLogic(t *testing.T) {
	a := aclFromYAML(t, `
name: labels
rules:
  - name: tag-scanner
    priority: 1
    action: count
    labels: [bots:scanner]
    statement: {byte_match: {header: User-Agent, positional_constraint: CONTAINS, search_string: sqlmap}}
  - name: tag-internal
    priority: 2
    action: count
    labels: [net:internal]
    statement: {ip_set: {addresses: [10.0.0.0/8]}}
  - name: block-external-scanners
    priority: 3
    action: block
    statement:
      and:
        - {label_match: {scope: NAMESPACE, key: "bots:"}}
        - {not: {label_match: {key: net:internal}}}
  - name: allow-admin
    priority: 4
    action: allow
    labels: [admin]
    statement:
      or:
        - {byte_match: {header: X-Role, positional_constraint: EXACTLY, search_string: admin}}
        - {byte_match: {header: X-Role, positional_constraint: EXACTLY, search_string: root}}
`, nil)
	tests := []struct {
		name    string
		req     req
		action  string
		rule    string
		counted []string
		labels  []string
	}{
		{"external scanner", req{headers: []string{"User-Agent", "sqlmap/1"}, remote: "203.0.113.1:1"}, "block", "block-external-scanners", []string{"tag-scanner"}, []string{"bots:scanner"}},
		{"internal scanner", req{headers: []string{"User-Agent", "sqlmap/1"}, remote: "10.0.0.1:1"}, "allow", "", []string{"tag-scanner", "tag-internal"}, []string{"bots:scanner", "net:internal"}},
		{"admin via or", req{headers: []string{"X-Role", "root"}, remote: "203.0.113.1:1"}, "allow", "allow-admin", nil, []string{"admin"}},
		{"nothing", req{remote: "203.0.113.1:1"}, "allow", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := a.Evaluate(tt.req.build())
			if d.Action != tt.action || d.Rule != tt.rule || !slices.Equal(d.Counted, tt.counted) || !slices.Equal(d.Labels, tt.labels) {
				t.Errorf("Evaluate = %+v, want %s by %q counted %v labels %v", d, tt.action, tt.rule, tt.counted, tt.labels)
			}
		})
	}
}

func TestTransformations(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"NONE", "A%41", "A%41"},
		{"LOWERCASE", "SeLeCT", "select"},
		{"URL_DECODE", "a%20b+c%2", "a b c%2"},
		{"URL_DECODE", "%zz%41", "%zzA"},
		{"URL_DECODE_UNI", "%u003cscript%uFF1E%41", "<script>A"},
		{"HTML_ENTITY_DECODE", "&lt;a&#x20;href=&quot;x&quot;&#62;", `<a href="x">`},
		{"COMPRESS_WHITE_SPACE", "a \t\r\n b\fc", "a b c"},
		{"BASE64_DECODE", "c2VsZWN0", "select"},
		{"BASE64_DECODE", "c2VsZWN0IDE=", "select 1"},
		{"BASE64_DECODE", "not base64!", "not base64!"},
		{"HEX_DECODE", "3c7363726970743e", "<script>"},
		{"HEX_DECODE", "xyz", "xyz"},
		{"CMD_LINE", `C^a"t  /e't'c/pa\ss;Ls ,-la`, "cat/etc/pass ls -la"},
		{"NORMALIZE_PATH", "/a//b/./c/../d/", "/a/b/d/"},
		{"NORMALIZE_PATH", "a/../../b", "../b"},
		{"REMOVE_NULLS", "a\x00b\x00", "ab"},
		{"REPLACE_COMMENTS", "UN/**/ION/*x*/SEL/*unterminated", "UN ION SEL "},
	}
	if got, want := len(transforms), len(config.TextTransformationNames()); got != want {
		t.Errorf("%d transformations implemented, config accepts %d", got, want)
	}
	for _, n := range config.TextTransformationNames() {
		if transforms[n] == nil {
			t.Errorf("transformation %s accepted by config is not implemented", n)
		}
	}
	for _, tt := range tests {
		if got := transforms[tt.name](tt.in); got != tt.want {
			t.Errorf("%s(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
	chain, err := compileTransforms([]string{"URL_DECODE", "LOWERCASE", "COMPRESS_WHITE_SPACE"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got := chain("SELECT%20%20%0A*"); got != "select *" {
		t.Errorf("chain = %q", got)
	}
	if _, err := compileTransforms([]string{"ROT13"}, "s"); err == nil || !strings.Contains(err.Error(), `s.text_transformations[0]: unknown text transformation "ROT13"`) {
		t.Errorf("unknown transformation error = %v", err)
	}
}

// TestBodyReachesTargetIntact sends bodies under, at and over the inspection limit through a real
// listener and checks that the handler behind the ACL reads every byte, and what oversize
// handling does with the part beyond the limit.
func TestBodyReachesTargetIntact(t *testing.T) {
	for _, oversize := range []string{"continue", "match", "no_match"} {
		t.Run(oversize, func(t *testing.T) {
			a := aclFromYAML(t, `
name: body
body_inspection_limit: 1024
oversize_handling: `+oversize+`
rules:
  - name: no-evil
    priority: 1
    action: block
    statement: {byte_match: {field_to_match: {body: {}}, positional_constraint: CONTAINS, search_string: EVIL}}
`, nil)
			var got []byte
			srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
			})))
			defer srv.Close()
			tests := []struct {
				name string
				body string
				want int
			}{
				{"small clean", "hello", 200},
				{"small evil", "xxEVILxx", 403},
				{"at limit clean", strings.Repeat("a", 1024), 200},
				{"over limit evil in prefix", "EVIL" + strings.Repeat("a", 5000), map[string]int{"continue": 403, "match": 403, "no_match": 200}[oversize]},
				{"over limit evil after limit", strings.Repeat("a", 2000) + "EVIL", map[string]int{"continue": 200, "match": 403, "no_match": 200}[oversize]},
				{"large clean", strings.Repeat("0123456789", 200_000), map[string]int{"continue": 200, "match": 403, "no_match": 200}[oversize]},
			}
			for _, tt := range tests {
				got = nil
				resp, err := http.Post(srv.URL, "text/plain", strings.NewReader(tt.body))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
				}
				if tt.want == 200 && string(got) != tt.body {
					t.Errorf("%s: handler read %d bytes, want the %d sent", tt.name, len(got), len(tt.body))
				}
			}
		})
	}
}

// TestBodyReadBounded checks that inspection reads at most limit+1 bytes of a body, whatever its
// size: the rest stays unread until the next handler asks for it.
func TestBodyReadBounded(t *testing.T) {
	a := aclFromYAML(t, "name: b\nbody_inspection_limit: 100\n"+strings.TrimPrefix(ruleYAML(`{byte_match: {field_to_match: {body: {}}, positional_constraint: CONTAINS, search_string: x}}`), "name: t\n"), nil)
	src := &countingReader{r: io.LimitReader(zeroReader{}, 1<<30)}
	r := httptest.NewRequest("POST", "/", nil)
	r.Body = io.NopCloser(src)
	r.ContentLength = -1
	if d := a.Evaluate(r); d.Action != config.ActionAllow {
		t.Fatalf("decision %+v", d)
	}
	if src.n > 101 {
		t.Errorf("read %d bytes of the body during inspection, want at most 101", src.n)
	}
	head := make([]byte, 200)
	if n, _ := io.ReadFull(r.Body, head); n != 200 {
		t.Errorf("body after inspection yields %d bytes, want 200", n)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestCustomResponse(t *testing.T) {
	a := aclFromYAML(t, `
name: cr
default_action: block
default_custom_response: closed
custom_responses:
  slow-down:
    status: 429
    headers: {Retry-After: "30"}
    content_type: application/json
    body: '{"message":"Too Many Requests"}'
  closed: {status: 503}
rules:
  - name: throttle
    priority: 1
    action: block
    custom_response: slow-down
    statement: {byte_match: {header: X-Greedy, positional_constraint: EXACTLY, search_string: "yes"}}
  - name: ok
    priority: 2
    action: allow
    statement: {byte_match: {header: X-Ok, positional_constraint: EXACTLY, search_string: "1"}}
`, nil)
	srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })))
	defer srv.Close()
	tests := []struct {
		header, value string
		status        int
		body          string
		retryAfter    string
	}{
		{"X-Greedy", "yes", 429, `{"message":"Too Many Requests"}`, "30"},
		{"X-Ok", "1", 200, "app", ""},
		{"X-Other", "1", 503, `{"message":"Service Unavailable"}`, ""},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("GET", srv.URL, nil)
		r.Header.Set(tt.header, tt.value)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(body) != tt.body || resp.Header.Get("Retry-After") != tt.retryAfter {
			t.Errorf("%s: %d %q Retry-After %q, want %d %q %q", tt.header, resp.StatusCode, body, resp.Header.Get("Retry-After"), tt.status, tt.body, tt.retryAfter)
		}
	}
}

func TestLogTruncatesAndRedacts(t *testing.T) {
	var logs bytes.Buffer
	a := aclFromYAML(t, `
name: log
rules:
  - name: gate
    priority: 0
    action: count
    statement: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}
  - name: auth
    priority: 1
    action: count
    labels: [seen:auth]
    statement: {byte_match: {field_to_match: {all_headers: {match_scope: VALUE}}, positional_constraint: CONTAINS, search_string: Bearer}}
  - name: long
    priority: 2
    action: block
    statement: {byte_match: {field_to_match: {single_query_argument: q}, positional_constraint: STARTS_WITH, search_string: "x"}}
`, slog.New(slog.NewJSONHandler(&logs, nil)))
	r := req{target: "/p?q=x" + strings.Repeat("é", 100), headers: []string{"Authorization", "Bearer top-secret-token", "X-Origin-Verify", currentSecret, "X-Request-Id", "rid-1"}, remote: "198.51.100.7:1234"}.build()
	if d := a.Evaluate(r); d.Action != "block" || d.Rule != "long" {
		t.Fatalf("decision %+v", d)
	}
	out := logs.String()
	for _, leak := range []string{currentSecret, "top-secret-token"} {
		if strings.Contains(out, leak) {
			t.Errorf("log contains %q:\n%s", leak, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3 (two counts, one block):\n%s", len(lines), out)
	}
	var last struct {
		ACL, Rule, Action, Field, Value string
		Labels                          []string
		RequestID                       string `json:"request_id"`
		SourceIP                        string `json:"source_ip"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatal(err)
	}
	if last.ACL != "log" || last.Rule != "long" || last.Action != "block" || last.Field != "query_argument:q" ||
		last.RequestID != "rid-1" || last.SourceIP != "198.51.100.7" || !slices.Equal(last.Labels, []string{"seen:auth"}) {
		t.Errorf("log line = %+v", last)
	}
	if len(last.Value) > maxLoggedValue+len("…") || !strings.HasSuffix(last.Value, "…") || !strings.HasPrefix(last.Value, "xé") {
		t.Errorf("value %q (%d bytes) is not truncated to %d bytes", last.Value, len(last.Value), maxLoggedValue)
	}
	if !strings.Contains(lines[1], `"value":"[REDACTED]"`) {
		t.Errorf("Authorization match not redacted: %s", lines[1])
	}
}

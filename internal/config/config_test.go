package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/examples"
)

// TestDefaultExample checks that the embedded default topology, the one `rampart run` starts,
// loads cleanly and has the shape DESIGN.md describes.
func TestDefaultExample(t *testing.T) {
	cfg, err := Parse("examples/rampart.yaml", examples.Default, os.LookupEnv)
	if err != nil {
		t.Fatalf("the embedded default does not load:\n%v", err)
	}
	if cfg.File != "examples/rampart.yaml" || cfg.Version != 1 {
		t.Errorf("file %q version %d", cfg.File, cfg.Version)
	}
	if got := cfg.Secrets["origin-verify"].File; got != ".rampart/origin-verify.keys" {
		t.Errorf("origin-verify keyring file = %q", got)
	}

	if len(cfg.Gateways) != 1 {
		t.Fatalf("%d gateways, want 1", len(cfg.Gateways))
	}
	g := cfg.Gateways[0]
	if g.Name != "public-api" || g.Listen != "127.0.0.1:8080" {
		t.Errorf("gateway %q on %q", g.Name, g.Listen)
	}
	if g.CORS.Mode != CORSEnforce || g.CORS.AllowCredentials || g.CORS.MaxAge.Duration != 10*time.Minute {
		t.Errorf("cors = %+v", g.CORS)
	}
	if want := []string{"http://127.0.0.1:3000", "http://localhost:3000"}; !reflect.DeepEqual(g.CORS.AllowOrigins, want) {
		t.Errorf("allow_origins = %q, want %q", g.CORS.AllowOrigins, want)
	}
	if len(g.RequestHeaders) != 2 || g.RequestHeaders[0].Name != "X-Origin-Verify" || g.RequestHeaders[1].Name != "X-Request-Id" {
		t.Fatalf("request_headers = %+v", g.RequestHeaders)
	}
	if got := g.RequestHeaders[0].Value.Secrets(); !reflect.DeepEqual(got, []string{"origin-verify"}) {
		t.Errorf("X-Origin-Verify references secrets %q", got)
	}
	if p := g.RequestHeaders[1].Value.Parts; len(p) != 1 || p[0].Kind != RefRequestID {
		t.Errorf("X-Request-Id template = %+v", p)
	}
	var paths []string
	for _, r := range g.Routes {
		paths = append(paths, r.Path)
		if r.Integration.URL != "http://127.0.0.1:8081" || r.Integration.Timeout.Duration != DefaultIntegrationTimeout {
			t.Errorf("route %s integration = %+v", r.Path, r.Integration)
		}
	}
	if want := []string{"/items", "/items/{id}", "/whoami"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("routes = %q, want %q", paths, want)
	}

	if len(cfg.LoadBalancers) != 1 {
		t.Fatalf("%d load balancers, want 1", len(cfg.LoadBalancers))
	}
	lb := cfg.LoadBalancers[0]
	if lb.Name != "app-alb" || lb.Egress != "127.0.0.3" || len(lb.Listeners) != 1 || len(lb.TargetGroups) != 1 {
		t.Fatalf("load balancer = %+v", lb)
	}
	l := lb.Listeners[0]
	if l.Listen != "127.0.0.1:8081" || l.WebACL != "gateway-only" || len(l.Rules) != 1 {
		t.Fatalf("listener = %+v", l)
	}
	if f := l.Rules[0].Action.Forward; f == nil || f.TargetGroup != "items" {
		t.Errorf("rule action = %+v", l.Rules[0].Action)
	}
	if fr := l.DefaultAction.FixedResponse; fr == nil || fr.Status != 404 || fr.ContentType != "application/json" || fr.Body != `{"message":"Not Found"}` {
		t.Errorf("default action = %+v", fr)
	}
	tg := lb.TargetGroups[0]
	wantHC := HealthCheck{Path: "/healthz", Interval: Duration{5 * time.Second}, Timeout: Duration{2 * time.Second}, HealthyThreshold: 2, UnhealthyThreshold: 2, Matcher: "200-399"}
	if tg.Name != "items" || tg.Algorithm != RoundRobin || len(tg.Targets) != 2 || tg.HealthCheck != wantHC {
		t.Errorf("target group = %+v", tg)
	}

	if len(cfg.WebACLs) != 1 || len(cfg.WebACLs[0].Rules) != 1 {
		t.Fatalf("web ACLs = %+v", cfg.WebACLs)
	}
	r := cfg.WebACLs[0].Rules[0]
	if r.Action != ActionBlock || r.Statement.Not == nil || r.Statement.Not.OriginVerify == nil ||
		*r.Statement.Not.OriginVerify != (OriginVerifyStatement{Header: "X-Origin-Verify", Secret: "origin-verify"}) {
		t.Errorf("WAF rule = %+v", r)
	}

	if len(cfg.Apps) != 1 || !reflect.DeepEqual(cfg.Apps[0].AllowFrom, []string{"127.0.0.3/32"}) || cfg.Apps[0].Database != "sqlite:.rampart/items.db" {
		t.Errorf("apps = %+v", cfg.Apps)
	}
	if cfg.Web == nil || cfg.Web.Listen != "127.0.0.1:3000" || cfg.Web.GatewayURL != "http://127.0.0.1:8080" {
		t.Errorf("web = %+v", cfg.Web)
	}
	if cfg.Admin == nil || cfg.Admin.Listen != "127.0.0.1:9900" {
		t.Errorf("admin = %+v", cfg.Admin)
	}
}

func TestValidFull(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("full.yaml", data, lookupTestEnv)
	if err != nil {
		t.Fatalf("valid file rejected:\n%v", err)
	}
	g := cfg.Gateways[0]
	if g.Listen != "127.0.0.1:8080" {
		t.Errorf("env not expanded in listen: %q", g.Listen)
	}
	if got := cfg.Secrets["origin-verify"].File; got != "/var/lib/rampart/origin-verify.keys" {
		t.Errorf("env not expanded in secret file: %q", got)
	}
	var names []string
	for _, h := range g.RequestHeaders {
		names = append(names, h.Name)
	}
	if want := []string{"X-Origin-Verify", "X-Api-Key", "X-Forwarded-Client", "X-Empty"}; !reflect.DeepEqual(names, want) {
		t.Errorf("request header order = %q, want file order %q", names, want)
	}
	if p := g.RequestHeaders[1].Value.Parts; len(p) != 1 || p[0].Kind != RefLiteral || p[0].Text != testEnv["RAMPART_TEST_SECRET"] {
		t.Errorf("env reference in a header template = %+v", p)
	}
	if want := []string{"GET", "PATCH", "DELETE"}; !reflect.DeepEqual(g.CORS.AllowMethods, want) {
		t.Errorf("default allow_methods = %q, want the routes' methods %q", g.CORS.AllowMethods, want)
	}
	if g.Routes[0].Integration.Timeout.Duration != 10*time.Second || g.Routes[1].Integration.Timeout.Duration != 2*time.Second {
		t.Errorf("route timeouts %v %v, want the gateway's 10s and the route's own 2s",
			g.Routes[0].Integration.Timeout, g.Routes[1].Integration.Timeout)
	}
	if cfg.Gateways[1].IntegrationTimeout.Duration != DefaultIntegrationTimeout || cfg.Gateways[1].CORS.Mode != CORSEnforce {
		t.Errorf("second gateway defaults = %+v", cfg.Gateways[1])
	}
	tgs := cfg.LoadBalancers[0].TargetGroups
	wantMerged := HealthCheck{Path: "/healthz", Interval: Duration{10 * time.Second}, Timeout: Duration{2 * time.Second}, HealthyThreshold: 5, UnhealthyThreshold: 2, Matcher: "200,302-304"}
	if tgs[0].HealthCheck != wantMerged {
		t.Errorf("merged health check = %+v, want %+v", tgs[0].HealthCheck, wantMerged)
	}
	wantDefault := HealthCheck{Path: "/", Interval: Duration{30 * time.Second}, Timeout: Duration{5 * time.Second}, HealthyThreshold: 5, UnhealthyThreshold: 2, Matcher: "200-399"}
	if tgs[1].HealthCheck != wantDefault || tgs[1].Algorithm != RoundRobin {
		t.Errorf("default target group = %+v, want health check %+v", tgs[1], wantDefault)
	}
	rules := cfg.LoadBalancers[0].Listeners[0].Rules
	if fr := rules[0].Action.FixedResponse; fr.ContentType != "text/plain" || fr.Body != "" {
		t.Errorf("text/plain fixed response got a body: %+v", fr)
	}
	if fr := rules[1].Action.FixedResponse; fr.ContentType != "application/json" || fr.Body != "nope" {
		t.Errorf("written body replaced: %+v", fr)
	}
	if fr := cfg.LoadBalancers[0].Listeners[0].DefaultAction.FixedResponse; fr == nil || fr.Status != 404 {
		t.Errorf("listener without default_action: %+v", cfg.LoadBalancers[0].Listeners[0].DefaultAction)
	}
	if cfg.WebACLs[0].DefaultAction != ActionBlock {
		t.Errorf("written default action replaced: %q", cfg.WebACLs[0].DefaultAction)
	}
	bm := cfg.WebACLs[0].Rules[0].Statement.And[1].Not.ByteMatch
	if bm == nil || bm.SearchString != "${jndi:" {
		t.Errorf("literal ${ in a search string = %+v", bm)
	}
	if want := []string{"127.0.0.3/32", "10.0.0.0/8", "::1/128"}; !reflect.DeepEqual(cfg.Apps[0].AllowFrom, want) {
		t.Errorf("allow_from = %q, want %q", cfg.Apps[0].AllowFrom, want)
	}
	if cfg.Web.GatewayURL != "http://127.0.0.1:8080" {
		t.Errorf("gateway_url = %q", cfg.Web.GatewayURL)
	}
}

// TestPositions checks where errors point: the line, column and path of the offending value.
func TestPositions(t *testing.T) {
	tests := []struct {
		name, yaml string
		line, col  int
		path       string
		msg        string
	}{
		{"unknown top-level key", "version: 1\nadmn: {listen: \"127.0.0.1:1\"}\n", 2, 1, "admn", "unknown key"},
		{"value of a nested key", "admin:\n  listen: nope\n", 2, 11, "admin.listen", `"nope" is not host:port`},
		{"flow mapping value", "admin: {listen: 1.2.3.4}\n", 1, 17, "admin.listen", `"1.2.3.4" is not host:port`},
		{"missing key points at its mapping", "gateways:\n  - listen: 127.0.0.1:1\n", 2, 5, "gateways[0].name", "required"},
		{"list item", "apps:\n  - name: a\n    listen:\n      - 127.0.0.1:1\n      - bad\n", 5, 9, "apps[0].listen[1]", `"bad" is not host:port`},
		{"deep reference", `load_balancers:
  - name: lb
    listeners:
      - listen: 127.0.0.1:1
        rules:
          - {priority: 1, conditions: {path: [/a]}, action: {forward: {target_group: a}}}
          - {priority: 2, conditions: {path: [/b]}, action: {forward: {target_group: bb}}}
    target_groups: [{name: a, targets: ["127.0.0.1:2"]}]
`, 7, 86, "load_balancers[0].listeners[0].rules[1].action.forward.target_group", `unknown target group "bb"`},
		{"type error", "gateways: {name: x}\n", 1, 11, "gateways", "expected a list, got a mapping"},
		{"duplicate key", "admin: {listen: \"127.0.0.1:1\"}\nadmin: {}\n", 2, 1, "admin", "duplicate key (first set at line 1)"},
		{"header template", "secrets: {s: {file: f}}\nadmin: {listen: \"127.0.0.1:1\"}\ngateways:\n  - name: g\n    listen: 127.0.0.1:2\n    request_headers:\n      X-A: \"${secret:t}\"\n", 7, 12, "gateways[0].request_headers.X-A", `unknown secret "t"`},
		{"alias use site", "x: &l nope\nadmin: {listen: *l}\n", 2, 17, "admin.listen", `"nope" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml), nil)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error = %v, want Errors", err)
			}
			for _, e := range errs {
				if e.Path == tt.path {
					if e.Line != tt.line || e.Col != tt.col || !strings.Contains(e.Msg, tt.msg) {
						t.Errorf("got %v, want %d:%d and message containing %q", e, tt.line, tt.col, tt.msg)
					}
					return
				}
			}
			t.Errorf("no error at %s; got:\n%v", tt.path, err)
		})
	}
}

func TestDidYouMean(t *testing.T) {
	keys := []string{"name", "listen", "cors", "request_headers", "routes", "integration_timeout"}
	tests := []struct {
		got, want string
	}{
		{"listn", "listen"},
		{"Listen", "listen"},
		{"nmae", "name"}, // transposition is one edit
		{"route", "routes"},
		{"request-headers", "request_headers"},
		{"requestHeaders", "request_headers"},
		{"integration_timout", "integration_timeout"},
		{"mode", ""}, // two edits from "name" and "cors" is too far for a four-letter word
		{"colour", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		got, ok := closest(tt.got, keys)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("closest(%q) = %q, %v; want %q", tt.got, got, ok, tt.want)
		}
	}
	if h := didYouMean("colour", keys[:3], "valid keys"); h != "valid keys: name, listen, cors" {
		t.Errorf("hint without a close match = %q", h)
	}
	if h := didYouMean("x", nil, "defined secrets"); h != "none are defined" {
		t.Errorf("hint with no candidates = %q", h)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "abc", 0}, {"abc", "abd", 1},
		{"abc", "acb", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (symmetry)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	valid := []string{
		"https://app.example.com", "http://localhost:3000", "http://127.0.0.1:3000", "https://*.example.com",
		"https://*.a.example.com:8443", "http://[::1]:3000", "http://[::1]", "chrome-extension://abcdef",
		"http://10.0.0.1:8080", "https://under_score.example.com",
	}
	for _, o := range valid {
		if msg, hint := checkOrigin(o); msg != "" {
			t.Errorf("checkOrigin(%q) = %q; %q, want valid", o, msg, hint)
		}
	}
	invalid := []struct{ origin, msg string }{
		{"null", "cannot be allowed"},
		{"app.example.com", "not scheme://host[:port]"},
		{"https://app.example.com/", "has a path"},
		{"https://app.example.com/api", "has a path"},
		{"https://app.example.com?x", "has a path"},
		{"HTTPS://app.example.com", "lowercase"},
		{"https://user@app.example.com", "user information"},
		{"https://*example.com", "whole leftmost DNS label"},
		{"https://ex*.com", "whole leftmost DNS label"},
		{"https://a.*.com", "whole leftmost DNS label"},
		{"https://*.*.example.com", "whole leftmost DNS label"},
		{"https://*.com", "top-level domain"},
		{"http://localhost:0", "bad port"},
		{"http://localhost:", "bad port"},
		{"http://localhost:080", "bad port"},
		{"http://[::1", "unclosed"},
		{"http://[127.0.0.1]:80", "bad IPv6"},
		{"https://", "no host"},
		{"https://bad host", "bad host"},
		{"https://example.com.", "bad host"},
		{"http://1.2.3", "bad host"},
		{"http://[fe80::1%25eth0]", "bad IPv6"},
		{"https://*.10.0.0.1", "over an IP address"},
		{"1http://x", "invalid scheme"},
	}
	for _, tt := range invalid {
		msg, hint := checkOrigin(tt.origin)
		if !strings.Contains(msg, tt.msg) {
			t.Errorf("checkOrigin(%q) = %q, want a message containing %q", tt.origin, msg, tt.msg)
		}
		if hint == "" {
			t.Errorf("checkOrigin(%q) gives no hint", tt.origin)
		}
	}
	if _, hint := checkOrigin("http://ex*.com"); hint != "a wildcard is a whole leftmost label: write http://*.example.com" {
		t.Errorf("wildcard hint = %q", hint)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Col: 7, Path: "a.b", Msg: "bad", Hint: "fix it"}, "f.yaml:3:7: a.b: bad; fix it"},
		{Error{File: "f.yaml", Line: 3, Col: 7, Path: "a.b", Msg: "bad"}, "f.yaml:3:7: a.b: bad"},
		{Error{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{Error{File: "f.yaml", Msg: "bad"}, "f.yaml: bad"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	es := Errors{&tests[0].e, &tests[1].e}
	if got, want := es.Error(), "f.yaml:3:7: a.b: bad; fix it\nf.yaml:3:7: a.b: bad"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

func TestEnv(t *testing.T) {
	env := func(name string) (string, bool) {
		if name == "ADDR" {
			return "127.0.0.1:9900", true
		}
		return "", false
	}
	cfg, err := Parse("t.yaml", []byte("admin: {listen: \"${env:ADDR}\"}\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:9900" {
		t.Errorf("listen = %q", cfg.Admin.Listen)
	}
	_, err = Parse("t.yaml", []byte("admin: {listen: \"${env:NOPE}\"}\n"), env)
	if err == nil || err.Error() != `t.yaml:1:17: admin.listen: environment variable "NOPE" is not set (referenced as ${env:NOPE}); set it, or remove the reference` {
		t.Errorf("unset variable: %v", err)
	}
	// A nil lookup means no variable is set.
	if _, err := Parse("t.yaml", []byte("admin: {listen: \"${env:ADDR}\"}\n"), nil); err == nil {
		t.Error("nil lookupEnv resolved a variable")
	}
}

func TestExplicitValuesKept(t *testing.T) {
	src := `gateways:
  - name: g
    listen: 127.0.0.1:1
    cors: {allow_methods: [GET]}
    routes:
      - {path: /a, methods: [GET, POST], integration: {url: "http://127.0.0.1:2"}}
`
	cfg, err := Parse("t.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Gateways[0].CORS.AllowMethods; !reflect.DeepEqual(got, []string{"GET"}) {
		t.Errorf("allow_methods = %q, want the written [GET]", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(path, examples.Default, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || len(cfg.Gateways) != 1 {
		t.Errorf("Load = %+v", cfg)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 3\nadmin: {listen: \"127.0.0.1:1\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].File != bad || errs[0].Line != 1 {
		t.Errorf("Load(bad) = %v", err)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestGatewayURLDefault(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{":8080", "http://localhost:8080"},
		{"0.0.0.0:8080", "http://localhost:8080"},
		{"[::]:8080", "http://localhost:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
	}
	for _, tt := range tests {
		src := "gateways: [{name: g, listen: \"" + tt.listen + "\"}]\nweb: {listen: \"127.0.0.1:3000\"}\n"
		cfg, err := Parse("t.yaml", []byte(src), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.listen, err)
		}
		if cfg.Web.GatewayURL != tt.want {
			t.Errorf("listen %s: gateway_url = %q, want %q", tt.listen, cfg.Web.GatewayURL, tt.want)
		}
	}
}

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, and it must either return a
// config or a non-empty Errors whose every entry names the file.
func FuzzParse(f *testing.F) {
	f.Add(examples.Default)
	seeds, _ := filepath.Glob("testdata/*/*.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("statement: &s {not: *s}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data, lookupTestEnv)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T %v is not a non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.File != "f.yaml" || e.Msg == "" || e.Line < 0 || e.Col < 0 {
				t.Fatalf("malformed error %#v", e)
			}
		}
	})
}

// TestDecoderSupportsSchema walks every type reachable from Config and fails on a field kind the
// decoder cannot fill, so that adding such a field to types.go fails here rather than panicking on
// a user's file.
func TestDecoderSupportsSchema(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string) []string
	walk = func(typ reflect.Type, path string) []string {
		if typ == durationType || typ == headerMappingType || typ == jsonValueType || seen[typ] {
			return nil
		}
		seen[typ] = true
		switch typ.Kind() {
		case reflect.Struct:
			var bad []string
			names, index := fieldsOf(typ)
			for _, n := range names {
				bad = append(bad, walk(typ.Field(index[n]).Type, path+"."+n)...)
			}
			return bad
		case reflect.Pointer, reflect.Slice:
			return walk(typ.Elem(), path)
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				return []string{path + ": map key " + typ.Key().String()}
			}
			return walk(typ.Elem(), path)
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			return nil
		}
		return []string{path + ": " + typ.String()}
	}
	if bad := walk(reflect.TypeFor[Config](), "config"); len(bad) > 0 {
		t.Errorf("the decoder cannot fill: %q", bad)
	}
}

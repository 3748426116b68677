package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/waf"
)

// TestWebACLOnGateway runs a gateway with web_acl over real sockets: a request the ACL blocks
// gets 403 with a request id and never reaches the backend, even on a CORS preflight; a body the
// ACL inspected reaches the backend intact.
func TestWebACLOnGateway(t *testing.T) {
	var calls atomic.Int32
	var lastBody atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		lastBody.Store(string(b))
	}))
	defer backend.Close()
	acl, err := waf.New(config.WebACL{Name: "edge", DefaultAction: config.ActionAllow, Rules: []config.WAFRule{{
		Name: "no-sqli", Priority: 1, Action: config.ActionBlock,
		Statement: config.Statement{Or: []config.Statement{
			{SQLiMatch: &config.InjectionMatchStatement{FieldToMatch: config.FieldToMatch{AllQueryArguments: &config.MatchScope{MatchScope: "VALUE"}}}},
			{SQLiMatch: &config.InjectionMatchStatement{FieldToMatch: config.FieldToMatch{JSONBody: &config.MatchScope{MatchScope: "VALUE"}}}},
		}},
	}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(config.Gateway{
		Name:   "g",
		CORS:   config.CORS{Mode: config.CORSEnforce, AllowOrigins: []string{"http://ok.example"}, AllowMethods: []string{"GET", "POST"}},
		Routes: []config.Route{{Path: "/items", Methods: []string{"GET", "POST"}, Integration: config.Integration{URL: backend.URL}}},
	}, nil, nil, WithWebACL(acl))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()

	for _, tt := range []struct {
		method, target, body string
		want                 int
		reaches              bool
	}{
		{"GET", "/items?id=42", "", 200, true},
		{"GET", "/items?id=1%27%20OR%20%271%27%3D%271", "", 403, false},
		{"OPTIONS", "/items?id=1%27%20OR%20%271%27%3D%271", "", 403, false},
		{"POST", "/items", `{"name":"1' UNION SELECT password FROM users--"}`, 403, false},
		{"POST", "/items", `{"name":"widget"}`, 200, true},
	} {
		before := calls.Load()
		req, _ := http.NewRequest(tt.method, srv.URL+tt.target, strings.NewReader(tt.body))
		req.Header.Set("Content-Type", "application/json")
		if tt.method == "OPTIONS" {
			req.Header.Set("Origin", "http://ok.example")
			req.Header.Set("Access-Control-Request-Method", "GET")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, resp.StatusCode, tt.want)
		}
		if resp.Header.Get(RequestIDHeader) == "" {
			t.Errorf("%s %s: no request id on the response", tt.method, tt.target)
		}
		if reached := calls.Load() != before; reached != tt.reaches {
			t.Errorf("%s %s: reached backend = %v, want %v", tt.method, tt.target, reached, tt.reaches)
		}
		if tt.reaches && tt.body != "" && lastBody.Load() != tt.body {
			t.Errorf("backend got body %q, want %q", lastBody.Load(), tt.body)
		}
	}
}

package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/waf"
)

// echoBackend answers every request with what it received, as JSON, and sets a few headers
// that response_headers tests edit. /slow waits for the client to give up; /ws is a WebSocket
// echo server.
func echoBackend(t *testing.T) *httptest.Server {
	t.Helper()
	ws := websocket.Server{Handler: func(c *websocket.Conn) { _, _ = io.Copy(c, c) }}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			ws.ServeHTTP(w, r)
			return
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("X-Powered-By", "php")
		w.Header().Set("X-Frame-Options", "ALLOW")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"uri": r.RequestURI, "body": string(body), "header": r.Header, "length": r.ContentLength,
		})
	}))
	t.Cleanup(s.Close)
	return s
}

// edgeFixture serves a gateway built by the real config loader over a real socket, after
// writing files (schemas, keys) into its directory.
func edgeFixture(t *testing.T, yaml string, files map[string]string) (*accessFixture, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	backend := echoBackend(t)
	f := &accessFixture{t: t, logs: &syncBuffer{}, dir: dir}
	f.start(parseGateway(t, dir, backend.URL, yaml))
	return f, f.logs
}

// send makes one request with a body over a fresh connection.
func send(t *testing.T, method, url, body string, headers ...string) reply_ {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Chunked" {
			req.ContentLength = -1 // a body of unknown length goes out chunked
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply_{res.StatusCode, res.Header, string(b)}
}

type errorBody struct {
	Message string       `json:"message"`
	Errors  []fieldError `json:"errors"`
}

func decodeError(t *testing.T, r reply_) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return e
}

const validationYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://ok.test"]}
    routes:
      - path: /items
        methods: [POST]
        max_body_bytes: 200
        request_validation:
          required_headers: [X-Tenant]
          required_query: [dry_run]
          body_schema:
            type: object
            required: [name]
            additionalProperties: false
            properties:
              name: {type: string, minLength: 1}
              qty: {type: integer, minimum: 1}
        integration: {url: "%BACKEND%"}
      - path: /files
        methods: [POST]
        request_validation: {body_schema_file: "%DIR%/schema.json"}
        integration: {url: "%BACKEND%"}
`

func TestRequestValidation(t *testing.T) {
	f, _ := edgeFixture(t, validationYAML, map[string]string{
		"schema.json": `{"type": "object", "required": ["path"], "properties": {"path": {"type": "string", "pattern": "^/"}}}`,
	})
	ok := []string{"X-Tenant", "acme", "Content-Type", "application/json", "Origin", "http://ok.test"}
	for _, tc := range []struct {
		name, path, body string
		headers          []string
		status           int
		message          string
		fields           []string // the errors' fields, in order
		errSubstr        string   // in the first error
	}{
		{name: "valid", path: "/items?dry_run=1", body: `{"name":"a","qty":2}`, headers: ok, status: 200},
		{name: "valid chunked", path: "/items?dry_run=1", body: `{"name":"b"}`, headers: append([]string{"Chunked", ""}, ok...), status: 200},
		{name: "missing header and query", path: "/items", body: `{"name":"a"}`, headers: []string{"Content-Type", "application/json", "Origin", "http://ok.test"},
			status: 400, message: "Missing required request parameters", fields: []string{"header.X-Tenant", "query.dry_run"}},
		{name: "empty query value", path: "/items?dry_run=", body: `{"name":"a"}`, headers: ok, status: 400, fields: []string{"query.dry_run"}},
		{name: "missing property", path: "/items?dry_run=1", body: `{"qty":2}`, headers: ok, status: 400,
			message: "Invalid request body", fields: []string{"/name"}, errSubstr: "required"},
		{name: "wrong type", path: "/items?dry_run=1", body: `{"name":"a","qty":"x"}`, headers: ok, status: 400, fields: []string{"/qty"}, errSubstr: "integer"},
		{name: "below minimum", path: "/items?dry_run=1", body: `{"name":"a","qty":0}`, headers: ok, status: 400, fields: []string{"/qty"}},
		{name: "extra property", path: "/items?dry_run=1", body: `{"name":"a","zz":1}`, headers: ok, status: 400, fields: []string{"/zz"}},
		{name: "malformed JSON", path: "/items?dry_run=1", body: `{"name":`, headers: ok, status: 400, fields: []string{"/"}, errSubstr: "malformed JSON"},
		{name: "trailing data", path: "/items?dry_run=1", body: `{"name":"a"} {}`, headers: ok, status: 400, fields: []string{"/"}},
		{name: "not JSON content type", path: "/items?dry_run=1", body: `{"name":"a"}`, headers: []string{"X-Tenant", "a", "Content-Type", "text/plain"},
			status: 400, fields: []string{"/"}, errSubstr: "Content-Type"},
		{name: "no body", path: "/items?dry_run=1", headers: ok, status: 400, fields: []string{"/"}},
		{name: "over max_body_bytes chunked", path: "/items?dry_run=1", body: `{"name":"` + strings.Repeat("x", 300) + `"}`,
			headers: append([]string{"Chunked", ""}, ok...), status: 413, message: "Request Entity Too Large"},
		{name: "over max_body_bytes declared", path: "/items?dry_run=1", body: `{"name":"` + strings.Repeat("x", 300) + `"}`, headers: ok, status: 413},
		{name: "schema file valid", path: "/files", body: `{"path":"/a"}`, headers: ok, status: 200},
		{name: "schema file invalid", path: "/files", body: `{"path":"a"}`, headers: ok, status: 400, fields: []string{"/path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, "POST", f.url+tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status == 200 {
				var echo struct {
					Body   string
					Length int64
				}
				if err := json.Unmarshal([]byte(r.body), &echo); err != nil || echo.Body != tc.body || echo.Length != int64(len(tc.body)) {
					t.Fatalf("backend got %+v (%v), want the body %q intact", echo, err, tc.body)
				}
				return
			}
			if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" && slicesContains(tc.headers, "http://ok.test") {
				t.Errorf("a validation error lacks the CORS headers: %v", r.header)
			}
			e := decodeError(t, r)
			if tc.message != "" && e.Message != tc.message {
				t.Errorf("message %q, want %q", e.Message, tc.message)
			}
			var fields []string
			for _, fe := range e.Errors {
				fields = append(fields, fe.Field)
				if fe.Error == "" {
					t.Errorf("error for %s has no text", fe.Field)
				}
			}
			if tc.fields != nil && strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %q, want %q (%s)", fields, tc.fields, r.body)
			}
			if tc.errSubstr != "" && (len(e.Errors) == 0 || !strings.Contains(e.Errors[0].Error, tc.errSubstr)) {
				t.Errorf("errors %+v, want %q in the first", e.Errors, tc.errSubstr)
			}
		})
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

const integrationYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://ok.test"]}
    request_headers:
      X-Origin: gateway
      X-Env: prod
    response_headers:
      set: {X-Frame-Options: DENY, X-Gateway-Request: "${context.requestId}"}
      remove: [Server]
    routes:
      - path: "/v1/items/{id}"
        methods: [GET]
        integration: {url: "%BACKEND%/base", path: "/items/{id}"}
      - path: "/v1/users/{user}/orders/{order}"
        methods: [GET]
        integration: {url: "%BACKEND%", path: "/orders/{order}.json/{user}"}
      - path: "/v1/things"
        methods: [GET]
        integration: {url: "%BACKEND%", strip_prefix: /v1}
      - path: "/v1/things/{id}"
        methods: [GET]
        integration: {url: "%BACKEND%/api", strip_prefix: /v1/things}
        request_headers: {X-Env: staging, X-Route: things}
        response_headers:
          set: {X-Frame-Options: SAMEORIGIN}
          remove: [X-Powered-By]
      - path: /slow
        methods: [GET]
        integration: {url: "%BACKEND%", timeout: 200ms}
      - path: /ws
        methods: [GET]
        integration: {url: "%BACKEND%", timeout: 300ms}
      - path: /ws-stuck
        methods: [GET]
        integration: {url: "%BACKEND%", path: /slow, timeout: 300ms}
`

func TestIntegrationPathsAndHeaders(t *testing.T) {
	f, _ := edgeFixture(t, integrationYAML, nil)
	for _, tc := range []struct {
		path, wantURI string
		wantHeader    map[string]string // request headers the backend must see ("" = absent)
		wantResponse  map[string]string // response headers the client must see ("" = absent)
	}{
		{"/v1/items/42?x=1", "/base/items/42?x=1",
			map[string]string{"X-Origin": "gateway", "X-Env": "prod", "X-Route": "client"}, // another route's mapping does not apply here
			map[string]string{"X-Frame-Options": "DENY", "Server": "", "X-Powered-By": "php"}},
		{"/v1/items/a%20b", "/base/items/a%20b", nil, nil},
		{"/v1/users/u1/orders/o-9", "/orders/o-9.json/u1", nil, nil},
		{"/v1/things", "/things", nil, nil},
		{"/v1/things/7", "/api/7",
			map[string]string{"X-Origin": "gateway", "X-Env": "staging", "X-Route": "things"},
			map[string]string{"X-Frame-Options": "SAMEORIGIN", "Server": "", "X-Powered-By": ""}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := send(t, "GET", f.url+tc.path, "", "X-Env", "client", "X-Route", "client")
			if r.status != 200 {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			var echo struct {
				URI    string
				Header http.Header
			}
			if err := json.Unmarshal([]byte(r.body), &echo); err != nil {
				t.Fatal(err)
			}
			if echo.URI != tc.wantURI {
				t.Errorf("backend got %s, want %s", echo.URI, tc.wantURI)
			}
			for k, v := range tc.wantHeader {
				if got := strings.Join(echo.Header.Values(k), ","); got != v {
					t.Errorf("backend header %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.wantResponse {
				if got := strings.Join(r.header.Values(k), ","); got != v {
					t.Errorf("response header %s = %q, want %q", k, got, v)
				}
			}
			if got := r.header.Get("X-Gateway-Request"); got == "" || got != r.header.Get(RequestIDHeader) {
				t.Errorf("X-Gateway-Request %q, want the request id %q", got, r.header.Get(RequestIDHeader))
			}
		})
	}

	t.Run("timeout is 504 INTEGRATION_TIMEOUT", func(t *testing.T) {
		start := time.Now()
		r := send(t, "GET", f.url+"/slow", "", "Origin", "http://ok.test")
		wantJSON(t, r, 504, "Endpoint request timed out")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %s; the route's timeout is 200ms", d)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" {
			t.Fatalf("504 without CORS headers: %v", r.header)
		}
	})
}

// A WebSocket passes through the gateway, outlives the route's timeout (which bounds only the
// handshake), and its handshake is subject to CORS like any request.
func TestWebSocketPassesThrough(t *testing.T) {
	f, _ := edgeFixture(t, integrationYAML, nil)
	wsURL := "ws" + strings.TrimPrefix(f.url, "http") + "/ws"

	cfg, err := websocket.NewConfig(wsURL, "http://ok.test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, msg := range []string{"hello", "after the route timeout"} {
		if i == 1 {
			time.Sleep(600 * time.Millisecond) // twice the route's 300ms timeout
		}
		if err := websocket.Message.Send(c, msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil || got != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}

	// A disallowed origin's handshake is refused before it reaches the backend.
	bad, err := websocket.NewConfig(wsURL, "http://evil.test")
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := websocket.DialConfig(bad); err == nil {
		c2.Close()
		t.Fatal("a handshake from a disallowed origin succeeded")
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://evil.test\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 {
		t.Fatalf("handshake from a disallowed origin: %d, want 403", res.StatusCode)
	}

	// A backend that never answers the handshake: 504 once the route's timeout is up.
	start := time.Now()
	r := send(t, "GET", f.url+"/ws-stuck", "", "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version", "13", "Origin", "http://ok.test")
	wantJSON(t, r, 504, "Endpoint request timed out")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a stuck handshake took %s; the route's timeout is 300ms", d)
	}
}

const responsesYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {mode: %MODE%, allow_origins: ["http://ok.test"], expose_headers: [Retry-After]}
    max_header_bytes: 4096
    authorizers: [{name: idp, issuer: "https://idp.test/", audiences: [a], jwks_file: "%DIR%/jwks.json"}]
    gateway_responses:
      THROTTLED:
        status: 503
        body: {error: {code: slow_down, request: "${context.requestId}", type: "${context.error.type}"}}
        headers: {X-Throttled: "yes", Cache-Control: no-store}
      DEFAULT_4XX:
        body: {error: "${context.error.message}", id: "${context.requestId}"}
      CORS_REJECTED:
        body: "origin refused (${context.error.message})"
        headers: {Content-Type: text/plain}
    routes:
      - {path: /limited, methods: [GET], throttle: [{rate: 0.001, burst: 1}], integration: {url: "%BACKEND%"}}
      - {path: /private, methods: [GET], authorizer: idp, integration: {url: "%BACKEND%"}}
      - {path: /items, methods: [GET], integration: {url: "%BACKEND%"}}
`

func TestGatewayResponses(t *testing.T) {
	es := newSigner(t, "ES256", "ec1")
	files := map[string]string{"jwks.json": string(jwksJSON(es))}
	f, _ := edgeFixture(t, strings.ReplaceAll(responsesYAML, "%MODE%", "enforce"), files)

	// THROTTLED: its own status, body template and headers.
	send(t, "GET", f.url+"/limited", "")
	r := send(t, "GET", f.url+"/limited", "", "Origin", "http://ok.test")
	if r.status != 503 || r.header.Get("X-Throttled") != "yes" || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled: %d %v %s", r.status, r.header, r.body)
	}
	var th struct {
		Error struct{ Code, Request, Type string }
	}
	if err := json.Unmarshal([]byte(r.body), &th); err != nil || th.Error.Code != "slow_down" ||
		th.Error.Request != r.header.Get(RequestIDHeader) || th.Error.Type != "THROTTLED" {
		t.Fatalf("throttled body %s (%v)", r.body, err)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" {
		t.Fatalf("throttled response without CORS headers: %v", r.header)
	}

	// DEFAULT_4XX: the body of every 4xx without its own entry; each keeps its status.
	for _, tc := range []struct {
		path    string
		headers []string
		status  int
		message string
	}{
		{"/nothing", nil, 404, "Not Found"},
		{"/private", nil, 401, "Unauthorized"},
		{"/items/../x", nil, 400, "Bad Request"},
		{"/items", []string{"X-Big", strings.Repeat("b", 5000)}, 431, "Request Header Fields Too Large"},
	} {
		r := send(t, "GET", f.url+tc.path, "", append([]string{"Origin", "http://ok.test"}, tc.headers...)...)
		var d struct{ Error, ID string }
		if r.status != tc.status || json.Unmarshal([]byte(r.body), &d) != nil || d.Error != tc.message || d.ID != r.header.Get(RequestIDHeader) {
			t.Errorf("%s: %d %s, want %d with DEFAULT_4XX's body", tc.path, r.status, r.body, tc.status)
		}
		if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" {
			t.Errorf("%s: %d without CORS headers for an allowed origin", tc.path, r.status)
		}
	}
	r = send(t, "POST", f.url+"/items", "")
	if r.status != 405 || r.header.Get("Allow") != "GET, HEAD" && r.header.Get("Allow") != "GET" {
		t.Errorf("405: %d Allow %q", r.status, r.header.Get("Allow"))
	}

	// CORS_REJECTED: a string body, sent as it is, with its own Content-Type.
	r = send(t, "GET", f.url+"/items", "", "Origin", "http://evil.test")
	if r.status != 403 || r.body != "origin refused (CORS: origin not allowed)" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("CORS rejection: %d %q %v", r.status, r.body, r.header)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a refused origin got Access-Control-Allow-Origin")
	}

	// standard mode: a disallowed origin's requests pass, and its errors carry no CORS headers.
	fs, _ := edgeFixture(t, strings.ReplaceAll(responsesYAML, "%MODE%", "standard"), files)
	send(t, "GET", fs.url+"/limited", "")
	for _, tc := range []struct {
		path   string
		status int
	}{{"/limited", 503}, {"/private", 401}, {"/nothing", 404}} {
		for _, origin := range []string{"http://ok.test", "http://evil.test"} {
			r := send(t, "GET", fs.url+tc.path, "", "Origin", origin)
			got := r.header.Get("Access-Control-Allow-Origin")
			if r.status != tc.status || (origin == "http://ok.test") != (got == origin) || (origin != "http://ok.test" && got != "") {
				t.Errorf("%s from %s: %d, Access-Control-Allow-Origin %q", tc.path, origin, r.status, got)
			}
		}
	}
}

// Without gateway_responses every error keeps the documented {"message": …} body.
func TestGatewayResponsesDefaults(t *testing.T) {
	f, _ := edgeFixture(t, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    cors: {allow_origins: ["http://ok.test"]}
    max_header_bytes: 2048
    routes: [{path: /items, methods: [GET], integration: {url: "%BACKEND%"}}]
`, nil)
	wantJSON(t, send(t, "GET", f.url+"/x", ""), 404, "Not Found")
	wantJSON(t, send(t, "GET", f.url+"/items", "", "Origin", "http://evil.test"), 403, "CORS: origin not allowed")
	r := send(t, "GET", f.url+"/items", "", "Origin", "http://ok.test", "X-Big", strings.Repeat("b", 2100))
	wantJSON(t, r, 431, "Request Header Fields Too Large")
	if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" {
		t.Fatalf("431 without CORS headers")
	}
	// Just under the configured limit passes.
	if r := send(t, "GET", f.url+"/items", "", "X-Big", strings.Repeat("b", 1500)); r.status != 200 {
		t.Fatalf("headers under the limit: %d %s", r.status, r.body)
	}
}

func TestAPIKeyFileReload(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeKeys(t, dir, map[string]string{"acme": keyAcme})
	backend := echoBackend(t)
	gc := parseGateway(t, dir, backend.URL, `
secrets: {api-keys: {file: "%DIR%/api-keys.json"}}
gateways:
  - name: api
    listen: 127.0.0.1:0
    api_keys: {secret: api-keys, required: true}
    usage_plans: [{name: gold, keys: [acme, globex]}]
    routes: [{path: /items, methods: [GET], integration: {url: "%BACKEND%"}}]
`)
	logs := &syncBuffer{}
	gw, err := New(gc, nil, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })
	const keyGlobex = "k_live_globex_0123456789abcdef"
	status := func(key string) int { return send(t, "GET", srv.URL+"/items", "", "X-Api-Key", key).status }
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s\n%s", what, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if status(keyAcme) != 200 || status(keyGlobex) != 403 {
		t.Fatal("initial keys")
	}

	// Replace the file atomically, as a deploy tool would: globex in, acme revoked.
	writeAtomic := func(content string) {
		tmp := keyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keyFile); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(fmt.Sprintf(`{"keys": [{"id": "acme", "value": %q, "enabled": false}, {"id": "globex", "value": %q}]}`, keyAcme, keyGlobex))
	eventually("the new key file is used", func() bool { return status(keyGlobex) == 200 && status(keyAcme) == 403 })

	// A broken file keeps the keys in use, and says so.
	writeAtomic(`{"keys": [`)
	eventually("the bad file is reported", func() bool { return strings.Contains(logs.String(), "previous keys stay in use") })
	if status(keyGlobex) != 200 {
		t.Fatal("a bad key file dropped the keys in use")
	}
	if strings.Contains(logs.String(), keyGlobex) || strings.Contains(logs.String(), keyAcme) {
		t.Fatal("a key value reached the log")
	}
	// Edited in place works too.
	if err := os.WriteFile(keyFile, []byte(fmt.Sprintf(`{"keys": [{"id": "acme", "value": %q}]}`, keyAcme)), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually("an in-place edit is used", func() bool { return status(keyAcme) == 200 && status(keyGlobex) == 403 })
}

// The web ACL runs before CORS; its blocks still carry the CORS headers of an allowed origin,
// follow gateway_responses (WAF_BLOCKED), and a rule's own custom response is sent as configured.
func TestWAFBlockedResponse(t *testing.T) {
	backend := echoBackend(t)
	sqli := config.Statement{SQLiMatch: &config.InjectionMatchStatement{FieldToMatch: config.FieldToMatch{AllQueryArguments: &config.MatchScope{MatchScope: "VALUE"}}}}
	acl, err := waf.New(config.WebACL{Name: "edge", DefaultAction: config.ActionAllow,
		CustomResponses: map[string]config.CustomResponse{"teapot": {Status: 418, ContentType: "text/plain", Body: "no"}},
		Rules: []config.WAFRule{
			{Name: "custom", Priority: 1, Action: config.ActionBlock, CustomResponse: "teapot",
				Statement: config.Statement{ByteMatch: &config.ByteMatchStatement{FieldToMatch: &config.FieldToMatch{URIPath: &config.Whole{}}, PositionalConstraint: "EXACTLY", SearchString: "/teapot"}}},
			{Name: "no-sqli", Priority: 2, Action: config.ActionBlock, Statement: sqli},
		}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, override := range []bool{false, true} {
		gc := config.Gateway{
			Name:   "g",
			CORS:   config.CORS{Mode: config.CORSEnforce, AllowOrigins: []string{"http://ok.test"}, AllowMethods: []string{"GET"}},
			Routes: []config.Route{{Path: "/items", Methods: []string{"GET"}, Integration: config.Integration{URL: backend.URL}}, {Path: "/teapot", Methods: []string{"GET"}, Integration: config.Integration{URL: backend.URL}}},
		}
		if override {
			gc.GatewayResponses = map[string]config.GatewayResponse{config.RespWAFBlocked: {Status: 406, Body: config.JSONValue{JSON: []byte(`{"blocked":"${context.requestId}"}`)}}}
		}
		gw, err := New(gc, nil, nil, WithWebACL(acl))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gw)
		sqlURL := srv.URL + "/items?id=1%27%20OR%20%271%27%3D%271"
		r := send(t, "GET", sqlURL, "", "Origin", "http://ok.test")
		if r.header.Get("Access-Control-Allow-Origin") != "http://ok.test" {
			t.Errorf("override=%v: WAF block without CORS headers for an allowed origin: %v", override, r.header)
		}
		if override {
			if r.status != 406 || r.body != `{"blocked":"`+r.header.Get(RequestIDHeader)+`"}` {
				t.Errorf("WAF_BLOCKED override: %d %s", r.status, r.body)
			}
		} else {
			wantJSON(t, r, 403, "Forbidden")
		}
		if r := send(t, "GET", sqlURL, "", "Origin", "http://evil.test"); r.header.Get("Access-Control-Allow-Origin") != "" || r.status < 400 {
			t.Errorf("WAF block for a disallowed origin: %d %v", r.status, r.header)
		}
		if r := send(t, "GET", srv.URL+"/teapot", "", "Origin", "http://ok.test"); r.status != 418 || r.body != "no" {
			t.Errorf("a rule's custom response became %d %q", r.status, r.body)
		}
		if r := send(t, "GET", srv.URL+"/items?id=42", "", "Origin", "http://ok.test"); r.status != 200 {
			t.Errorf("allowed request: %d", r.status)
		}
		srv.Close()
		gw.Close()
	}
}

// Every type gateway_responses accepts is one the gateway produces, and the other way round.
func TestResponseTypesMatchConfig(t *testing.T) {
	for _, name := range config.GatewayResponseTypes {
		if _, ok := responseDefaults[name]; !ok && name != config.RespDefault4XX && name != config.RespDefault5XX {
			t.Errorf("config accepts %s, which the gateway never produces", name)
		}
	}
	for name := range responseDefaults {
		if !slicesContains(config.GatewayResponseTypes, name) {
			t.Errorf("the gateway produces %s, which gateway_responses cannot override", name)
		}
	}
}

// The header size the gateway counts is the size of the request as sent: one byte under the
// limit passes, one byte over is refused.
func TestHeaderBytesExact(t *testing.T) {
	r := httptest.NewRequest("GET", "http://h.test/items?x=1", nil)
	r.Header.Set("X-A", "bbb")
	want := len("GET /items?x=1 HTTP/1.1\r\n") + len("Host: h.test\r\n") + len("X-A: bbb\r\n") + len("\r\n")
	r.RequestURI = "/items?x=1"
	if got := headerBytes(r); got != want {
		t.Fatalf("headerBytes %d, want %d", got, want)
	}
	for _, tc := range []struct {
		limit int
		pass  bool
	}{{want, true}, {want - 1, false}} {
		g := &Gateway{maxHeaderBytes: tc.limit, responses: compileResponses(nil)}
		w := httptest.NewRecorder()
		g.limitHeaders(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
		if (w.Code == 200) != tc.pass {
			t.Errorf("limit %d: status %d", tc.limit, w.Code)
		}
	}
}

// The access line says which gateway response answered, so a 403 of CORS and one of an API key
// can be told apart.
func TestAccessLogGatewayResponse(t *testing.T) {
	f, logs := edgeFixture(t, validationYAML, map[string]string{"schema.json": `{"type": "object"}`})
	r := send(t, "POST", f.url+"/items?dry_run=1", `{}`, "X-Tenant", "a", "Content-Type", "application/json")
	if r.status != 400 {
		t.Fatalf("status %d", r.status)
	}
	line := accessLine(t, logs, r.header.Get(RequestIDHeader))
	if line["gateway_response"] != "BAD_REQUEST_BODY" {
		t.Fatalf("access line %v", line)
	}
	r = send(t, "GET", f.url+"/nothing", "")
	if line := accessLine(t, logs, r.header.Get(RequestIDHeader)); line["gateway_response"] != "MISSING_ROUTE" {
		t.Fatalf("access line %v", line)
	}
}

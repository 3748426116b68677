package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeBackend records calls and answers as configured.
type fakeBackend struct {
	ready     bool
	reloadErr error
	targets   map[string]bool // "lb/group/addr"
}

type msgErr struct{ lines []string }

func (e msgErr) Error() string      { return strings.Join(e.lines, "\n") }
func (e msgErr) Messages() []string { return e.lines }

func (f *fakeBackend) Ready() (bool, []string) {
	if f.ready {
		return true, nil
	}
	return false, []string{"listeners"}
}
func (f *fakeBackend) Config() map[string]any {
	return map[string]any{"admin": map[string]any{"token": "[REDACTED]"}}
}
func (f *fakeBackend) Targets() []LoadBalancer {
	return []LoadBalancer{{Name: "alb", Groups: []TargetGroup{{Name: "items", Targets: []Target{{Address: "10.0.0.1:80", Weight: 1, State: "healthy", Healthy: true}}}}}}
}
func (f *fakeBackend) Register(lb, group, addr string, weight int) error {
	switch {
	case lb != "alb" || group != "items":
		return Errorf(ErrNotFound, "no group %s/%s", lb, group)
	case f.targets[addr]:
		return Errorf(ErrConflict, "%s is registered", addr)
	case weight > 999:
		return Errorf(ErrInvalid, "weight %d", weight)
	}
	f.targets[addr] = true
	return nil
}
func (f *fakeBackend) Deregister(lb, group, addr string) error {
	if !f.targets[addr] {
		return Errorf(ErrNotFound, "%s is not registered", addr)
	}
	delete(f.targets, addr)
	return nil
}
func (f *fakeBackend) Reload(ctx context.Context) (ReloadResult, error) {
	if f.reloadErr != nil {
		return ReloadResult{Message: "embedded"}, f.reloadErr
	}
	return ReloadResult{Reloaded: true, ConfigHash: "abc", Reloads: 1}, nil
}
func (f *fakeBackend) State() State { return State{Version: "v9", Ready: f.ready} }

func serveAPI(t *testing.T, b Backend, token string) string {
	t.Helper()
	srv := httptest.NewServer(API(b, "v9", token, New("v9")))
	t.Cleanup(srv.Close)
	return srv.URL
}

func call(t *testing.T, method, url, body string, headers ...string) (int, string, http.Header) {
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
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestAPIEndpoints(t *testing.T) {
	b := &fakeBackend{ready: true, targets: map[string]bool{}}
	url := serveAPI(t, b, "")
	tests := []struct {
		method, path, body string
		headers            []string
		want               int
		wantBody           string
	}{
		{"GET", "/healthz", "", nil, 200, `"status":"ok"`},
		{"GET", "/readyz", "", nil, 200, `"ready"`},
		{"GET", "/version", "", nil, 200, `"version":"v9"`},
		{"GET", "/config", "", nil, 200, `[REDACTED]`},
		{"GET", "/targets", "", nil, 200, `"address":"10.0.0.1:80"`},
		{"POST", "/targets/alb/items", `{"address":"10.0.0.2:80","weight":2}`, nil, 201, `"registered":"10.0.0.2:80"`},
		{"POST", "/targets/alb/items", `{"address":"10.0.0.2:80"}`, nil, 409, `is registered`},
		{"POST", "/targets/alb/nope", `{"address":"10.0.0.3:80"}`, nil, 404, `no group`},
		{"POST", "/targets/alb/items", `{"address":"10.0.0.3:80","weight":1000}`, nil, 400, `weight`},
		{"POST", "/targets/alb/items", `{"addr":"x"}`, nil, 400, `"hint"`},
		{"DELETE", "/targets/alb/items/10.0.0.2:80", "", nil, 202, `"draining":"10.0.0.2:80"`},
		{"DELETE", "/targets/alb/items/10.0.0.2:80", "", nil, 404, `not registered`},
		{"POST", "/reload", "", nil, 200, `"reloaded":true`},
		{"GET", "/api/state", "", nil, 200, `"version":"v9"`},
		{"GET", "/", "", nil, 200, `<title>Rampart dashboard</title>`},
		{"GET", "/nothing", "", nil, 404, ``},
		// A web page elsewhere cannot write to a loopback admin listener, nor read it by a name
		// that resolves to it (DNS rebinding).
		{"POST", "/reload", "", []string{"Origin", "https://evil.example"}, 403, `cross-origin`},
		{"GET", "/config", "", []string{"Host", "evil.example:9900"}, 403, `by its address`},
		{"GET", "/config", "", []string{"Host", "localhost:9900"}, 200, ``},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, body, _ := call(t, tt.method, url+tt.path, tt.body, tt.headers...)
			if code != tt.want || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("%s %s: %d %s; want %d with %q", tt.method, tt.path, code, body, tt.want, tt.wantBody)
			}
		})
	}
}

func TestAPIReloadRejected(t *testing.T) {
	b := &fakeBackend{ready: false, reloadErr: msgErr{[]string{"rampart.yaml:3:5: gateways[0].listen: bad"}}}
	url := serveAPI(t, b, "")
	code, body, _ := call(t, "POST", url+"/reload", "")
	var got struct {
		Reloaded bool     `json:"reloaded"`
		Errors   []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 422 || got.Reloaded || len(got.Errors) != 1 || !strings.HasPrefix(got.Errors[0], "rampart.yaml:3:5:") {
		t.Fatalf("rejected reload: %d %s", code, body)
	}
	b.reloadErr = errors.Join(ErrNotReloadable, errors.New("embedded default"))
	if code, body, _ := call(t, "POST", url+"/reload", ""); code != 200 || !strings.Contains(body, `"reloaded":false`) {
		t.Fatalf("reload of the embedded default: %d %s", code, body)
	}
	if code, body, _ := call(t, "GET", url+"/readyz", ""); code != 503 || !strings.Contains(body, "listeners") {
		t.Fatalf("readyz before ready: %d %s", code, body)
	}
}

func TestAPIToken(t *testing.T) {
	const token = "0123456789abcdef0123"
	url := serveAPI(t, &fakeBackend{ready: true, targets: map[string]bool{}}, token)
	for _, path := range []string{"/config", "/targets", "/api/state", "/version", "/keyrings-or-anything"} {
		code, _, h := call(t, "GET", url+path, "")
		if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s without the token: %d", path, code)
		}
		if code, _, _ := call(t, "GET", url+path, "", "Authorization", "Bearer wrong-token-wrong-token"); code != 401 {
			t.Errorf("GET %s with a wrong token: %d", path, code)
		}
	}
	if code, _, _ := call(t, "POST", url+"/reload", ""); code != 401 {
		t.Errorf("POST /reload without the token: %d", code)
	}
	if code, body, _ := call(t, "GET", url+"/config", "", "Authorization", "Bearer "+token); code != 200 {
		t.Errorf("GET /config with the token: %d %s", code, body)
	}
	// With a token, a name is fine: the token is what protects the API.
	if code, _, _ := call(t, "GET", url+"/version", "", "Authorization", "Bearer "+token, "Host", "admin.internal:9900"); code != 200 {
		t.Errorf("GET /version by name with the token: %d", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		if code, _, _ := call(t, "GET", url+path, ""); code != 200 {
			t.Errorf("GET %s needs no token, got %d", path, code)
		}
	}
}

func TestDashboardHeaders(t *testing.T) {
	url := serveAPI(t, &fakeBackend{ready: true}, "")
	code, body, h := call(t, "GET", url+"/", "")
	if code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "connect-src 'self'") || h.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("dashboard: %d %v", code, h)
	}
	// Offline: nothing is loaded from elsewhere.
	for _, bad := range []string{"https://", "http://", "src=\"//"} {
		if i := strings.Index(body, bad); i >= 0 && !strings.Contains(body[i:i+40], "www.w3.org/2000/svg") {
			t.Errorf("the dashboard references %q: %s", bad, body[i:i+60])
		}
	}
}

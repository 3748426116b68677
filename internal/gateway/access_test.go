package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// accessFixture is a gateway built from YAML through the real config loader, served over a real
// socket, in front of a recording backend.
type accessFixture struct {
	t       *testing.T
	url     string
	gw      *Gateway
	backend *recorder
	logs    *syncBuffer
	dir     string
}

// gatewayYAML fills the %BACKEND% and %DIR% placeholders of a one-gateway config.
func parseGateway(t testing.TB, dir, backend, yaml string) config.Gateway {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "%BACKEND%", backend)
	yaml = strings.ReplaceAll(yaml, "%DIR%", dir)
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg.Gateways[0]
}

func newAccessFixture(t *testing.T, yaml string) *accessFixture {
	t.Helper()
	f := &accessFixture{t: t, backend: &recorder{}, logs: &syncBuffer{}, dir: t.TempDir()}
	bs := httptest.NewServer(f.backend)
	t.Cleanup(bs.Close)
	f.start(parseGateway(t, f.dir, bs.URL, yaml))
	return f
}

// start serves another gateway built from gc (a replica, or the same gateway after a restart).
func (f *accessFixture) start(gc config.Gateway) *accessFixture {
	f.t.Helper()
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := New(gc, nil, logger)
	if err != nil {
		f.t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	f.t.Cleanup(func() { srv.Close(); gw.Close() })
	f.url, f.gw = srv.URL, gw
	return f
}

type reply_ struct {
	status int
	header http.Header
	body   string
}

func (f *accessFixture) do(method, path string, headers ...string) reply_ {
	return doFrom(f.t, nil, method, f.url+path, headers...)
}

// doFrom sends one request, from a given local address when local is set.
func doFrom(t *testing.T, local net.Addr, method, url string, headers ...string) reply_ {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	tr := &http.Transport{DisableKeepAlives: true}
	if local != nil {
		tr.DialContext = (&net.Dialer{LocalAddr: local}).DialContext
	}
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply_{res.StatusCode, res.Header, string(b)}
}

func wantJSON(t *testing.T, r reply_, status int, message string) {
	t.Helper()
	var body struct{ Message string }
	if r.status != status || json.Unmarshal([]byte(r.body), &body) != nil || body.Message != message {
		t.Fatalf("got %d %q, want %d {\"message\":%q}", r.status, r.body, status, message)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

const throttleYAML = `
gateways:
  - name: api
    listen: 127.0.0.1:0
    throttle: [{rate: 0.001, burst: 3}]
    routes:
      - {path: /a, methods: [GET], integration: {url: "%BACKEND%"}}
      - {path: /b, methods: [GET], integration: {url: "%BACKEND%"}, throttle: [{rate: 0.001, burst: 1}]}
`

func TestThrottleGatewayLevel(t *testing.T) {
	f := newAccessFixture(t, throttleYAML)
	for i := range 3 {
		r := f.do("GET", "/a")
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "3" || r.header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d limit %q remaining %q", i, r.status, r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
		}
	}
	r := f.do("GET", "/a")
	wantJSON(t, r, 429, "Too Many Requests")
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" || r.header.Get(RequestIDHeader) == "" {
		t.Fatalf("429 headers: %v", r.header)
	}
	if n := len(f.backend.all()); n != 3 {
		t.Fatalf("backend saw %d requests, want 3", n)
	}
}

func TestThrottleRouteLevel(t *testing.T) {
	f := newAccessFixture(t, strings.Replace(throttleYAML, "burst: 3", "burst: 100", 1))
	if r := f.do("GET", "/b"); r.status != 200 || r.header.Get("RateLimit-Limit") != "1" {
		t.Fatalf("first /b: %d, RateLimit-Limit %q (the route's bucket is the tighter one)", r.status, r.header.Get("RateLimit-Limit"))
	}
	wantJSON(t, f.do("GET", "/b"), 429, "Too Many Requests")
	if r := f.do("GET", "/a"); r.status != 200 {
		t.Fatalf("/a throttled by /b's bucket: %d", r.status)
	}
}

func TestThrottleClientKeys(t *testing.T) {
	f := newAccessFixture(t, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    routes:
      - {path: /ip, methods: [GET], integration: {url: "%BACKEND%"}, throttle: [{key: source_ip, rate: 0.001, burst: 1}]}
      - {path: /h, methods: [GET], integration: {url: "%BACKEND%"}, throttle: [{key: "header:X-Tenant", rate: 0.001, burst: 1}]}
`)
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	b := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if r := doFrom(t, a, "GET", f.url+"/ip"); r.status != 200 {
		t.Fatalf("first from 127.0.0.1: %d", r.status)
	}
	if r := doFrom(t, a, "GET", f.url+"/ip"); r.status != 429 {
		t.Fatalf("second from 127.0.0.1: %d", r.status)
	}
	if r := doFrom(t, b, "GET", f.url+"/ip"); r.status != 200 {
		t.Fatalf("first from 127.0.0.2: %d, want its own bucket", r.status)
	}

	for _, tc := range []struct {
		tenant []string
		want   int
	}{
		{[]string{"X-Tenant", "acme"}, 200},
		{[]string{"X-Tenant", "acme"}, 429},
		{[]string{"X-Tenant", "globex"}, 200},
		{nil, 200}, // no header: the shared bucket of requests without one
		{nil, 429},
		{[]string{"X-Tenant", ""}, 429}, // an empty value is no key either
	} {
		if r := f.do("GET", "/h", tc.tenant...); r.status != tc.want {
			t.Fatalf("%v: %d, want %d", tc.tenant, r.status, tc.want)
		}
	}
}

// Two gateway handlers on one Redis admit the configured limit together, not twice it.
func TestThrottleRedisSharedByReplicas(t *testing.T) {
	srv := redistest.Start(t)
	yaml := fmt.Sprintf(`
gateways:
  - name: api
    listen: 127.0.0.1:0
    rate_limit_store: "%s"
    on_store_error: deny
    throttle: [{rate: 0.001, burst: 10}]
    routes:
      - {path: /a, methods: [GET], integration: {url: "%%BACKEND%%"}}
`, srv.URL())
	f := newAccessFixture(t, yaml)
	first := f.url
	second := f.start(f.gwConfig(yaml)).url
	admitted := 0
	for i := range 30 {
		u := first
		if i%2 == 1 {
			u = second
		}
		r := doFrom(t, nil, "GET", u+"/a")
		switch r.status {
		case 200:
			admitted++
		case 429:
		default:
			t.Fatalf("status %d", r.status)
		}
	}
	if admitted != 10 {
		t.Fatalf("two replicas admitted %d, want 10 (one shared bucket)", admitted)
	}
	if n := len(f.backend.all()); n != 10 {
		t.Fatalf("backend saw %d", n)
	}
}

func (f *accessFixture) gwConfig(yaml string) config.Gateway {
	bs := httptest.NewServer(f.backend)
	f.t.Cleanup(bs.Close)
	return parseGateway(f.t, f.dir, bs.URL, yaml)
}

// on_store_error decides while Redis is down, and throttling comes back with Redis.
func TestThrottleOnStoreError(t *testing.T) {
	for _, policy := range []string{"allow", "deny"} {
		t.Run(policy, func(t *testing.T) {
			srv := redistest.Start(t)
			f := newAccessFixture(t, fmt.Sprintf(`
gateways:
  - name: api
    listen: 127.0.0.1:0
    rate_limit_store: "%s"
    on_store_error: %s
    throttle: [{rate: 0.001, burst: 2}]
    routes:
      - {path: /a, methods: [GET], integration: {url: "%%BACKEND%%"}}
`, srv.URL(), policy))
			if r := f.do("GET", "/a"); r.status != 200 || r.header.Get("RateLimit-Remaining") != "1" {
				t.Fatalf("with Redis: %d %v", r.status, r.header)
			}
			srv.Stop()
			r := f.do("GET", "/a")
			if policy == "allow" {
				if r.status != 200 || r.header.Get("RateLimit-Limit") != "" {
					t.Fatalf("allow, Redis down: %d %v, want 200 without RateLimit headers", r.status, r.header)
				}
			} else {
				wantJSON(t, r, 503, "Service Unavailable")
				if r.header.Get("Retry-After") == "" {
					t.Fatal("503 without Retry-After")
				}
			}
			if !strings.Contains(f.logs.String(), "rate limit store failed") {
				t.Fatal("store failure not logged")
			}
			srv.Restart() // empty: a fresh bucket
			for i, want := range []int{200, 200, 429} {
				if r := f.do("GET", "/a"); r.status != want {
					t.Fatalf("Redis back, request %d: %d, want %d", i, r.status, want)
				}
			}
		})
	}
}

// writeKeys writes an API key file and returns its path.
func writeKeys(t testing.TB, dir string, keys map[string]string) string {
	t.Helper()
	type k struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	}
	var f struct {
		Keys []k `json:"keys"`
	}
	for id, v := range keys {
		f.Keys = append(f.Keys, k{id, v})
	}
	b, _ := json.Marshal(f)
	path := filepath.Join(dir, "api-keys.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	keyAcme   = "acme-0123456789abcdefghij"
	keyGlobex = "globex-0123456789abcdefghij"
)

const keysYAML = `
secrets:
  api-keys: {file: "%DIR%/api-keys.json"}
gateways:
  - name: api
    listen: 127.0.0.1:0
    rate_limit_store: %STORE%
    on_store_error: deny
    api_keys: {secret: api-keys, required: true, quota_file: "%DIR%/quota.json"}
    request_headers:
      X-Key-Id: "${context.identity.apiKeyId}"
      X-Seen-Key: "${request.header.X-Api-Key}"
    usage_plans:
      - {name: gold, keys: [acme], throttle: {rate: 1000, burst: 1000}, quota: {limit: 3, period: day}}
      - {name: bronze, keys: [globex], throttle: {rate: 0.001, burst: 1}}
    routes:
      - {path: /a, methods: [GET], integration: {url: "%BACKEND%"}}
      - {path: /open, methods: [GET], api_key_required: false, integration: {url: "%BACKEND%"}, throttle: [{key: api_key, rate: 0.001, burst: 1}]}
`

func newKeysFixture(t *testing.T, store string) (*accessFixture, string) {
	t.Helper()
	dir := t.TempDir()
	writeKeys(t, dir, map[string]string{"acme": keyAcme, "globex": keyGlobex, "orphan": "orphan-0123456789abcdefghij"})
	yaml := strings.ReplaceAll(strings.ReplaceAll(keysYAML, "%STORE%", store), "%DIR%", dir)
	return newAccessFixture(t, yaml), yaml
}

func TestAPIKeys(t *testing.T) {
	f, _ := newKeysFixture(t, "memory")
	for _, tc := range []struct {
		name    string
		headers []string
	}{
		{"missing", nil},
		{"unknown", []string{"X-Api-Key", "nope-0123456789abcdefghij"}},
		{"in no plan", []string{"X-Api-Key", "orphan-0123456789abcdefghij"}},
		{"two values", []string{"X-Api-Key", keyAcme, "X-Api-Key", keyAcme}},
		{"wrong header", []string{"X-Api-Token", keyAcme}},
	} {
		wantJSON(t, f.do("GET", "/a", tc.headers...), 403, "Forbidden")
	}
	if n := len(f.backend.all()); n != 0 {
		t.Fatalf("backend saw %d refused requests", n)
	}
	r := f.do("GET", "/a", "x-api-key", " "+keyAcme+" ")
	if r.status != 200 {
		t.Fatalf("valid key: %d %s", r.status, r.body)
	}
	got := f.backend.all()[0].Header
	if got.Get("X-Key-Id") != "acme" || got.Get("X-Api-Key") != "" || got.Get("X-Seen-Key") != "" {
		t.Fatalf("backend headers %v: want the key id, never the key", got)
	}
	if strings.Contains(f.logs.String(), keyAcme) || !strings.Contains(f.logs.String(), `"key_id":"orphan"`) {
		t.Fatalf("logs show a key value, or not the orphan's id:\n%s", f.logs)
	}
	// A route that does not require a key still identifies one for its api_key throttle.
	if r := f.do("GET", "/open"); r.status != 200 {
		t.Fatalf("/open without key: %d", r.status)
	}
	if r := f.do("GET", "/open", "X-Api-Key", keyGlobex); r.status != 200 {
		t.Fatalf("/open with globex: %d", r.status)
	}
	if r := f.do("GET", "/open", "X-Api-Key", keyGlobex); r.status != 429 {
		t.Fatalf("/open with globex again: %d, want its own bucket empty", r.status)
	}
}

func TestUsagePlanThrottleAndQuota(t *testing.T) {
	f, yaml := newKeysFixture(t, "memory")
	// bronze: a throttle of burst 1.
	if r := f.do("GET", "/a", "X-Api-Key", keyGlobex); r.status != 200 {
		t.Fatalf("globex: %d", r.status)
	}
	wantJSON(t, f.do("GET", "/a", "X-Api-Key", keyGlobex), 429, "Too Many Requests")
	// gold: a quota of 3 a day.
	for i := range 3 {
		if r := f.do("GET", "/a", "X-Api-Key", keyAcme); r.status != 200 {
			t.Fatalf("acme %d: %d", i, r.status)
		}
	}
	r := f.do("GET", "/a", "X-Api-Key", keyAcme)
	wantJSON(t, r, 429, "Limit Exceeded")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 86400 {
		t.Fatalf("quota Retry-After %q, want until midnight UTC", r.header.Get("Retry-After"))
	}
	// The count survives a restart: the file is written on Close.
	f.gw.Close()
	f.start(f.gwConfig(yaml))
	wantJSON(t, f.do("GET", "/a", "X-Api-Key", keyAcme), 429, "Limit Exceeded")
}

func TestUsagePlanQuotaRedis(t *testing.T) {
	srv := redistest.Start(t)
	f, yaml := newKeysFixture(t, `"`+srv.URL()+`"`)
	second := f.start(f.gwConfig(yaml)).url
	first := f.url
	ok := 0
	for i := range 6 {
		u := first
		if i%2 == 1 {
			u = second
		}
		if r := doFrom(t, nil, "GET", u+"/a", "X-Api-Key", keyAcme); r.status == 200 {
			ok++
		} else {
			wantJSON(t, r, 429, "Limit Exceeded")
		}
	}
	if ok != 3 {
		t.Fatalf("two replicas admitted %d on a quota of 3", ok)
	}
}

func TestClientKeyExtraction(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "192.0.2.7:1234"
	req.Header.Set("X-Tenant", "acme")
	id := &identity{key: &apiKey{id: "k1"}, claims: claims{"sub": "alice", "n": json.Number("42")}}
	for _, tc := range []struct {
		key, want string
	}{
		{"", "t|g|l||1/1|"},
		{"source_ip", "t|g|l|source_ip|1/1|192.0.2.7"},
		{"header:x-tenant", "t|g|l|header:x-tenant|1/1|acme"},
		{"header:X-Other", "t|g|l|header:X-Other|1/1|-"},
		{"api_key", "t|g|l|api_key|1/1|k1"},
		{"jwt:sub", "t|g|l|jwt:sub|1/1|alice"},
		{"jwt:n", "t|g|l|jwt:n|1/1|42"},
		{"jwt:missing", "t|g|l|jwt:missing|1/1|-"},
	} {
		open, ident := compileThrottles("g", "l", []config.Throttle{{Key: tc.key, Rate: 1, Burst: 1}})
		rules := append(open, ident...)
		if got := rules[0].clientKey(req, id); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.key, got, tc.want)
		}
	}
	if got := (&throttleRule{kind: keyAPIKey}).clientKey(req, &identity{}); got != "-" {
		t.Errorf("no key: %q", got)
	}
}

// TestClientKeyHashesLongHeader: a header-keyed throttle does not put a client's ~64 KB header
// value in a bucket name, and two long values still get two buckets.
func TestClientKeyHashesLongHeader(t *testing.T) {
	open, _ := compileThrottles("g", "l", []config.Throttle{{Key: "header:X-Tenant", Rate: 1, Burst: 1}})
	key := func(v string) string {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Tenant", v)
		return open[0].clientKey(req, &identity{})
	}
	long := strings.Repeat("a", 64<<10)
	k1, k2 := key(long), key(long[:len(long)-1]+"b")
	if len(k1) > len(open[0].prefix)+64 {
		t.Fatalf("bucket name of %d bytes for a 64 KB header value, want it hashed", len(k1))
	}
	if k1 == k2 || k1 != key(long) {
		t.Fatal("long values do not map one-to-one to buckets")
	}
	if got := key(strings.Repeat("a", maxClientKeyBytes)); got != open[0].prefix+strings.Repeat("a", maxClientKeyBytes) {
		t.Fatalf("a %d-byte value was changed: %q", maxClientKeyBytes, got)
	}
}

package demoapp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// newTestServer serves instance "app-1" over a fresh SQLite file and returns the server, the store
// and the access log.
func newTestServer(t *testing.T) (*httptest.Server, Store, *syncBuffer) {
	t.Helper()
	store := openTestStore(t, filepath.Join(t.TempDir(), "items.db"))
	logs := &syncBuffer{}
	srv := httptest.NewServer(New("app-1", store, slog.New(slog.NewJSONHandler(logs, nil))))
	t.Cleanup(srv.Close)
	return srv, store, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, srv *httptest.Server, method, path, body string, header http.Header) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Served-By"); got != "app-1" {
		t.Errorf("%s %s: X-Served-By = %q, want app-1", method, path, got)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q is not the expected JSON: %v", r.body, err)
	}
	return v
}

func TestItemsLifecycle(t *testing.T) {
	srv, _, _ := newTestServer(t)

	r := do(t, srv, "GET", "/items", "", nil)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty list: %d %q, want 200 []", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}

	r = do(t, srv, "POST", "/items", `{"name":"  widget  ","note":"blue"}`, nil)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	created := decode[Item](t, r)
	if created.Name != "widget" || created.Note != "blue" || created.ID <= 0 || created.CreatedAt.IsZero() {
		t.Fatalf("created %+v", created)
	}
	if loc := r.header.Get("Location"); loc != "/items/"+itoa(created.ID) {
		t.Errorf("Location = %q", loc)
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "name", "note", "created_at", "updated_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("item JSON lacks %q: %s", k, r.body)
		}
	}

	r = do(t, srv, "GET", "/items/"+itoa(created.ID), "", nil)
	if got := decode[Item](t, r); r.status != 200 || !sameItem(got, created) {
		t.Fatalf("get: %d %+v, want %+v", r.status, got, created)
	}

	// PUT replaces: an omitted note becomes empty.
	r = do(t, srv, "PUT", "/items/"+itoa(created.ID), `{"name":"gadget"}`, nil)
	updated := decode[Item](t, r)
	if r.status != 200 || updated.Name != "gadget" || updated.Note != "" || updated.ID != created.ID {
		t.Fatalf("put: %d %+v", r.status, updated)
	}

	r = do(t, srv, "GET", "/items", "", nil)
	if list := decode[[]Item](t, r); len(list) != 1 || !sameItem(list[0], updated) {
		t.Fatalf("list: %+v", list)
	}

	r = do(t, srv, "DELETE", "/items/"+itoa(created.ID), "", nil)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}
	for _, method := range []string{"GET", "DELETE"} {
		r = do(t, srv, method, "/items/"+itoa(created.ID), "", nil)
		if r.status != 404 || decode[map[string]string](t, r)["message"] == "" {
			t.Errorf("%s after delete: %d %s", method, r.status, r.body)
		}
	}
	r = do(t, srv, "PUT", "/items/"+itoa(created.ID), `{"name":"x"}`, nil)
	if r.status != 404 {
		t.Errorf("PUT after delete: %d %s", r.status, r.body)
	}
}

func sameItem(a, b Item) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Note == b.Note && a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestErrors(t *testing.T) {
	srv, store, _ := newTestServer(t)
	it, err := store.Create(context.Background(), "existing", "")
	if err != nil {
		t.Fatal(err)
	}
	id := itoa(it.ID)

	tests := []struct {
		name, method, path, body string
		status                   int
		allow                    string // expected Allow header on 405
	}{
		{"malformed JSON", "POST", "/items", `{"name":`, 400, ""},
		{"not JSON", "POST", "/items", `name=x`, 400, ""},
		{"unknown field", "POST", "/items", `{"name":"a","admin":true}`, 400, ""},
		{"name not a string", "POST", "/items", `{"name":5}`, 400, ""},
		{"array body", "POST", "/items", `[{"name":"a"}]`, 400, ""},
		{"two objects", "POST", "/items", `{"name":"a"}{"name":"b"}`, 400, ""},
		{"missing name", "POST", "/items", `{"note":"n"}`, 400, ""},
		{"blank name", "POST", "/items", `{"name":" \t\n"}`, 400, ""},
		{"null name", "POST", "/items", `{"name":null}`, 400, ""},
		{"name too long", "POST", "/items", `{"name":"` + strings.Repeat("é", MaxNameLen+1) + `"}`, 400, ""},
		{"body too large", "POST", "/items", `{"name":"a","note":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 400, ""},
		{"PUT invalid", "PUT", "/items/" + id, `{"name":""}`, 400, ""},
		{"non-numeric id", "GET", "/items/abc", "", 404, ""},
		{"zero id", "GET", "/items/0", "", 404, ""},
		{"negative id", "GET", "/items/-1", "", 404, ""},
		{"leading zero", "GET", "/items/0" + id, "", 404, ""},
		{"plus sign", "GET", "/items/+" + id, "", 404, ""},
		{"overflow id", "GET", "/items/99999999999999999999", "", 404, ""},
		{"unknown id", "GET", "/items/424242", "", 404, ""},
		{"non-numeric PUT", "PUT", "/items/abc", `{"name":"a"}`, 404, ""},
		{"non-numeric DELETE", "DELETE", "/items/abc", "", 404, ""},
		{"unknown path", "GET", "/nope", "", 404, ""},
		{"nested path", "GET", "/items/" + id + "/x", "", 404, ""},
		{"trailing slash", "GET", "/items/", "", 404, ""},
		{"PATCH collection", "PATCH", "/items", `{}`, 405, "GET, HEAD, POST"},
		{"DELETE collection", "DELETE", "/items", "", 405, "GET, HEAD, POST"},
		{"POST item", "POST", "/items/" + id, `{"name":"a"}`, 405, "DELETE, GET, HEAD, PUT"},
		{"POST healthz", "POST", "/healthz", "", 405, "GET, HEAD"},
		{"DELETE whoami", "DELETE", "/whoami", "", 405, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.method, tt.path, tt.body, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if msg := decode[map[string]string](t, r)["message"]; msg == "" {
				t.Errorf("no message in %s", r.body)
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if len(r.body) > 300 {
				t.Errorf("error body echoes input (%d bytes)", len(r.body))
			}
		})
	}
	// Nothing above changed the store.
	items, err := store.List(context.Background())
	if err != nil || len(items) != 1 || items[0].Name != "existing" {
		t.Fatalf("store changed by rejected requests: %+v, %v", items, err)
	}
}

func TestHealthzAndUnavailable(t *testing.T) {
	srv, store, logs := newTestServer(t)
	r := do(t, srv, "GET", "/healthz", "", nil)
	if h := decode[map[string]string](t, r); r.status != 200 || h["status"] != "ok" || h["instance"] != "app-1" {
		t.Fatalf("healthz: %d %s", r.status, r.body)
	}

	store.Close() // the database goes away
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/healthz", ""},
		{"GET", "/items", ""},
		{"GET", "/items/1", ""},
		{"POST", "/items", `{"name":"a"}`},
		{"PUT", "/items/1", `{"name":"a"}`},
		{"DELETE", "/items/1", ""},
	} {
		r := do(t, srv, c.method, c.path, c.body, nil)
		if r.status != 503 {
			t.Errorf("%s %s with closed store: %d %s, want 503", c.method, c.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "closed") {
			t.Errorf("%s %s: body leaks the driver error: %s", c.method, c.path, r.body)
		}
	}
	if !strings.Contains(logs.String(), "database is closed") {
		t.Errorf("store error not logged: %s", logs)
	}
}

func TestWhoami(t *testing.T) {
	srv, _, _ := newTestServer(t)
	r := do(t, srv, "GET", "/whoami?x=1", "", http.Header{
		"X-Custom":        {"visible"},
		"Authorization":   {"Bearer s3cr3t"},
		"X-Origin-Verify": {"s3cr3t"},
		"Cookie":          {"session=s3cr3t"},
	})
	if r.status != 200 {
		t.Fatalf("whoami: %d %s", r.status, r.body)
	}
	var w struct {
		Instance, RemoteAddr, Method, Host, Path string
		Headers                                  map[string][]string
	}
	if err := json.Unmarshal(r.body, &struct {
		Instance   *string              `json:"instance"`
		RemoteAddr *string              `json:"remote_addr"`
		Method     *string              `json:"method"`
		Host       *string              `json:"host"`
		Path       *string              `json:"path"`
		Headers    *map[string][]string `json:"headers"`
	}{&w.Instance, &w.RemoteAddr, &w.Method, &w.Host, &w.Path, &w.Headers}); err != nil {
		t.Fatal(err)
	}
	if w.Instance != "app-1" || w.Method != "GET" || w.Path != "/whoami" || w.Host != strings.TrimPrefix(srv.URL, "http://") || !strings.HasPrefix(w.RemoteAddr, "127.0.0.1:") {
		t.Errorf("whoami = %+v", w)
	}
	if got := w.Headers["X-Custom"]; len(got) != 1 || got[0] != "visible" {
		t.Errorf("X-Custom = %q", got)
	}
	for _, h := range []string{"Authorization", "X-Origin-Verify", "Cookie"} {
		if got := w.Headers[h]; len(got) != 1 || got[0] != "[redacted]" {
			t.Errorf("%s = %q, want [redacted]", h, got)
		}
	}
	if strings.Contains(string(r.body), "s3cr3t") {
		t.Errorf("whoami echoes a credential: %s", r.body)
	}
}

func TestAccessLog(t *testing.T) {
	srv, _, logs := newTestServer(t)
	do(t, srv, "POST", "/items", `{"name":"a"}`, http.Header{
		"X-Request-Id":  {"req-123"},
		"Authorization": {"Bearer s3cr3t"},
	})
	do(t, srv, "GET", "/items/abc", "", http.Header{"X-Request-Id": {"req-456"}})

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("got %d access log lines, want 2: %s", len(lines), logs)
	}
	want := []struct {
		method, path, reqID string
		status              float64
	}{{"POST", "/items", "req-123", 201}, {"GET", "/items/abc", "req-456", 404}}
	for i, w := range want {
		l := lines[i]
		if l["method"] != w.method || l["path"] != w.path || l["request_id"] != w.reqID || l["status"] != w.status || l["instance"] != "app-1" {
			t.Errorf("line %d = %v, want %+v", i, l, w)
		}
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("access log contains a header value other than X-Request-Id: %s", logs)
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true}, {"42", 42, true}, {"9223372036854775807", 9223372036854775807, true},
		{"", 0, false}, {"0", 0, false}, {"01", 0, false}, {"+1", 0, false}, {"-1", 0, false},
		{"1a", 0, false}, {"9223372036854775808", 0, false}, {" 1", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseID(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzItemBody sends arbitrary bodies to POST /items and PUT /items/{id}: the answer is 201/200
// with a valid item, or 400 with a message, never a 5xx or a panic.
func FuzzItemBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"a"}`, `{"name":"a","note":"b"}`, `{"name":""}`, `{"name":null}`, `{}`, `[]`, `null`,
		`{"name":"a"} x`, `{"name":"a","x":1}`, `{"name":1}`, `{"name":"\ud800"}`, "\xff", ``, `{"name":"a"`,
		`{"NAME":"a"}`, `{"name":"a","name":"b"}`,
	} {
		f.Add(s)
	}
	store, err := OpenStore(context.Background(), "sqlite::memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	h := New("fuzz", store, nil)
	seed, err := store.Create(context.Background(), "seed", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, c := range []struct {
			method, path string
			ok           int
		}{{"POST", "/items", 201}, {"PUT", "/items/" + itoa(seed.ID), 200}} {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case c.ok:
				var it Item
				if err := json.Unmarshal(rec.Body.Bytes(), &it); err != nil || strings.TrimSpace(it.Name) == "" || it.Name != strings.TrimSpace(it.Name) {
					t.Fatalf("%s %d with invalid item %q (%v)", c.method, rec.Code, rec.Body, err)
				}
			case 400:
				var m map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["message"] == "" {
					t.Fatalf("%s 400 without message: %q", c.method, rec.Body)
				}
			default:
				t.Fatalf("%s body %q: status %d %s", c.method, body, rec.Code, rec.Body)
			}
		}
	})
}

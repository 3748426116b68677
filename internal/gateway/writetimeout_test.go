package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The listener's write_timeout runs from the end of the request's header, and a route with
// request_validation reads the whole body before calling the backend: a slow upload used to eat
// the time the backend's answer needed, and the client got a cut connection instead of the answer
// (or a 504). The backend now gets its whole timeout, wherever the upload left the clock.
func TestWriteTimeoutLeavesTheBackendItsTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(700 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer backend.Close()
	gc := parseGateway(t, t.TempDir(), backend.URL, `
gateways:
  - name: api
    listen: 127.0.0.1:0
    write_timeout: 1500ms
    integration_timeout: 1s
    routes:
      - path: /items
        methods: [POST]
        request_validation: {body_schema: {type: object}}
        integration: {url: "%BACKEND%", timeout: 1s}
`)
	gw, err := New(gc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewUnstartedServer(gw)
	gw.ServerLimits().Apply(srv.Config)
	srv.Start()
	defer srv.Close()

	// The body arrives over 1.2 s: the answer comes 1.9 s after the header, past write_timeout.
	pr, pw := io.Pipe()
	go func() {
		for _, part := range []string{`{"name":`, `"slow",`, `"n":1}`} {
			_, _ = io.WriteString(pw, part)
			time.Sleep(400 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/items", pr)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("the connection was cut: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), "ok") {
		t.Fatalf("got %d %q (%v), want the backend's 200", res.StatusCode, body, err)
	}
}

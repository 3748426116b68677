package demoweb

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeGateway stands in for the real gateway: CORS in enforce mode for one allowed origin, and a
// fixed item list behind it.
func fakeGateway(allowed string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && origin != allowed {
			http.Error(w, `{"message":"origin not allowed"}`, http.StatusForbidden)
			return
		}
		if origin != "" {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/items" {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`[{"id":1,"name":"<b>one</b>","note":""},{"id":2,"name":"two","note":"n"}]`))
			return
		}
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	})
}

// TestPageInBrowser loads the page in headless Chromium from an allowed origin and from a
// disallowed one: the first lists the items, the second shows the refused request. It runs only
// where Chromium is installed.
func TestPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("no Chromium installed")
	}

	good := httptest.NewUnstartedServer(nil) // the allowed origin: its address is known already
	gw := httptest.NewServer(fakeGateway("http://" + good.Listener.Addr().String()))
	t.Cleanup(gw.Close) // the parallel subtests outlive this function body
	good.Config.Handler = New(gw.URL)
	good.Start()
	t.Cleanup(good.Close)
	bad := httptest.NewServer(New(gw.URL)) // the same page, another origin (another port)
	t.Cleanup(bad.Close)

	tests := []struct {
		name, url  string
		wantStatus string
		wantItems  []string
	}{
		{"allowed origin", good.URL + "/", "ok: 2 items", []string{"<b>one</b>", "two"}},
		{"disallowed origin", bad.URL + "/", "error: GET /items was blocked", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
				"--user-data-dir="+t.TempDir(), "--virtual-time-budget=1000", "--dump-dom", tt.url)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("chromium: %v", err)
			}
			dom := string(out)
			m := regexp.MustCompile(`<p id="status"[^>]*>([^<]*)</p>`).FindStringSubmatch(dom)
			if m == nil {
				t.Fatalf("no status element in DOM:\n%.2000s", dom)
			}
			if status := html.UnescapeString(m[1]); !strings.HasPrefix(status, tt.wantStatus) {
				t.Errorf("status = %q, want prefix %q", status, tt.wantStatus)
			}
			list := regexp.MustCompile(`(?s)<ul id="items">(.*?)</ul>`).FindStringSubmatch(dom)
			if list == nil {
				t.Fatalf("no item list in DOM:\n%.2000s", dom)
			}
			var names []string
			for _, n := range regexp.MustCompile(`<li>.*?<strong>(.*?)</strong>`).FindAllStringSubmatch(list[1], -1) {
				if strings.Contains(n[1], "<") {
					t.Errorf("item name %q was inserted as HTML", n[1])
				}
				names = append(names, html.UnescapeString(n[1]))
			}
			if strings.Join(names, "|") != strings.Join(tt.wantItems, "|") {
				t.Errorf("items = %q, want %q", names, tt.wantItems)
			}
		})
	}
}

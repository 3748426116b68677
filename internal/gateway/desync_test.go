package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
)

// TestGatewayDesyncGuard sends raw bytes to a gateway served through its WrapListener, as the
// topology serves it. Without the guard, net/http reads "Content-Length + Transfer-Encoding" as
// chunked and the bytes after the chunked body as a second request, which reaches the backend;
// with it the ambiguous request is answered and the connection closed, and a severe one is
// refused 400 before anything is forwarded.
func TestGatewayDesyncGuard(t *testing.T) {
	backend := &recorder{}
	bs := httptest.NewServer(backend)
	t.Cleanup(bs.Close)
	cfg := config.Gateway{
		Name: "test",
		CORS: config.CORS{Mode: config.CORSStandard},
		Routes: []config.Route{
			{Path: "/items", Methods: []string{"POST"}, Integration: config.Integration{URL: bs.URL}},
			{Path: "/smuggled", Methods: []string{"GET"}, Integration: config.Integration{URL: bs.URL}},
		},
		IntegrationTimeout: config.Duration{Duration: 5 * time.Second},
	}
	gw, err := New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	srv.Listener = desync.ListenerWrapper(gw).WrapListener(srv.Listener)
	srv.Start()
	t.Cleanup(func() { srv.Close(); gw.Close() })

	smuggled := "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, tt := range []struct {
		name, raw string
		status    int
	}{
		// net/http takes the chunked body ("0\r\n\r\n") and would parse the rest as a request.
		{"both TE and CL", "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, http.StatusOK},
		{"different Content-Lengths", "POST /items HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy" + smuggled, http.StatusBadRequest},
		{"obfuscated Transfer-Encoding", "POST /items HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, http.StatusOK},
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tt.raw)
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || !resp.Close {
			t.Errorf("%s: %d close=%v, want %d with Connection: close", tt.name, resp.StatusCode, resp.Close, tt.status)
		}
		if next, err := http.ReadResponse(r, nil); err == nil {
			t.Errorf("%s: a second response (%d): the smuggled request was served", tt.name, next.StatusCode)
		}
		c.Close()
	}
	for _, rq := range backend.all() {
		if strings.Contains(rq.RequestURI, "smuggled") {
			t.Errorf("the backend received the smuggled request %s", rq.RequestURI)
		}
	}
}

package lb

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
)

// desyncCases are one request per class and framing header: the whole table of
// http_desync_guardian cases is internal/desync's; these check that the load balancer's listeners
// are guarded, log the verdict and close the target connection of an ambiguous request.
var desyncCases = []struct {
	name      string
	raw       string
	class     desync.Class
	goRejects bool
}{
	{"get", "GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n", desync.Compliant, false},
	{"post chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", desync.Compliant, false},
	{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", desync.Acceptable, false},
	{"space in URI", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", desync.Acceptable, true},
	{"both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", desync.Ambiguous, false},
	{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", desync.Ambiguous, false},
	{"GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", desync.Ambiguous, false},
	{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", desync.Severe, true},
	{"obfuscated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", desync.Severe, true},
}

// rawExchange sends raw on a new connection and reads one response (nil when the connection was
// closed without one), and whether the server closed the connection afterwards.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(r, &http.Request{Method: method})
	if err != nil {
		return nil, "", true
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// A kept-alive connection answers a second request; a closed one reads EOF.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_, err = http.ReadResponse(r, nil)
	return resp, string(body), err != nil
}

func TestDesyncMitigation(t *testing.T) {
	for _, mode := range []string{config.DesyncMonitor, config.DesyncDefensive, config.DesyncStrictest} {
		t.Run(mode, func(t *testing.T) {
			logs := newLogRecorder(nil)
			cfg := config.LoadBalancer{Name: "alb", DesyncMitigationMode: mode, Listeners: []config.Listener{{DefaultAction: fixed(200, "served")}}}
			_, url := serve(t, cfg, slog.New(logs))
			addr := strings.TrimPrefix(url, "http://")
			for _, tt := range desyncCases {
				blocked := tt.goRejects || (mode == config.DesyncStrictest && tt.class > desync.Compliant) || (mode == config.DesyncDefensive && tt.class == desync.Severe)
				closeAfter := mode == config.DesyncDefensive && tt.class == desync.Ambiguous
				resp, body, closed := rawExchange(t, addr, tt.raw)
				switch {
				case resp == nil:
					t.Errorf("%s: no response", tt.name)
				case blocked && (resp.StatusCode != 400 || (body != `{"message":"Bad Request"}`+"\n" && !strings.HasPrefix(tt.raw, "HEAD")) || !closed):
					t.Errorf("%s: = %d %q closed=%v, want a JSON 400 and the connection closed", tt.name, resp.StatusCode, body, closed)
				case !blocked && (resp.StatusCode != 200 || (body != "served" && !strings.HasPrefix(tt.raw, "HEAD"))):
					t.Errorf("%s: = %d %q, want it served", tt.name, resp.StatusCode, body)
				case !blocked && closed != (closeAfter || resp.Close):
					t.Errorf("%s: connection closed=%v, want %v", tt.name, closed, closeAfter)
				}
			}
			// Every non-compliant request has its classification in the access log.
			found := 0
			for _, l := range logs.find("access") {
				if l["classification"] != "" && l["classification_reason"] != "" {
					found++
				}
			}
			if found == 0 {
				t.Error("no access log line carries a classification")
			}
		})
	}
}

func TestBadChunkSize(t *testing.T) {
	for _, tt := range []struct {
		mode       string
		wantServed bool
	}{{config.DesyncDefensive, false}, {config.DesyncMonitor, true}} {
		logs := newLogRecorder(nil)
		a := newBackend(t, "a", "127.0.0.1:0")
		cfg := forwardAll(group("g", a), "")
		cfg.DesyncMitigationMode = tt.mode
		_, url := serve(t, cfg, slog.New(logs))
		resp, _, _ := rawExchange(t, strings.TrimPrefix(url, "http://"), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
		if resp != nil && resp.StatusCode == 200 {
			t.Errorf("%s: a bad chunk size was proxied: %d", tt.mode, resp.StatusCode)
		}
		if l := logs.find("desync: malformed chunked body"); len(l) != 1 || l[0]["classification_reason"] != "BadChunkSize" {
			t.Errorf("%s: log = %v", tt.mode, l)
		}
	}
}

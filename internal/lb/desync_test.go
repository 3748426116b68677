package lb

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
)

// desyncCases are raw requests modelled on the classification AWS documents for
// http_desync_guardian (its docs/README.md and tests/*.yaml). goRejects records what net/http's
// server refuses by itself (with 400 or 501) before any handler runs; TestGoRejectsOnItsOwn checks
// that column against a plain net/http server, so the table also documents net/http.
var desyncCases = []struct {
	name      string
	raw       string
	class     class
	reason    string
	goRejects bool
}{
	{"get", "GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n", classCompliant, "Compliant", false},
	{"post content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", classCompliant, "Compliant", false},
	{"post chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", classCompliant, "Compliant", false},
	{"multiline content-type", "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nContent-Length: 1\r\n\r\nx", classCompliant, "Compliant", false},

	{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", classAcceptable, "NonCrLfLineTermination", false},
	{"space in URI", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", classAcceptable, "SpaceInUri", true},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", classAcceptable, "NonCompliantVersion", false},
	{"control character in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", classAcceptable, "NonCompliantHeader", true},
	{"non-token header name", "GET / HTTP/1.1\r\nHost: a\r\nX-A(b): 1\r\n\r\n", classAcceptable, "NonCompliantHeader", true},
	{"GET with Content-Length: 0", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", classAcceptable, "GetHeadZeroContentLength", false},

	{"both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", classAmbiguous, "BothTeClPresent", false},
	{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", classAmbiguous, "DuplicateContentLength", false},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", classAmbiguous, "SuspiciousHeader", true},
	{"underscore Transfer_Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", classAmbiguous, "SuspiciousHeader", false},
	{"underscore Content_Length", "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 10\r\n\r\n", classAmbiguous, "SuspiciousHeader", false},
	{"Transfer-Encoding with a suffix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encodingx: chunked\r\n\r\n", classAmbiguous, "SuspiciousHeader", false},
	{"dotless i", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encod\u0131ng: chunked\r\n\r\n", classAmbiguous, "SuspiciousHeader", true},
	{"long s (U+017F) in Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTran\u017Ffer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", classAmbiguous, "SuspiciousHeader", true},
	{"non-ASCII byte in name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\x88: chunked\r\n\r\n", classAmbiguous, "SuspiciousHeader", true},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", classAmbiguous, "MultilineHeader", false},
	{"folded Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", classAmbiguous, "MultilineHeader", false},
	{"GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", classAmbiguous, "UndefinedContentLengthSemantics", false},
	{"HEAD chunked", "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", classAmbiguous, "UndefinedTransferEncodingSemantics", false},
	{"HTTP/1.0 chunked", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", classAmbiguous, "UndefinedTransferEncodingSemantics", false},
	{"missing colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", classAmbiguous, "MissingHeaderColon", true},
	{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", classAmbiguous, "EmptyHeader", true},
	{"control character in URI", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", classAmbiguous, "AmbiguousUri", true},
	{"missing URI", "GET HTTP/1.1\r\nHost: a\r\n\r\n", classAmbiguous, "MissingUri", true},

	{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", classSevere, "MultipleContentLength", true},
	{"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1a\r\n\r\nx", classSevere, "BadContentLength", true},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", classSevere, "BadContentLength", true},
	{"Content-Length list of one", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,\r\n\r\nx", classSevere, "BadContentLength", true},
	{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", classSevere, "BadContentLength", true},
	{"obfuscated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", classSevere, "BadTransferEncoding", true},
	{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", classSevere, "MultipleTransferEncodingChunked", true},
	{"Kelvin sign in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun\u212Aed\r\n\r\n0\r\n\r\n", classSevere, "BadTransferEncoding", true},
	{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", classSevere, "BadTransferEncoding", true},
	{"NUL in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", classSevere, "BadHeader", true},
	{"CR in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", classSevere, "BadHeader", true},
	{"bad version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", classSevere, "BadVersion", true},
	{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", classSevere, "BadMethod", true},
}

func headOf(raw string) []byte {
	if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
		return []byte(raw[:i+4])
	}
	return []byte(raw[:strings.Index(raw, "\n\n")+2])
}

func TestClassifyHead(t *testing.T) {
	for _, tt := range desyncCases {
		v := classifyHead(headOf(tt.raw))
		if v.class != tt.class || v.reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.name, v.class, v.reason, tt.class, tt.reason)
		}
		if got := goRejectsHead(headOf(tt.raw)); got != tt.goRejects {
			t.Errorf("%s: goRejectsHead = %v, want %v", tt.name, got, tt.goRejects)
		}
	}
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

// TestGoRejectsOnItsOwn documents which of the cases net/http refuses without any guard.
func TestGoRejectsOnItsOwn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, tt := range desyncCases {
		resp, _, _ := rawExchange(t, srv.Listener.Addr().String(), tt.raw)
		rejected := resp == nil || resp.StatusCode >= 400
		if rejected != tt.goRejects {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Errorf("%s: plain net/http answered %d, table says goRejects=%v", tt.name, status, tt.goRejects)
		}
	}
}

func TestDesyncMitigation(t *testing.T) {
	for _, mode := range []string{config.DesyncMonitor, config.DesyncDefensive, config.DesyncStrictest} {
		t.Run(mode, func(t *testing.T) {
			logs := newLogRecorder(nil)
			cfg := config.LoadBalancer{Name: "alb", DesyncMitigationMode: mode, Listeners: []config.Listener{{DefaultAction: fixed(200, "served")}}}
			_, url := serve(t, cfg, slog.New(logs))
			addr := strings.TrimPrefix(url, "http://")
			for _, tt := range desyncCases {
				blocked := tt.goRejects || (mode == config.DesyncStrictest && tt.class > classCompliant) || (mode == config.DesyncDefensive && tt.class == classSevere)
				closeAfter := mode == config.DesyncDefensive && tt.class == classAmbiguous
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

func FuzzClassifyHead(f *testing.F) {
	for _, tt := range desyncCases {
		f.Add([]byte(tt.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		end := headEnd(raw, 0)
		if end < 0 {
			return
		}
		v := classifyHead(raw[:end])
		if v.class < classCompliant || v.class > classSevere || v.reason == "" {
			t.Fatalf("bad verdict %+v", v)
		}
		v.apply(config.DesyncDefensive)
		if v.class == classSevere && !v.block {
			t.Fatal("a severe request was not blocked in defensive mode")
		}
	})
}

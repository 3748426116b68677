package desync

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// desyncCases are raw requests modelled on the classification AWS documents for
// http_desync_guardian (its docs/README.md and tests/*.yaml). goRejects records what net/http's
// server refuses by itself (with 400 or 501) before any handler runs; TestGoRejectsOnItsOwn checks
// that column against a plain net/http server, so the table also documents net/http.
var desyncCases = []struct {
	name      string
	raw       string
	class     Class
	reason    string
	goRejects bool
}{
	{"get", "GET /a?b=c HTTP/1.1\r\nHost: a\r\n\r\n", Compliant, "Compliant", false},
	{"post content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Compliant, "Compliant", false},
	{"post chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", Compliant, "Compliant", false},
	// obs-text (bytes 0x80-0xFF) is allowed in a field value (RFC 9110 5.5); http_desync_guardian
	// classifies it Compliant ("obs-text\u{85}..." in its test_field_value_tier), so strictest
	// mode must not refuse a UTF-8 value, such as a name in a header or an invalid UTF-8 one.
	{"UTF-8 header value", "GET / HTTP/1.1\r\nHost: a\r\nX-Name: Jos\xc3\xa9\r\n\r\n", Compliant, "Compliant", false},
	{"obs-text header value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x85\xa0\r\n\r\n", Compliant, "Compliant", false},
	{"multiline content-type", "POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nContent-Length: 1\r\n\r\nx", Compliant, "Compliant", false},

	{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", Acceptable, "NonCrLfLineTermination", false},
	{"space in URI", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Acceptable, "SpaceInUri", true},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", Acceptable, "NonCompliantVersion", false},
	{"control character in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", Acceptable, "NonCompliantHeader", true},
	{"non-token header name", "GET / HTTP/1.1\r\nHost: a\r\nX-A(b): 1\r\n\r\n", Acceptable, "NonCompliantHeader", true},
	{"GET with Content-Length: 0", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", Acceptable, "GetHeadZeroContentLength", false},

	{"both TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Ambiguous, "BothTeClPresent", false},
	{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", Ambiguous, "DuplicateContentLength", false},
	{"space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", Ambiguous, "SuspiciousHeader", true},
	{"underscore Transfer_Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", Ambiguous, "SuspiciousHeader", false},
	{"underscore Content_Length", "POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 10\r\n\r\n", Ambiguous, "SuspiciousHeader", false},
	{"Transfer-Encoding with a suffix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encodingx: chunked\r\n\r\n", Ambiguous, "SuspiciousHeader", false},
	{"dotless i", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encod\u0131ng: chunked\r\n\r\n", Ambiguous, "SuspiciousHeader", true},
	{"long s (U+017F) in Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTran\u017Ffer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", Ambiguous, "SuspiciousHeader", true},
	{"non-ASCII byte in name", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\x88: chunked\r\n\r\n", Ambiguous, "SuspiciousHeader", true},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", Ambiguous, "MultilineHeader", false},
	{"folded Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\nx", Ambiguous, "MultilineHeader", false},
	{"GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Ambiguous, "UndefinedContentLengthSemantics", false},
	{"HEAD chunked", "HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Ambiguous, "UndefinedTransferEncodingSemantics", false},
	{"HTTP/1.0 chunked", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ambiguous, "UndefinedTransferEncodingSemantics", false},
	{"missing colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", Ambiguous, "MissingHeaderColon", true},
	{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", Ambiguous, "EmptyHeader", true},
	{"control character in URI", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", Ambiguous, "AmbiguousUri", true},
	{"missing URI", "GET HTTP/1.1\r\nHost: a\r\n\r\n", Ambiguous, "MissingUri", true},

	{"different Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", Severe, "MultipleContentLength", true},
	{"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1a\r\n\r\nx", Severe, "BadContentLength", true},
	{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", Severe, "BadContentLength", true},
	{"Content-Length list of one", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,\r\n\r\nx", Severe, "BadContentLength", true},
	{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Severe, "BadContentLength", true},
	{"obfuscated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", Severe, "BadTransferEncoding", true},
	{"chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Severe, "MultipleTransferEncodingChunked", true},
	{"Kelvin sign in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun\u212Aed\r\n\r\n0\r\n\r\n", Severe, "BadTransferEncoding", true},
	{"chunked not last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", Severe, "BadTransferEncoding", true},
	{"NUL in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", Severe, "BadHeader", true},
	{"CR in a header", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n", Severe, "BadHeader", true},
	{"bad version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", Severe, "BadVersion", true},
	{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Severe, "BadMethod", true},
}

func headOf(raw string) []byte {
	if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
		return []byte(raw[:i+4])
	}
	return []byte(raw[:strings.Index(raw, "\n\n")+2])
}

func TestClassifyHead(t *testing.T) {
	for _, tt := range desyncCases {
		v := Classify(headOf(tt.raw))
		if v.Class != tt.class || v.Reason != tt.reason {
			t.Errorf("%s: %s/%s, want %s/%s", tt.name, v.Class, v.Reason, tt.class, tt.reason)
		}
		if got := GoRejectsHead(headOf(tt.raw)); got != tt.goRejects {
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

func FuzzClassifyHead(f *testing.F) {
	for _, tt := range desyncCases {
		f.Add([]byte(tt.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		end := headEnd(raw, 0)
		if end < 0 {
			return
		}
		v := Classify(raw[:end])
		if v.Class < Compliant || v.Class > Severe || v.Reason == "" {
			t.Fatalf("bad verdict %+v", v)
		}
		v.apply(Defensive)
		if v.Class == Severe && !v.Block {
			t.Fatal("a severe request was not blocked in defensive mode")
		}
	})
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// readResponse reads one response and its body; nil when the connection ended instead.
func readResponse(r *bufio.Reader) (*http.Response, string) {
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return nil, err.Error()
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

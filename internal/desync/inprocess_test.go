package desync

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestBlockedResponseIsWhole: the guard's 400 declares the length of the body it carries, so a
// client reads it without an unexpected EOF when the connection closes after it.
func TestBlockedResponseIsWhole(t *testing.T) {
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(blockedResponse)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || string(body) != blockedBody {
		t.Fatalf("body = %q, %v; want %q and no error", body, err, blockedBody)
	}
}

// TestGuardClassifiesInProcessRequests: a request handed to a guarded handler in-process (no
// connection, InProcessContext) gets the verdict Classify gives to the head net/http's client
// writes for it, and the mode's answer: what the guard would have done with it on a connection.
func TestGuardClassifiesInProcessRequests(t *testing.T) {
	get := func(mut func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://lb.test/items?x=1", nil)
		r.RemoteAddr = "127.0.0.1:0"
		if mut != nil {
			mut(r)
		}
		return r.WithContext(InProcessContext(r.Context()))
	}
	chunkedGet := func(r *http.Request) {
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		r.Body = io.NopCloser(strings.NewReader("abc"))
	}
	suspicious := func(r *http.Request) { r.Header.Set("Content_Length", "5") }
	lengthGet := func(r *http.Request) {
		r.ContentLength = 3
		r.Header.Set("Content-Length", "3")
		r.Body = io.NopCloser(strings.NewReader("abc"))
	}
	post := func(r *http.Request) {
		r.Method = http.MethodPost
		r.ContentLength = -1
		r.TransferEncoding = []string{"chunked"}
		r.Body = io.NopCloser(strings.NewReader("abc"))
	}
	cases := []struct {
		name       string
		mode       string
		req        *http.Request
		wantStatus int
		wantClass  Class
		wantReason string
		wantClose  bool
	}{
		{"plain GET", Strictest, get(nil), 200, Compliant, "Compliant", false},
		{"chunked POST", Strictest, get(post), 200, Compliant, "Compliant", false},
		{"GET with a chunked body, defensive", Defensive, get(chunkedGet), 200, Ambiguous, "UndefinedTransferEncodingSemantics", true},
		{"GET with a chunked body, strictest", Strictest, get(chunkedGet), 400, 0, "", false},
		{"GET with a length, defensive", Defensive, get(lengthGet), 200, Ambiguous, "UndefinedContentLengthSemantics", true},
		{"suspicious name, monitor", Monitor, get(suspicious), 200, Ambiguous, "SuspiciousHeader", false},
		{"suspicious name, strictest", Strictest, get(suspicious), 400, 0, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			g := &Guard{Mode: c.mode, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Listener: "127.0.0.1:8081"}
			var seen *Verdict
			h := g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = FromContext(r.Context())
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, c.req)
			if w.Code != c.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, c.wantStatus)
			}
			if c.wantStatus == http.StatusBadRequest {
				if seen != nil || w.Body.String() != blockedBody || !strings.Contains(logs.String(), "error_reason=DesyncMitigation") {
					t.Fatalf("blocked: handler verdict %v, body %q, log %q", seen, w.Body.String(), logs.String())
				}
				return
			}
			if seen == nil || seen.Class != c.wantClass || seen.Reason != c.wantReason || seen.CloseConns != c.wantClose {
				t.Fatalf("verdict %+v, want %v %s close=%v", seen, c.wantClass, c.wantReason, c.wantClose)
			}
		})
	}
	t.Run("a request of no connection and not in-process passes unclassified", func(t *testing.T) {
		g := &Guard{Mode: Strictest}
		r := httptest.NewRequest(http.MethodGet, "http://lb.test/", nil).WithContext(context.Background())
		r.Header.Set("Content_Length", "5")
		var seen *Verdict
		g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = FromContext(r.Context()) })).ServeHTTP(httptest.NewRecorder(), r)
		if seen != nil {
			t.Fatalf("verdict %+v for a request of no connection", seen)
		}
	})
}

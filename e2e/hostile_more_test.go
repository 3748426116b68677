package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/examples"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/reliability"
)

// freeAddrOn returns a free TCP address on ip (any 127.x.y.z is local on Linux).
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// defaultOnFreePorts is the embedded default topology moved to free ports on a random 127.x
// network of its own, so it can run next to other tests, with a gateway body limit of 32 KiB.
type defaultOnFreePorts struct {
	dir, gw, lb, app1, app2 string
	allowedOrigin           string // the demo page's origin, which the CORS policy allows
	p                       *proc
	key                     string
}

func startDefaultOnFreePorts(t *testing.T) *defaultOnFreePorts {
	t.Helper()
	net8 := fmt.Sprintf("127.%d.%d", 1+rand.IntN(250), 1+rand.IntN(250))
	d := &defaultOnFreePorts{dir: t.TempDir(),
		gw: freeAddrOn(t, net8+".1"), lb: freeAddrOn(t, net8+".1"),
		app1: freeAddrOn(t, net8+".2"), app2: freeAddrOn(t, net8+".2")}
	d.allowedOrigin = "http://" + freeAddrOn(t, net8+".1")
	cfg := string(examples.Default)
	// A body limit below the app's own (64 KiB), so that a body over it is the gateway's to refuse.
	cfg = strings.Replace(cfg, "    request_headers:", "    max_body_bytes: 32768\n    request_headers:", 1)
	for old, repl := range map[string]string{
		"127.0.0.1:8080": d.gw, "127.0.0.1:8081": d.lb, "127.0.0.2:9001": d.app1, "127.0.0.2:9002": d.app2,
		"127.0.0.3": net8 + ".3", "127.0.0.1:3000": strings.TrimPrefix(d.allowedOrigin, "http://"), "127.0.0.1:9900": freeAddrOn(t, net8+".1"),
	} {
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "rampart.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d.p = start(t, d.dir, "run", "-c", "rampart.yaml")
	waitHTTP(t, d.p, "http://"+d.gw+"/items")
	k, err := originverify.LoadOrCreate("origin-verify", filepath.Join(d.dir, ".rampart", "origin-verify.keys"))
	if err != nil {
		t.Fatal(err)
	}
	d.key = k.Current().Secret
	return d
}

// rawExchangeWhileWriting is rawExchange for requests the server may answer before it has read
// them whole (a body over the limit): it writes in the background, ignoring a write cut short by
// the server, and reads every response.
func rawExchangeWhileWriting(addr, raw string) ([]int, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(c, raw)
	}()
	var statuses []int
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	c.Close()
	<-done
	return statuses, nil
}

// rawOne sends raw bytes and returns the first response's status and body.
func rawOne(addr, raw string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestHostileInputMore completes TestHostileInput's list on a topology of its own (free ports):
// every shape is sent to both the gateway and the load balancer (with the key, so that only
// the shape decides), and the app's log shows which marked requests reached it.
func TestHostileInputMore(t *testing.T) {
	const area = "hostile input (raw bytes)"
	d := startDefaultOnFreePorts(t)
	key := d.key
	bigHeaders := strings.Repeat("X-Filler: 0123456789\r\n", 10000)
	longURI := "?" + strings.Repeat("a", 100*1024)
	type tcase struct {
		name  string
		raw   string // %s is the marker path, /items/hostile-mN; {K} the key header for the LB
		gw    []int  // statuses from the gateway
		lb    []int  // statuses from the load balancer
		reach bool   // whether the marked request must reach the app
	}
	cases := []tcase{
		{"10 000 headers", "GET %s HTTP/1.1\r\nHost: x\r\n{K}" + bigHeaders + "\r\n", []int{431}, []int{431}, false},
		{"100 KB URI", "GET %s" + longURI + " HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{431}, []int{431}, false},
		{"invalid header name", "GET %s HTTP/1.1\r\nHost: x\r\n{K}Bad Name: v\r\n\r\n", []int{400}, []int{400}, false},
		{"header name with a slash", "GET %s HTTP/1.1\r\nHost: x\r\n{K}X/Y: v\r\n\r\n", []int{400}, []int{400}, false},
		{"NUL in a header value", "GET %s HTTP/1.1\r\nHost: x\r\n{K}X-A: a\x00b\r\n\r\n", []int{400}, []int{400}, false},
		{"bare CR in a header value", "GET %s HTTP/1.1\r\nHost: x\r\n{K}X-A: a\rInjected: 1\r\n\r\n", []int{400}, []int{400}, false},
		{"duplicate Host", "GET %s HTTP/1.1\r\nHost: a\r\nHost: b\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"HTTP/0.9", "GET %s\r\n\r\n", []int{400}, []int{400}, false},
		{"HTTP/1.0 without Host", "GET %s HTTP/1.0\r\n{K}\r\n", []int{404}, []int{404}, true},
		{"absolute-form URI", "GET http://evil.example%s HTTP/1.1\r\nHost: evil.example\r\n{K}\r\n", []int{404}, []int{404}, true},
		{"asterisk-form OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{404}, false},
		{"HTTP/2 prior-knowledge preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", []int{400}, []int{400}, false},
		{"Upgrade: h2c on a GET", "GET %s HTTP/1.1\r\nHost: x\r\n{K}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", []int{404}, []int{404}, true},
		// Two upgrades pipelined, the first refused (no 101): the guard replays what it held back
		// and must not lose the second's wait (this crashed the process once).
		{"two pipelined upgrades, the first refused", "GET /nope HTTP/1.1\r\nHost: x\r\n{K}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n{K}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}Connection: close\r\n\r\n", []int{404, 404, 404}, []int{404, 404, 404}, true},
		{"pipelined, answered in order", "GET %s HTTP/1.1\r\nHost: x\r\n{K}\r\nGET /nope HTTP/1.1\r\nHost: x\r\n{K}\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}Connection: close\r\n\r\n", []int{404, 404, 404}, []int{404, 404, 404}, true},
		// Smuggling: the request hidden in the body must never reach the app as a request. At the
		// gateway this relies on the request-smuggling guard (internal/desync) on its listener.
		{"CL.TE: Content-Length and Transfer-Encoding", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"TE.CL: chunked hides a second request", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{CHUNK}\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n", []int{400}, []int{400}, false},
		{"Transfer-Encoding: chunked twice", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"Transfer-Encoding: identity, chunked", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"obs-fold Transfer-Encoding", "POST /items HTTP/1.1\r\nHost: x\r\n{K}X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"Content-Length with a plus sign", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Length: +2\r\n\r\n{}GET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		{"two different Content-Lengths", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}GET %s HTTP/1.1\r\nHost: x\r\n{K}\r\n", []int{400}, []int{400}, false},
		// CORS is the gateway's: a second, disallowed Origin must not ride on an allowed one.
		{"two Origin headers, allowed then disallowed", "GET %s HTTP/1.1\r\nHost: x\r\nOrigin: {O}\r\nOrigin: https://evil.example\r\n\r\n", []int{403}, nil, false},
		{"two Origin headers, disallowed then allowed", "GET %s HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nOrigin: {O}\r\n\r\n", []int{403}, nil, false},
		{"body over the limit, declared", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{", []int{413}, nil, false},
		{"body over the limit, chunked", "POST /items HTTP/1.1\r\nHost: x\r\n{K}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("100000\r\n"+strings.Repeat("a", 0x100000)+"\r\n", 11) + "0\r\n\r\n", []int{413}, nil, false},
	}
	lbAddr, gwAddr := d.lb, d.gw
	n := 0
	type sent struct {
		tc     tcase
		target string
		marker string
	}
	var all []sent
	for _, tc := range cases {
		for _, target := range []string{"gateway", "load balancer"} {
			want, addr, k := tc.gw, gwAddr, ""
			if target == "load balancer" {
				want, addr, k = tc.lb, lbAddr, "X-Origin-Verify: "+key+"\r\n"
			}
			if want == nil && target == "load balancer" {
				continue // a gateway-only concern: body limits, CORS
			}
			n++
			marker := fmt.Sprintf("/items/hostile-m%d", n)
			raw := strings.ReplaceAll(tc.raw, "{K}", k)
			raw = strings.ReplaceAll(raw, "{O}", d.allowedOrigin)
			raw = strings.ReplaceAll(raw, "%s", marker)
			hidden := "GET " + marker + " HTTP/1.1\r\nHost: x\r\n\r\n"
			raw = strings.ReplaceAll(raw, "{CHUNK}", fmt.Sprintf("%x", len(hidden)))
			s := sent{tc, target, marker}
			t.Run(tc.name+" → "+target, func(t *testing.T) {
				got, err := rawExchangeWhileWriting(addr, raw)
				mismatch := err != nil || fmt.Sprint(got) != fmt.Sprint(want)
				failed := 0
				if mismatch {
					failed = 1
					t.Errorf("statuses %v (%v), want %v", got, err, want)
				}
				reliability.Record(t, reliability.Scenario{Area: area, Name: tc.name + " → " + target,
					Expected: fmt.Sprintf("statuses %v; reaches the app: %v", want, tc.reach),
					Measured: fmt.Sprintf("statuses %v", got), Sent: 1, Failed: failed})
			})
			all = append(all, s)
		}
	}

	// Connection: X-Origin-Verify asks hops to drop the header as hop-by-hop. The gateway must
	// still deliver its own copy, or every request would be refused by the load balancer (and a
	// client could make the gateway forward without the secret). Upgrade: h2c must be stripped,
	// not acted on or passed on. /whoami echoes the headers the app received.
	t.Run("hop-by-hop headers", func(t *testing.T) {
		for _, tc := range []struct{ name, addr, head string }{
			{"Connection: X-Origin-Verify → gateway", gwAddr, "Connection: X-Origin-Verify, close\r\nX-Origin-Verify: forged-123456\r\n"},
			{"Connection: X-Origin-Verify → load balancer", lbAddr, "Connection: X-Origin-Verify, close\r\nX-Origin-Verify: " + key + "\r\n"},
			{"Upgrade: h2c → gateway (whoami)", gwAddr, "Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
			{"Upgrade: h2c → load balancer (whoami)", lbAddr, "X-Origin-Verify: " + key + "\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		} {
			status, body, err := rawOne(tc.addr, "GET /whoami HTTP/1.1\r\nHost: x\r\n"+tc.head+"\r\n")
			lower := strings.ToLower(body)
			leaked := strings.Contains(lower, "x-origin-verify") || strings.Contains(lower, "h2c") || strings.Contains(lower, "http2-settings") || strings.Contains(body, key)
			if err != nil || status != 200 || leaked {
				t.Errorf("%s: status %d (%v), want 200; the app saw: %s", tc.name, status, err, body)
			}
			l := int64(0)
			if leaked {
				l = 1
			}
			reliability.Record(t, reliability.Scenario{Area: area, Name: tc.name,
				Expected: "200; the app sees neither the origin-verify header nor the upgrade headers",
				Measured: fmt.Sprintf("%d; app saw them: %v", status, leaked), Sent: 1, Leaked: l})
		}
	})

	// Slowloris: a head or a body that never completes. The head is cut at the servers' 10s
	// header timeout; a body that stalls is cut by the integration or target timeout downstream.
	t.Run("slowloris", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, tc := range []struct{ name, addr, raw string }{
			{"headers → gateway", gwAddr, "GET /items HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n"},
			{"headers → load balancer", lbAddr, "GET /items HTTP/1.1\r\nHost: x\r\nX-Origin-Verify: " + key + "\r\nX-A: 1\r\n"},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", tc.addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				begin := time.Now()
				io.WriteString(c, tc.raw)
				// Trickle a header byte a second: the deadline is on the whole head, not per read.
				stop := make(chan struct{})
				go func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-time.After(time.Second):
						}
						if _, err := io.WriteString(c, "X"); err != nil {
							return
						}
					}
				}()
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				_, err = io.ReadAll(c)
				close(stop)
				took := time.Since(begin)
				if err != nil || took > 15*time.Second {
					t.Errorf("slowloris %s: not closed by the server within 15s (%v, %v)", tc.name, took, err)
				}
				reliability.Record(t, reliability.Scenario{Area: area, Name: "slowloris " + tc.name + " (a byte a second)",
					Expected: "connection closed at the 10s header timeout", Measured: fmt.Sprintf("closed after %v", took.Round(100*time.Millisecond)), Sent: 1})
			}()
		}
		wg.Wait()
	})

	// Everything must have left the process running, and only the marked requests meant to
	// reach the app did.
	if r := do(t, "GET", "http://"+gwAddr+"/items", ""); r.status != 200 {
		t.Fatalf("after the hostile input: status %d", r.status)
	}
	crashes := 0
	select {
	case <-d.p.done:
		crashes = 1
		t.Fatalf("rampart exited: %v\n%s", d.p.exitErr, d.p.output())
	default:
	}
	appLog := appLines(d.p.stderr.String())
	leaked := 0
	for _, s := range all {
		reached := strings.Contains(appLog, s.marker+`"`)
		if reached != s.tc.reach {
			t.Errorf("%s → %s: %s reached the app: %v, want %v", s.tc.name, s.target, s.marker, reached, s.tc.reach)
			if reached {
				leaked++
			}
		}
	}
	reliability.Record(t, reliability.Scenario{Area: area, Name: "all of the above, afterwards",
		Expected: "the process still serves; no request that should be refused reached the app",
		Measured: fmt.Sprintf("%d crashes; %d marked requests leaked to the app", crashes, leaked), Sent: len(all), Leaked: int64(leaked), Crashes: crashes})
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/ratelimit/redistest"
)

// startEnv is start with extra environment variables (NAME=value), the way each host of a
// multi-host deployment gives one config file its own addresses.
func startEnv(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start rampart %v: %v", args, err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// runEnv runs rampart to completion (validate, say) and returns its output.
func runEnv(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tokenSniffer sits between gateway 1 and load balancer 1, as an attacker on that path would:
// it forwards every request unchanged, except that when armed it keeps the next request's
// origin-verify token and answers 502 itself, so the token has never been used.
type tokenSniffer struct {
	srv   *httptest.Server
	armed atomic.Bool
	mu    sync.Mutex
	token string
	host  string
}

func newTokenSniffer(t *testing.T, lb string) *tokenSniffer {
	s := &tokenSniffer{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		// Keep the Host the gateway signed for, and the X-Forwarded-For the gateway set
		// (ReverseProxy drops inbound X-Forwarded-* before Rewrite).
		r.Out.URL.Scheme, r.Out.URL.Host = "http", lb
		r.Out.Header["X-Forwarded-For"] = r.In.Header["X-Forwarded-For"]
	}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.armed.CompareAndSwap(true, false) {
			s.mu.Lock()
			s.token, s.host = r.Header.Get("X-Origin-Verify"), r.Host
			s.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *tokenSniffer) captured() (token, host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.host
}

// sendWithHost sends a request with an explicit Host header and extra headers.
func sendWithHost(t *testing.T, method, url, host, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// tally sends n requests alternating between urls and counts the answers by status, per URL.
func tally(t *testing.T, n int, urls []string, method, body string, headers ...string) (byStatus map[int]int, okPer map[string]int) {
	t.Helper()
	byStatus, okPer = map[int]int{}, map[string]int{}
	for i := range n {
		u := urls[i%len(urls)]
		r := do(t, method, u, body, headers...)
		byStatus[r.status]++
		if r.status < 400 || r.status == 404 {
			okPer[u]++
		}
	}
	return byStatus, okPer
}

const haAPIKey = "k_e2e_ha_0123456789abcdef"

// TestHAReplicasShareRedis runs examples/ha.yaml as it would run on several hosts: two gateway
// processes, two load balancer processes and one app process, every one from the same file with
// its own addresses in the environment, and one real redis-server. It proves that each limit is
// enforced once across the replicas, not once per replica: the gateway throttle, the usage-plan
// quota, the WAF rate_based rule, and the signed-token replay cache (a token used at one load
// balancer is refused at the other). Then it stops Redis and checks on_store_error: deny refuses
// (503 at the gateway, 403 at the load balancer: an unrecorded token is an unverified one), and
// the same file with allow admits everything.
func TestHAReplicasShareRedis(t *testing.T) {
	redis := redistest.Start(t)
	dir := t.TempDir()
	example, err := os.ReadFile("../examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ha.yaml", string(example), 0o600)
	write("api-keys.json", `{"keys": [{"id": "acme", "value": "`+haAPIKey+`"}]}`, 0o600)

	gw1, gw2, lb1, lb2 := freePort(t), freePort(t), freePort(t), freePort(t)
	app1, app2 := "127.0.0.2:"+freePortOn(t, "127.0.0.2"), "127.0.0.2:"+freePortOn(t, "127.0.0.2")
	sniffer := newTokenSniffer(t, lb1)
	shared := []string{
		"RAMPART_REDIS_URL=" + redis.URL(),
		"RAMPART_KEYRING_FILE=.rampart/origin-verify.keys",
		"RAMPART_API_KEYS_FILE=api-keys.json",
		"RAMPART_APP_1=" + app1, "RAMPART_APP_2=" + app2,
		"RAMPART_LB_SUBNET=127.0.0.1/32", "RAMPART_LB_EGRESS=127.0.0.1",
		"DATABASE_URL=sqlite:.rampart/items.db",
		"RAMPART_ADMIN_LISTEN=127.0.0.1:3", "RAMPART_ADMIN_TOKEN=e2e-admin-token-0123456789abcdef",
		// Each host sets its own; each process needs only the variables of what it runs (config.Scope).
		"RAMPART_GATEWAY_LISTEN=127.0.0.1:1", "RAMPART_LB_LISTEN=127.0.0.1:2", "RAMPART_LB_URL=http://127.0.0.1:2",
	}
	gwEnv := func(listen, lbURL string) []string {
		return append(cloneEnv(shared), "RAMPART_GATEWAY_LISTEN="+listen, "RAMPART_LB_URL="+lbURL)
	}
	lbEnv := func(listen string) []string { return append(cloneEnv(shared), "RAMPART_LB_LISTEN="+listen) }

	if out, err := runEnv(t, dir, shared, "validate", "-c", "ha.yaml"); err != nil {
		t.Fatalf("rampart validate -c examples/ha.yaml: %v\n%s", err, out)
	}

	// startTier starts both gateways and both load balancers from file (ha.yaml or a variant).
	startTier := func(file string) []*proc {
		ps := []*proc{
			startEnv(t, dir, gwEnv(gw1, sniffer.srv.URL), "gateway", "-c", file, "--grace", "1s"),
			startEnv(t, dir, gwEnv(gw2, "http://"+lb2), "gateway", "-c", file, "--grace", "1s"),
			startEnv(t, dir, lbEnv(lb1), "lb", "-c", file, "--grace", "1s"),
			startEnv(t, dir, lbEnv(lb2), "lb", "-c", file, "--grace", "1s"),
		}
		for i, u := range []string{gw1, gw2, lb1, lb2} {
			waitHTTP(t, ps[i], "http://"+u+"/nothing")
		}
		return ps
	}
	// The app tier first: its process creates nothing the others need; the keyring is created
	// by the first gateway or load balancer (safely, if two race).
	app := startEnv(t, dir, shared, "app", "-c", "ha.yaml")
	waitHTTP(t, app, "http://"+app1+"/nothing")
	tier := startTier("ha.yaml")
	g1, g2 := "http://"+gw1, "http://"+gw2
	jsonCT := []string{"Content-Type", "application/json"}

	// Ready end to end through both paths (POST /items is neither throttled nor rate-limited).
	for _, g := range []string{g1, g2} {
		eventually(t, 30*time.Second, func() error {
			r, err := tryDo("POST", g+"/items", `{"name":"ready"}`, jsonCT...)
			if err != nil || r.status != 201 {
				return fmt.Errorf("POST %s/items: %d %v %s", g, r.status, err, r.body)
			}
			return nil
		})
	}

	t.Run("gateway throttle is global", func(t *testing.T) {
		// burst 20 per client address, shared by both gateways through Redis.
		st, per := tally(t, 40, []string{g1 + "/items", g2 + "/items"}, "GET", "")
		if st[200] != 20 || st[429] != 20 || per[g1+"/items"] == 0 || per[g2+"/items"] == 0 {
			t.Fatalf("statuses %v, admitted per gateway %v: want 20 admitted in all, by both", st, per)
		}
	})

	t.Run("replay cache is global", func(t *testing.T) {
		// Capture a token on its way from gateway 1 to load balancer 1, unused.
		sniffer.armed.Store(true)
		if r := do(t, "POST", g1+"/items", `{"name":"sniffed"}`, jsonCT...); r.status != 502 {
			t.Fatalf("captured request: %d %s", r.status, r.body)
		}
		token, host := sniffer.captured()
		if !strings.HasPrefix(token, "v1.") {
			t.Fatalf("captured %q, want a signed token", token)
		}
		replay := func(lb string) response {
			return sendWithHost(t, "POST", "http://"+lb+"/items", host, `{"name":"replayed"}`,
				"X-Origin-Verify", token, "Content-Type", "application/json", "X-Forwarded-For", "127.0.0.1")
		}
		// Its first use, at load balancer 2, is accepted: tokens are valid at every replica ...
		if r := replay(lb2); r.status != 201 {
			t.Fatalf("first use of the token at LB2: %d %s", r.status, r.body)
		}
		// ... and once used anywhere, refused everywhere.
		for _, lb := range []string{lb1, lb2} {
			if r := replay(lb); r.status != 403 {
				t.Fatalf("replay at %s: %d %s, want 403", lb, r.status, r.body)
			}
		}
	})

	t.Run("usage plan quota is global", func(t *testing.T) {
		st, per := tally(t, 30, []string{g1 + "/whoami", g2 + "/whoami"}, "GET", "", "X-Api-Key", haAPIKey)
		if st[200] != 10 || st[429] != 20 || per[g1+"/whoami"] == 0 || per[g2+"/whoami"] == 0 {
			t.Fatalf("statuses %v, admitted per gateway %v: want the quota of 10 in all, by both", st, per)
		}
	})

	t.Run("WAF rate_based rule is global", func(t *testing.T) {
		// Through gateway 1 → LB 1 and gateway 2 → LB 2: one bucket of 10 for this client.
		st, per := tally(t, 30, []string{g1 + "/items/999999", g2 + "/items/999999"}, "GET", "")
		if st[404] != 10 || st[429] != 20 || per[g1+"/items/999999"] == 0 || per[g2+"/items/999999"] == 0 {
			t.Fatalf("statuses %v, reached the app per path %v: want 10 through in all, by both", st, per)
		}
		if r := do(t, "GET", g2+"/items/999999", ""); r.status != 429 || !strings.Contains(r.body, "slow down") {
			t.Fatalf("over the rate: %d %s, want the slow-down custom response", r.status, r.body)
		}
	})

	redis.Stop()

	t.Run("Redis down, on_store_error deny", func(t *testing.T) {
		for _, g := range []string{g1, g2} {
			if r := do(t, "GET", g+"/items", ""); r.status != 503 {
				t.Errorf("throttled route via %s: %d %s, want 503", g, r.status, r.body)
			}
			if r := do(t, "GET", g+"/whoami", "", "X-Api-Key", haAPIKey); r.status != 503 {
				t.Errorf("quota route via %s: %d %s, want 503", g, r.status, r.body)
			}
			// The load balancers cannot record the token's nonce: fail closed.
			if r := do(t, "POST", g+"/items", `{"name":"x"}`, jsonCT...); r.status != 403 {
				t.Errorf("POST via %s: %d %s, want 403", g, r.status, r.body)
			}
		}
	})

	t.Run("Redis down, on_store_error allow", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, p := range tier {
			wg.Go(p.stop)
		}
		wg.Wait()
		write("ha-allow.yaml", strings.ReplaceAll(string(example), "on_store_error: deny", "on_store_error: allow"), 0o600)
		tier = startTier("ha-allow.yaml")
		for _, g := range []string{g1, g2} {
			if r := do(t, "GET", g+"/items", ""); r.status != 200 {
				t.Errorf("throttled route via %s: %d %s, want 200", g, r.status, r.body)
			}
			if r := do(t, "GET", g+"/whoami", "", "X-Api-Key", haAPIKey); r.status != 200 {
				t.Errorf("quota route via %s: %d %s, want 200", g, r.status, r.body)
			}
			if r := do(t, "POST", g+"/items", `{"name":"x"}`, jsonCT...); r.status != 201 {
				t.Errorf("POST via %s: %d %s, want 201", g, r.status, r.body)
			}
			if r := do(t, "GET", g+"/items/999999", ""); r.status != 404 {
				t.Errorf("rate-limited path via %s: %d %s, want 404 from the app", g, r.status, r.body)
			}
		}
	})
	for _, p := range append(tier, app) {
		if out := p.output(); strings.Contains(out, haAPIKey) {
			t.Errorf("rampart %v printed the API key", p.cmd.Args[1:])
		}
	}
}

// cloneEnv copies a string slice, so that appends for one process do not alias another's.
func cloneEnv(s []string) []string { return append([]string(nil), s...) }

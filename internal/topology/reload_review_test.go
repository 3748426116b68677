package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// appAdminConfig writes an app-and-admin config: one app instance on app, the admin listener on
// adminAddr with token (none when empty).
func appAdminConfig(t *testing.T, dir, path, app, adminAddr, token string) {
	t.Helper()
	tok := ""
	if token != "" {
		tok = "\n  token: " + token
	}
	yaml := fmt.Sprintf(`version: 1
apps:
  - name: items
    listen: ["%[2]s"]
    database: "sqlite:%[1]s/items.db"
admin:
  listen: %[3]s%[4]s
`, dir, app, adminAddr, tok)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// serveFile builds, listens and serves the config file at path with sel until the test ends.
func serveFile(t *testing.T, path string, sel Selection, logs *syncBuffer) *Topology {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	topo := serveTopology(t, cfg, sel, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), ConfigPath: path, Redactor: &observe.Redactor{}})
	waitFor(t, "serving", func() bool {
		topo.stateMu.Lock()
		defer topo.stateMu.Unlock()
		return topo.serving
	})
	return topo
}

func httpStatus(url, token string) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestReloadFailedOpenForgetsNewSocket: a reload opens a new address written as a name
// (localhost:PORT), then fails to open another one. The first is closed and forgotten, so that the
// next reload that asks for it opens it again and serves there (it was kept, closed and without
// an accept loop, under its config spelling, and connections to it were refused for good).
func TestReloadFailedOpenForgetsNewSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	appAdminConfig(t, dir, path, app, adminAddr, "")
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindApp: true, KindAdmin: true}}, &syncBuffer{})

	_, port, _ := net.SplitHostPort(freePort(t, "127.0.0.1"))
	named := "localhost:" + port
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// The app opens first (endpoints in order); the admin's address is taken, so the reload fails.
	appAdminConfig(t, dir, path, named, busy.Addr().String(), "")
	if err := topo.Reload(context.Background(), "test"); err == nil {
		t.Fatal("a reload onto a taken address succeeded")
	}
	if _, err := httpStatus("http://"+named+"/healthz", ""); err == nil {
		t.Fatalf("the failed reload left %s open", named)
	}
	appAdminConfig(t, dir, path, named, adminAddr, "")
	if err := topo.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the app on "+named, func() bool {
		code, err := httpStatus("http://"+named+"/healthz", "")
		return err == nil && code == 200
	})
}

// TestReloadKeepsAdminTokenRule: with the admin listener put on a network address by the command
// line (Selection.AdminListen, `--admin`), a reload whose config has no admin.token is rejected:
// the rule that admin.listen obeys at validation holds for the override too, at start and at
// every reload, so an edit of the file cannot open the admin API to the network.
func TestReloadKeepsAdminTokenRule(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	app := freePort(t, "127.0.0.1")
	appAdminConfig(t, dir, path, app, "127.0.0.1:1", testToken)
	_, port, _ := net.SplitHostPort(freePort(t, "127.0.0.1"))
	sel := Selection{Kinds: map[Kind]bool{KindApp: true, KindAdmin: true}, AdminListen: "0.0.0.0:" + port}
	topo := serveFile(t, path, sel, &syncBuffer{})
	base := "http://127.0.0.1:" + port
	if code, err := httpStatus(base+"/api/state", ""); err != nil || code != 401 {
		t.Fatalf("GET /api/state without the token: %d %v, want 401", code, err)
	}

	appAdminConfig(t, dir, path, app, "127.0.0.1:1", "")
	err := topo.Reload(context.Background(), "test")
	if err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Fatalf("reload without admin.token on a network address: %v, want a rejection naming admin.token", err)
	}
	if code, err := httpStatus(base+"/api/state", ""); err != nil || code != 401 {
		t.Fatalf("after the rejected reload, GET /api/state without the token: %d %v, want 401", code, err)
	}

	// And at start.
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), cfg, sel, Options{}); err == nil || !strings.Contains(err.Error(), "admin.token") {
		t.Fatalf("Build without admin.token on a network address: %v", err)
	}
}

// TestReloadRevokesAdminToken: once a reload changes admin.token, the old token opens nothing,
// not even on a keep-alive connection accepted by the generation that had it.
func TestReloadRevokesAdminToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	appAdminConfig(t, dir, path, app, adminAddr, testToken)
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindApp: true, KindAdmin: true}}, &syncBuffer{})

	client := &http.Client{Timeout: 2 * time.Second} // keeps its connection alive
	get := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+adminAddr+"/api/state", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so that the connection is reused
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(testToken); code != 200 {
		t.Fatalf("with the token: %d", code)
	}
	newToken := "a-brand-new-admin-token-9876543210"
	appAdminConfig(t, dir, path, app, adminAddr, newToken)
	if err := topo.Reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if code := get(testToken); code != 401 {
		t.Fatalf("the replaced token still works after the reload (status %d)", code)
	}
	if code := get(newToken); code != 200 {
		t.Fatalf("the new token: %d", code)
	}
}

// TestManyReloadsLeakNothing: 25 reloads of a full topology (gateway, load balancer with health
// checks, app, keyring watcher, admin) leave the number of goroutines and open files where a few
// reloads put it: each replaced generation releases what it started once it has drained.
func TestManyReloadsLeakNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://o0.example")
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}, &syncBuffer{})
	waitFor(t, "serving", func() bool { return originAllowed(t, gw, "http://o0.example") })

	// The SQLite store's files are counted apart: its pool opens up to 4 connections (each the
	// database and its -wal file) as load comes and goes, a bound of its own, not a leak.
	const sqliteFDsMax = 4*2 + 1
	sqliteFDs := func() int {
		n := 0
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, dir) && strings.Contains(l, ".db") {
				n++
			}
		}
		return n
	}
	fds := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents) - sqliteFDs()
	}
	reload := func(i int) {
		origin := fmt.Sprintf("http://o%d.example", i)
		fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, origin)
		if err := topo.Reload(context.Background(), "test"); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if !originAllowed(t, gw, origin) {
			t.Fatalf("reload %d not in force", i)
		}
	}
	settle := func() {
		topo.retiring.Wait()
		http.DefaultClient.CloseIdleConnections()
		time.Sleep(200 * time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		reload(i)
	}
	settle()
	g0, f0 := runtime.NumGoroutine(), fds()
	for i := 4; i <= 28; i++ {
		reload(i)
	}
	settle()
	// A health check or a connection closing at the moment of counting is not a leak: the counts
	// may take a moment to come back. A leak grows with the reloads (25 here) and does not.
	g1, f1 := runtime.NumGoroutine(), fds()
	for deadline := time.Now().Add(5 * time.Second); (g1 > g0+5 || f1 > f0+5) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		g1, f1 = runtime.NumGoroutine(), fds()
	}
	t.Logf("after 3 reloads: %d goroutines, %d fds; after 28: %d goroutines, %d fds", g0, f0, g1, f1)
	if g1 > g0+5 || f1 > f0+5 || sqliteFDs() > sqliteFDsMax {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			l, _ := os.Readlink("/proc/self/fd/" + e.Name())
			t.Log("open:", e.Name(), l)
		}
		t.Fatalf("25 reloads grew goroutines %d → %d, open files %d → %d (SQLite's apart: %d, at most %d)", g0, g1, f0, f1, sqliteFDs(), sqliteFDsMax)
	}
}

// TestRedactedConfigHardCases: what TestRedactedConfig does not cover: credentials in a URL's
// query (postgres ?password=, ?access_token=) and literal values of headers whose name says
// credential (X-Internal-Token, X-Shared-Secret), whole or mixed with ${…} references.
func TestRedactedConfigHardCases(t *testing.T) {
	yaml := `version: 1
gateways:
  - name: gw
    listen: 127.0.0.1:1
    request_headers:
      X-Internal-Token: "literal-internal-token-55"
      X-Shared-Secret: "prefix-${context.requestId}-shared-secret-66"
      X-Trace: "static"
    authorizers:
      - name: jwt
        type: jwt
        issuer: https://issuer.example
        audiences: [api]
        jwks_url: "https://127.0.0.1:8443/jwks.json?access_token=jwks-query-token-77"
    routes:
      - {path: /a, methods: [GET], integration: {url: "http://127.0.0.1:2"}}
apps:
  - name: items
    listen: ["127.0.0.1:4"]
    database: "postgres://app@127.0.0.1:5432/items?sslmode=disable&password=pg-query-password-88"
admin:
  listen: 127.0.0.1:3
`
	cfg, err := config.Parse("t.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(redactedConfig(cfg, nil))
	out := string(b)
	for _, leaked := range []string{"literal-internal-token-55", "shared-secret-66", "jwks-query-token-77", "pg-query-password-88"} {
		if strings.Contains(out, leaked) {
			t.Errorf("the config shows %q:\n%s", leaked, out)
		}
	}
	for _, kept := range []string{`"static"`, "sslmode=disable", "https://127.0.0.1:8443/jwks.json"} {
		if !strings.Contains(out, kept) {
			t.Errorf("the config lacks %q:\n%s", kept, out)
		}
	}
}

// TestLooseKeyringWarned: a keyring file that other users can read is still reported at start
// (the warning was lost when keyring loading moved into the cache shared by generations), and
// only once however many reloads reuse the keyring.
func TestLooseKeyringWarned(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := edgeConfig(t, dir, config.OriginVerifyStatic)
	if _, err := originverify.LoadOrCreate("origin-verify", filepath.Join(dir, "ov.keys")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "ov.keys"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	startTopology(t, cfg, logs, KindGateway, KindLB)
	if n := strings.Count(logs.String(), "keyring file is accessible to other users"); n != 1 {
		t.Fatalf("%d loose-permission warnings, want 1:\n%s", n, logs)
	}
}

// TestFileChangeThroughSymlinkSwap: a config file mounted from a Kubernetes ConfigMap is a
// symlink (rampart.yaml → ..data/rampart.yaml, ..data → ..2026_…), and an update swaps ..data:
// no event names rampart.yaml itself. The swap still reloads the config.
func TestFileChangeThroughSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	version := func(name, token string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		appAdminConfig(t, dir, filepath.Join(dir, name, "rampart.yaml"), app, adminAddr, token)
	}
	version("..v1", testToken)
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rampart.yaml")
	if err := os.Symlink(filepath.Join("..data", "rampart.yaml"), path); err != nil {
		t.Fatal(err)
	}
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindApp: true, KindAdmin: true}}, &syncBuffer{})
	time.Sleep(100 * time.Millisecond) // the watcher is set up when Serve starts

	// What the kubelet does: a new version directory, a new ..data link renamed over the old one.
	newToken := "token-of-the-second-configmap-version"
	version("..v2", newToken)
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(dir, "..v1"))
	waitFor(t, "a reload by the ConfigMap update", func() bool {
		last := topo.LastReload()
		return last.Cause == "file change" && last.OK
	})
	if got := adminToken(topo.Config()); got != newToken {
		t.Fatalf("the running config's token is %q, want the new version's", got)
	}
}

// TestConcurrentReloadsAndShutdown: reloads from several goroutines at once (as POST /reload,
// SIGHUP and a file change can come together), with the process stopping in the middle of them:
// reloads are serialized, those after the stop are refused, Serve returns without error within
// the grace period, and nothing is left running.
func TestConcurrentReloadsAndShutdown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://o.example")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topo, err := Build(ctx, cfg, Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, 2*time.Second) }()
	waitFor(t, "serving", func() bool { return originAllowed(t, gw, "http://o.example") })

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				_ = topo.Reload(context.Background(), "test")
			}
		})
	}
	time.Sleep(150 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	wg.Wait()
	if err := topo.Reload(context.Background(), "test"); err == nil {
		t.Fatal("a reload after the stop succeeded")
	}
	for _, addr := range []string{gw, lbAddr, app, adminAddr} {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("%s still accepts after the stop", addr)
		}
	}
}

// TestSIGHUPReloadsConfigThenKeyrings: in a process started from a file, one SIGHUP reloads the
// config and then the keyrings (of the generation now running): both happen, in that order, and
// the keyrings are reloaded even when the config is rejected.
func TestSIGHUPReloadsConfigThenKeyrings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rampart.yaml")
	gw, lbAddr, app, adminAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://one.example")
	logs := &syncBuffer{}
	topo := serveFile(t, path, Selection{Kinds: map[Kind]bool{KindGateway: true, KindLB: true, KindApp: true, KindAdmin: true}}, logs)

	for i, valid := range []bool{true, false} {
		if valid {
			fileConfig(t, dir, path, gw, lbAddr, app, adminAddr, "http://two.example")
		} else if err := os.WriteFile(path, []byte("version: 1\ngateways: [{name: gw, listen: nowhere}]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(logs.String(), "SIGHUP: reloading keyrings")
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the keyring reload", func() bool { return strings.Count(logs.String(), "SIGHUP: reloading keyrings") > before })
		out := logs.String()
		cfgAt := strings.LastIndex(out, "SIGHUP: reloading configuration")
		keysAt := strings.LastIndex(out, "SIGHUP: reloading keyrings")
		if cfgAt < 0 || cfgAt > keysAt {
			t.Fatalf("SIGHUP %d: the config reload is not logged before the keyrings' (%d, %d)", i, cfgAt, keysAt)
		}
		if last := topo.LastReload(); last.Cause != "SIGHUP" || last.OK != valid {
			t.Fatalf("SIGHUP %d: last reload %+v, want cause SIGHUP, ok %v", i, last, valid)
		}
	}
	if !originAllowed(t, gw, "http://two.example") {
		t.Fatal("the config reloaded by SIGHUP is not in force")
	}
}

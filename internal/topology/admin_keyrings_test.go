package topology

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// startWithAdmin is startTopology with the admin listener on a free port; it returns the admin
// base URL.
func startWithAdmin(t *testing.T, cfg *config.Config, logs io.Writer, kinds ...Kind) (*Topology, string) {
	t.Helper()
	sel := Selection{Kinds: map[Kind]bool{KindAdmin: true}, AdminListen: "127.0.0.1:0"}
	for _, k := range kinds {
		sel.Kinds[k] = true
	}
	topo := serveTopology(t, cfg, sel, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	for i, e := range topo.Endpoints {
		if e.Kind == KindAdmin {
			return topo, "http://" + topo.Addrs()[i].String()
		}
	}
	t.Fatal("no admin endpoint")
	return nil, ""
}

func getKeyrings(t *testing.T, adminURL string) (originverify.KeyringsStatus, string) {
	t.Helper()
	resp, err := http.Get(adminURL + "/keyrings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /keyrings: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var st originverify.KeyringsStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /keyrings: %v: %s", err, body)
	}
	return st, string(body)
}

// TestAdminKeyrings reads GET /keyrings from a load balancer's admin listener: ids, states and
// match counts of the loaded keyring, a reload seen live, and never a secret.
func TestAdminKeyrings(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := edgeConfig(t, dir, config.OriginVerifyStatic)
	topo, adminURL := startWithAdmin(t, cfg, io.Discard, KindLB)
	kr := topo.Keyring("origin-verify")
	id := kr.Current().ID
	if _, ok := kr.Verify(kr.Current().Secret); !ok {
		t.Fatal("the current key does not verify")
	}

	st, body := getKeyrings(t, adminURL)
	if len(st.Keyrings) != 1 || st.Keyrings[0].Name != "origin-verify" || len(st.Keyrings[0].Keys) != 1 {
		t.Fatalf("GET /keyrings: %s", body)
	}
	if k := st.Keyrings[0].Keys[0]; k.ID != id || k.State != originverify.StateCurrent || k.Matches != 1 {
		t.Fatalf("key %+v, want %s current with 1 match", k, id)
	}

	// A pending key added to the file shows up without a restart.
	path := filepath.Join(dir, "ov.keys")
	f, err := originverify.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pending, _, err := f.AddPending()
	if err != nil {
		t.Fatal(err)
	}
	if err := originverify.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the admin API to list the pending key", func() bool {
		st, _ := getKeyrings(t, adminURL)
		for _, k := range st.Keyrings[0].Keys {
			if k.ID == pending.ID && k.State == originverify.StatePending {
				return true
			}
		}
		return false
	})
	_, body = getKeyrings(t, adminURL)
	for _, s := range kr.Secrets() {
		if strings.Contains(body, s) {
			t.Fatalf("GET /keyrings returned a secret: %s", body)
		}
	}
}

// TestSIGHUPIgnoredWithoutKeyrings sends SIGHUP to a process that runs only the app tier (it
// loads no keyring): the process survives (the test binary would die otherwise), logs that it
// ignored the signal, and keeps serving. Its admin API lists no keyring.
func TestSIGHUPIgnoredWithoutKeyrings(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := edgeConfig(t, dir, config.OriginVerifyStatic)
	logs := &syncBuffer{}
	topo, adminURL := startWithAdmin(t, cfg, logs, KindApp)
	if topo.Keyring("origin-verify") != nil {
		t.Fatal("the app tier loaded the origin-verify keyring")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP to be ignored", func() bool { return strings.Contains(logs.String(), "SIGHUP ignored") })
	app := cfg.Apps[0].Listen[0]
	resp, err := http.Get("http://" + app + "/healthz")
	if err != nil {
		t.Fatalf("the app stopped serving after SIGHUP: %v", err)
	}
	resp.Body.Close()
	if st, body := getKeyrings(t, adminURL); len(st.Keyrings) != 0 {
		t.Fatalf("an app process lists keyrings: %s", body)
	}
}

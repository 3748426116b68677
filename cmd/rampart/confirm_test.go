package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/topology"
)

// startVerifier runs the load balancer named name of cfg with an admin listener, as its own
// process would (its own keyring instance and file watcher), and returns its admin URL.
func startVerifier(t *testing.T, cfg *config.Config, name string) (*topology.Topology, string) {
	t.Helper()
	sel := topology.Selection{Name: name, AdminListen: "127.0.0.1:0", Kinds: map[topology.Kind]bool{topology.KindLB: true, topology.KindAdmin: true}}
	ctx, cancel := context.WithCancel(context.Background())
	topo, err := topology.Build(ctx, cfg, sel, topology.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := topo.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- topo.Serve(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for i, e := range topo.Endpoints {
		if e.Kind == topology.KindAdmin {
			return topo, "http://" + topo.Addrs()[i].String()
		}
	}
	t.Fatal("no admin endpoint")
	return nil, ""
}

// TestSecretRotateConfirm rotates with --confirm against the real admin listeners of two load
// balancers: the new key becomes current only after both list it. With a verifier that cannot
// confirm, the rotation stops at step 2 with the key pending, says which verifier is missing and
// why, and a later rotation resumes with the same key.
func TestSecretRotateConfirm(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "ov.keys")
	lbA, lbB := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s}
load_balancers:
  - name: lb-a
    listeners:
      - {listen: "%[2]s", web_acl: gateway-only, default_action: {fixed_response: {status: 200}}}
  - name: lb-b
    listeners:
      - {listen: "%[3]s", web_acl: gateway-only, default_action: {fixed_response: {status: 200}}}
web_acls:
  - name: gateway-only
    rules:
      - name: require-origin-verify
        priority: 0
        action: block
        statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}
`, keys, lbA, lbB)
	file := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	topoA, adminA := startVerifier(t, cfg, "lb-a")
	_, adminB := startVerifier(t, cfg, "lb-b")
	oldID := topoA.Keyring("origin-verify").Current().ID

	// A verifier that never confirms: its address refuses connections.
	dead := "http://" + freePort(t, "127.0.0.1")
	var out, errb bytes.Buffer
	code := secretCmd(context.Background(), []string{"rotate", "origin-verify", "-c", file,
		"--confirm", adminA + "," + dead, "--confirm-timeout", "600ms", "--grace", "1ms"}, &out, &errb)
	if code != 1 {
		t.Fatalf("rotate with an unreachable verifier: exit %d, want 1\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{adminA + " has loaded key", dead + " has not loaded key", "unreachable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "stays pending") || !strings.Contains(errb.String(), "--confirm-timeout 600ms") {
		t.Errorf("error does not say the key stays pending after the timeout:\n%s", errb.String())
	}
	if strings.Contains(out.String(), "3/4") {
		t.Fatalf("the key became current without every confirmation:\n%s", out.String())
	}
	f, err := originverify.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	var pendingID string
	for _, k := range f.Keys {
		switch {
		case k.State == originverify.StatePending:
			pendingID = k.ID
		case k.ID == oldID && k.State != originverify.StateCurrent:
			t.Fatalf("old key is %s after a failed confirmation, want current", k.State)
		}
	}
	if pendingID == "" {
		t.Fatal("no pending key left after the failed confirmation")
	}

	// Both verifiers up: the rotation resumes with the same pending key and completes.
	out.Reset()
	errb.Reset()
	code = secretCmd(context.Background(), []string{"rotate", "origin-verify", "-c", file,
		"--confirm", adminA + "," + adminB + "/", "--grace", "1ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errb.String())
	}
	o := out.String()
	iA, iB, i3 := strings.Index(o, adminA+" has loaded key "+pendingID), strings.Index(o, adminB+" has loaded key "+pendingID), strings.Index(o, "3/4")
	if !strings.Contains(o, "resuming with pending key "+pendingID) || iA < 0 || iB < 0 || i3 < iA || i3 < iB {
		t.Fatalf("want both confirmations of %s before step 3:\n%s", pendingID, o)
	}
	for _, k := range topoA.Keyring("origin-verify").Keys() {
		if k.ID == pendingID && k.State == originverify.StateRetired {
			t.Fatal("the new key is retired")
		}
	}

	// Bad flags.
	if code := secretCmd(context.Background(), []string{"rotate", "origin-verify", "-c", file, "--confirm", "lb-a:9900"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not an admin URL") {
		t.Fatalf("--confirm without scheme: exit %d: %s", code, errb.String())
	}
}

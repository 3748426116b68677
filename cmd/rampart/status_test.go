package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/topology"
)

// TestStatus runs a load balancer with a token-protected admin listener in-process and reads its
// state with `rampart status` over a real socket: as a table, as JSON, with a wrong token and
// against nothing.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	const token = "status-test-token-0123456789"
	target := freePort(t, "127.0.0.1")
	yaml := fmt.Sprintf(`version: 1
secrets:
  origin-verify: {file: %[1]s}
load_balancers:
  - name: alb
    listeners:
      - listen: 127.0.0.1:0
        web_acl: only
        rules:
          - {priority: 1, conditions: {path: ["/*"]}, action: {forward: {target_group: items}}}
    target_groups:
      - name: items
        targets: ["%[2]s"]
        health_check: {path: /healthz, interval: 100ms, timeout: 50ms, healthy_threshold: 2, unhealthy_threshold: 2}
web_acls:
  - name: only
    rules:
      - {name: ov, priority: 0, action: block, statement: {not: {origin_verify: {header: X-Origin-Verify, secret: origin-verify}}}}
admin:
  listen: 127.0.0.1:0
  token: %[3]s
`, filepath.Join(dir, "ov.keys"), target, token)
	cfg, err := config.Parse("status.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	topo, adminURL := startVerifier(t, cfg, "alb")
	addr := strings.TrimPrefix(adminURL, "http://")
	keyID := topo.Keyring("origin-verify").Status().Keys[0].ID

	code, out, errOut := runCLI("status", "--admin", addr, "--token", token)
	if code != 0 {
		t.Fatalf("status: %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Rampart ", "Config status.yaml  hash " + topology.ConfigHash(cfg), "reloads 0 ok, 0 rejected",
		"Listeners", "lb", "alb", "Target groups", "items", target, "Keyrings", "origin-verify", keyID, "WAF: 0 matches"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("status wrote colour codes to a buffer:\n%q", out)
	}

	t.Setenv("RAMPART_ADMIN_TOKEN", token)
	code, out, _ = runCLI("status", "--admin", adminURL, "--json")
	var st admin.State
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Config.File != "status.yaml" || len(st.LoadBalancers) != 1 {
		t.Fatalf("status --json: %d %v\n%s", code, err, out)
	}

	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"wrong token", []string{"status", "--admin", addr, "--token", "wrong-token-wrong-token"}, 1, "refused the token"},
		{"no token", []string{"status", "--admin", addr, "--token", ""}, 1, "wants its token"},
		{"nothing there", []string{"status", "--admin", freePort(t, "127.0.0.1")}, 1, "is rampart running"},
		{"stray argument", []string{"status", "extra"}, 2, `unexpected argument "extra"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RAMPART_ADMIN_TOKEN", "")
			code, _, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.wantErr)
			}
		})
	}
}

// TestBannerColour: colour only on a terminal, and never with NO_COLOR; the dashboard URL is
// listed either way.
func TestBannerColour(t *testing.T) {
	if p := colorFor(&bytes.Buffer{}); p.bold != "" {
		t.Fatal("colour for a buffer")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := colorFor(f); p.bold != "" {
		t.Fatal("colour for a regular file")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if p := colorFor(tty); p.bold == "" {
			t.Error("no colour for a terminal")
		}
		t.Setenv("NO_COLOR", "1")
		if p := colorFor(tty); p.bold != "" {
			t.Error("colour for a terminal with NO_COLOR set")
		}
	}

	cfg, err := config.Parse("banner.yaml", []byte("version: 1\nadmin:\n  listen: 127.0.0.1:0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	topo, _ := startVerifier(t, cfg, "")
	for _, tc := range []struct {
		name string
		p    palette
	}{
		{"plain", colorFor(&bytes.Buffer{})},
		{"colour", palette{bold: "\x1b[1m", dim: "\x1b[2m", reset: "\x1b[0m", kind: map[topology.Kind]string{topology.KindAdmin: "\x1b[33m"}}},
	} {
		var b bytes.Buffer
		printBannerColor(&b, tc.p, "run", cfg, topo)
		out := b.String()
		if !strings.Contains(out, "Dashboard: ") || !strings.Contains(out, "Reloads banner.yaml on change") {
			t.Errorf("%s banner:\n%s", tc.name, out)
		}
		if got := strings.Contains(out, "\x1b["); got != (tc.name == "colour") {
			t.Errorf("%s banner has colour codes: %v\n%q", tc.name, got, out)
		}
	}
}

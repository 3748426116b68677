package kubernetes

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/config"
)

// TestDockerfile checks the image recipe for what docs/deploy.md promises, since CI cannot run
// docker: a multi-stage build of a static binary, a minimal final image, a non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found %d FROM lines", len(froms))
	}
	final := froms[len(froms)-1][1]
	if !strings.Contains(final, "distroless") && final != "scratch" && !strings.Contains(final, "slim") {
		t.Errorf("final image %q is not minimal (distroless, scratch or -slim)", final)
	}
	if !strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("the binary is not built static (CGO_ENABLED=0)")
	}
	finalStage := df[strings.LastIndex(df, "\nFROM "):]
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(finalStage)
	if user == nil || user[1] == "root" || strings.HasPrefix(user[1], "0") {
		t.Errorf("final stage USER = %v, want a non-root user", user)
	}
	if !strings.Contains(finalStage, "ENTRYPOINT") {
		t.Error("no ENTRYPOINT in the final stage")
	}
}

// TestSystemdUnit checks the VM unit's hardening (systemd-analyze verify in ./scripts/test checks
// its syntax).
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../systemd/rampart.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
		"PrivateTmp=yes", "ReadWritePaths=/var/lib/rampart", "StateDirectory=rampart",
		"WorkingDirectory=/var/lib/rampart", "CapabilityBoundingSet=\n", "Restart=on-failure",
		"ExecReload=/bin/kill -HUP $MAINPID", "ExecStartPre=/usr/local/bin/rampart validate",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("rampart.service lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestDeployExamplesValidate: the multi-host examples pass config validation as written, with the
// environment docs/deploy.md gives (the e2e tests run them; this catches a broken file in
// seconds).
func TestDeployExamplesValidate(t *testing.T) {
	env := map[string]string{
		"RAMPART_DB_PASSWORD":    "secret",
		"RAMPART_GATEWAY_LISTEN": "0.0.0.0:8080", "RAMPART_LB_LISTEN": "0.0.0.0:8081",
		"RAMPART_LB_URL": "http://10.0.1.10:8081", "RAMPART_LB_EGRESS": "10.0.1.10",
		"RAMPART_LB_SUBNET": "10.0.1.0/24", "RAMPART_APP_1": "10.0.2.11:9001", "RAMPART_APP_2": "10.0.2.12:9001",
		"RAMPART_ADMIN_LISTEN": "0.0.0.0:9900", "RAMPART_ADMIN_TOKEN": "0123456789abcdef0123456789abcdef",
		"RAMPART_REDIS_URL":    "redis://:pw@10.0.3.7:6379/0",
		"RAMPART_KEYRING_FILE": "/var/lib/rampart/origin-verify.keys", "RAMPART_API_KEYS_FILE": "/var/lib/rampart/api-keys.json",
		"DATABASE_URL": "postgres://items:pw@10.0.3.10:5432/items?sslmode=verify-full",
	}
	for _, f := range []string{"postgres.yaml", "ha.yaml"} {
		data, err := os.ReadFile("../../examples/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := config.Parse("examples/"+f, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
			t.Errorf("examples/%s:\n%v", f, err)
		}
	}
}

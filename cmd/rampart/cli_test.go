package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/examples"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLI(t *testing.T) {
	good := filepath.Join(t.TempDir(), "rampart.yaml")
	const splitEnv = "testdata/split-env.yaml"
	if err := os.WriteFile(good, examples.Default, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string
		wantErr    []string
		wantNoFile string // a path that must not exist afterwards
	}{
		{name: "no args prints usage", args: nil, wantCode: 2, wantErr: []string{"Usage:", "rampart run"}},
		{name: "help", args: []string{"help"}, wantCode: 0, wantOut: []string{"rampart validate -c FILE"}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantOut: []string{"rampart "}},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantErr: []string{`unknown command "serve"`}},
		{name: "validate good", args: []string{"validate", "-c", good}, wantCode: 0, wantOut: []string{good + ": ok"}},
		{name: "validate bad reports every error with position and hint", args: []string{"validate", "-c", "testdata/bad.yaml"}, wantCode: 1,
			wantErr: []string{"testdata/bad.yaml:5:18: gateways[0].cors.mode:", "enforce", "testdata/bad.yaml:9:24:", `unknown secret "missing"`}},
		{name: "validate missing file", args: []string{"validate", "-c", "testdata/nope.yaml"}, wantCode: 1, wantErr: []string{"nope.yaml"}},
		{name: "validate needs -c", args: []string{"validate"}, wantCode: 2, wantErr: []string{"-c FILE"}},
		// One file for two hosts: the load balancer's variable is unset on the gateway's host.
		{name: "validate needs every variable", args: []string{"validate", "-c", splitEnv}, wantCode: 1,
			wantErr: []string{splitEnv + ":12:17: load_balancers[0].listeners[0].listen:", "RAMPART_TEST_NEVER_SET_LB_LISTEN"}},
		{name: "validate --for gateway needs only its own", args: []string{"validate", "-c", splitEnv, "--for", "gateway"}, wantCode: 0,
			wantOut: []string{splitEnv + ": ok for rampart gateway"}},
		{name: "validate --for gateway --name", args: []string{"validate", "-c", splitEnv, "--for", "gateway", "--name", "gw"}, wantCode: 0,
			wantOut: []string{"ok for rampart gateway --name gw"}},
		{name: "validate --for lb still needs the lb's", args: []string{"validate", "-c", splitEnv, "--for", "lb"}, wantCode: 1,
			wantErr: []string{"RAMPART_TEST_NEVER_SET_LB_LISTEN"}},
		{name: "validate --for an unknown name", args: []string{"validate", "-c", splitEnv, "--for", "gateway", "--name", "nope"}, wantCode: 1,
			wantErr: []string{`no gateway named "nope"`}},
		{name: "validate --for a kind that is none", args: []string{"validate", "-c", splitEnv, "--for", "web"}, wantCode: 2,
			wantErr: []string{`--for "web": write gateway, lb or app`}},
		{name: "validate --name without --for", args: []string{"validate", "-c", splitEnv, "--name", "gw"}, wantCode: 2,
			wantErr: []string{"--name needs --for"}},
		{name: "gateway needs -c", args: []string{"gateway"}, wantCode: 2, wantErr: []string{"needs a config file"}},
		{name: "stray argument", args: []string{"run", "extra"}, wantCode: 2, wantErr: []string{`unexpected argument "extra"`}},
		{name: "unknown name", args: []string{"lb", "-c", good, "--name", "nope"}, wantCode: 1, wantErr: []string{`no lb named \"nope\"`}},
		{name: "bad log format", args: []string{"run", "--log-format", "xml"}, wantCode: 2, wantErr: []string{"log format"}},
		{name: "admin on the network needs a token", args: []string{"app", "-c", good, "--admin", "0.0.0.0:0"}, wantCode: 2, wantErr: []string{"set admin.token"}},
		{name: "status in usage", args: []string{"help"}, wantCode: 0, wantOut: []string{"rampart status [--admin ADDR]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

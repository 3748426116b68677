package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/originverify"
)

func TestSecretRotateAndListCLI(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "ov.keys")
	file := filepath.Join(dir, "rampart.yaml")
	yaml := fmt.Sprintf("version: 1\nsecrets:\n  origin-verify: {file: %s}\nadmin: {listen: \"127.0.0.1:0\"}\n", keys)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := secretCmd(context.Background(), []string{"rotate", "origin-verify", "-c", file, "--propagation", "1ms", "--grace", "1ms"}, &out, &errb); code != 0 {
		t.Fatalf("rotate: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, step := range []string{"1/4", "2/4", "3/4", "4/4"} {
		if !strings.Contains(out.String(), step) {
			t.Errorf("rotate output lacks step %s:\n%s", step, out.String())
		}
	}
	if code := secretCmd(context.Background(), []string{"list", "origin-verify", "-c", file}, &out, &errb); code != 0 {
		t.Fatalf("list: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "retired") || !strings.Contains(out.String(), "current") {
		t.Errorf("list output:\n%s", out.String())
	}
	f, err := originverify.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range f.Keys {
		if strings.Contains(out.String()+errb.String(), k.Secret) {
			t.Fatal("the CLI printed a secret")
		}
	}
	if code := secretCmd(context.Background(), []string{"rotate", "nope", "-c", file}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `no secret "nope"`) {
		t.Fatalf("unknown secret: exit %d: %s", code, errb.String())
	}
}

func TestCertsInitCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errb bytes.Buffer
	if code := certsCmd([]string{"init", "--dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "gateway.pem", "gateway-key.pem", "lb.pem", "lb-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-key.pem") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if !strings.Contains(out.String(), "require_client_cert: true") {
		t.Errorf("no config hint:\n%s", out.String())
	}
	// A second run does not overwrite the CA.
	if code := certsCmd([]string{"init", "--dir", dir}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "already exists") {
		t.Fatalf("second run: exit %d: %s", code, errb.String())
	}
}

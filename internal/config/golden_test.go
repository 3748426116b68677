package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

// testEnv is the environment the test files see. The secret's value must never appear in any
// error message.
var testEnv = map[string]string{
	"RAMPART_TEST_MULTILINE": "line1\nline2",
	"RAMPART_TEST_SECRET":    "s3cret-value-never-printed",
	"RAMPART_TEST_PORT":      "8080",
	"RAMPART_KEYS_DIR":       "/var/lib/rampart",
}

func lookupTestEnv(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

// TestInvalidGolden parses every testdata/invalid/*.yaml and compares the complete error output
// with the .golden file next to it. Run `go test ./internal/config -update` to rewrite them, then
// read the diff.
func TestInvalidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(filepath.ToSlash(file), data, lookupTestEnv)
			if err == nil {
				t.Fatalf("Parse accepted an invalid file: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			got := err.Error() + "\n"
			for _, secret := range []string{testEnv["RAMPART_TEST_SECRET"], "hunter2"} {
				if strings.Contains(got, secret) {
					t.Errorf("error output contains a secret value %q:\n%s", secret, got)
				}
			}
			for _, e := range errs {
				if e.File != filepath.ToSlash(file) {
					t.Errorf("error %q has file %q", e, e.File)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s (run with -update to accept)\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

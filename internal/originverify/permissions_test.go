package originverify

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoosePermissions(t *testing.T) {
	dir := t.TempDir()
	created := filepath.Join(dir, "created.keys")
	if _, err := LoadOrCreate("origin-verify", created); err != nil {
		t.Fatal(err)
	}
	if mode, loose := LoosePermissions(created); loose {
		t.Fatalf("a keyring Rampart created is %v, want 0600", mode)
	}
	for _, tc := range []struct {
		mode  os.FileMode
		loose bool
	}{{0o600, false}, {0o400, false}, {0o440, false}, {0o640, false}, {0o660, true}, {0o644, true}, {0o604, true}} {
		if err := os.Chmod(created, tc.mode); err != nil {
			t.Fatal(err)
		}
		if _, loose := LoosePermissions(created); loose != tc.loose {
			t.Errorf("mode %v: loose = %v, want %v", tc.mode, loose, tc.loose)
		}
	}
	if _, loose := LoosePermissions(filepath.Join(dir, "missing")); loose {
		t.Error("a missing file is not loose")
	}
}

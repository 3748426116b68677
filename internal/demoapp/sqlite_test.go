package demoapp

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openTestStore(t *testing.T, path string) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The shared cases (CRUD, reopen, schema version, concurrency) are in store_test.go and run
// against every backend; these are SQLite's own.

// TestSQLiteFileFormat: a new file is created with its parent directories, in WAL mode, with the
// schema version in its header.
func TestSQLiteFileFormat(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "nested", "dir", "items.db") // parent dirs are created
	s, err := OpenStore(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Create(ctx, "kept", "across reopen")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTestStore(t, path)
	got, err := s2.Get(ctx, want.ID)
	if err != nil || got != want {
		t.Fatalf("after reopen Get = %+v, %v; want %+v", got, err, want)
	}

	// The file is in WAL mode and carries the schema version.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	var version int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) {
		t.Errorf("user_version = %d, %v; want %d", version, err, len(migrations))
	}
}

func TestStoreMemory(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(ctx, "sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	it, err := s.Create(ctx, "m", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, it.ID); err != nil || got != it {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

func TestOpenStoreDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		dsn     string
		wantErr string // empty: must open
	}{
		{"sqlite:" + filepath.Join(dir, "a.db"), ""},
		{"sqlite:", "empty path"},
		{"sqlite:" + filepath.Join(dir, "b.db?_pragma=x"), "must not contain"},
		// Nothing listens on port 1: the connection is refused at once.
		{"postgres://rampart:hunter2@127.0.0.1:1/items", "database unavailable"},
		{"postgresql://rampart:hunter2@127.0.0.1:1/items?sslmode=disable", "database unavailable"},
		{"postgres://rampart:hunter2@127.0.0.1:1/items?sslmode=bogus", "does not parse"},
		{"mysql://u:hunter2@db/items", `unsupported scheme "mysql"`},
		{"items.db", "must start with"},
		{"", "must start with"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			// An unreachable database is waited for (pgStartWait) until the context ends.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			s, err := OpenStore(ctx, tt.dsn)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("OpenStore: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("OpenStore succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks the DSN password", err)
			}
		})
	}
}

// TestStoreSharedFileProcesses runs the same workload from separate processes (this test binary
// re-executed), the way several `rampart app` instances share one SQLite file.
func TestStoreSharedFileProcesses(t *testing.T) {
	if path := os.Getenv("DEMOAPP_HELPER_DB"); path != "" {
		n, _ := strconv.Atoi(os.Getenv("DEMOAPP_HELPER_N"))
		s, err := OpenStore(context.Background(), "sqlite:"+path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			os.Exit(2)
		}
		for j := range n {
			if _, err := s.Create(context.Background(), fmt.Sprintf("p%d-%d", os.Getpid(), j), ""); err != nil {
				fmt.Fprintln(os.Stderr, "create:", err)
				os.Exit(3)
			}
		}
		s.Close()
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "procs.db")
	const procs, perProc = 3, 30
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreSharedFileProcesses$")
		cmd.Env = append(os.Environ(), "DEMOAPP_HELPER_DB="+path, "DEMOAPP_HELPER_N="+strconv.Itoa(perProc))
		outs[i] = &strings.Builder{}
		cmd.Stderr = outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v: %s", i, err, outs[i])
		}
	}
	s := openTestStore(t, path)
	items, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != procs*perProc {
		t.Fatalf("got %d items, want %d", len(items), procs*perProc)
	}
}

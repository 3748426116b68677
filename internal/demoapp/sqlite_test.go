package demoapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

func TestStoreCRUD(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "items.db"))

	items, err := s.List(ctx)
	if err != nil || items == nil || len(items) != 0 {
		t.Fatalf("List on empty store = %#v, %v; want empty non-nil slice", items, err)
	}

	before := time.Now().UTC()
	a, err := s.Create(ctx, "alpha", "first")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if a.ID <= 0 || a.Name != "alpha" || a.Note != "first" || !a.CreatedAt.Equal(a.UpdatedAt) || a.CreatedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("Create returned %+v", a)
	}
	b, err := s.Create(ctx, "beta", "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if b.ID <= a.ID {
		t.Fatalf("ids not increasing: %d then %d", a.ID, b.ID)
	}

	got, err := s.Get(ctx, a.ID)
	if err != nil || got != a {
		t.Fatalf("Get(%d) = %+v, %v; want %+v", a.ID, got, err, a)
	}

	upd, err := s.Update(ctx, a.ID, "alpha2", "changed")
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if upd.Name != "alpha2" || upd.Note != "changed" || !upd.CreatedAt.Equal(a.CreatedAt) || upd.UpdatedAt.Before(a.UpdatedAt) {
		t.Fatalf("Update returned %+v (was %+v)", upd, a)
	}

	items, err = s.List(ctx)
	if err != nil || len(items) != 2 || items[0] != upd || items[1] != b {
		t.Fatalf("List = %+v, %v; want [%+v %+v]", items, err, upd, b)
	}

	if err := s.Delete(ctx, a.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for name, err := range map[string]error{
		"Get":    func() error { _, err := s.Get(ctx, a.ID); return err }(),
		"Update": func() error { _, err := s.Update(ctx, a.ID, "x", ""); return err }(),
		"Delete": s.Delete(ctx, a.ID),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after delete: %v, want ErrNotFound", name, err)
		}
	}
	// AUTOINCREMENT: a deleted id is never handed out again.
	c, err := s.Create(ctx, "gamma", "")
	if err != nil || c.ID <= b.ID {
		t.Fatalf("Create after delete = %+v, %v; want id > %d", c, err, b.ID)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestStorePersistsAcrossReopen(t *testing.T) {
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

func TestStoreRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "items.db")
	s := openTestStore(t, path)
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenStore(context.Background(), "sqlite:"+path)
	if err == nil || !strings.Contains(err.Error(), "newer than this binary supports") {
		t.Fatalf("OpenStore on a newer schema: %v", err)
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

func TestStoreClosedIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(ctx, "sqlite:"+filepath.Join(t.TempDir(), "items.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.List(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("List on closed store: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping on closed store: %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, 1); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("Get on closed store: %v, want ErrUnavailable", err)
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
		{"postgres://rampart:hunter2@db:5432/items", "PostgreSQL support arrives with the database issue"},
		{"postgresql://rampart:hunter2@db/items", "PostgreSQL support arrives with the database issue"},
		{"mysql://u:hunter2@db/items", `unsupported scheme "mysql"`},
		{"items.db", "must start with"},
		{"", "must start with"},
	}
	for _, tt := range tests {
		t.Run(tt.dsn, func(t *testing.T) {
			s, err := OpenStore(context.Background(), tt.dsn)
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

// TestStoreSharedFileConcurrent opens a new file from several handles at once (each racing to
// create the schema), then writes from all of them concurrently and checks that every handle sees
// every write.
func TestStoreSharedFileConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	const handles, perHandle = 3, 25

	stores := make([]Store, handles)
	errs := make([]error, handles)
	var wg sync.WaitGroup
	for i := range handles {
		wg.Go(func() { stores[i], errs[i] = OpenStore(ctx, "sqlite:"+path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("handle %d: OpenStore: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}

	writeErrs := make(chan error, handles*perHandle)
	for i, s := range stores {
		wg.Go(func() {
			for j := range perHandle {
				it, err := s.Create(ctx, fmt.Sprintf("h%d-%d", i, j), "")
				if err == nil {
					_, err = s.Update(ctx, it.ID, it.Name, "updated")
				}
				if err == nil {
					_, err = s.List(ctx)
				}
				if err != nil {
					writeErrs <- fmt.Errorf("handle %d item %d: %w", i, j, err)
				}
			}
		})
	}
	wg.Wait()
	close(writeErrs)
	for err := range writeErrs {
		t.Error(err)
	}
	for i, s := range stores {
		items, err := s.List(ctx)
		if err != nil {
			t.Fatalf("handle %d: List: %v", i, err)
		}
		if len(items) != handles*perHandle {
			t.Fatalf("handle %d sees %d items, want %d", i, len(items), handles*perHandle)
		}
		seen := map[string]bool{}
		for _, it := range items {
			if it.Note != "updated" || seen[it.Name] {
				t.Fatalf("handle %d: unexpected item %+v", i, it)
			}
			seen[it.Name] = true
		}
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

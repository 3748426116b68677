package demoapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-edge/rampart/internal/demoapp/pgtest"
)

// storeBackend is one Store implementation under the shared suite.
type storeBackend struct {
	name string
	// fresh returns the DSN of a new, empty database.
	fresh func(t *testing.T) string
	// setVersion marks the database's schema as being at version v (to simulate a newer binary).
	setVersion func(t *testing.T, dsn string, v int)
	// latest is the schema version this binary writes.
	latest int
}

// storeBackends lists SQLite, and PostgreSQL (whose cases skip when its binaries are absent).
func storeBackends(t *testing.T) []storeBackend {
	sqlite := storeBackend{
		name: "sqlite",
		fresh: func(t *testing.T) string {
			return "sqlite:" + filepath.Join(t.TempDir(), "items.db")
		},
		setVersion: func(t *testing.T, dsn string, v int) {
			db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
				t.Fatal(err)
			}
		},
		latest: len(migrations),
	}
	pgMigs, err := loadPGMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// One server, started on the parent test so that it outlives every subtest, serves every
	// PostgreSQL case, each in a database of its own.
	var srv *pgtest.Server
	if pgtest.Available() {
		srv = pgtest.Start(t)
	}
	server := func(t *testing.T) *pgtest.Server {
		if srv == nil {
			t.Skip("PostgreSQL server binaries not found (see internal/demoapp/pgtest): only SQLite was tested")
		}
		return srv
	}
	postgres := storeBackend{
		name:  "postgres",
		fresh: func(t *testing.T) string { return server(t).CreateDatabase("store") },
		setVersion: func(t *testing.T, dsn string, v int) {
			ctx := context.Background()
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", v); err != nil {
				t.Fatal(err)
			}
		},
		latest: pgMigs[len(pgMigs)-1].version,
	}
	return []storeBackend{sqlite, postgres}
}

func openDSN(t *testing.T, dsn string) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), dsn)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreSuite runs the same cases against every backend: the items API and its semantics are
// one contract, whatever the database.
func TestStoreSuite(t *testing.T) {
	backends := storeBackends(t)
	cases := []struct {
		name string
		run  func(t *testing.T, b storeBackend)
	}{
		{"CRUD", testStoreCRUD},
		{"PersistsAcrossReopen", testStorePersists},
		{"RefusesNewerSchema", testStoreRefusesNewerSchema},
		{"ClosedIsUnavailable", testStoreClosed},
		{"ConcurrentHandles", testStoreConcurrentHandles},
		{"TextRoundTrip", testStoreTextRoundTrip},
		{"CanceledContext", testStoreCanceledContext},
		{"HandlerInputs", testStoreHandlerInputs},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { c.run(t, b) })
			}
		})
	}
}

func testStoreCRUD(t *testing.T, b storeBackend) {
	ctx := context.Background()
	s := openDSN(t, b.fresh(t))

	items, err := s.List(ctx)
	if err != nil || items == nil || len(items) != 0 {
		t.Fatalf("List on empty store = %#v, %v; want empty non-nil slice", items, err)
	}

	before := time.Now().UTC()
	a, err := s.Create(ctx, "alpha", "first")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if a.ID <= 0 || a.Name != "alpha" || a.Note != "first" || !a.CreatedAt.Equal(a.UpdatedAt) ||
		a.CreatedAt.Before(before.Add(-time.Second)) || a.CreatedAt.Location() != time.UTC {
		t.Fatalf("Create returned %+v", a)
	}
	b2, err := s.Create(ctx, "beta", "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if b2.ID <= a.ID {
		t.Fatalf("ids not increasing: %d then %d", a.ID, b2.ID)
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
	if err != nil || len(items) != 2 || items[0] != upd || items[1] != b2 {
		t.Fatalf("List = %+v, %v; want [%+v %+v]", items, err, upd, b2)
	}

	if err := s.Delete(ctx, a.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	notFound := []struct {
		op  string
		err error
	}{
		{"Get", func() error { _, err := s.Get(ctx, a.ID); return err }()},
		{"Update", func() error { _, err := s.Update(ctx, a.ID, "x", ""); return err }()},
		{"Delete", s.Delete(ctx, a.ID)},
		{"Get never-existing", func() error { _, err := s.Get(ctx, 1<<40); return err }()},
	}
	for _, nf := range notFound {
		if !errors.Is(nf.err, ErrNotFound) || errors.Is(nf.err, ErrUnavailable) {
			t.Errorf("%s after delete: %v, want ErrNotFound", nf.op, nf.err)
		}
	}
	// A deleted id is never handed out again.
	c, err := s.Create(ctx, "gamma", "")
	if err != nil || c.ID <= b2.ID {
		t.Fatalf("Create after delete = %+v, %v; want id > %d", c, err, b2.ID)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testStorePersists(t *testing.T, b storeBackend) {
	ctx := context.Background()
	dsn := b.fresh(t)
	s, err := OpenStore(ctx, dsn)
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
	// Reopening runs the migrations again: they must find nothing to do.
	s2 := openDSN(t, dsn)
	got, err := s2.Get(ctx, want.ID)
	if err != nil || got != want {
		t.Fatalf("after reopen Get = %+v, %v; want %+v", got, err, want)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Fatalf("Ping after reopen: %v", err)
	}
}

func testStoreRefusesNewerSchema(t *testing.T, b storeBackend) {
	dsn := b.fresh(t)
	s := openDSN(t, dsn)
	s.Close()
	b.setVersion(t, dsn, b.latest+1)
	_, err := OpenStore(context.Background(), dsn)
	if err == nil || !strings.Contains(err.Error(), "newer than this binary supports") {
		t.Fatalf("OpenStore on a newer schema: %v", err)
	}
}

func testStoreClosed(t *testing.T, b storeBackend) {
	ctx := context.Background()
	s, err := OpenStore(ctx, b.fresh(t))
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

// testStoreConcurrentHandles opens a new database from several handles at once (each racing to
// create the schema: the migration lock must let exactly one do it), then writes from all of them
// concurrently and checks that every handle sees every write.
func testStoreConcurrentHandles(t *testing.T, b storeBackend) {
	ctx := context.Background()
	dsn := b.fresh(t)
	const handles, perHandle = 4, 20

	stores := make([]Store, handles)
	errs := make([]error, handles)
	var wg sync.WaitGroup
	for i := range handles {
		wg.Go(func() { stores[i], errs[i] = OpenStore(ctx, dsn) })
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

// testStoreTextRoundTrip stores text that trips naive SQL building or encodings.
func testStoreTextRoundTrip(t *testing.T, b storeBackend) {
	ctx := context.Background()
	s := openDSN(t, b.fresh(t))
	for _, text := range []string{
		"Robert'); DROP TABLE items;--",
		"日本語 ✓ émoji 🚀",
		strings.Repeat("x", MaxNameLen),
		"$1 ? %s \\ \" `",
		"line\nbreak\ttab",
	} {
		it, err := s.Create(ctx, text, text)
		if err != nil {
			t.Fatalf("Create(%q): %v", text, err)
		}
		got, err := s.Get(ctx, it.ID)
		if err != nil || got.Name != text || got.Note != text {
			t.Fatalf("Get after Create(%q) = %+v, %v", text, got, err)
		}
	}
	if items, err := s.List(ctx); err != nil || len(items) != 5 {
		t.Fatalf("List = %d items, %v; want 5 (the table survived)", len(items), err)
	}
}

// testStoreCanceledContext: a caller's canceled context is the caller's doing, not the
// database's, so it must not read as ErrUnavailable.
func testStoreCanceledContext(t *testing.T, b storeBackend) {
	s := openDSN(t, b.fresh(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.List(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("List with a canceled context: %v; want context.Canceled, not ErrUnavailable", err)
	}
}

// hungStore is a Store whose every call waits for its context, as a database that accepted the
// connection and then stopped answering would.
type hungStore struct{ Store }

func (hungStore) wait(ctx context.Context) error             { <-ctx.Done(); return ctx.Err() }
func (h hungStore) List(ctx context.Context) ([]Item, error) { return nil, h.wait(ctx) }
func (h hungStore) Get(ctx context.Context, _ int64) (Item, error) {
	return Item{}, h.wait(ctx)
}
func (h hungStore) Create(ctx context.Context, _, _ string) (Item, error) {
	return Item{}, h.wait(ctx)
}
func (h hungStore) Update(ctx context.Context, _ int64, _, _ string) (Item, error) {
	return Item{}, h.wait(ctx)
}
func (h hungStore) Delete(ctx context.Context, _ int64) error { return h.wait(ctx) }
func (h hungStore) Ping(ctx context.Context) error            { return h.wait(ctx) }

// TestHandlerBoundsStoreCalls: whatever the backend, a store call that never returns on its own
// becomes a 503 after the per-request timeout, not a hung request.
func TestHandlerBoundsStoreCalls(t *testing.T) {
	const timeout = 200 * time.Millisecond
	srv := httptest.NewServer(newHandler("app-1", hungStore{}, nil, timeout))
	t.Cleanup(srv.Close)
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/items", ""},
		{"GET", "/items/1", ""},
		{"POST", "/items", `{"name":"x"}`},
		{"PUT", "/items/1", `{"name":"x"}`},
		{"DELETE", "/items/1", ""},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != 503 || took > timeout+2*time.Second || took < timeout {
			t.Errorf("%s %s = %d %s after %v; want 503 after about %v", tt.method, tt.path, resp.StatusCode, body, took, timeout)
		}
		if !strings.Contains(string(body), `"database unavailable"`) {
			t.Errorf("%s %s body %s", tt.method, tt.path, body)
		}
	}
}

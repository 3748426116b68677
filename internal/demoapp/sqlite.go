package demoapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// busyTimeout is how long a connection waits for another writer (another goroutine or process
// sharing the file) before a statement fails with SQLITE_BUSY, which the store reports as
// ErrUnavailable.
const busyTimeout = 5 * time.Second

// timeLayout stores timestamps as fixed-width UTC text, so that they sort as strings and stay
// readable in the sqlite3 shell.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// migrations are applied in order; PRAGMA user_version records how many have run. Append, never
// edit: a database created by an older binary is brought forward by the entries it has not seen.
var migrations = []string{
	`CREATE TABLE items (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		name       TEXT NOT NULL,
		note       TEXT NOT NULL DEFAULT '',
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	)`,
}

// sqliteStore is the embedded default Store. WAL mode lets readers run while one writer writes,
// the busy timeout makes writers queue instead of failing, and writes that read first run under
// BEGIN IMMEDIATE (the _txlock DSN parameter) so that a stale snapshot can never be upgraded.
type sqliteStore struct {
	db *sql.DB
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("database: sqlite: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		// The driver reads everything after '?' as its own parameters.
		return nil, fmt.Errorf("database: sqlite: path %q must not contain '?' or '#'", path)
	}
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("database: sqlite: create directory for %q: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	if !memory {
		q.Set("_journal_mode", "WAL")
	}
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("database: sqlite %q: %w", path, err)
	}
	if memory {
		// Every connection to ":memory:" is a separate database: keep exactly one.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		// A small, steady pool: SQLite serialises writers anyway, and a connection closed while
		// another one holds a lock on the file keeps its descriptor until a later open reuses it,
		// so churning connections (database/sql keeps 2 idle by default) grows the process's
		// open files with the peak concurrency.
		db.SetMaxOpenConns(sqlitePoolSize)
		db.SetMaxIdleConns(sqlitePoolSize)
	}
	s := &sqliteStore{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database: sqlite %q: %w", path, err)
	}
	return s, nil
}

// sqlitePoolSize bounds the connections (and file descriptors) of one SQLite store.
const sqlitePoolSize = 4

// migrate brings the schema up to date inside one immediate transaction, so that several
// instances opening a new file at the same moment create the schema exactly once.
func (s *sqliteStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("begin migration", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return unavailable("read schema version", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary supports (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if version < len(migrations) {
		// PRAGMA takes no bind parameters; the value is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return unavailable("commit migration", err)
	}
	return nil
}

// unavailable wraps a database error so that errors.Is(err, ErrUnavailable) holds, unless the
// caller's context ended, which is the caller's doing and not the database's.
func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

const itemColumns = "id, name, note, created_at, updated_at"

type scanner interface{ Scan(dest ...any) error }

func scanItem(row scanner) (Item, error) {
	var it Item
	var created, updated string
	if err := row.Scan(&it.ID, &it.Name, &it.Note, &created, &updated); err != nil {
		return Item{}, err
	}
	var err error
	if it.CreatedAt, err = time.Parse(timeLayout, created); err != nil {
		return Item{}, fmt.Errorf("item %d: created_at: %w", it.ID, err)
	}
	if it.UpdatedAt, err = time.Parse(timeLayout, updated); err != nil {
		return Item{}, fmt.Errorf("item %d: updated_at: %w", it.ID, err)
	}
	return it, nil
}

func (s *sqliteStore) List(ctx context.Context) ([]Item, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+itemColumns+" FROM items ORDER BY id")
	if err != nil {
		return nil, unavailable("list items", err)
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, unavailable("list items", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list items", err)
	}
	return items, nil
}

func (s *sqliteStore) Get(ctx context.Context, id int64) (Item, error) {
	it, err := scanItem(s.db.QueryRowContext(ctx, "SELECT "+itemColumns+" FROM items WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, unavailable(fmt.Sprintf("get item %d", id), err)
	}
	return it, nil
}

func (s *sqliteStore) Create(ctx context.Context, name, note string) (Item, error) {
	now := time.Now().UTC().Format(timeLayout)
	it, err := scanItem(s.db.QueryRowContext(ctx,
		"INSERT INTO items (name, note, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING "+itemColumns,
		name, note, now, now))
	if err != nil {
		return Item{}, unavailable("create item", err)
	}
	return it, nil
}

func (s *sqliteStore) Update(ctx context.Context, id int64, name, note string) (Item, error) {
	now := time.Now().UTC().Format(timeLayout)
	it, err := scanItem(s.db.QueryRowContext(ctx,
		"UPDATE items SET name = ?, note = ?, updated_at = ? WHERE id = ? RETURNING "+itemColumns,
		name, note, now, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, unavailable(fmt.Sprintf("update item %d", id), err)
	}
	return it, nil
}

func (s *sqliteStore) Delete(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM items WHERE id = ?", id)
	if err != nil {
		return unavailable(fmt.Sprintf("delete item %d", id), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return unavailable(fmt.Sprintf("delete item %d", id), err)
	}
	if n == 0 {
		return fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	return nil
}

// Ping reads the schema version from the database header, which touches the file (database/sql's
// own Ping only checks that a connection object exists).
func (s *sqliteStore) Ping(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return unavailable("ping", err)
	}
	if version != len(migrations) {
		return fmt.Errorf("ping: %w: schema version %d, want %d", ErrUnavailable, version, len(migrations))
	}
	return nil
}

func (s *sqliteStore) Close() error { return s.db.Close() }

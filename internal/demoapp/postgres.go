package demoapp

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrationFiles are the PostgreSQL schema migrations, NNNN_name.sql, applied in version order.
// Append a new file, never edit an applied one: schema_migrations records which versions ran.
//
//go:embed migrations/*.sql
var pgMigrationFiles embed.FS

// pgMigrationLock is the pg_advisory_lock key that serialises migrations, so that several
// instances starting at once against a new database create the schema exactly once. It is
// arbitrary but fixed: "RAMPART1" read as an int64.
const pgMigrationLock int64 = 0x52414d5041525431

// pgConnectTimeout bounds one connection attempt when the URL does not set connect_timeout, so
// that an unreachable host fails a request quickly instead of holding it for the OS's TCP timeout.
const pgConnectTimeout = 3 * time.Second

// pgStartWait is how long the store waits at start for an unreachable database before the start
// fails (systemd or Kubernetes then restarts the process).
const pgStartWait = 30 * time.Second

type pgMigration struct {
	version int
	name    string
	sql     string
}

// loadPGMigrations reads the embedded migrations, sorted by version; versions must be unique.
func loadPGMigrations() ([]pgMigration, error) {
	entries, err := fs.ReadDir(pgMigrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []pgMigration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		b, err := pgMigrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, pgMigration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b pgMigration) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %q and %q have the same version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// pgStore keeps items in PostgreSQL through a pgx connection pool. The pool reconnects by itself:
// while the server is unreachable every call fails with ErrUnavailable, and the first call after it
// returns opens a fresh connection.
type pgStore struct {
	pool   *pgxpool.Pool
	latest int // the highest migration version this binary knows
}

func openPostgres(ctx context.Context, dsn string, source netip.Addr) (Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the URL; only its kind is safe to show.
		return nil, errors.New("database: postgres: the URL does not parse (see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	if source.IsValid() {
		cfg.ConnConfig.DialFunc = sourceDialer(source, cfg.ConnConfig.ConnectTimeout)
	}
	// Idle connections are checked every HealthCheckPeriod; a shorter period drops the
	// connections a database restart broke before a request picks one up.
	cfg.HealthCheckPeriod = 5 * time.Second
	migs, err := loadPGMigrations()
	if err != nil {
		return nil, fmt.Errorf("database: postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: postgres: %w", err)
	}
	s := &pgStore{pool: pool, latest: migs[len(migs)-1].version}
	if err := s.migrateWhenReachable(ctx, migs); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: postgres %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return s, nil
}

// sourceDialer dials TCP connections from source where such a connection can exist, and lets the
// kernel choose elsewhere: a unix socket has no TCP source, an address of the other family cannot
// be bound, and Linux refuses a loopback source toward a non-loopback destination (an app on
// 127.0.0.2 using a database on another host). pgx resolves host names before it dials, so addr
// is an IP address and port.
func sourceDialer(source netip.Addr, timeout time.Duration) pgconn.DialFunc {
	plain := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	bound := &net.Dialer{LocalAddr: &net.TCPAddr{IP: source.Unmap().AsSlice()}, Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if bindSource(source, network, addr) {
			return bound.DialContext(ctx, network, addr)
		}
		return plain.DialContext(ctx, network, addr)
	}
}

// bindSource reports whether a connection to addr over network may leave from source.
func bindSource(source netip.Addr, network, addr string) bool {
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	dst, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	src, dst := source.Unmap(), dst.Unmap()
	if src.Is4() != dst.Is4() {
		return false
	}
	return !src.IsLoopback() || dst.IsLoopback()
}

// migrateWhenReachable runs the migrations, retrying for up to pgStartWait while the server cannot
// be reached or is still starting, so that an app and its database started together (a
// Kubernetes rollout, a host boot) come up in either order. A refusal by the server itself (bad
// password, no pg_hba.conf entry, unknown database) fails at once: waiting cannot fix it.
func (s *pgStore) migrateWhenReachable(ctx context.Context, migs []pgMigration) error {
	deadline := time.Now().Add(pgStartWait)
	backoff := 250 * time.Millisecond
	for {
		err := s.migrate(ctx, migs)
		if err == nil || !retryableAtStart(err) || time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// retryableAtStart reports whether a start-up error may go away by itself: the server is
// unreachable (no PostgreSQL error at all) or answered that it is starting or shutting down.
func retryableAtStart(err error) bool {
	if !errors.Is(err, ErrUnavailable) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P03", "57P01", "57P02": // cannot_connect_now, admin_shutdown, crash_shutdown
			return true
		}
		return false
	}
	return true
}

// migrate applies the migrations the database has not seen, each in its own transaction together
// with its schema_migrations row, while holding a session advisory lock: a second instance
// starting at the same moment waits on the lock and then finds nothing left to do.
func (s *pgStore) migrate(ctx context.Context, migs []pgMigration) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return unavailable("connect", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", pgMigrationLock); err != nil {
		return unavailable("take the migration lock", err)
	}
	defer func() {
		// A fresh context: the caller's may have ended, and the lock must not outlive this call
		// on a pooled connection.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", pgMigrationLock); err != nil {
			// The session may be broken; closing it releases the lock server-side.
			_ = conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return unavailable("read schema version", err)
	}
	if current > s.latest {
		return fmt.Errorf("schema version %d is newer than this binary supports (%d)", current, s.latest)
	}
	for _, m := range migs {
		if m.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

const pgItemColumns = "id, name, note, created_at, updated_at"

func scanPGItem(row pgx.Row) (Item, error) {
	var it Item
	if err := row.Scan(&it.ID, &it.Name, &it.Note, &it.CreatedAt, &it.UpdatedAt); err != nil {
		return Item{}, err
	}
	// pgx returns timestamptz in the local zone; the API speaks UTC, as the SQLite store does.
	it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC(), it.UpdatedAt.UTC()
	return it, nil
}

func (s *pgStore) List(ctx context.Context) ([]Item, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+pgItemColumns+" FROM items ORDER BY id")
	if err != nil {
		return nil, unavailable("list items", err)
	}
	defer rows.Close()
	items := []Item{}
	for rows.Next() {
		it, err := scanPGItem(rows)
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

func (s *pgStore) Get(ctx context.Context, id int64) (Item, error) {
	it, err := scanPGItem(s.pool.QueryRow(ctx, "SELECT "+pgItemColumns+" FROM items WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, unavailable(fmt.Sprintf("get item %d", id), err)
	}
	return it, nil
}

func (s *pgStore) Create(ctx context.Context, name, note string) (Item, error) {
	it, err := scanPGItem(s.pool.QueryRow(ctx,
		"INSERT INTO items (name, note) VALUES ($1, $2) RETURNING "+pgItemColumns, name, note))
	if err != nil {
		return Item{}, unavailable("create item", err)
	}
	return it, nil
}

func (s *pgStore) Update(ctx context.Context, id int64, name, note string) (Item, error) {
	// GREATEST keeps updated_at from going backwards when the server clock steps back.
	it, err := scanPGItem(s.pool.QueryRow(ctx,
		"UPDATE items SET name = $1, note = $2, updated_at = GREATEST(now(), updated_at) WHERE id = $3 RETURNING "+pgItemColumns,
		name, note, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Item{}, unavailable(fmt.Sprintf("update item %d", id), err)
	}
	return it, nil
}

func (s *pgStore) Delete(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM items WHERE id = $1", id)
	if err != nil {
		return unavailable(fmt.Sprintf("delete item %d", id), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("item %d: %w", id, ErrNotFound)
	}
	return nil
}

// Ping reads the schema version, which proves a connection, a working session and the schema.
func (s *pgStore) Ping(ctx context.Context) error {
	var version int
	if err := s.pool.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return unavailable("ping", err)
	}
	if version != s.latest {
		return fmt.Errorf("ping: %w: schema version %d, want %d", ErrUnavailable, version, s.latest)
	}
	return nil
}

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}

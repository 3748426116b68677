package demoapp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Item is one record of the demo items service.
type Item struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Note      string    `json:"note"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ErrNotFound is returned by Get, Update and Delete when no item has the given id.
var ErrNotFound = errors.New("item not found")

// ErrUnavailable wraps every error that comes from the database itself (it cannot be opened,
// reached, locked or read), so that the handler can answer 503 without inspecting driver errors.
var ErrUnavailable = errors.New("database unavailable")

// Store keeps items. Implementations are safe for concurrent use; several Stores (in one process or
// in several) may share one database.
type Store interface {
	// List returns every item, oldest first; an empty store gives an empty, non-nil slice.
	List(ctx context.Context) ([]Item, error)
	Get(ctx context.Context, id int64) (Item, error)
	// Create stores a new item and returns it with its id and timestamps.
	Create(ctx context.Context, name, note string) (Item, error)
	// Update replaces the name and note of an item and returns the result.
	Update(ctx context.Context, id int64, name, note string) (Item, error)
	Delete(ctx context.Context, id int64) error
	// Ping reports whether the database can be read; the health check uses it.
	Ping(ctx context.Context) error
	Close() error
}

// OpenStore opens the store a DSN names: "sqlite:PATH" (PATH relative to the working directory, or
// ":memory:" for a private in-memory database) or a postgres:// URL. Errors never repeat the DSN,
// which may hold a password.
func OpenStore(ctx context.Context, dsn string) (Store, error) {
	return OpenStoreFrom(ctx, dsn, netip.Addr{})
}

// OpenStoreFrom is OpenStore with the source address of connections to a networked database
// (PostgreSQL): the app tier's own address, so that the database's pg_hba.conf can admit the app
// tier and nobody else, even when every tier shares one host. The zero Addr lets the kernel choose.
func OpenStoreFrom(ctx context.Context, dsn string, source netip.Addr) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, source)
	default:
		scheme, _, ok := strings.Cut(dsn, ":")
		if !ok || strings.ContainsAny(scheme, "/@") {
			return nil, errors.New(`database: DSN must start with "sqlite:" or "postgres://"`)
		}
		return nil, fmt.Errorf("database: unsupported scheme %q (want sqlite: or postgres://)", scheme)
	}
}

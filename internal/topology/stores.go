package topology

import (
	"context"
	"net/netip"
	"sync"

	"github.com/rampart-edge/rampart/internal/demoapp"
)

// storeCache shares each app database handle between the generations that use it, so that a
// reload keeps the store open instead of opening a second one while the first drains. For SQLite
// this is what keeps reloads from leaking: SQLite defers closing a file descriptor while another
// connection of the process holds a lock on the same file (which a WAL database always has), so
// a handle closed while the next generation's is open leaves its descriptors open for good.
type storeCache struct {
	mu sync.Mutex
	m  map[storeKey]*sharedStore
}

type storeKey struct {
	dsn    string
	source netip.Addr
}

type sharedStore struct {
	demoapp.Store
	refs int
}

// acquire returns the open store for dsn and source, opening it when no generation holds it, and
// the function that gives it back: the last release closes it.
func (c *storeCache) acquire(ctx context.Context, dsn string, source netip.Addr) (demoapp.Store, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := storeKey{dsn, source}
	s := c.m[key]
	if s == nil {
		st, err := demoapp.OpenStoreFrom(ctx, dsn, source)
		if err != nil {
			return nil, nil, err
		}
		s = &sharedStore{Store: st}
		if c.m == nil {
			c.m = map[storeKey]*sharedStore{}
		}
		c.m[key] = s
	}
	s.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if s.refs--; s.refs == 0 {
				delete(c.m, key)
				_ = s.Store.Close()
			}
		})
	}
	return s.Store, release, nil
}

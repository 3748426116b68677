package ratelimit

import (
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
)

// Registry hands out stores shared by everyone in the process who asks for the same one, so that
// the gateways of successive config generations (a reload builds new gateways while the old ones
// drain) keep one set of buckets and quota counters instead of starting afresh:
//
//   - Memory: one in-memory limiter per gateway name;
//   - FileQuota: one set of counters per quota file (by absolute path), hence one writer of the
//     file however many generations or gateways use it; counters with no file, per gateway name;
//   - Redis: one client per URL.
//
// Each store is counted by its users: the release function an acquisition returns gives it back,
// and the last release closes it (a FileQuota then writes its file). A store no generation uses
// any more (a removed gateway, a changed store URL or quota file) is therefore closed when the
// last generation using it retires; asking for it again later opens it afresh (a FileQuota reads
// its file back). Close closes whatever is still open, at process shutdown.
type Registry struct {
	mu      sync.Mutex
	entries map[registryKey]*registryEntry
	closed  bool
}

type registryKey struct {
	kind string // "memory", "quota" or "redis"
	id   string // gateway name, quota file path or Redis URL
}

type registryEntry struct {
	store any
	close func() error
	refs  int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[registryKey]*registryEntry{}} }

// acquire returns the store under key, opening it with open when it is not open, and its release.
func (r *Registry) acquire(key registryKey, open func() (any, func() error, error)) (any, func() error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, ErrClosed
	}
	e := r.entries[key]
	if e == nil {
		s, c, err := open()
		if err != nil {
			return nil, nil, err
		}
		e = &registryEntry{store: s, close: c}
		r.entries[key] = e
	}
	e.refs++
	var once sync.Once
	release := func() error {
		var err error
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			// Closed under the lock, so that a store reopened right after (the same quota file)
			// reads what this one wrote last.
			if e.refs--; e.refs == 0 && r.entries[key] == e {
				delete(r.entries, key)
				err = e.close()
			}
		})
		return err
	}
	return e.store, release, nil
}

// Memory returns the in-memory limiter of the gateway called name.
func (r *Registry) Memory(name string) (*Memory, func() error, error) {
	s, release, err := r.acquire(registryKey{"memory", name}, func() (any, func() error, error) {
		return NewMemory(), func() error { return nil }, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return s.(*Memory), release, nil
}

// FileQuota returns the quota counters kept in the file at path, or, when path is empty, the
// in-memory counters of the gateway called name. Quota keys should name their gateway, so that
// gateways sharing a file do not share counts.
func (r *Registry) FileQuota(path, name string, logger *slog.Logger) (*FileQuota, func() error, error) {
	key := registryKey{"quota", "\x00" + name} // no file: never the same as a path
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, nil, err
		}
		key.id = abs
	}
	s, release, err := r.acquire(key, func() (any, func() error, error) {
		q, err := NewFileQuota(path, logger)
		if err != nil {
			return nil, nil, err
		}
		closeQuota := func() error {
			err := q.Close()
			if err != nil && logger != nil {
				// Whoever closes last (a retiring generation, the shutdown) has no one to tell.
				logger.Warn("quota file not written at close; the counts of the last second are lost", "err", err)
			}
			return err
		}
		return q, closeQuota, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return s.(*FileQuota), release, nil
}

// Redis returns the Redis store at rawURL (see NewRedis; keys prefixed "rampart:", the default
// timeout).
func (r *Registry) Redis(rawURL string) (*Redis, func() error, error) {
	s, release, err := r.acquire(registryKey{"redis", rawURL}, func() (any, func() error, error) {
		rd, err := NewRedis(rawURL, "rampart:", 0)
		if err != nil {
			return nil, nil, err
		}
		return rd, rd.Close, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return s.(*Redis), release, nil
}

// Close closes every store still open, even those still acquired (at process shutdown, after
// every user is done), and makes later acquisitions fail with ErrClosed. Releases after Close do
// nothing.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	var errs []error
	for k, e := range r.entries {
		delete(r.entries, k)
		errs = append(errs, e.close())
	}
	return errors.Join(errs...)
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// minRefetch bounds how often an unknown kid (a key rotated in at the provider) or a failed
// fetch triggers another fetch, so that tokens with made-up kids cannot make the gateway hammer
// the identity provider.
const minRefetch = 10 * time.Second

// keySet is a JWKS with the time it was loaded.
type keySet struct {
	keys   []jwk
	loaded time.Time
}

// jwksSource holds an authorizer's keys, read from a file or fetched from a URL, and loads them
// again when they are older than refresh. Loading happens on the request path (there is no
// background goroutine): one request at a time loads, bounded by the fetch timeout, while others
// go on with the keys they have.
type jwksSource struct {
	file, url string
	refresh   time.Duration
	client    *http.Client
	logger    *slog.Logger
	now       func() time.Time

	set         atomic.Pointer[keySet]
	mu          sync.Mutex   // held while loading
	lastFailure atomic.Int64 // unix nanoseconds of the last failed load
	lastForced  atomic.Int64 // of the last load for an unknown kid
}

var errNoKeys = errors.New("no JWKS keys available")

func newJWKSSource(file, url string, refresh, timeout time.Duration, logger *slog.Logger) (*jwksSource, error) {
	s := &jwksSource{file: file, url: url, refresh: refresh, logger: logger, now: time.Now,
		client: &http.Client{Timeout: timeout, Transport: jwksTransport(), CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("JWKS fetch: redirects are not followed")
		}}}
	if file != "" {
		// A bad file is a startup error, like a bad config.
		if err := s.load(context.Background()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// jwksTransport is the transport of JWKS fetches. Like the proxy's (proxy.NewTransport), it never
// follows HTTP_PROXY or HTTPS_PROXY from the environment: whoever runs that proxy would see every
// fetch, and for an http:// URL could hand the gateway keys of their own.
func jwksTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}

// load reads or fetches the keys and installs them.
func (s *jwksSource) load(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			s.lastFailure.Store(s.now().UnixNano())
		}
	}()
	var data []byte
	if s.file != "" {
		data, err = os.ReadFile(s.file)
		if err != nil {
			return fmt.Errorf("jwks_file: %w", err)
		}
	} else {
		data, err = s.fetch(ctx)
		if err != nil {
			return err
		}
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return err
	}
	s.set.Store(&keySet{keys: keys, loaded: s.now()})
	return nil
}

func (s *jwksSource) fetch(ctx context.Context) ([]byte, error) {
	// The fetch is not tied to the request that triggered it: a client that goes away must not
	// cancel a fetch other requests wait for. The client's timeout bounds it.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks_url: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch: status %d", res.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: %w", err)
	}
	return data, nil
}

// keys returns the current keys, loading them first when there are none or they are stale. With
// force (an unknown kid) it loads unless a load was attempted within minRefetch.
func (s *jwksSource) keys(ctx context.Context, force bool) ([]jwk, error) {
	cur := s.set.Load()
	if cur != nil {
		if !s.due(cur, force) {
			return cur.keys, nil
		}
		if !s.mu.TryLock() {
			return cur.keys, nil // someone else is loading: go on with what we have
		}
	} else {
		s.mu.Lock() // nothing to go on with: wait for the load in progress, if any
	}
	defer s.mu.Unlock()
	if next := s.set.Load(); next != cur {
		return next.keys, nil // loaded while we waited
	}
	if s.recent(&s.lastFailure) {
		if cur == nil {
			return nil, errNoKeys // the load we waited for failed
		}
		return cur.keys, nil
	}
	if force {
		s.lastForced.Store(s.now().UnixNano())
	}
	if err := s.load(ctx); err != nil {
		s.logger.Warn("JWKS not loaded; keeping the previous keys", "source", s.describe(), "err", err)
		if cur == nil {
			return nil, errNoKeys
		}
		return cur.keys, nil
	}
	return s.set.Load().keys, nil
}

// due reports whether keys should be loaded now: they are stale, or a kid is unknown, and
// neither a failure nor (for an unknown kid) another early load happened within minRefetch.
func (s *jwksSource) due(cur *keySet, force bool) bool {
	if s.recent(&s.lastFailure) {
		return false
	}
	if force {
		return !s.recent(&s.lastForced)
	}
	return s.now().Sub(cur.loaded) >= s.refresh
}

func (s *jwksSource) recent(t *atomic.Int64) bool {
	last := t.Load()
	return last != 0 && s.now().Sub(time.Unix(0, last)) < minRefetch
}

func (s *jwksSource) describe() string {
	if s.file != "" {
		return s.file
	}
	return s.url
}

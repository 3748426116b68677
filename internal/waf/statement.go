package waf

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// matcher is a compiled statement. Statements are compiled once, in New, into a tree of these
// closures, so a request costs only the comparisons themselves.
type matcher func(r *http.Request) bool

// compiler turns config statements into matchers and records the headers that carry secrets.
type compiler struct {
	keyrings      map[string]*originverify.Keyring
	secretHeaders []string // canonical names, in order of first appearance
	shared        *Shared  // holds the Redis replay stores, which outlive one ACL
	logger        *slog.Logger
	metrics       *observe.Metrics // origin_verify results (metrics.go)
}

// originVerify matches when the header is present exactly once and holds, in mode static (the
// default), the secret of an active key, or in mode signed, a token for this very request signed
// with an active key, within the allowed clock skew and not seen before. A repeated header never
// matches: which copy an app or an upstream proxy would read is not defined, so an attacker could
// pair a stolen-looking value with a real one.
func (c *compiler) originVerify(s config.OriginVerifyStatement, path string) (matcher, error) {
	if s.Header == "" {
		return nil, fmt.Errorf("%s: header is empty", path)
	}
	kr := c.keyrings[s.Secret]
	if kr == nil {
		return nil, fmt.Errorf("%s: secret %q has no keyring", path, s.Secret)
	}
	name := textproto.CanonicalMIMEHeaderKey(s.Header)
	if !containsString(c.secretHeaders, name) {
		c.secretHeaders = append(c.secretHeaders, name)
	}
	m := c.metrics
	switch s.Mode {
	case "", config.OriginVerifyStatic:
		return func(r *http.Request) bool {
			values := r.Header[name]
			if len(values) != 1 {
				m.OriginVerify(presenceResult(values), "")
				return false
			}
			id, ok := kr.Verify(values[0])
			m.OriginVerify(staticResult(ok), id)
			return ok
		}, nil
	case config.OriginVerifySigned:
		v := kr.SignedVerifier(s.MaxSkew.Duration)
		if s.ReplayStore != "" && s.ReplayStore != config.ReplayStoreMemory {
			var err error
			if v, err = c.withReplayStore(v, s, path); err != nil {
				return nil, err
			}
		}
		return func(r *http.Request) bool {
			values := r.Header[name]
			if len(values) != 1 {
				m.OriginVerify(presenceResult(values), "")
				return false
			}
			id, err := v.VerifyRequest(r, values[0])
			m.OriginVerify(signedResult(err), id)
			return err == nil
		}, nil
	default:
		return nil, fmt.Errorf("%s: unknown mode %q (write static or signed)", path, s.Mode)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// replayStores are the Redis replay stores of a config's signed origin_verify statements, one
// client per URL. It has its own lock: statements are compiled while Shared.mu is held.
type replayStores struct {
	mu    sync.Mutex
	byURL map[string]*originverify.RedisReplayStore
}

func (rs *replayStores) get(rawURL string) (*originverify.RedisReplayStore, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s := rs.byURL[rawURL]; s != nil {
		return s, nil
	}
	s, err := originverify.NewRedisReplayStore(rawURL, 0)
	if err != nil {
		return nil, err
	}
	if rs.byURL == nil {
		rs.byURL = map[string]*originverify.RedisReplayStore{}
	}
	rs.byURL[rawURL] = s
	return s, nil
}

func (rs *replayStores) close() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for u, s := range rs.byURL {
		_ = s.Close()
		delete(rs.byURL, u)
	}
}

// storeErrorLogInterval spaces the log lines about an unreachable replay store: one per interval
// per statement says what is happening without a line per request.
const storeErrorLogInterval = 10 * time.Second

// withReplayStore makes v record nonces in the Redis store of s as well, with s's on_store_error
// policy, and logs store failures at most once per storeErrorLogInterval.
func (c *compiler) withReplayStore(v *originverify.SignedVerifier, s config.OriginVerifyStatement, path string) (*originverify.SignedVerifier, error) {
	if c.shared == nil {
		return nil, fmt.Errorf("%s: replay_store needs a shared store set", path)
	}
	store, err := c.shared.replay.get(s.ReplayStore)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	allow := s.OnStoreError == config.StoreErrorAllow
	if !allow && s.OnStoreError != config.StoreErrorDeny {
		return nil, fmt.Errorf("%s: on_store_error %q: want allow or deny", path, s.OnStoreError)
	}
	logger := c.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	msg := "origin_verify replay store unreachable; refusing signed requests (on_store_error: deny)"
	if allow {
		msg = "origin_verify replay store unreachable; accepting signed requests checked against this process's nonces only (on_store_error: allow)"
	}
	var last atomic.Int64 // unix nanoseconds of the last log line
	onError := func(err error) {
		now := time.Now().UnixNano()
		prev := last.Load()
		if now-prev < int64(storeErrorLogInterval) || !last.CompareAndSwap(prev, now) {
			return
		}
		logger.Error(msg, "secret", s.Secret, "error", err.Error())
	}
	return v.WithReplayStore(store, allow, onError), nil
}

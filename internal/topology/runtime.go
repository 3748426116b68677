package topology

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/ratelimit"
	"github.com/rampart-edge/rampart/internal/server"
	"github.com/rampart-edge/rampart/internal/waf"
)

// Topology is the running set of components of one process. Its components come from one config
// generation at a time; its listeners outlive generations: a reload (Reload, SIGHUP, a change of
// the config file, POST /reload) builds and validates a complete new generation, then swaps it in
// listener by listener, while requests in flight finish on the generation they started on.
//
// The cycle is Build → Listen → Serve; Serve returns when its context is done and everything is
// shut down.
type Topology struct {
	// Endpoints are those of the first generation, in the order Addrs reports them.
	Endpoints []Endpoint

	logger  *slog.Logger
	sel     Selection
	opts    Options
	persist persistent
	api     *adminAPI
	hup     chan os.Signal
	cur     atomic.Pointer[generation]

	mu       sync.Mutex // serializes Listen, Serve's start and end, and reloads
	switches map[string]*slot
	// stateMu guards serving, stopping and startedAt, which probes read without waiting for a
	// reload (which holds mu while it builds) to finish.
	stateMu   sync.Mutex
	serving   bool
	stopping  bool
	startedAt time.Time

	ctx        context.Context // Serve's, for the runners of later generations
	grace      time.Duration
	accepts    sync.WaitGroup // the accept loops
	acceptErrs chan error
	retiring   sync.WaitGroup // replaced generations still draining

	reloads  atomic.Int64 // successful reloads
	failures atomic.Int64 // rejected reloads
	lastMu   sync.Mutex
	last     ReloadStatus
}

// slot is one listening socket, by listen address.
type slot struct {
	sw   *server.Switch
	kind Kind
	name string
	tier int
}

// label names the slot's server in logs: "gateway public-api".
func (s *slot) label() string { return string(s.kind) + " " + s.name }

// retired is a replaced or removed listener's generation, draining in the background after a
// reload; tier orders its shutdown as at a stop.
type retired struct {
	v    *server.Serving
	tier int
}

// ErrNotReloadable is returned by Reload when the process runs a config that has no file.
var ErrNotReloadable = errors.New("this process runs the embedded default config, which has no file to reload: start it with -c FILE to reload from a file")

// ReloadStatus describes the last reload attempt.
type ReloadStatus struct {
	Time    time.Time `json:"time"`
	Cause   string    `json:"cause"` // admin, SIGHUP, file change
	OK      bool      `json:"ok"`
	Errors  []string  `json:"errors,omitempty"`
	Hash    string    `json:"config_hash,omitempty"`
	Elapsed string    `json:"elapsed,omitempty"`
}

// ReloadError is a rejected reload: the new config did not load, validate or build. The old one
// keeps serving.
type ReloadError struct {
	// Invalid is true when the file failed validation (config.Errors), false when its components
	// could not be built (a listener that cannot open, a certificate that does not load, …).
	Invalid bool
	Err     error
}

func (e *ReloadError) Error() string {
	return "reload rejected, the running config stays: " + e.Err.Error()
}
func (e *ReloadError) Unwrap() error { return e.Err }

// Messages are the error lines, each with file:line:col where the config has one.
func (e *ReloadError) Messages() []string {
	var ce config.Errors
	if errors.As(e.Err, &ce) {
		out := make([]string, len(ce))
		for i, x := range ce {
			out[i] = x.Error()
		}
		return out
	}
	return []string{e.Err.Error()}
}

// Build builds the selected components of cfg (the first generation). It loads (creating when
// absent) only the keyrings the selected components use, so an app-tier process never holds the
// origin-verify secret.
func Build(ctx context.Context, cfg *config.Config, sel Selection, opts Options) (*Topology, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
		opts.Logger = logger
	}
	t := &Topology{logger: logger, sel: sel, opts: opts, switches: map[string]*slot{}}
	t.api = &adminAPI{topo: t}
	// SIGHUP is caught from the start of Build, not from when Serve starts, so that a reload
	// signal sent while the first generation builds (a database to connect to, certificates to
	// load) or right after start never falls to the default action (exit). A process with
	// nothing to reload must not die of the signal that operators and tools send to every
	// process of a deployment either.
	t.hup = make(chan os.Signal, 1)
	signal.Notify(t.hup, syscall.SIGHUP)
	g, err := build(ctx, cfg, ConfigHash(cfg), sel, opts, &t.persist, t.api)
	if err != nil {
		signal.Stop(t.hup)
		t.persist.close()
		return nil, err
	}
	t.cur.Store(g)
	t.Endpoints = g.Endpoints
	t.last = ReloadStatus{Time: time.Now(), Cause: "start", OK: true, Hash: g.hash}
	opts.Metrics.ConfigLoaded(t.last.Hash)
	return t, nil
}

func (t *Topology) current() *generation { return t.cur.Load() }

// Config is the config of the running generation.
func (t *Topology) Config() *config.Config { return t.current().cfg }

// Listen opens every listener. If one fails, those already open are closed and the components
// are released, so a failed start leaves no port held.
func (t *Topology) Listen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.current()
	for _, e := range g.endpoints {
		if t.switches[e.Listen] != nil {
			continue
		}
		sw, err := server.Open(e.Listen, t.logger)
		if err != nil {
			for _, s := range t.switches {
				_ = s.sw.Close()
			}
			t.switches = map[string]*slot{}
			signal.Stop(t.hup)
			g.close()
			t.persist.close()
			return fmt.Errorf("%s %s: %w", e.Kind, e.Name, err)
		}
		t.switches[e.Listen] = &slot{sw: sw, kind: e.Kind, name: e.Name, tier: shutdownTier(e.Kind)}
	}
	return nil
}

// Addrs returns the bound address of each endpoint, in Endpoints order (useful with port 0).
func (t *Topology) Addrs() []net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	addrs := make([]net.Addr, len(t.Endpoints))
	for i, e := range t.Endpoints {
		if s := t.switches[e.Listen]; s != nil {
			addrs[i] = s.sw.Addr()
		}
	}
	return addrs
}

// serverGeneration is what endpoint e of a generation serves on its switch.
func serverGeneration(e endpoint) server.Generation {
	sg := server.Generation{Name: string(e.Kind) + " " + e.Name, Handler: e.handler, Allow: e.allow, TLS: e.tls}
	// The load balancer's request-smuggling guard and idle timeout (internal/desync).
	if w, ok := e.handler.(interface {
		WrapListener(net.Listener) net.Listener
	}); ok {
		sg.Wrap = w.WrapListener
	}
	// The gateway's listener settings: timeouts, max_header_bytes and, when the gateway has tls,
	// HTTPS with HTTP/2 (internal/gateway/listener.go).
	if l, ok := e.handler.(server.LimitedHandler); ok {
		sg.Limits = l.ServerLimits()
	}
	if t, ok := e.handler.(interface{ ServerTLS() *tls.Config }); ok && sg.TLS == nil {
		sg.TLS = t.ServerTLS()
	}
	return sg
}

// Serve runs background work (health checks, keyring and config watchers) and serves every
// listener until ctx is done, then drains in-flight requests for up to grace and releases every
// resource. Listen must have succeeded.
func (t *Topology) Serve(ctx context.Context, grace time.Duration) error {
	t.mu.Lock()
	g := t.current()
	if len(t.switches) == 0 {
		t.mu.Unlock()
		return errors.New("topology: Serve called before Listen succeeded")
	}
	t.ctx, t.grace = ctx, grace
	t.acceptErrs = make(chan error, len(t.switches)+64)
	for _, e := range g.endpoints {
		t.switches[e.Listen].sw.Install(serverGeneration(e))
	}
	g.start(ctx)
	for _, s := range t.switches {
		t.runAccept(s)
	}
	t.stateMu.Lock()
	t.serving, t.startedAt = true, time.Now()
	t.stateMu.Unlock()
	t.mu.Unlock()

	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	watchers.Go(func() { t.watchSignals(watchCtx) })
	if t.opts.ConfigPath != "" {
		watchers.Go(func() { t.watchFile(watchCtx) })
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-t.acceptErrs:
	}
	stopWatch()
	watchers.Wait()
	signal.Stop(t.hup)

	// From here on Reload refuses, so the switches no longer change; mu is not held while
	// draining, so that a reload request in flight is answered rather than left waiting.
	t.mu.Lock()
	t.stateMu.Lock()
	t.stopping = true
	t.stateMu.Unlock()
	slots := slices.Collect(maps.Values(t.switches))
	t.mu.Unlock()
	if err == nil { // a stop asked for (a signal), not a listener that failed
		t.drain(slots) // drain.go: readyz 503, Connection: close, for the drain delay
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	server.ByTier(slots, func(s *slot) int { return s.tier }, func(s *slot) {
		if err := s.sw.Shutdown(shutdownCtx); err != nil {
			t.logger.Warn("shutdown did not finish in time; closed", "server", s.label(), "error", err)
		}
	})
	t.retiring.Wait()
	t.accepts.Wait()
	g = t.current()
	g.stop()
	g.close()
	t.persist.close()
	return err
}

// persistent is what outlives generations: the keyrings (keyrings.go), the WAF's shared state
// (compiled managed rule groups, rate-based counters, recent matches) and the gateways' throttle
// and quota stores (ratelimit.go).
type persistent struct {
	keyrings keyringCache
	stores   storeCache // the apps' databases (stores.go)
	mu       sync.Mutex
	waf      *waf.Shared
	seq      uint64          // generations built
	redacted map[string]bool // secrets given to the redactor here, once each

	limits *ratelimit.Registry // the gateways' throttle and quota stores (ratelimit.go)
}

func (p *persistent) nextSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return p.seq
}

// redactOnce registers secret with red, once per process however many reloads repeat it.
func (p *persistent) redactOnce(red *observe.Redactor, secret string) {
	if red == nil || secret == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.redacted[secret] {
		return
	}
	if p.redacted == nil {
		p.redacted = map[string]bool{}
	}
	p.redacted[secret] = true
	red.Add(secret)
}

func (p *persistent) wafShared() *waf.Shared {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waf == nil {
		p.waf = waf.NewShared()
	}
	return p.waf
}

func (p *persistent) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waf != nil {
		p.waf.Close()
		p.waf = nil
	}
	if p.limits != nil {
		_ = p.limits.Close() // writes the quota files; a failure is logged by the registry
		p.limits = nil
	}
}

// runAccept runs s's accept loop; an accept failure stops the process as a serve error did.
func (t *Topology) runAccept(s *slot) {
	t.accepts.Go(func() {
		if err := s.sw.Run(); err != nil {
			select {
			case t.acceptErrs <- fmt.Errorf("%s %s: %w", s.kind, s.name, err):
			default:
			}
		}
	})
}

// start runs the generation's background work until stop.
func (g *generation) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	g.started = time.Now()
	g.stopRunners = func() {
		cancel()
		g.runnersDone.Wait()
	}
	for _, run := range g.runners {
		g.runnersDone.Go(func() { run(ctx) })
	}
}

// stop ends the generation's background work and waits for it.
func (g *generation) stop() {
	if g.stopRunners != nil {
		g.stopRunners()
	}
}

// Reload loads, validates and builds the config file again and, when all of that succeeds, swaps
// the new generation in: unchanged listen addresses keep their sockets, new ones open, removed
// ones retire (retire: what they have queued is served and their sockets are closed before Reload
// returns, their connections drain with the old generation); requests in flight finish on the old generation, whose background work stops and
// whose resources are released once they have (or after the grace period). A config that fails
// is rejected with a *ReloadError and the running one keeps serving. cause is for logs.
func (t *Topology) Reload(ctx context.Context, cause string) error {
	return t.reload(ctx, cause, false)
}

// errUnchanged is reload's answer when skipSame is set and the file holds the running config.
var errUnchanged = errors.New("unchanged")

// reload is Reload; with skipSame, a file whose config is the running one (same hash: a save
// without a change, or the echo of a reload already done by POST /reload) is not reloaded.
// SIGHUP and POST /reload always reload: certificate files may have changed under the same config.
func (t *Topology) reload(ctx context.Context, cause string, skipSame bool) error {
	if t.opts.ConfigPath == "" {
		return ErrNotReloadable
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stateMu.Lock()
	serving := t.serving && !t.stopping
	t.stateMu.Unlock()
	if !serving {
		return errors.New("not serving: reload refused")
	}
	began := time.Now()
	// The file is read, checked and hashed once: the comparison and the build use the same.
	cfg, err := t.sel.ConfigScope().Load(t.opts.ConfigPath)
	var hash string
	if err == nil {
		hash = ConfigHash(cfg)
	}
	if skipSame && err == nil && hash == t.current().hash {
		t.logger.Debug("config file changed, but not the config: nothing to reload", "config", t.opts.ConfigPath)
		return errUnchanged
	}
	var g *generation
	if err != nil {
		var ce config.Errors
		err = &ReloadError{Invalid: errors.As(err, &ce), Err: err}
	} else if g, err = build(ctx, cfg, hash, t.sel, t.opts, &t.persist, t.api); err != nil {
		err = &ReloadError{Err: err}
	}
	if err == nil {
		err = t.swap(g)
		if err != nil {
			g.close()
			err = &ReloadError{Err: err}
		}
	}
	st := ReloadStatus{Time: time.Now(), Cause: cause, Elapsed: time.Since(began).Round(time.Millisecond).String()}
	if err != nil {
		t.failures.Add(1)
		var re *ReloadError
		if errors.As(err, &re) {
			st.Errors = re.Messages()
		} else {
			st.Errors = []string{err.Error()}
		}
		t.logger.Error("config reload rejected; the running config stays", "cause", cause, "config", t.opts.ConfigPath, "errors", st.Errors)
	} else {
		t.reloads.Add(1)
		t.api.afterReload(g.cfg)
		st.OK, st.Hash = true, g.hash
		t.logger.Info("config reloaded", "cause", cause, "config", t.opts.ConfigPath, "config_hash", st.Hash, "elapsed", st.Elapsed)
	}
	t.lastMu.Lock()
	if st.Hash == "" {
		st.Hash = t.last.Hash
	}
	t.last = st
	t.lastMu.Unlock()
	if err != nil {
		t.opts.Metrics.ReloadFailed()
	} else {
		t.opts.Metrics.ReloadSucceeded(st.Hash)
	}
	return err
}

// swap puts g in place of the current generation. The caller holds mu.
func (t *Topology) swap(g *generation) error {
	want := map[string]endpoint{}
	for _, e := range g.endpoints {
		want[e.Listen] = e
	}
	// Open the new addresses first: if one cannot open, nothing has changed yet. The switches are
	// keyed by the address as written (localhost:8080, :8080), which is not the bound address
	// (127.0.0.1:8080, [::]:8080): those opened here are forgotten by that key.
	var opened []*slot
	var openedAt []string
	for _, e := range g.endpoints {
		if t.switches[e.Listen] != nil {
			continue
		}
		sw, err := server.Open(e.Listen, t.logger)
		if err != nil {
			for i, s := range opened {
				_ = s.sw.Close()
				delete(t.switches, openedAt[i])
			}
			return fmt.Errorf("%s %s: %w", e.Kind, e.Name, err)
		}
		s := &slot{sw: sw, kind: e.Kind, name: e.Name, tier: shutdownTier(e.Kind)}
		t.switches[e.Listen] = s
		opened = append(opened, s)
		openedAt = append(openedAt, e.Listen)
	}
	for _, s := range opened {
		t.runAccept(s)
	}

	// Inner tiers first, so that a new gateway only ever reaches a new load balancer, which only
	// ever reaches new app instances: the old generation keeps its own connections between tiers
	// and drains as a whole.
	var old []retired
	eps := slices.Clone(g.endpoints)
	slices.SortStableFunc(eps, func(a, b endpoint) int { return shutdownTier(b.Kind) - shutdownTier(a.Kind) })
	for _, e := range eps {
		s := t.switches[e.Listen]
		s.kind, s.name, s.tier = e.Kind, e.Name, shutdownTier(e.Kind)
		if v := s.sw.Install(serverGeneration(e)); v != nil {
			old = append(old, retired{v, s.tier})
		}
	}
	prev := t.current()
	t.cur.Store(g)
	g.start(t.ctx)
	removed := map[string]*slot{}
	for addr, s := range t.switches {
		if _, ok := want[addr]; !ok {
			removed[addr] = s
			delete(t.switches, addr)
		}
	}
	for _, o := range old {
		o.v.Drain()
	}
	old = append(old, t.retire(removed)...) // draining too
	for _, s := range opened {
		t.logger.Info("listener opened by reload", "listen", s.sw.Addr().String(), "server", s.label())
	}

	grace := t.grace
	t.retiring.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		// Give keep-alive clients a moment to send their next request on the old connections,
		// which is answered with Connection: close; what is still idle after that is closed.
		select {
		case <-time.After(min(drainLinger, grace)):
		case <-t.ctx.Done():
		}
		server.ByTier(old, func(o retired) int { return o.tier }, func(o retired) {
			if err := o.v.Shutdown(ctx); err != nil {
				t.logger.Warn("old generation closed before its requests finished", "error", err)
			}
		})
		prev.stop()
		prev.close()
	})
	return nil
}

// retire takes the listeners a reload removed out of service, all at once, without cutting what
// they have (server.Switch.Retire): new connection attempts are refused, those the kernel had
// queued are accepted and served, and each socket is closed before retire returns, so that the
// next reload can listen on the same address again. It returns their generations, which finish
// their in-flight requests, close their keep-alive connections and shut down with the rest of the
// old generation. The accept pass (up to server's acceptSettle where the kernel takes socket
// filters, instant elsewhere) is bounded by the grace period.
func (t *Topology) retire(removed map[string]*slot) []retired {
	if len(removed) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), t.grace)
	defer cancel()
	var (
		mu  sync.Mutex
		out []retired
		wg  sync.WaitGroup
	)
	for addr, s := range removed {
		wg.Go(func() {
			v := s.sw.Retire(ctx)
			t.logger.Info("listener closed by reload", "listen", addr, "server", s.label())
			if v == nil {
				return
			}
			mu.Lock()
			out = append(out, retired{v, s.tier})
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// drainLinger is how long a replaced generation keeps its idle keep-alive connections open
// before it shuts down, so that clients move to the new generation by a clean Connection: close
// rather than by a connection cut under them.
const drainLinger = time.Second

// watchSignals reloads on SIGHUP until ctx is done: the config file when there is one, and the
// keyrings in any case.
func (t *Topology) watchSignals(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.hup:
		}
		if t.opts.ConfigPath != "" {
			t.logger.Info("SIGHUP: reloading configuration", "config", t.opts.ConfigPath)
			_ = t.Reload(ctx, "SIGHUP")
		}
		g := t.current()
		if len(g.keyrings) == 0 {
			if t.opts.ConfigPath == "" {
				t.logger.Info("SIGHUP ignored: this process loads no keyring")
			}
			continue
		}
		if t.opts.ConfigPath == "" {
			t.logger.Info("SIGHUP: reloading keyrings (the config has no file to reload: start with -c FILE for that)")
		} else {
			t.logger.Info("SIGHUP: reloading keyrings")
		}
		select {
		case g.keyringReload <- struct{}{}:
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second): // the generation was replaced before its watcher ran
		}
	}
}

// fileDebounce gathers the events of one save (an editor's write, chmod and rename) into one reload.
const fileDebounce = 300 * time.Millisecond

// watchFile reloads when the config file changes. It watches the file's directory, so that an
// atomic replacement (write to a temp file, rename over) is seen as well as an in-place write.
func (t *Topology) watchFile(ctx context.Context) {
	logger := t.logger.With("component", "reload")
	abs, err := filepath.Abs(t.opts.ConfigPath)
	if err != nil {
		logger.Warn("cannot watch the config file; reload with SIGHUP or POST /reload", "error", err)
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Warn("cannot watch the config file; reload with SIGHUP or POST /reload", "error", err)
		return
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(abs)); err != nil {
		logger.Warn("cannot watch the config file's directory; reload with SIGHUP or POST /reload", "dir", filepath.Dir(abs), "error", err)
		return
	}
	// A file mounted from a Kubernetes ConfigMap is a symlink into ..data, and an update swaps
	// ..data: no event names the file itself, so what the file resolves to is compared too.
	resolved, _ := filepath.EvalSymlinks(abs)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if filepath.Clean(ev.Name) != abs {
				now, err := filepath.EvalSymlinks(abs)
				if err != nil || now == resolved {
					continue
				}
				resolved = now
			}
			timer.Reset(fileDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			logger.Warn("config file watch error", "error", err)
		case <-timer.C:
			if _, err := os.Stat(abs); err != nil {
				continue // removed, or between a delete and a create: wait for the file to be back
			}
			logger.Info("config file changed: reloading", "config", t.opts.ConfigPath)
			_ = t.reload(ctx, "file change", true)
		}
	}
}

// ConfigHash identifies a config by its content: the first 12 hex digits of the SHA-256 of its
// canonical form, so that two files that differ only in comments or layout hash the same.
func ConfigHash(cfg *config.Config) string {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// ReloadCount returns how many reloads succeeded and how many were rejected.
func (t *Topology) ReloadCount() (ok, rejected int64) { return t.reloads.Load(), t.failures.Load() }

// LastReload describes the last reload attempt (the start, before any).
func (t *Topology) LastReload() ReloadStatus {
	t.lastMu.Lock()
	defer t.lastMu.Unlock()
	return t.last
}

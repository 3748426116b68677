// Package gateway is Rampart's API gateway: one http.Handler built from a validated config.Gateway.
//
// Every request goes through the same ordered pipeline (see New): request id → access log → CORS →
// routing → parameter mapping → integration. Each stage is a small handler that does one thing;
// a stage that answers (a CORS refusal, a 404) never calls the rest.
package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/cors"
	"github.com/rampart-edge/rampart/internal/desync"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// DefaultIntegrationTimeout bounds a backend call when neither the route nor the gateway sets a
// timeout; it is AWS API Gateway's limit.
const DefaultIntegrationTimeout = 29 * time.Second

// RequestIDHeader carries the gateway's request id on every response.
const RequestIDHeader = "X-Request-Id"

// Gateway is an API gateway. It is safe for concurrent use; Close releases its idle backend
// connections.
type Gateway struct {
	name      string
	handler   http.Handler
	transport *http.Transport
	tlsRoutes []*http.Transport // one per route with integration tls (tls.go)
	router    *router
	routes    []*route
	mappings  []mapping
	access    *access // throttling, API keys, usage plans, authorizers (access.go)
	logger    *slog.Logger
	guard     *desync.Guard        // request-smuggling guard of the gateway's listener (desync.go)
	local     *proxy.LocalHandlers // listeners of this process, called in-process (WithLocalHandlers)

	// edge.go: gateway responses, the CORS policy (for errors answered before it), the header
	// size limit and response header mapping; keysWatch is the API key file watcher (keys.go).
	responses      *responses
	policy         *cors.Policy
	maxHeaderBytes int
	respHeaders    []respHeaderRule
	stopWatch      func()
	listener       listenerSettings // listener.go

	obs *gatewayObserve // metrics and tracing (metrics.go)

	// tunnels is done once Close is called: it ends the WebSocket tunnels still open, which
	// net/http no longer tracks once it has handed their connections over.
	tunnels    context.Context
	endTunnels context.CancelFunc
}

// route is one configured route's integration.
type route struct {
	template string
	proxy    *httputil.ReverseProxy
	timeout  time.Duration
	maxBody  int64 // max_body_bytes (bodylimit.go)

	// edge.go: the backend path (integration.path, strip_prefix), the route's merged request
	// and response header mappings; validate.go: request_validation.
	backendPath func(segments []string, cleaned string) string
	mappings    []mapping
	respHeaders []respHeaderRule
	validation  *validation
}

// New builds a gateway from cfg. keyrings holds the keyrings named by ${secret:NAME} references in
// cfg.RequestHeaders; a missing one is an error. A nil logger discards.
// opts add a web ACL (WithWebACL).
func New(cfg config.Gateway, keyrings map[string]*originverify.Keyring, logger *slog.Logger, opts ...Option) (*Gateway, error) {
	o := newOptions(opts)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "gateway", "gateway", cfg.Name)
	g := &Gateway{name: cfg.Name, logger: logger, responses: compileResponses(cfg.GatewayResponses), maxHeaderBytes: cfg.MaxHeaderBytes, local: o.local}
	g.obs = newGatewayObserve(cfg, o.observe)
	g.tunnels, g.endTunnels = context.WithCancel(context.Background())

	policy, err := cors.New(cfg.CORS, logger)
	if err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	g.policy = policy
	if g.listener, err = newListenerSettings(cfg); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	if g.respHeaders, err = compileResponseHeaders(cfg.ResponseHeaders, nil); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	if g.router, err = newRouter(cfg.Routes); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	if g.mappings, err = compileMappings(cfg.RequestHeaders, keyrings); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	if g.transport, err = proxy.NewTransport(""); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	for _, rc := range cfg.Routes {
		rt, err := g.newRoute(rc, cfg.IntegrationTimeout.Duration, cfg.MaxBodyBytes)
		if err == nil {
			err = g.routeEdge(rt, rc, keyrings) // edge.go
		}
		if err != nil {
			return nil, fmt.Errorf("gateway %q: route %q: %w", cfg.Name, rc.Path, err)
		}
		g.routes = append(g.routes, rt)
	}
	if g.access, err = newAccess(cfg, g.routes, logger, o.stores); err != nil {
		return nil, fmt.Errorf("gateway %q: %w", cfg.Name, err)
	}
	g.obs.instrument(policy, g.access)
	g.stopWatch = g.access.watchKeys(cfg) // keys.go: reload the API key file when it changes

	// The pipeline, outermost first.
	stages := []func(http.Handler) http.Handler{
		g.assignRequestID, // a fresh id for the response header, the log and the backend
		g.obs.trace,       // a server span continuing the caller's traceparent (metrics.go)
		g.accessLog,       // one line per request, whoever answers it
		g.webACLStage(o),  // web_acl: blocks before anything else answers
		g.corsStage(),     // CORS: answers preflights, refuses disallowed origins (enforce)
		g.limitHeaders,    // 431 for headers over max_header_bytes (edge.go)
		g.route,           // 400 for "..", 404, 405 with Allow; picks the route
		g.limitBody,       // 413 for a Content-Length over max_body_bytes; caps chunked bodies
		// access.go: throttles keyed before authentication (429); the route's JWT authorizer
		// (401, 403) and API key (403); api_key and jwt:CLAIM throttles, plan throttle, quota (429).
		g.access.throttleOpen,
		g.access.authorize,
		g.access.throttleIdentified,
		g.validate,      // request_validation: required headers and query, body schema (400)
		g.mapParameters, // request_headers: computes the values the backend will get
	}
	h := http.Handler(http.HandlerFunc(g.integrate)) // proxies to the route's backend
	for i := len(stages) - 1; i >= 0; i-- {
		h = stages[i](h)
	}
	// The request-smuggling guard classifies each request head on the connection before
	// net/http parses it (desync.go); its handler hands the verdict to the pipeline.
	g.guard = &desync.Guard{Mode: desync.Defensive, Logger: logger, Listener: cfg.Listen}
	g.handler = g.guard.Handler(h)
	return g, nil
}

// ServeHTTP runs the request through the pipeline.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Close releases idle connections to backends and ends open WebSocket tunnels: a tunnel never
// outlives the config (keys, authorizers, web ACL) that admitted it. Other in-flight requests are
// not interrupted.
func (g *Gateway) Close() {
	g.endTunnels()
	if g.stopWatch != nil {
		g.stopWatch()
	}
	g.access.close()
	g.transport.CloseIdleConnections()
	for _, t := range g.tlsRoutes {
		t.CloseIdleConnections()
	}
}

func (g *Gateway) newRoute(rc config.Route, gatewayTimeout time.Duration, gatewayMaxBody int64) (*route, error) {
	target, err := url.Parse(rc.Integration.URL)
	if err != nil {
		return nil, fmt.Errorf("integration url: %w", err)
	}
	if (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" || target.User != nil {
		return nil, fmt.Errorf("integration url %q: want http(s)://host[:port][/prefix]", rc.Integration.URL)
	}
	target.Fragment = ""
	timeout := rc.Integration.Timeout.Duration
	if timeout <= 0 {
		timeout = gatewayTimeout
	}
	if timeout <= 0 {
		timeout = DefaultIntegrationTimeout
	}
	maxBody := rc.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = gatewayMaxBody
	}
	if maxBody <= 0 {
		maxBody = config.DefaultMaxBodyBytes
	}
	rt := &route{template: rc.Path, timeout: timeout, maxBody: maxBody}
	transport, err := g.routeTransport(rc.Integration.TLS)
	if err != nil {
		return nil, err
	}
	if rc.Integration.TLS == nil {
		// A load balancer of this same process: its handler, without a loopback connection.
		transport = g.local.Transport(target, transport, g.logger)
	}
	rt.proxy = proxy.New(proxy.Options{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			// Hop-by-hop headers, including any the client named in Connection, are already gone
			// from pr.Out; what is set here reaches the backend.
			rt.rewritePath(pr.Out) // integration.path or strip_prefix (edge.go)
			pr.SetURL(target)      // joins the prefix with the routed path, keeps the query, Host = target
			proxy.SetForwarded(pr, false)
			// Always the gateway's own id, never the client's, so that the load balancer's and
			// the app's access lines share it (a request_headers mapping may still override: it
			// then replaces this one, which is not set at all).
			ex := exchangeFrom(pr.In.Context())
			if !rt.mapsHeader(RequestIDHeader) {
				pr.Out.Header.Set(RequestIDHeader, ex.id)
			}
			g.applyMappings(pr.Out, ex)
		},
		ModifyResponse: func(res *http.Response) error {
			// The backend has answered: the rest of the exchange is streaming to the client.
			ex := exchangeFrom(res.Request.Context())
			ex.integrationDone()
			if ex.upgrade != nil && res.StatusCode == http.StatusSwitchingProtocols {
				// The backend switched protocols in time: the tunnel has no deadline. Any other
				// answer is an ordinary response, bounded by the route's timeout as any other is.
				ex.upgrade.Stop()
				ex.switched = true
			}
			if err := stripBackendHeaders(res); err != nil {
				return err
			}
			applyResponseHeaders(res.Header, rt.respHeaders, ex) // response_headers (edge.go)
			return nil
		},
		Logger:   g.logger,
		Tracer:   g.obs.tracer, // a client span per backend call, its traceparent sent along
		SpanName: "integration",
	})
	return rt, nil
}

// mapsHeader reports whether the route's request_headers set name, which applyMappings then
// removes and replaces whatever was set before.
func (rt *route) mapsHeader(name string) bool {
	for i := range rt.mappings {
		if sameHeaderCGI(name, rt.mappings[i].name) {
			return true
		}
	}
	return false
}

// stripBackendHeaders removes the backend's CORS headers, so that the gateway's policy is the only
// one a browser sees, and its request id, which the gateway's own replaces.
func stripBackendHeaders(res *http.Response) error {
	for k := range res.Header {
		if len(k) >= len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") ||
			strings.EqualFold(k, RequestIDHeader) {
			delete(res.Header, k)
		}
	}
	return nil
}

// exchange is the per-request state the stages share. Stages run one after another on the request's
// goroutine, so it needs no lock.
type exchange struct {
	id     string
	route  *route         // set by routing
	mapped []mappedHeader // set by parameter mapping
	access requestAccess  // identity and throttle state (access.go)

	responses *responses    // gateway_responses, for reply (responses.go)
	errorType responseType  // the gateway response written, if any
	in        *http.Request // the routed inbound request, for response header templates
	// upgrade is the handshake timer of a protocol upgrade (WebSocket); timedOut says it fired.
	upgrade  *time.Timer
	timedOut atomic.Bool
	// switched: the backend answered 101 (ReverseProxy writes it on the hijacked connection, so
	// the access log's writer never sees it).
	switched bool
	// intercepts are the writers of the web ACL and CORS stages (edge.go).
	intercepts [2]interceptWriter

	// integrationStart is when integrate called the backend; integrationLatency is how long
	// the backend took to answer with headers (or to fail), for the access log.
	integrationStart   time.Time
	integrationLatency time.Duration

	// The access log's writer, and room for the mapped headers of a typical gateway: kept here,
	// they cost no allocation of their own per request.
	sw        statusWriter
	mappedBuf [4]mappedHeader
}

// exchangeContext is the request's context with its exchange: one allocation for both, where
// context.WithValue cost a second one per request.
type exchangeContext struct {
	context.Context
	ex exchange
}

func (c *exchangeContext) Value(key any) any {
	if _, ok := key.(exchangeKey); ok {
		return &c.ex
	}
	return c.Context.Value(key)
}

// integrationDone records the integration latency once.
func (ex *exchange) integrationDone() {
	if !ex.integrationStart.IsZero() && ex.integrationLatency == 0 {
		ex.integrationLatency = max(time.Since(ex.integrationStart), 1)
	}
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return &exchange{}
	}
	return ex
}

// assignRequestID gives every request a fresh random id. An inbound X-Request-Id is never taken
// as the id: a client could otherwise forge or collide ids in the logs.
func (g *Gateway) assignRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := &exchangeContext{Context: r.Context()}
		ex := &ctx.ex
		ex.id, ex.responses = rand.Text(), g.responses
		w.Header().Set(RequestIDHeader, ex.id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// accessLog writes one line per request. It logs no header values and no query string, either of
// which may carry credentials.
func (g *Gateway) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ex := exchangeFrom(r.Context())
		ex.sw = statusWriter{ResponseWriter: w}
		sw := &ex.sw
		next.ServeHTTP(sw, r)
		routeName := ""
		if ex.route != nil {
			routeName = ex.route.template
		}
		status := sw.status
		switch {
		case status == 0 && ex.switched:
			status = http.StatusSwitchingProtocols
		case status == 0:
			status = http.StatusOK
		}
		elapsed := time.Since(start)                 // once: reading the clock is not free
		g.obs.request(r.Method, status, ex, elapsed) // metrics.go
		if !g.logger.Enabled(r.Context(), slog.LevelInfo) {
			return // nothing below may allocate for a line nobody reads
		}
		attrs := make([]slog.Attr, 0, 11)
		attrs = append(attrs, slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", elapsed),
			slog.String("request_id", ex.id), slog.String("route", routeName))
		attrs = appendAccessIdentity(attrs, ex)
		if id := g.obs.traceID(r); id != "" {
			attrs = append(attrs, slog.String("otel_trace_id", id))
		}
		g.logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// statusWriter records the final status. Unwrap lets http.ResponseController reach Flush and
// Hijack, which the reverse proxy uses for streaming and upgrades.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// route resolves the request to a configured route. The path is matched percent-decoded and
// cleaned, and that cleaned path is what the backend receives.
func (g *Gateway) route(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := cleanPath(r.URL.Path)
		if !ok {
			reply(w, r, respBadRequest)
			return
		}
		res := g.router.lookup(p)
		if res == nil {
			reply(w, r, respMissingRoute)
			return
		}
		i, ok := res.route(r.Method)
		if !ok {
			w.Header().Set("Allow", res.allow)
			reply(w, r, respMethodNotAllowed)
			return
		}
		exchangeFrom(r.Context()).route = g.routes[i]
		if p == r.URL.Path && r.URL.RawPath == "" {
			// Already clean: the request goes on as it is (a copy of it and of its URL cost two
			// allocations per request).
			next.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r2.URL = &u
		next.ServeHTTP(w, r2)
	})
}

// mapParameters computes the request_headers values from the inbound request before anything is
// removed from it; applyMappings sets them on the outbound request.
func (g *Gateway) mapParameters(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex := exchangeFrom(r.Context())
		ms := g.mappings
		if ex.route != nil {
			ms = ex.route.mappings
		}
		ex.mapped = evaluateMappings(ex.mappedBuf[:0], ms, r, ex.id)
		ex.in = r
		next.ServeHTTP(w, r)
	})
}

// integrate proxies to the route's backend within the route's timeout: 504 when it expires, 502
// when the backend cannot be reached. Headers set by earlier stages (CORS, request id) stay on
// those error responses.
func (g *Gateway) integrate(w http.ResponseWriter, r *http.Request) {
	rt := exchangeFrom(r.Context()).route
	if rt == nil {
		// Unreachable through New's pipeline; fail closed.
		reply(w, r, respInternal)
		return
	}
	ex := exchangeFrom(r.Context())
	var ctx context.Context
	var cancel context.CancelFunc
	if isUpgrade(r) {
		// A WebSocket lives past its handshake: the timeout bounds the backend's answer to the
		// handshake only (ModifyResponse stops the timer on a 101), not the tunnel that follows.
		ctx, cancel = context.WithCancel(r.Context())
		// ReverseProxy closes both connections of a tunnel when its request's context ends.
		defer context.AfterFunc(g.tunnels, cancel)()
		ex.upgrade = time.AfterFunc(rt.timeout, func() {
			ex.timedOut.Store(true)
			cancel()
		})
		defer ex.upgrade.Stop()
	} else {
		ctx, cancel = context.WithTimeout(r.Context(), rt.timeout)
		if wt := g.listener.limits.WriteTimeout; wt > 0 {
			// The server's write deadline runs from the end of the request's header, and a
			// route that validates its body has read all of it by now: a slow upload would eat
			// the time the answer needs, and cut the connection where a 504 was due. The
			// exchange is bounded by the route's timeout from here, so the deadline moves to
			// that plus the margin write_timeout has over it (config.WriteTimeoutMargin).
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.timeout + config.WriteTimeoutMargin))
		}
	}
	defer cancel()
	ex.integrationStart = time.Now()
	rt.proxy.ServeHTTP(w, r.WithContext(ctx))
	ex.integrationDone() // the backend failed: the time until the proxy gave up
}

// peerIP is the TCP peer's address, without the port.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

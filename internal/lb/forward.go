package lb

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/desync"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// Access-log reason codes of the responses the load balancer writes itself, after AWS ALB's
// error categories. They appear as error_reason in the access log.
const (
	reasonNoTargets       = "NoHealthyTargets"      // 503: the group has no target that may serve
	reasonConnectError    = "TargetConnectionError" // 502: connecting to the target failed
	reasonResponseError   = "TargetResponseError"   // 502: the target reset or sent a bad response
	reasonTargetTimeout   = "TargetTimeout"         // 504: no response within request_timeout
	reasonClientClosed    = "ClientClosed"          // the client went away first
	reasonRequestTooLarge = "RequestBodyError"      // 400: the request body could not be read
)

// maxRetryBody is the largest request body kept in memory so that the request can be retried.
// A request with a longer (or unknown-length) body is tried once.
const maxRetryBody = 1 << 20

// errRetryStatus makes ReverseProxy hand a retryable response to the error handler, which then
// asks for another attempt instead of writing anything.
var errRetryStatus = errors.New("lb: retryable status")

// attempt is one try of a request on one target. The proxy's hooks fill in what happened.
type attempt struct {
	group       *targetGroup
	target      *target
	listener    *listener
	canRetry    bool // another attempt is allowed and another target may serve
	retry       bool // set by the hooks: discard this try and make another
	closeTarget bool // do not reuse the connection to the target (ambiguous request)
}

type attemptKey struct{}

// attemptOf is the current try of the request: the one in its access record, or (a request
// served without one) the one in its context.
func attemptOf(ctx context.Context) *attempt {
	if rec, ok := ctx.Value(accessKey{}).(*accessRecord); ok && rec.attempt.group != nil {
		return &rec.attempt
	}
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

func randIntN(n int) int { return rand.IntN(n) }

// newGroupProxy returns the reverse proxy of a group: its transport bounds the wait for the
// response headers by the group's request timeout.
func (lb *LoadBalancer) newGroupProxy(g *targetGroup, cfg config.TargetGroup) error {
	tr := lb.transport.Clone()
	tr.ResponseHeaderTimeout = cmp.Or(cfg.RequestTimeout.Duration, config.DefaultTargetRequestTimeout)
	g.transport = tr
	if err := g.targetTLS(cfg, tr); err != nil {
		return err
	}
	g.proxy = proxy.New(proxy.Options{
		Transport:  lb.groupTransport(g, tr), // metrics.go: rampart_target_duration_seconds
		Tracer:     lb.obs.tracer,            // a client span per attempt, its traceparent sent along
		SpanName:   "target",
		Logger:     lb.logger,
		BufferPool: lb.buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			a := attemptOf(pr.In.Context())
			pr.Out.URL.Scheme = a.group.scheme
			pr.Out.URL.Host = a.target.addr
			li := a.listener
			switch li.xff {
			case config.XFFPreserve:
				proxy.SetForwarded(pr, false)
				if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
					pr.Out.Header["X-Forwarded-For"] = slices.Clone(prior)
				} else {
					pr.Out.Header.Del("X-Forwarded-For")
				}
			case config.XFFRemove:
				proxy.SetForwarded(pr, false)
				pr.Out.Header.Del("X-Forwarded-For")
			default:
				proxy.SetForwarded(pr, true)
			}
			for _, h := range li.secretHeaders {
				pr.Out.Header.Del(h)
			}
			if a.closeTarget {
				pr.Out.Close = true
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			a := attemptOf(resp.Request.Context())
			a.group.result(a.target, resp.StatusCode >= 500)
			if a.canRetry && a.group.retry.onStatus[resp.StatusCode] {
				return errRetryStatus
			}
			a.group.stickResponse(resp, a.target)
			return nil
		},
	})
	// Replace the shared error handler: retries and reason codes need the attempt.
	g.proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		a := attemptOf(r.Context())
		if errors.Is(err, errRetryStatus) {
			a.retry = true
			return
		}
		clientGone := r.Context().Err() != nil && !errors.Is(r.Context().Err(), context.DeadlineExceeded)
		connect := isDialError(err)
		if !clientGone {
			a.group.result(a.target, true)
		}
		// A connection reset or closed before any response byte (ReverseProxy calls this handler
		// only when nothing was written yet: a target killed mid-request) is retried like a
		// connect failure, but only for idempotent methods: the target may have acted on it.
		reset := !connect && !clientGone && !desync.IsTimeout(err) && idempotent(r.Method)
		if (connect || reset) && a.canRetry {
			a.retry = true
			lb.logger.Info("retrying on another target", "group", a.group.name, "target", a.target.addr, "error", err.Error())
			return
		}
		status, msg, reason := http.StatusBadGateway, "Bad Gateway", reasonResponseError
		switch {
		case clientGone:
			reason = reasonClientClosed
		case desync.IsTimeout(err):
			status, msg, reason = http.StatusGatewayTimeout, "Gateway Timeout", reasonTargetTimeout
		case connect:
			reason = reasonConnectError
		}
		lb.logger.Warn("upstream error", "component", "lb", "group", a.group.name, "target", a.target.addr, "method", r.Method, "path", r.URL.Path, "status", status, "error_reason", reason, "error", err.Error())
		lb.fail(w, r, status, msg, reason)
	}
	return nil
}

// idempotent reports whether RFC 9110 lets a request with method be repeated safely.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// fail writes a short JSON error and records its reason for the access log.
func (lb *LoadBalancer) fail(w http.ResponseWriter, r *http.Request, status int, msg, reason string) {
	if rec, ok := r.Context().Value(accessKey{}).(*accessRecord); ok {
		rec.reason = reason
	}
	proxy.WriteJSONError(w, status, msg)
}

// serveGroup proxies r to a target of g, retrying on another target when the group's retry policy
// allows it.
func (lb *LoadBalancer) serveGroup(w http.ResponseWriter, r *http.Request, g *targetGroup) {
	rec, _ := r.Context().Value(accessKey{}).(*accessRecord)
	var li *listener
	if rec != nil {
		li = rec.listener
	}
	if li == nil {
		li = &listener{}
	}
	attempts := 1
	var body []byte
	if g.retry != nil && g.retry.methods[r.Method] {
		attempts = g.retry.attempts
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			if r.ContentLength < 0 || r.ContentLength > maxRetryBody {
				attempts = 1 // the body streams through and cannot be replayed
			} else {
				b, err := io.ReadAll(io.LimitReader(r.Body, maxRetryBody+1))
				if err != nil {
					lb.fail(w, r, http.StatusBadRequest, "Bad Request", reasonRequestTooLarge)
					return
				}
				body = b
			}
		}
	}
	sticky := ""
	if g.stickiness != nil {
		if c, err := r.Cookie(g.cookieName); err == nil {
			sticky = c.Value
		}
	}
	closeTarget := false
	if v := desync.FromContext(r.Context()); v != nil && v.CloseConns {
		closeTarget = true
	}
	var tried []*target
	skip := func(t *target) bool { return slices.Contains(tried, t) }
	for i := 0; ; i++ {
		t := g.pick(sticky, skip)
		if t == nil {
			lb.fail(w, r, http.StatusServiceUnavailable, "Service Unavailable", reasonNoTargets)
			return
		}
		sticky = ""
		// The try lives in the access record when there is one (attemptOf finds it there): no
		// allocation and no context value per try.
		var a *attempt
		if rec != nil {
			rec.attempt = attempt{group: g, target: t, listener: li, closeTarget: closeTarget}
			a = &rec.attempt
		} else {
			a = &attempt{group: g, target: t, listener: li, closeTarget: closeTarget}
		}
		if i+1 < attempts {
			next := append(slices.Clone(tried), t)
			a.canRetry = g.hasOther(func(x *target) bool { return slices.Contains(next, x) })
		}
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if rec != nil {
			rec.target = t.addr
		}
		func() {
			defer g.release(t) // also when the proxy aborts with http.ErrAbortHandler
			if rec != nil {
				g.proxy.ServeHTTP(w, r)
			} else {
				g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, a)))
			}
		}()
		if !a.retry {
			return
		}
		if rec != nil {
			rec.retries++
		}
		tried = append(tried, t)
	}
}

// stickResponse adds the stickiness cookie that binds the client to t: always for lb_cookie
// (refreshing its lifetime), and for app_cookie when the application sets its cookie.
func (g *targetGroup) stickResponse(resp *http.Response, t *target) {
	s := g.stickiness
	if s == nil {
		return
	}
	if s.Type == config.StickinessAppCookie {
		found := false
		for _, c := range resp.Cookies() {
			if c.Name == s.CookieName {
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
	maxAge := int(s.Duration.Duration / time.Second)
	if maxAge <= 0 {
		maxAge = int(config.DefaultStickinessDuration / time.Second)
	}
	c := &http.Cookie{Name: g.cookieName, Value: t.id, Path: "/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	resp.Header.Add("Set-Cookie", c.String())
}

package gateway

import (
	"net/http"

	"github.com/rampart-edge/rampart/internal/proxy"
	"github.com/rampart-edge/rampart/internal/ratelimit"
	"github.com/rampart-edge/rampart/internal/waf"
)

// Option changes how New builds a gateway.
type Option func(*options)

type options struct {
	acl     *waf.WebACL
	observe observeOptions       // WithMetrics, WithTracer (metrics.go)
	stores  *ratelimit.Registry  // WithStores (stores.go)
	local   *proxy.LocalHandlers // WithLocalHandlers
}

// WithLocalHandlers makes the routes whose integration is a plain-HTTP listener in local call its
// handler in-process (proxy.InProcess) instead of over a loopback connection: `rampart run` with
// the gateway and its load balancer in one process.
func WithLocalHandlers(local *proxy.LocalHandlers) Option {
	return func(o *options) { o.local = local }
}

// WithWebACL makes the gateway evaluate acl on every request, after the request id and the
// access log (so a blocked request is logged with its id) and before CORS and routing (so no
// route, not even a preflight, can be reached around it). A nil acl is ignored.
func WithWebACL(acl *waf.WebACL) Option { return func(o *options) { o.acl = acl } }

func newOptions(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// webACL is the pipeline stage of the web ACL.
func (o *options) webACL(next http.Handler) http.Handler {
	if o.acl == nil {
		return next
	}
	return o.acl.Wrap(next)
}

// Package cors is the gateway's cross-origin policy: origin matching and a middleware with three
// modes.
//
//   - enforce (the default) refuses server-side what a browser would refuse: a preflight for a
//     disallowed origin, method or header gets 403, and so does an actual request whose Origin is
//     present and not allowed — the request never reaches the next handler. (AWS API Gateway only
//     adds headers and leaves the blocking to browsers; non-browser clients are not stopped there.)
//   - standard is the Fetch specification's behaviour: a disallowed origin gets no CORS headers and
//     the request passes.
//   - shadow answers like standard and logs, at Warn, every request enforce would have refused, so
//     that a policy can be tried on live traffic before it is enforced.
//
// Preflights are always answered by the policy and never passed on. The CORS headers of an allowed
// request are set before the next handler runs, so errors produced further down (404, 405, 429,
// 502, 504) carry them too and a browser can read them.
package cors

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/proxy"
	"golang.org/x/net/http/httpguts"
)

// Reasons a request is refused; they are the 403 body's message and the shadow log's reason.
const (
	reasonOrigin         = "CORS: origin not allowed"
	reasonMethod         = "CORS: method not allowed"
	reasonHeader         = "CORS: header not allowed"
	reasonOriginRequired = "CORS: origin required"
)

// Policy is a compiled CORS configuration. It is immutable and safe for concurrent use.
type Policy struct {
	mode    string
	origins *Matcher
	// star answers "Access-Control-Allow-Origin: *" (allow_origins ["*"] without credentials).
	star bool

	methods      map[string]bool
	anyMethod    bool
	allowMethods string

	headers      map[string]bool // lowercase
	anyHeader    bool
	allowHeaders string

	exposeHeaders string
	credentials   bool
	maxAge        string
	requireOrigin bool
	logger        *slog.Logger
	metrics       *observe.CORSCounters // SetMetrics (metrics.go)
}

// New compiles cfg. A nil logger discards. An empty mode means enforce.
func New(cfg config.CORS, logger *slog.Logger) (*Policy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Policy{
		mode:          cfg.Mode,
		methods:       make(map[string]bool),
		headers:       make(map[string]bool),
		credentials:   cfg.AllowCredentials,
		requireOrigin: cfg.RequireOrigin,
		logger:        logger,
	}
	switch p.mode {
	case "":
		p.mode = config.CORSEnforce
	case config.CORSEnforce, config.CORSStandard, config.CORSShadow:
	default:
		return nil, fmt.Errorf("cors mode %q: write enforce, standard or shadow", cfg.Mode)
	}
	m, err := NewMatcher(cfg.AllowOrigins)
	if err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	p.origins = m
	if m.AllowsAny() {
		if cfg.AllowCredentials {
			// Browsers refuse "*" with credentials, and echoing any origin with credentials would
			// let every site act as the user.
			return nil, fmt.Errorf("cors: allow_origins \"*\" cannot be combined with allow_credentials")
		}
		p.star = true
	}

	var methods []string
	for _, meth := range cfg.AllowMethods {
		if meth == "*" {
			p.anyMethod = true
			continue
		}
		meth = strings.ToUpper(meth)
		if !p.methods[meth] {
			p.methods[meth] = true
			methods = append(methods, meth)
		}
	}
	p.allowMethods = strings.Join(methods, ", ")

	var headers []string
	for _, h := range cfg.AllowHeaders {
		if h == "*" {
			p.anyHeader = true
			continue
		}
		l := strings.ToLower(h)
		if !httpguts.ValidHeaderFieldName(l) {
			return nil, fmt.Errorf("cors: allow_headers %q is not a header name", h)
		}
		if !p.headers[l] {
			p.headers[l] = true
			headers = append(headers, h)
		}
	}
	p.allowHeaders = strings.Join(headers, ", ")
	p.exposeHeaders = strings.Join(cfg.ExposeHeaders, ", ")
	if d := cfg.MaxAge.Duration; d > 0 {
		p.maxAge = strconv.FormatInt(int64(d.Seconds()), 10)
	}
	return p, nil
}

// Wrap returns next behind the policy.
func (p *Policy) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Every response depends on Origin: its CORS headers, and in enforce mode its status.
		h.Add("Vary", "Origin")
		values := r.Header.Values("Origin")
		if len(values) == 0 {
			if p.requireOrigin && p.refuse(w, r, "", reasonOriginRequired) {
				return
			}
			p.metrics.Count(observe.CORSNoOrigin)
			next.ServeHTTP(w, r)
			return
		}
		origin := values[0]
		// Two Origin headers are not something a browser sends; neither is allowed.
		allowed := len(values) == 1 && p.origins.Match(origin)
		if r.Method == http.MethodOptions && len(r.Header.Values("Access-Control-Request-Method")) > 0 {
			p.preflight(w, r, origin, allowed)
			return
		}
		if !allowed {
			if p.refuse(w, r, origin, reasonOrigin) {
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		p.metrics.Count(observe.CORSAllowed)
		p.setAllowOrigin(h, origin)
		if p.exposeHeaders != "" {
			h.Set("Access-Control-Expose-Headers", p.exposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers an OPTIONS request carrying Origin and Access-Control-Request-Method.
func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, origin string, originAllowed bool) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	method := r.Header.Get("Access-Control-Request-Method")
	requested, headersOK := p.requestedHeaders(r.Header.Values("Access-Control-Request-Headers"))
	reason := ""
	switch {
	case !originAllowed:
		reason = reasonOrigin
	case !p.anyMethod && !p.methods[method]:
		reason = reasonMethod
	case !headersOK:
		reason = reasonHeader
	}
	if reason != "" {
		if !p.refuse(w, r, origin, reason) {
			// standard and shadow: a bare answer, which the browser treats as a failed preflight.
			w.WriteHeader(http.StatusNoContent)
		}
		return
	}
	p.setAllowOrigin(h, origin)
	switch {
	case p.anyMethod:
		h.Set("Access-Control-Allow-Methods", method)
	case p.allowMethods != "":
		h.Set("Access-Control-Allow-Methods", p.allowMethods)
	}
	switch {
	case p.anyHeader:
		if len(requested) > 0 {
			// Echo rather than "*", which browsers do not honour on credentialed requests.
			h.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
		}
	case p.allowHeaders != "":
		h.Set("Access-Control-Allow-Headers", p.allowHeaders)
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	p.metrics.Count(observe.CORSPreflightAllowed)
	w.WriteHeader(http.StatusNoContent)
}

// requestedHeaders parses Access-Control-Request-Headers (a comma-separated list, possibly over
// several lines) and reports whether every name is allowed. Accept, Accept-Language and
// Content-Language are CORS-safelisted and need not be listed.
func (p *Policy) requestedHeaders(values []string) (names []string, ok bool) {
	ok = true
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			name = strings.ToLower(strings.Trim(name, " \t"))
			if name == "" {
				continue
			}
			if !httpguts.ValidHeaderFieldName(name) {
				return nil, false
			}
			names = append(names, name)
			switch {
			case p.anyHeader, p.headers[name]:
			case name == "accept", name == "accept-language", name == "content-language":
			default:
				ok = false
			}
		}
	}
	return names, ok
}

func (p *Policy) setAllowOrigin(h http.Header, origin string) {
	if p.star {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// refuse handles a request enforce mode would refuse. In enforce mode it writes the 403 and reports
// true; in shadow mode it logs; in standard mode it does nothing. The log carries the Origin value
// and the path, never other header values.
func (p *Policy) refuse(w http.ResponseWriter, r *http.Request, origin, reason string) bool {
	p.countRefusal(r) // metrics.go
	switch p.mode {
	case config.CORSEnforce:
		p.logger.Debug("cors refused request", "reason", reason, "origin", truncate(origin), "method", r.Method, "path", r.URL.Path)
		proxy.WriteJSONError(w, http.StatusForbidden, reason)
		return true
	case config.CORSShadow:
		p.logger.Warn("cors shadow: enforce mode would refuse this request", "reason", reason, "origin", truncate(origin), "method", r.Method, "path", r.URL.Path)
	}
	return false
}

// truncate bounds the attacker-controlled Origin value in logs.
func truncate(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// routeEdge compiles what a route adds at the edges of the pipeline: its backend path
// (integration.path, strip_prefix), its request and response header mappings merged with the
// gateway's, its request validation, and the gateway responses of integration errors.
func (g *Gateway) routeEdge(rt *route, rc config.Route, keyrings map[string]*originverify.Keyring) error {
	var err error
	if rt.backendPath, err = compileBackendPath(rc.Path, rc.Integration.Path, rc.Integration.StripPrefix); err != nil {
		return err
	}
	own, err := compileMappings(rc.RequestHeaders, keyrings)
	if err != nil {
		return err
	}
	rt.mappings = mergeMappings(g.mappings, own)
	if rt.respHeaders, err = compileResponseHeaders(rc.ResponseHeaders, g.respHeaders); err != nil {
		return err
	}
	rt.validation = newValidation(rc.RequestValidation) // validate.go
	rt.proxy.ErrorHandler = g.integrationError
	return nil
}

// mergeMappings is the gateway's request_headers with the route's on top: for a header both
// name, the route's entry wins.
func mergeMappings(gateway, own []mapping) []mapping {
	if len(own) == 0 {
		return gateway
	}
	out := make([]mapping, 0, len(gateway)+len(own))
	for _, m := range gateway {
		overridden := false
		for _, o := range own {
			if o.name == m.name {
				overridden = true
				break
			}
		}
		if !overridden {
			out = append(out, m)
		}
	}
	return append(out, own...)
}

// compileBackendPath returns how the routed (cleaned) path becomes the backend's path, or nil
// to send it as it is. With tmpl ("/items/{id}") the path is built from the route's parameters;
// with strip, that leading part of the path is removed ("/v1/items" → "/items").
func compileBackendPath(routePath, tmpl, strip string) (func([]string, string) string, error) {
	switch {
	case tmpl != "":
		params := map[string]int{}
		for i, seg := range strings.Split(strings.TrimPrefix(routePath, "/"), "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				params[seg[1:len(seg)-1]] = i
			}
		}
		type part struct {
			text  string
			param int // -1: text
		}
		var parts []part
		rest := tmpl
		for rest != "" {
			i := strings.IndexByte(rest, '{')
			if i < 0 {
				parts = append(parts, part{text: rest, param: -1})
				break
			}
			j := strings.IndexByte(rest[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("integration path %q: unbalanced braces", tmpl)
			}
			name := rest[i+1 : i+j]
			idx, ok := params[name]
			if !ok {
				return nil, fmt.Errorf("integration path %q: {%s} is not a parameter of %q", tmpl, name, routePath)
			}
			if i > 0 {
				parts = append(parts, part{text: rest[:i], param: -1})
			}
			parts = append(parts, part{param: idx})
			rest = rest[i+j+1:]
		}
		return func(segs []string, _ string) string {
			var b strings.Builder
			for _, p := range parts {
				if p.param < 0 {
					b.WriteString(p.text)
				} else if p.param < len(segs) {
					b.WriteString(segs[p.param])
				}
			}
			return b.String()
		}, nil
	case strip != "":
		return func(_ []string, cleaned string) string {
			if cleaned == strip {
				return "/"
			}
			if rest, ok := strings.CutPrefix(cleaned, strip+"/"); ok {
				return "/" + rest
			}
			return cleaned
		}, nil
	}
	return nil, nil
}

// rewritePath sets the outbound path from the routed one when the route rewrites it. The path
// is the cleaned, decoded one; a parameter value cannot hold "/" (it is one segment), and
// url.URL escapes what needs escaping when the request is written.
func (rt *route) rewritePath(out *http.Request) {
	if rt.backendPath == nil {
		return
	}
	p := out.URL.Path
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	out.URL.Path, out.URL.RawPath = rt.backendPath(segs, p), ""
}

// respHeaderRule is one compiled response_headers entry: remove the header, or set it to the
// value of m.
type respHeaderRule struct {
	name   string
	remove bool
	m      mapping
}

// compileResponseHeaders compiles rh on top of base (the gateway's rules): a route's entry for a
// header replaces the gateway's entry for it.
func compileResponseHeaders(rh *config.ResponseHeaders, base []respHeaderRule) ([]respHeaderRule, error) {
	if rh == nil {
		return base, nil
	}
	var own []respHeaderRule
	ms, err := compileMappings(rh.Set, nil)
	if err != nil {
		return nil, fmt.Errorf("response_headers: %w", err)
	}
	for _, m := range ms {
		own = append(own, respHeaderRule{name: m.name, m: m})
	}
	for _, name := range rh.Remove {
		own = append(own, respHeaderRule{name: textproto.CanonicalMIMEHeaderKey(name), remove: true})
	}
	out := make([]respHeaderRule, 0, len(base)+len(own))
	for _, b := range base {
		replaced := false
		for _, o := range own {
			if o.name == b.name {
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, b)
		}
	}
	return append(out, own...), nil
}

// applyResponseHeaders edits a backend response's headers: every rule first removes all copies
// of its header, then a set rule adds its value (an empty value leaves the header absent).
func applyResponseHeaders(h http.Header, rules []respHeaderRule, ex *exchange) {
	for i := range rules {
		r := &rules[i]
		for k := range h {
			if strings.EqualFold(k, r.name) {
				delete(h, k)
			}
		}
		if r.remove || ex.in == nil {
			continue
		}
		if v := mappingValue(&r.m, ex.in, ex.id); v != "" {
			h[r.name] = []string{v}
		}
	}
}

// integrationError answers a failed backend call with the matching gateway response.
func (g *Gateway) integrationError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := proxy.Classify(r, err)
	t := respIntegrationFailed
	switch {
	case exchangeFrom(r.Context()).timedOut.Load(), status == http.StatusGatewayTimeout:
		t, status = respIntegrationTimout, http.StatusGatewayTimeout
	case status == http.StatusRequestEntityTooLarge:
		t = respTooLarge
	case status == http.StatusRequestTimeout:
		t = respRequestTimeout
	case status == http.StatusBadRequest:
		t = respBadRequest
	}
	g.logger.Warn("upstream error", "method", r.Method, "path", r.URL.Path, "status", status, "error", err)
	if t == respIntegrationTimout {
		msg = "" // the type's message, also when the handshake timer (not the context) fired
	}
	replyWith(w, r, t, replyOpts{message: msg})
}

// isUpgrade reports a protocol upgrade request (a WebSocket handshake).
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade")
}

// limitHeaders answers 431 when the request line and headers are over max_header_bytes. net/http
// enforces its own limit (MaxHeaderBytes, plus a little slack) while reading, and answers that
// one with a bare 431; this check makes the configured number exact and the answer a gateway
// response, with the CORS headers a browser needs to read it.
func (g *Gateway) limitHeaders(next http.Handler) http.Handler {
	if g.maxHeaderBytes <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > g.maxHeaderBytes {
			w.Header().Set("Connection", "close")
			reply(w, r, respHeadersTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerBytes is the size of the request line and headers as sent in HTTP/1.1.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// intercept wraps a stage from another package (the web ACL, CORS) so that the errors it answers
// itself become gateway responses of type t: overridable by gateway_responses and, for the web
// ACL, which runs before CORS, given the CORS headers of an allowed origin. What the stage passes
// on to the rest of the pipeline, and its non-error answers (a preflight's 204), go through
// untouched. A web ACL rule's own custom response is sent as the rule says.
//
// Its writer lives in the exchange (slot 0 for the web ACL, 1 for CORS), so intercepting costs
// no allocation per request.
func (g *Gateway) intercept(t responseType, slot int, stage func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		inner := stage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if iw, ok := w.(*interceptWriter); ok {
				iw.passed = true
				w = iw.ResponseWriter
			}
			next.ServeHTTP(w, r)
		}))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			iw := &exchangeFrom(r.Context()).intercepts[slot]
			iw.ResponseWriter = w
			inner.ServeHTTP(iw, r)
			if iw.passed || iw.status == 0 {
				return
			}
			g.answerIntercepted(w, r, t, iw)
		})
	}
}

func (g *Gateway) answerIntercepted(w http.ResponseWriter, r *http.Request, t responseType, iw *interceptWriter) {
	var msg struct {
		Message string `json:"message"`
	}
	standard := w.Header().Get("Content-Type") == "application/json" && json.Unmarshal(iw.body.Bytes(), &msg) == nil && msg.Message != ""
	if t == respWAFBlocked {
		g.addCORSHeaders(w, r)
		switch {
		case standard && iw.status == http.StatusForbidden:
		case standard && iw.status == http.StatusBadRequest:
			t = respBadRequest
		case standard && iw.status == http.StatusServiceUnavailable:
			t = respStoreUnavailable
		case standard && iw.status == http.StatusInternalServerError:
			t = respInternal
		default:
			// A rule's custom response: as configured.
			w.WriteHeader(iw.status)
			_, _ = w.Write(iw.body.Bytes())
			return
		}
		replyWith(w, r, t, replyOpts{})
		return
	}
	replyWith(w, r, t, replyOpts{message: msg.Message})
}

// addCORSHeaders puts on w the CORS headers the policy gives r's origin, for an error answered
// before the CORS stage ran.
func (g *Gateway) addCORSHeaders(w http.ResponseWriter, r *http.Request) {
	if g.policy == nil || r.Header.Get("Origin") == "" {
		return
	}
	hw := &headerOnlyWriter{h: http.Header{}}
	g.policy.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(hw, r)
	h := w.Header()
	for k, v := range hw.h {
		if strings.HasPrefix(k, "Access-Control-") {
			h[k] = v
		}
	}
	h.Add("Vary", "Origin")
}

// interceptWriter holds back the error a wrapped stage answers itself (see intercept).
type interceptWriter struct {
	http.ResponseWriter
	passed bool // the stage called the rest of the pipeline, or answered without an error
	status int  // the stage's own error status, held back
	body   bytes.Buffer
}

func (w *interceptWriter) WriteHeader(code int) {
	switch {
	case w.passed:
		w.ResponseWriter.WriteHeader(code)
	case w.status != 0:
	case code < 400:
		w.passed = true
		w.ResponseWriter.WriteHeader(code)
	default:
		w.status = code
	}
}

func (w *interceptWriter) Write(p []byte) (int, error) {
	if !w.passed && w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.passed {
		return w.ResponseWriter.Write(p)
	}
	if w.body.Len() < 64<<10 {
		w.body.Write(p)
	}
	return len(p), nil
}

func (w *interceptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerOnlyWriter collects headers and discards the rest.
type headerOnlyWriter struct{ h http.Header }

func (w *headerOnlyWriter) Header() http.Header         { return w.h }
func (w *headerOnlyWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *headerOnlyWriter) WriteHeader(int)             {}

// webACLStage is the web ACL, its errors made gateway responses with CORS headers (intercept).
func (g *Gateway) webACLStage(o *options) func(http.Handler) http.Handler {
	if o.acl == nil {
		return o.webACL
	}
	return g.intercept(respWAFBlocked, 0, o.webACL)
}

// corsStage is the CORS policy, its refusals made CORS_REJECTED gateway responses.
func (g *Gateway) corsStage() func(http.Handler) http.Handler {
	return g.intercept(respCORSRejected, 1, g.policy.Wrap)
}

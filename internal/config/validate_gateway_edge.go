package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// applyListenerDefaults fills a gateway's listener: tls.min_version 1.2, max_header_bytes 64 KiB,
// read_header_timeout 10s, read_timeout 60s, idle_timeout 120s, and write_timeout the longest
// integration timeout of its routes plus 10s (so that the gateway's own 504 goes out before the
// connection is cut). It runs after the route timeouts are defaulted.
func applyListenerDefaults(g *Gateway, p string, set func(string) bool) {
	if g.TLS != nil && !set(p+".tls.min_version") {
		g.TLS.MinVersion = DefaultTLSMinVersion
	}
	if !set(p + ".max_header_bytes") {
		g.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if !set(p + ".read_header_timeout") {
		g.ReadHeaderTimeout = Duration{DefaultReadHeaderTimeout}
	}
	if !set(p + ".read_timeout") {
		g.ReadTimeout = Duration{DefaultReadTimeout}
	}
	if !set(p + ".idle_timeout") {
		g.IdleTimeout = Duration{DefaultIdleTimeout}
	}
	if !set(p + ".write_timeout") {
		g.WriteTimeout = Duration{longestIntegrationTimeout(g) + WriteTimeoutMargin}
	}
}

func longestIntegrationTimeout(g *Gateway) time.Duration {
	longest := g.IntegrationTimeout.Duration
	if longest <= 0 {
		longest = DefaultIntegrationTimeout
	}
	for _, r := range g.Routes {
		longest = max(longest, r.Integration.Timeout.Duration)
	}
	return longest
}

// checkGatewayEdge checks what a gateway does at its edges: integration path rewriting, request
// and response header mapping per route, request validation, gateway responses and the listener.
// It is called from checkGatewayAccess.
func (c *checker) checkGatewayEdge(p string, g *Gateway) {
	c.responseHeaders(p+".response_headers", g.ResponseHeaders)
	// Headers the gateway maps to a secret: the origin-verify header the load balancer checks.
	var secretHeaders []string
	for _, h := range g.RequestHeaders {
		if len(h.Value.Secrets()) > 0 {
			secretHeaders = append(secretHeaders, h.Name)
		}
	}
	for i := range g.Routes {
		r := &g.Routes[i]
		rp := idx(p, "routes", i)
		c.integrationPath(rp, r)
		for _, h := range r.RequestHeaders {
			if len(h.Value.Secrets()) > 0 {
				c.errf(join(rp+".request_headers", h.Name), "map secrets in the gateway's request_headers; a route adds or overrides other headers",
					"a route's request_headers cannot reference a secret")
				continue
			}
			// A route's entry replaces the gateway's of the same name: the secret would never
			// reach the load balancer, which would refuse every request of the route.
			for _, name := range secretHeaders {
				if sameHeaderName(name, h.Name) {
					c.errf(join(rp+".request_headers", h.Name), "remove it from the route, or map it in the gateway's request_headers only",
						"the gateway's request_headers map %s to a secret (origin verification); a route cannot override it", name)
				}
			}
		}
		c.responseHeaders(rp+".response_headers", r.ResponseHeaders)
		if r.RequestValidation != nil {
			c.requestValidation(rp+".request_validation", r.RequestValidation)
		}
	}
	c.gatewayResponses(p+".gateway_responses", g.GatewayResponses)
	c.gatewayListener(p, g)
}

// integrationPath checks integration.path and integration.strip_prefix against the route's path.
func (c *checker) integrationPath(rp string, r *Route) {
	ip := rp + ".integration"
	in := &r.Integration
	if in.Path != "" && in.StripPrefix != "" {
		c.errf(ip+".strip_prefix", "use path: to write the whole backend path, or strip_prefix: to cut the front of it", "set path or strip_prefix, not both")
		return
	}
	if c.set(ip + ".path") {
		c.integrationPathTemplate(ip+".path", in.Path, r.Path)
	}
	if c.set(ip + ".strip_prefix") {
		s := in.StripPrefix
		switch {
		case !strings.HasPrefix(s, "/") || s == "/" || strings.HasSuffix(s, "/") || strings.ContainsAny(s, "{}?#") || strings.Contains(s, "//"):
			c.errf(ip+".strip_prefix", "write literal leading segments of the route path, such as /v1", "strip_prefix %q is not a path prefix such as /v1", s)
		case r.Path != s && !strings.HasPrefix(r.Path, s+"/"):
			c.errf(ip+".strip_prefix", fmt.Sprintf("write leading segments of %s", r.Path), "strip_prefix %q is not a prefix of the route path %q", s, r.Path)
		}
	}
}

// integrationPathTemplate checks a backend path template: absolute, no query, and every {name}
// a parameter of the route path (the value the backend receives comes from it).
func (c *checker) integrationPathTemplate(path, tmpl, routePath string) {
	const hint = "write the backend path with the route's parameters, such as /items/{id}"
	if !strings.HasPrefix(tmpl, "/") || strings.ContainsAny(tmpl, "?#") {
		c.errf(path, hint, "integration path %q must start with / and have no query or fragment", tmpl)
		return
	}
	for _, seg := range strings.Split(tmpl[1:], "/") {
		if seg == "." || seg == ".." {
			c.errf(path, hint, "integration path %q has a %s segment", tmpl, seg)
			return
		}
	}
	params := routeParams(routePath)
	rest := tmpl
	for {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 && j < 0 {
			return
		}
		if i < 0 || j < i {
			c.errf(path, hint, "unbalanced braces in integration path %q", tmpl)
			return
		}
		name := rest[i+1 : j]
		if !slices.Contains(params, name) {
			c.errf(path, c.suggest("route parameter", name, params, "parameters of the route path"), "{%s} is not a parameter of the route path %q", name, routePath)
			return
		}
		rest = rest[j+1:]
	}
}

// routeParams returns the parameter names of a route path template.
func routeParams(tmpl string) []string {
	var out []string
	for _, seg := range strings.Split(tmpl, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

// reservedResponseHeader reports header names response_headers may not set or remove: framing
// and hop-by-hop headers (net/http owns them), the gateway's CORS headers and its request id.
func reservedResponseHeader(name string) bool {
	l := strings.ToLower(name)
	switch l {
	case "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer",
		"te", "proxy-connection", "x-request-id":
		return true
	}
	return strings.HasPrefix(l, "access-control-")
}

func (c *checker) responseHeaders(p string, rh *ResponseHeaders) {
	if rh == nil {
		return
	}
	const hint = "CORS headers come from cors:, X-Request-Id from the gateway, framing headers from net/http"
	for _, h := range rh.Set {
		hp := join(p+".set", h.Name)
		if reservedResponseHeader(h.Name) {
			c.errf(hp, hint, "response header %s cannot be set here", h.Name)
		}
		if len(h.Value.Secrets()) > 0 {
			c.errf(hp, "a response goes to the client: never put a secret in it", "a response header cannot reference a secret")
		}
	}
	seen := map[string]bool{}
	for i, name := range rh.Remove {
		ip := idx(p, "remove", i)
		switch {
		case !isToken(name):
			c.errf(ip, "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name %q", name)
		case reservedResponseHeader(name):
			c.errf(ip, hint, "response header %s cannot be removed here", name)
		case seen[strings.ToLower(name)]:
			c.errf(ip, "", "header %s is listed twice", name)
		}
		seen[strings.ToLower(name)] = true
		for _, h := range rh.Set {
			if strings.EqualFold(h.Name, name) {
				c.errf(ip, "set overwrites every copy already; remove the entry from one list", "header %s is both set and removed", name)
			}
		}
	}
}

// requestValidation checks the names and compiles the body schema, so that a schema error is a
// config error with its line rather than a surprise at the first request.
func (c *checker) requestValidation(p string, v *RequestValidation) {
	seen := map[string]bool{}
	for i, h := range v.RequiredHeaders {
		hp := idx(p, "required_headers", i)
		if !isToken(h) {
			c.errf(hp, "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name %q", h)
		} else if seen[strings.ToLower(h)] {
			c.errf(hp, "header names are case-insensitive", "header %s is listed twice", h)
		}
		seen[strings.ToLower(h)] = true
	}
	seenQ := map[string]bool{}
	for i, q := range v.RequiredQuery {
		qp := idx(p, "required_query", i)
		if q == "" || strings.ContainsAny(q, "&=#? \t") {
			c.errf(qp, "write a query parameter name such as page", "invalid query parameter name %q", q)
		} else if seenQ[q] {
			c.errf(qp, "", "query parameter %s is listed twice", q)
		}
		seenQ[q] = true
	}
	switch {
	case v.BodySchema.IsSet() && v.BodySchemaFile != "":
		c.errf(p+".body_schema_file", "write the schema inline or in a file, not both", "set body_schema or body_schema_file, not both")
	case v.BodySchema.IsSet():
		if !bytes.HasPrefix(v.BodySchema.JSON, []byte("{")) && string(v.BodySchema.JSON) != "true" && string(v.BodySchema.JSON) != "false" {
			c.errf(p+".body_schema", "write a JSON Schema object, such as {type: object, required: [name]}", "a schema is a mapping")
			return
		}
		v.Schema = c.compileSchema(p+".body_schema", "inline:"+p, v.BodySchema.JSON)
	case v.BodySchemaFile != "":
		data, err := os.ReadFile(v.BodySchemaFile)
		if err != nil {
			c.errf(p+".body_schema_file", "the path is relative to the working directory", "cannot read the schema: %v", err)
			return
		}
		v.Schema = c.compileSchema(p+".body_schema_file", v.BodySchemaFile, data)
	}
}

// compileSchema compiles one JSON Schema. $ref may name other schema files (file: URLs, or paths
// relative to the schema's file), never http(s) URLs: loading is done at start, from disk only.
func (c *checker) compileSchema(path, name string, data []byte) *jsonschema.Schema {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		c.errf(path, "a schema file holds one JSON document", "the schema is not valid JSON: %v", err)
		return nil
	}
	var loc string
	if strings.HasPrefix(name, "inline:") {
		loc = "file:///rampart/inline/" + url.PathEscape(strings.TrimPrefix(name, "inline:")) + ".json"
	} else {
		abs, err := filepath.Abs(name)
		if err != nil {
			c.errf(path, "", "schema path: %v", err)
			return nil
		}
		loc = "file://" + filepath.ToSlash(abs)
	}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(jsonschema.SchemeURLLoader{"file": jsonschema.FileLoader{}})
	if err := comp.AddResource(loc, doc); err != nil {
		c.errf(path, "", "invalid schema: %v", err)
		return nil
	}
	s, err := comp.Compile(loc)
	if err != nil {
		c.errf(path, "see https://json-schema.org/understanding-json-schema/ for the keywords", "invalid schema: %s", schemaError(err, loc))
		return nil
	}
	return s
}

// schemaError says what is wrong with a schema: for a schema the metaschema refuses, each
// failed keyword with its place in the schema; otherwise the compiler's message.
func schemaError(err error, loc string) string {
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		var msgs []string
		var walk func(e *jsonschema.ValidationError)
		walk = func(e *jsonschema.ValidationError) {
			if len(e.Causes) == 0 {
				if u := e.BasicOutput(); u.Error != nil && len(msgs) < 3 {
					msgs = append(msgs, fmt.Sprintf("at %s: %s", schemaPointer(e.InstanceLocation), u.Error))
				}
				return
			}
			for _, cause := range e.Causes {
				walk(cause)
			}
		}
		walk(ve)
		if len(msgs) > 0 {
			return strings.Join(msgs, "; ")
		}
	}
	return firstLine(strings.ReplaceAll(err.Error(), loc, "the schema"))
}

func schemaPointer(tokens []string) string {
	if len(tokens) == 0 {
		return "the top"
	}
	return "/" + strings.Join(tokens, "/")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		rest := strings.TrimSpace(s[i+1:])
		s = strings.TrimSpace(s[:i])
		if rest != "" {
			s += ": " + strings.Join(strings.Fields(rest), " ")
		}
	}
	return s
}

// GatewayResponseRefs are the references a gateway response body or header may use.
var GatewayResponseRefs = []string{"context.requestId", "context.error.message", "context.error.type", "context.error.validationErrorString"}

func (c *checker) gatewayResponses(p string, rs map[string]GatewayResponse) {
	for _, name := range slices.Sorted(mapsKeys(rs)) {
		r := rs[name]
		rp := join(p, name)
		if !slices.Contains(GatewayResponseTypes, name) {
			c.errf(rp, c.suggest("gateway response", name, GatewayResponseTypes, "gateway response types"), "unknown gateway response type %q", name)
			continue
		}
		if c.set(rp + ".status") {
			switch {
			case name == RespDefault4XX || name == RespDefault5XX:
				c.errf(rp+".status", "remove status, or give the type its own entry with a status",
					"%s cannot set a status: each type it covers keeps its own", name)
			case r.Status < 400 || r.Status > 599:
				c.errf(rp+".status", "write an error status from 400 to 599", "status %d is out of range for %s", r.Status, name)
			}
		}
		if r.Body.IsSet() {
			if len(r.Body.JSON) > 64<<10 {
				c.errf(rp+".body", "keep error bodies short", "body is over 64 KiB")
			}
			if msg := checkResponseRefs(string(r.Body.JSON)); msg != "" {
				c.errf(rp+".body", "write one of ${"+strings.Join(GatewayResponseRefs, "}, ${")+"}", "%s", msg)
			}
		}
		for _, hn := range slices.Sorted(mapsKeys(r.Headers)) {
			hp := join(rp+".headers", hn)
			v := r.Headers[hn]
			switch {
			case !isToken(hn):
				c.errf(hp, "a header name is letters, digits and !#$%&'*+-.^_`|~", "invalid header name %q", hn)
			case reservedResponseHeader(hn):
				c.errf(hp, "CORS headers come from cors:, X-Request-Id from the gateway, framing headers from net/http", "header %s cannot be set here", hn)
			case strings.ContainsAny(v, "\r\n\x00"):
				c.errf(hp, "remove control characters such as newlines", "header value has a control character")
			default:
				if msg := checkResponseRefs(v); msg != "" {
					c.errf(hp, "write one of ${"+strings.Join(GatewayResponseRefs, "}, ${")+"}", "%s", msg)
				}
			}
		}
	}
}

// checkResponseRefs returns a message for the first ${…} in s that a gateway response cannot
// fill. Other text, "$" alone included, is sent as written.
func checkResponseRefs(s string) string {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return ""
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return fmt.Sprintf("unterminated reference %q", s[i:])
		}
		ref := s[i+2 : i+end]
		if !slices.Contains(GatewayResponseRefs, ref) {
			return fmt.Sprintf("unknown reference ${%s} in a gateway response", ref)
		}
		s = s[i+end+1:]
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// gatewayListener checks tls, max_header_bytes and the timeouts of a gateway's listener.
func (c *checker) gatewayListener(p string, g *Gateway) {
	if t := g.TLS; t != nil {
		tp := p + ".tls"
		// The keys of a load balancer listener's tls, served the same way (lb.ListenerTLSConfig):
		// the default certificate is cert_file, else the first of certificates.
		if len(t.Certificates) == 0 || t.CertFile != "" || t.KeyFile != "" {
			if t.CertFile == "" {
				c.errf(tp+".cert_file", "name the PEM certificate (chain) the gateway presents", "required")
			}
			if t.KeyFile == "" {
				c.errf(tp+".key_file", "name the PEM private key of cert_file", "required")
			}
		}
		c.listenerTLSKeys(tp, t) // certificates and min_version (validate_lb.go)
		if t.RequireClientCert && t.ClientCAFile == "" {
			c.errf(tp+".client_ca_file", "name the CA that signs client certificates", "required when require_client_cert is true")
		}
		if len(t.ClientSubjects) > 0 && !t.RequireClientCert {
			c.errf(tp+".client_subjects", "set require_client_cert: true", "client_subjects needs require_client_cert")
		}
	}
	if g.MaxHeaderBytes < 1024 || g.MaxHeaderBytes > MaxMaxHeaderBytes {
		c.errf(p+".max_header_bytes", fmt.Sprintf("write a size in bytes from 1024 to %d (1 MiB), such as 65536", MaxMaxHeaderBytes),
			"max_header_bytes %d is out of range", g.MaxHeaderBytes)
	}
	for _, k := range []string{"read_header_timeout", "read_timeout", "write_timeout", "idle_timeout"} {
		var d Duration
		switch k {
		case "read_header_timeout":
			d = g.ReadHeaderTimeout
		case "read_timeout":
			d = g.ReadTimeout
		case "write_timeout":
			d = g.WriteTimeout
		case "idle_timeout":
			d = g.IdleTimeout
		}
		c.positive(join(p, k), d)
	}
	if c.set(p+".read_timeout") && c.set(p+".read_header_timeout") && g.ReadTimeout.Duration > 0 && g.ReadTimeout.Duration < g.ReadHeaderTimeout.Duration {
		c.errf(p+".read_timeout", "read_timeout covers the headers too: make it at least read_header_timeout", "read_timeout %s is shorter than read_header_timeout %s", g.ReadTimeout.Duration, g.ReadHeaderTimeout.Duration)
	}
	if c.set(p+".write_timeout") && g.WriteTimeout.Duration > 0 {
		if longest := longestIntegrationTimeout(g); g.WriteTimeout.Duration <= longest {
			c.errf(p+".write_timeout", fmt.Sprintf("make it longer than the longest integration timeout (%s), or lower that", longest),
				"write_timeout %s would cut a slow backend's answer before the gateway could send 504", g.WriteTimeout.Duration)
		}
	}
}

// sameHeaderName reports whether a and b name the same header as a backend sees it: case does not
// matter, and CGI-style servers read "_" as "-".
func sameHeaderName(a, b string) bool {
	return strings.EqualFold(strings.ReplaceAll(a, "_", "-"), strings.ReplaceAll(b, "_", "-"))
}

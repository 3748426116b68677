package config

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Defaults. A default fills a key only when the file leaves it out (or sets it to null); a value
// written in the file, even an empty or zero one, is kept and validated as written. The exception
// is fixed_response, whose empty content_type and body are filled as if left out.
const (
	// DefaultVersion is the only schema version this build reads.
	DefaultVersion = 1
	// DefaultIntegrationTimeout bounds a backend call, as in AWS API Gateway.
	DefaultIntegrationTimeout = 29 * time.Second

	// Health check defaults follow the AWS Application Load Balancer.
	DefaultHealthCheckPath        = "/"
	DefaultHealthCheckInterval    = 30 * time.Second
	DefaultHealthCheckTimeout     = 5 * time.Second
	DefaultHealthyThreshold       = 5
	DefaultUnhealthyThreshold     = 2
	DefaultHealthCheckMatcher     = "200-399"
	DefaultFixedResponseType      = "application/json"
	DefaultListenerResponseStatus = http.StatusNotFound
)

// applyDefaults fills what the file left out:
//
//   - version: 1.
//   - gateways[].cors.mode: enforce (disallowed origins are refused server-side).
//   - gateways[].cors.allow_methods: the methods of the gateway's routes, in file order.
//   - gateways[].integration_timeout: 29s; routes[].integration.timeout: the gateway's.
//   - load_balancers[].listeners[].default_action: a fixed 404 response.
//   - fixed_response.content_type: application/json; fixed_response.body, for a JSON response:
//     {"message":"<status text>"}.
//   - target_groups[].algorithm: round_robin.
//   - target_groups[].health_check: path /, interval 30s, timeout 5s, healthy_threshold 5,
//     unhealthy_threshold 2, matcher 200-399.
//   - web_acls[].default_action: allow.
//   - web.gateway_url: http:// and the first gateway's listen address (localhost when that
//     address is a wildcard such as :8080).
//
// It runs before validation, so a bad default combination (a health check interval shorter than
// the default timeout) is reported like a bad value.
func applyDefaults(c *Config, d *decoder) {
	set := func(path string) bool { _, ok := d.pos[path]; return ok }
	if !set("version") {
		c.Version = DefaultVersion
	}
	for i := range c.Gateways {
		g := &c.Gateways[i]
		p := "gateways[" + strconv.Itoa(i) + "]"
		if !set(p + ".cors.mode") {
			g.CORS.Mode = CORSEnforce
		}
		if !set(p + ".integration_timeout") {
			g.IntegrationTimeout = Duration{DefaultIntegrationTimeout}
		}
		var methods []string
		seen := map[string]bool{}
		for j := range g.Routes {
			r := &g.Routes[j]
			if !set(p + ".routes[" + strconv.Itoa(j) + "].integration.timeout") {
				r.Integration.Timeout = g.IntegrationTimeout
			}
			for _, m := range r.Methods {
				if !seen[m] {
					seen[m] = true
					methods = append(methods, m)
				}
			}
		}
		if !set(p + ".cors.allow_methods") {
			g.CORS.AllowMethods = methods
		}
		applyGatewayDefaults(g, p, set) // validate_gateway.go
	}
	for i := range c.LoadBalancers {
		lb := &c.LoadBalancers[i]
		applyLBDefaults(lb, "load_balancers["+strconv.Itoa(i)+"]", set) // types_lb.go
		for j := range lb.Listeners {
			l := &lb.Listeners[j]
			for k := range l.Rules {
				defaultAction(&l.Rules[k].Action)
			}
			if !set("load_balancers[" + strconv.Itoa(i) + "].listeners[" + strconv.Itoa(j) + "].default_action") {
				l.DefaultAction = Action{FixedResponse: &FixedResponse{Status: DefaultListenerResponseStatus}}
			}
			defaultAction(&l.DefaultAction)
		}
		for j := range lb.TargetGroups {
			tg := &lb.TargetGroups[j]
			p := "load_balancers[" + strconv.Itoa(i) + "].target_groups[" + strconv.Itoa(j) + "]"
			if !set(p + ".algorithm") {
				tg.Algorithm = RoundRobin
			}
			h := &tg.HealthCheck
			p += ".health_check"
			if !set(p + ".path") {
				h.Path = DefaultHealthCheckPath
			}
			if !set(p + ".interval") {
				h.Interval = Duration{DefaultHealthCheckInterval}
			}
			if !set(p + ".timeout") {
				h.Timeout = Duration{DefaultHealthCheckTimeout}
			}
			if !set(p + ".healthy_threshold") {
				h.HealthyThreshold = DefaultHealthyThreshold
			}
			if !set(p + ".unhealthy_threshold") {
				h.UnhealthyThreshold = DefaultUnhealthyThreshold
			}
			if !set(p + ".matcher") {
				h.Matcher = DefaultHealthCheckMatcher
			}
		}
	}
	for i := range c.WebACLs {
		if !set("web_acls[" + strconv.Itoa(i) + "].default_action") {
			c.WebACLs[i].DefaultAction = ActionAllow
		}
	}
	if c.Web != nil && !set("web.gateway_url") && len(c.Gateways) > 0 {
		if u, ok := gatewayURL(c.Gateways[0].Listen); ok {
			if c.Gateways[0].TLS != nil {
				u = "https://" + u[len("http://"):] // the gateway serves HTTPS only
			}
			c.Web.GatewayURL = u
		}
	}
}

// defaultAction fills a fixed response's content type and, for JSON, its body. An empty body
// written in the file is kept only for non-JSON types: an empty JSON body is not valid JSON.
func defaultAction(a *Action) {
	f := a.FixedResponse
	if f == nil {
		return
	}
	if f.ContentType == "" {
		f.ContentType = DefaultFixedResponseType
	}
	if f.Body == "" && f.ContentType == DefaultFixedResponseType {
		text := http.StatusText(f.Status)
		if text == "" {
			text = "HTTP " + strconv.Itoa(f.Status)
		}
		b, _ := json.Marshal(map[string]string{"message": text})
		f.Body = string(b)
	}
}

// gatewayURL is the URL a browser on this machine uses to reach a listen address.
func gatewayURL(listen string) (string, bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", false
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port), true
}

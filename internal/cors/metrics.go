package cors

import (
	"net/http"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
)

// SetMetrics makes the policy count its decisions in c (rampart_cors_decisions_total). Call it
// before the policy serves; nil c counts nothing.
func (p *Policy) SetMetrics(c *observe.CORSCounters) { p.metrics = c }

// countRefusal counts a request enforce mode refuses, by what the mode did with it: a preflight is
// preflight_refused whatever the mode; an actual request is refused (enforce), shadow_refused
// (shadow, passed on) or passed (standard, passed on without CORS headers).
func (p *Policy) countRefusal(r *http.Request) {
	if p.metrics == nil {
		return
	}
	switch {
	case r.Method == http.MethodOptions && len(r.Header["Access-Control-Request-Method"]) > 0:
		p.metrics.Count(observe.CORSPreflightRefused)
	case p.mode == config.CORSEnforce:
		p.metrics.Count(observe.CORSRefused)
	case p.mode == config.CORSShadow:
		p.metrics.Count(observe.CORSShadowRefused)
	default:
		p.metrics.Count(observe.CORSPassed)
	}
}

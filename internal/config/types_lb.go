package config

import (
	"strconv"
	"time"
)

// Load balancer schema beyond the foundation: redirects, weighted forwards, stickiness, retries,
// outlier detection and the load balancer's attributes. docs/load-balancer.md documents each key.

// Desync mitigation modes, as in AWS ALB.
const (
	DesyncMonitor   = "monitor"
	DesyncDefensive = "defensive"
	DesyncStrictest = "strictest"
)

// Target group protocols: what the load balancer speaks to its targets.
const (
	ProtocolHTTP  = "HTTP"
	ProtocolHTTPS = "HTTPS"
)

// X-Forwarded-For processing modes, as in AWS ALB.
const (
	XFFAppend   = "append"
	XFFPreserve = "preserve"
	XFFRemove   = "remove"
)

// Stickiness types.
const (
	StickinessLBCookie  = "lb_cookie"
	StickinessAppCookie = "app_cookie"
)

// TLS versions a listener's min_version accepts.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// DefaultTLSMinVersion is a listener's min_version when the file leaves it out.
const DefaultTLSMinVersion = TLSVersion12

// TLSCertificate is one certificate of a listener's tls.certificates: a PEM certificate (chain)
// and its key. The listener presents the first certificate whose names match the name the client
// asks for by SNI, and its default certificate (cert_file, else the first of the list) when none
// does.
type TLSCertificate struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// TLSCertificatePairs returns every certificate of t, the default one first.
func (t *ListenerTLS) TLSCertificatePairs() []TLSCertificate {
	var out []TLSCertificate
	if t.CertFile != "" || t.KeyFile != "" {
		out = append(out, TLSCertificate{CertFile: t.CertFile, KeyFile: t.KeyFile})
	}
	return append(out, t.Certificates...)
}

// Load balancer defaults.
const (
	DefaultLBIdleTimeout        = 60 * time.Second
	DefaultDeregistrationDelay  = 300 * time.Second
	DefaultTargetRequestTimeout = 60 * time.Second
	DefaultStickinessDuration   = 24 * time.Hour
	DefaultGroupStickiness      = time.Hour
	DefaultRedirectStatus       = 301
	DefaultRetryAttempts        = 2
	DefaultConsecutive5xx       = 5
	DefaultEjectionTime         = 30 * time.Second
	DefaultMaxEjectionPercent   = 50
	DefaultTargetGroupWeight    = 1
	MaxTargetGroupWeight        = 999
	DefaultDesyncMitigationMode = DesyncDefensive
	DefaultXForwardedFor        = XFFAppend
	DefaultDNSRefresh           = 60 * time.Second
)

// DefaultRetryMethods are the idempotent methods retried when retry.methods is left out.
func DefaultRetryMethods() []string {
	return []string{"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
}

// WeightedTargetGroup is one group of a weighted forward. Weight 0 sends it nothing.
type WeightedTargetGroup struct {
	Name   string `yaml:"name"`
	Weight int    `yaml:"weight"`
}

// GroupStickiness keeps a client on the target group a weighted forward first chose for it, for
// Duration, through a cookie.
type GroupStickiness struct {
	Duration Duration `yaml:"duration"`
}

// Redirect answers with a redirect built from the request. Each part may use the placeholders
// #{protocol}, #{host}, #{port}, #{path} (without its leading /) and #{query}.
type Redirect struct {
	Protocol string `yaml:"protocol"` // HTTP, HTTPS or #{protocol} (default)
	Host     string `yaml:"host"`     // default #{host}
	Port     string `yaml:"port"`     // default #{port}
	Path     string `yaml:"path"`     // default /#{path}
	Query    string `yaml:"query"`    // default #{query}
	Status   int    `yaml:"status"`   // 301 (default) or 302
	// StatusCode is another name for Status (AWS calls it StatusCode); set one of them.
	StatusCode int `yaml:"status_code"`
}

// Stickiness binds a client to a target: lb_cookie with a cookie the load balancer issues, or
// app_cookie following a cookie the application sets.
type Stickiness struct {
	Type       string   `yaml:"type"`
	Duration   Duration `yaml:"duration"`
	CookieName string   `yaml:"cookie_name"`
}

// Retry retries a request on another target after a connection failure, or a response status in
// OnStatus, up to Attempts tries in all, for the listed methods only.
type Retry struct {
	Attempts int      `yaml:"attempts"`
	OnStatus []int    `yaml:"on_status"`
	Methods  []string `yaml:"methods"`
}

// OutlierDetection ejects a target after Consecutive5xx consecutive 5xx responses or connection
// failures, for EjectionTime, never ejecting more than MaxEjectionPercent of the group (but
// always allowing one).
type OutlierDetection struct {
	Consecutive5xx     int      `yaml:"consecutive_5xx"`
	EjectionTime       Duration `yaml:"ejection_time"`
	MaxEjectionPercent int      `yaml:"max_ejection_percent"`
}

// applyLBDefaults fills the load balancer keys added by types_lb.go. set reports whether the file
// sets a path.
func applyLBDefaults(lb *LoadBalancer, p string, set func(string) bool) {
	if !set(p + ".idle_timeout") {
		lb.IdleTimeout = Duration{DefaultLBIdleTimeout}
	}
	if !set(p + ".desync_mitigation_mode") {
		lb.DesyncMitigationMode = DefaultDesyncMitigationMode
	}
	if !set(p + ".x_forwarded_for") {
		lb.XForwardedFor = DefaultXForwardedFor
	}
	for j := range lb.Listeners {
		l := &lb.Listeners[j]
		lp := p + ".listeners[" + strconv.Itoa(j) + "]"
		if l.TLS != nil && !set(lp+".tls.min_version") {
			l.TLS.MinVersion = DefaultTLSMinVersion
		}
		for k := range l.Rules {
			actionDefaults(&l.Rules[k].Action, lp+".rules["+strconv.Itoa(k)+"].action", set)
		}
		actionDefaults(&l.DefaultAction, lp+".default_action", set)
	}
	for j := range lb.TargetGroups {
		tg := &lb.TargetGroups[j]
		tp := p + ".target_groups[" + strconv.Itoa(j) + "]"
		if !set(tp + ".deregistration_delay") {
			tg.DeregistrationDelay = Duration{DefaultDeregistrationDelay}
		}
		if !set(tp + ".request_timeout") {
			tg.RequestTimeout = Duration{DefaultTargetRequestTimeout}
		}
		if !set(tp + ".protocol") {
			tg.Protocol = ProtocolHTTP
		}
		if !set(tp + ".dns_refresh") {
			tg.DNSRefresh = Duration{DefaultDNSRefresh}
		}
		if s := tg.Stickiness; s != nil && !set(tp+".stickiness.duration") {
			s.Duration = Duration{DefaultStickinessDuration}
		}
		if r := tg.Retry; r != nil {
			if !set(tp + ".retry.attempts") {
				r.Attempts = DefaultRetryAttempts
			}
			if !set(tp + ".retry.methods") {
				r.Methods = DefaultRetryMethods()
			}
		}
		if o := tg.OutlierDetection; o != nil {
			if !set(tp + ".outlier_detection.consecutive_5xx") {
				o.Consecutive5xx = DefaultConsecutive5xx
			}
			if !set(tp + ".outlier_detection.ejection_time") {
				o.EjectionTime = Duration{DefaultEjectionTime}
			}
			if !set(tp + ".outlier_detection.max_ejection_percent") {
				o.MaxEjectionPercent = DefaultMaxEjectionPercent
			}
		}
	}
}

func actionDefaults(a *Action, p string, set func(string) bool) {
	if f := a.Forward; f != nil {
		for i := range f.TargetGroups {
			if !set(p + ".forward.target_groups[" + strconv.Itoa(i) + "].weight") {
				f.TargetGroups[i].Weight = DefaultTargetGroupWeight
			}
		}
		if f.Stickiness != nil && !set(p+".forward.stickiness.duration") {
			f.Stickiness.Duration = Duration{DefaultGroupStickiness}
		}
	}
	if r := a.Redirect; r != nil {
		if !set(p + ".redirect.protocol") {
			r.Protocol = "#{protocol}"
		}
		if !set(p + ".redirect.host") {
			r.Host = "#{host}"
		}
		if !set(p + ".redirect.port") {
			r.Port = "#{port}"
		}
		if !set(p + ".redirect.path") {
			r.Path = "/#{path}"
		}
		if !set(p + ".redirect.query") {
			r.Query = "#{query}"
		}
		if !set(p + ".redirect.status") {
			r.Status = DefaultRedirectStatus
			if set(p + ".redirect.status_code") {
				r.Status = r.StatusCode
			}
		}
	}
}

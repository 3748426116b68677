// Package config holds Rampart's configuration schema (the contract in DESIGN.md), its defaults, and
// the loader that validates a whole file at once and reports every error with file:line:column.
//
// The types here are plain data. Components (gateway, lb, waf, demoapp, …) are built from them after
// Load has validated and defaulted the whole tree, so a component may assume that every reference
// (target group, web ACL, secret) exists and every enum holds a known value.
package config

import "time"

// Config is one topology file.
type Config struct {
	Version       int                   `yaml:"version"`
	Secrets       map[string]SecretSpec `yaml:"secrets"`
	Gateways      []Gateway             `yaml:"gateways"`
	LoadBalancers []LoadBalancer        `yaml:"load_balancers"`
	WebACLs       []WebACL              `yaml:"web_acls"`
	Apps          []App                 `yaml:"apps"`
	Web           *Web                  `yaml:"web"`
	Admin         *Admin                `yaml:"admin"`

	// File is the name the config was loaded from ("<embedded default>" for the built-in one). It is
	// used in messages only.
	File string `yaml:"-"`
}

// SecretSpec names where a keyring lives. Relative paths resolve against the working directory.
type SecretSpec struct {
	File string `yaml:"file"`
}

// Gateway is one API gateway: a listener, a CORS policy, header mapping and routes.
type Gateway struct {
	Name   string `yaml:"name"`
	Listen string `yaml:"listen"`
	CORS   CORS   `yaml:"cors"`
	// RequestHeaders is parameter mapping with overwrite semantics, in file order: every inbound
	// copy of a mapped header is removed before the gateway sets its own value.
	RequestHeaders []HeaderMapping `yaml:"request_headers"`
	Routes         []Route         `yaml:"routes"`
	// IntegrationTimeout bounds each backend call (default 29s, as in AWS API Gateway); a route's
	// integration.timeout overrides it.
	IntegrationTimeout Duration `yaml:"integration_timeout"`
}

// HeaderMapping is one `Name: template` entry of request_headers. YAML gives it as a mapping; the
// loader keeps file order so that the result does not depend on Go's map iteration.
type HeaderMapping struct {
	Name  string
	Value Template
}

// CORS modes.
const (
	CORSEnforce  = "enforce"
	CORSStandard = "standard"
	CORSShadow   = "shadow"
)

// CORS is a gateway's cross-origin policy. In enforce mode (the default) a disallowed origin is
// refused server-side, unlike AWS API Gateway where only browsers enforce CORS.
type CORS struct {
	Mode             string   `yaml:"mode"`
	AllowOrigins     []string `yaml:"allow_origins"`
	AllowMethods     []string `yaml:"allow_methods"`
	AllowHeaders     []string `yaml:"allow_headers"`
	ExposeHeaders    []string `yaml:"expose_headers"`
	AllowCredentials bool     `yaml:"allow_credentials"`
	MaxAge           Duration `yaml:"max_age"`
	// RequireOrigin refuses requests without an Origin header (curl, servers). CORS is not
	// authentication, so the default is false.
	RequireOrigin bool `yaml:"require_origin"`
}

// Route is one gateway route: a path template such as /items/{id} and its methods.
type Route struct {
	Path        string      `yaml:"path"`
	Methods     []string    `yaml:"methods"`
	Integration Integration `yaml:"integration"`
}

// Integration is the backend a route proxies to.
type Integration struct {
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"`
}

// LoadBalancer is an application load balancer: listeners with rules, and target groups.
type LoadBalancer struct {
	Name string `yaml:"name"`
	// Egress is the source address used for connections to targets, so that the private tier's
	// allow_from can name the load balancer alone.
	Egress       string        `yaml:"egress"`
	Listeners    []Listener    `yaml:"listeners"`
	TargetGroups []TargetGroup `yaml:"target_groups"`
}

// Listener is one load balancer listener. Its web ACL is evaluated before any rule.
type Listener struct {
	Listen        string `yaml:"listen"`
	WebACL        string `yaml:"web_acl"`
	Rules         []Rule `yaml:"rules"`
	DefaultAction Action `yaml:"default_action"`
}

// Rule is a prioritized listener rule; lower priority values are evaluated first.
type Rule struct {
	Priority   int        `yaml:"priority"`
	Conditions Conditions `yaml:"conditions"`
	Action     Action     `yaml:"action"`
}

// Conditions are ANDed; values within one condition are ORed. Patterns use * and ? wildcards.
type Conditions struct {
	Path []string `yaml:"path"`
	Host []string `yaml:"host"`
}

// Action is what a rule or default action does. Exactly one field is set.
type Action struct {
	Forward       *Forward       `yaml:"forward"`
	FixedResponse *FixedResponse `yaml:"fixed_response"`
}

// Forward sends the request to a target group.
type Forward struct {
	TargetGroup string `yaml:"target_group"`
}

// FixedResponse answers without contacting any target.
type FixedResponse struct {
	Status      int    `yaml:"status"`
	ContentType string `yaml:"content_type"`
	Body        string `yaml:"body"`
}

// Balancing algorithms.
const (
	RoundRobin = "round_robin"
)

// TargetGroup is a set of targets with an algorithm and a health check.
type TargetGroup struct {
	Name        string      `yaml:"name"`
	Algorithm   string      `yaml:"algorithm"`
	Targets     []string    `yaml:"targets"`
	HealthCheck HealthCheck `yaml:"health_check"`
}

// HealthCheck is an active HTTP health check. A target is healthy after HealthyThreshold
// consecutive successes and unhealthy after UnhealthyThreshold consecutive failures.
type HealthCheck struct {
	Path               string   `yaml:"path"`
	Interval           Duration `yaml:"interval"`
	Timeout            Duration `yaml:"timeout"`
	HealthyThreshold   int      `yaml:"healthy_threshold"`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold"`
	// Matcher lists accepted status codes and ranges, such as "200-399" (the default) or "200,302".
	Matcher string `yaml:"matcher"`
}

// WAF rule actions and default actions.
const (
	ActionAllow = "allow"
	ActionBlock = "block"
	ActionCount = "count"
)

// WebACL is an ordered set of WAF rules with a default action.
type WebACL struct {
	Name          string    `yaml:"name"`
	DefaultAction string    `yaml:"default_action"`
	Rules         []WAFRule `yaml:"rules"`
}

// WAFRule is one web ACL rule; lower priority values are evaluated first.
type WAFRule struct {
	Name      string    `yaml:"name"`
	Priority  int       `yaml:"priority"`
	Action    string    `yaml:"action"`
	Statement Statement `yaml:"statement"`
}

// Statement is a WAF match condition. Exactly one field is set.
type Statement struct {
	Not          *Statement             `yaml:"not"`
	And          []Statement            `yaml:"and"`
	Or           []Statement            `yaml:"or"`
	OriginVerify *OriginVerifyStatement `yaml:"origin_verify"`
	ByteMatch    *ByteMatchStatement    `yaml:"byte_match"`
}

// OriginVerifyStatement matches when the header holds a value of an active key of the keyring.
type OriginVerifyStatement struct {
	Header string `yaml:"header"`
	Secret string `yaml:"secret"`
}

// Byte match positional constraints, as in AWS WAF.
const (
	MatchExactly    = "EXACTLY"
	MatchStartsWith = "STARTS_WITH"
	MatchEndsWith   = "ENDS_WITH"
	MatchContains   = "CONTAINS"
)

// ByteMatchStatement compares one request header with a string.
type ByteMatchStatement struct {
	Header               string `yaml:"header"`
	PositionalConstraint string `yaml:"positional_constraint"`
	SearchString         string `yaml:"search_string"`
}

// App is an instance group of the bundled demo items service.
type App struct {
	Name   string   `yaml:"name"`
	Listen []string `yaml:"listen"`
	// AllowFrom is the private tier's security group: connections from other source addresses are
	// closed before any HTTP is read. Empty means any source.
	AllowFrom []string `yaml:"allow_from"`
	// Database is "sqlite:PATH" or a postgres:// URL.
	Database string `yaml:"database"`
}

// Web serves the demo page from an origin the default CORS policy allows.
type Web struct {
	Listen string `yaml:"listen"`
	// GatewayURL is the gateway the page calls; by default the first gateway's listen address.
	GatewayURL string `yaml:"gateway_url"`
}

// Admin is the admin listener (/healthz, and more as the admin API grows).
type Admin struct {
	Listen string `yaml:"listen"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "250ms", "10m").
type Duration struct {
	time.Duration
}

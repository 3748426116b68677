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
	// Tracing is OpenTelemetry tracing (types_observe.go); absent means none.
	Tracing *Tracing `yaml:"tracing"`

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
	// WebACL names a web ACL evaluated on every request before CORS and routing (optional).
	WebACL string `yaml:"web_acl"`
	// RequestHeaders is parameter mapping with overwrite semantics, in file order: every inbound
	// copy of a mapped header is removed before the gateway sets its own value.
	RequestHeaders []HeaderMapping `yaml:"request_headers"`
	Routes         []Route         `yaml:"routes"`
	// IntegrationTimeout bounds each backend call (default 29s, as in AWS API Gateway); a route's
	// integration.timeout overrides it.
	IntegrationTimeout Duration `yaml:"integration_timeout"`
	// Throttling, API keys, usage plans and authorizers: see types_gateway.go and docs/gateway.md.
	RateLimitStore string       `yaml:"rate_limit_store"`
	OnStoreError   string       `yaml:"on_store_error"`
	Throttle       []Throttle   `yaml:"throttle"`
	APIKeys        *APIKeys     `yaml:"api_keys"`
	UsagePlans     []UsagePlan  `yaml:"usage_plans"`
	Authorizers    []Authorizer `yaml:"authorizers"`
	// MaxBodyBytes caps a request body (default 10 MiB); a route's max_body_bytes overrides it.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Response header mapping, gateway responses and the listener (HTTPS, HTTP/2, header size
	// and timeouts): see types_gateway.go and docs/gateway.md.
	ResponseHeaders   *ResponseHeaders           `yaml:"response_headers"`
	GatewayResponses  map[string]GatewayResponse `yaml:"gateway_responses"`
	TLS               *ListenerTLS               `yaml:"tls"`
	MaxHeaderBytes    int                        `yaml:"max_header_bytes"`
	ReadHeaderTimeout Duration                   `yaml:"read_header_timeout"`
	ReadTimeout       Duration                   `yaml:"read_timeout"`
	WriteTimeout      Duration                   `yaml:"write_timeout"`
	IdleTimeout       Duration                   `yaml:"idle_timeout"`
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
	// Throttle, Authorizer, Scopes and APIKeyRequired: see types_gateway.go and docs/gateway.md.
	Throttle       []Throttle `yaml:"throttle"`
	Authorizer     string     `yaml:"authorizer"`
	Scopes         []string   `yaml:"scopes"`
	APIKeyRequired *bool      `yaml:"api_key_required"`
	// MaxBodyBytes overrides the gateway's max_body_bytes for this route (0: the gateway's).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RequestHeaders and ResponseHeaders add to the gateway's mappings (the route's entry wins
	// for a header both name); RequestValidation checks headers, query and body before the
	// integration. See types_gateway.go and docs/gateway.md.
	RequestHeaders    []HeaderMapping    `yaml:"request_headers"`
	ResponseHeaders   *ResponseHeaders   `yaml:"response_headers"`
	RequestValidation *RequestValidation `yaml:"request_validation"`
}

// Integration is the backend a route proxies to.
type Integration struct {
	URL     string   `yaml:"url"`
	Timeout Duration `yaml:"timeout"`
	// TLS configures an https:// integration: the CA that signs the backend's certificate and the
	// client certificate the gateway presents (mTLS to the load balancer).
	TLS *IntegrationTLS `yaml:"tls"`
	// Path rewrites the path sent to the backend from the route's parameters ("/items/{id}");
	// StripPrefix removes a leading part of the routed path instead. See docs/gateway.md.
	Path        string `yaml:"path"`
	StripPrefix string `yaml:"strip_prefix"`
}

// IntegrationTLS is the gateway's side of TLS to a backend. Files are PEM.
type IntegrationTLS struct {
	// CAFile verifies the backend's certificate instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate presented to the backend (set both).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// LoadBalancer is an application load balancer: listeners with rules, and target groups.
type LoadBalancer struct {
	Name string `yaml:"name"`
	// Egress is the source address used for connections to targets, so that the private tier's
	// allow_from can name the load balancer alone.
	Egress       string        `yaml:"egress"`
	Listeners    []Listener    `yaml:"listeners"`
	TargetGroups []TargetGroup `yaml:"target_groups"`
	// Attributes of the whole load balancer, as in AWS ALB (types_lb.go, docs/load-balancer.md).
	IdleTimeout             Duration `yaml:"idle_timeout"`
	DesyncMitigationMode    string   `yaml:"desync_mitigation_mode"`
	XForwardedFor           string   `yaml:"x_forwarded_for"`
	DropInvalidHeaderFields bool     `yaml:"drop_invalid_header_fields"`
}

// Listener is one load balancer listener. Its web ACL is evaluated before any rule.
type Listener struct {
	Listen        string `yaml:"listen"`
	WebACL        string `yaml:"web_acl"`
	Rules         []Rule `yaml:"rules"`
	DefaultAction Action `yaml:"default_action"`
	// TLS, when set, makes the listener HTTPS, and with client_ca_file verifies client
	// certificates (mTLS from the gateway).
	TLS *ListenerTLS `yaml:"tls"`
}

// ListenerTLS is a listener's certificate and client-certificate policy. Files are PEM.
type ListenerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates; with RequireClientCert a handshake without a
	// valid one fails, so nothing but holders of a certificate it signed can send a request.
	ClientCAFile      string `yaml:"client_ca_file"`
	RequireClientCert bool   `yaml:"require_client_cert"`
	// ClientSubjects, when set, admits only client certificates whose subject is listed, written
	// as "CN=rampart-gateway,O=Rampart" (RFC 2253 order, as `rampart certs init` prints it).
	ClientSubjects []string `yaml:"client_subjects"`
	// Certificates (more certificates, chosen by SNI) and MinVersion: see types_lb.go.
	Certificates []TLSCertificate `yaml:"certificates"`
	MinVersion   string           `yaml:"min_version"`
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
	// Method, Header, Query and SourceIP: see types_lb.go and docs/load-balancer.md.
	Method   []string            `yaml:"method"`
	Header   map[string][]string `yaml:"header"`
	Query    map[string]string   `yaml:"query"`
	SourceIP []string            `yaml:"source_ip"`
}

// Action is what a rule or default action does. Exactly one field is set.
type Action struct {
	Forward       *Forward       `yaml:"forward"`
	FixedResponse *FixedResponse `yaml:"fixed_response"`
	Redirect      *Redirect      `yaml:"redirect"`
}

// Forward sends the request to a target group.
type Forward struct {
	TargetGroup string `yaml:"target_group"`
	// TargetGroups splits traffic by weight over several groups (instead of target_group), with
	// optional group stickiness.
	TargetGroups []WeightedTargetGroup `yaml:"target_groups"`
	Stickiness   *GroupStickiness      `yaml:"stickiness"`
}

// FixedResponse answers without contacting any target.
type FixedResponse struct {
	Status      int    `yaml:"status"`
	ContentType string `yaml:"content_type"`
	Body        string `yaml:"body"`
}

// Balancing algorithms.
const (
	RoundRobin               = "round_robin"
	LeastOutstandingRequests = "least_outstanding_requests"
	WeightedRandom           = "weighted_random"
)

// TargetGroup is a set of targets with an algorithm and a health check.
type TargetGroup struct {
	Name        string      `yaml:"name"`
	Algorithm   string      `yaml:"algorithm"`
	Targets     []string    `yaml:"targets"`
	HealthCheck HealthCheck `yaml:"health_check"`
	// The keys below are described in types_lb.go and docs/load-balancer.md.
	Weights             map[string]int    `yaml:"weights"`
	SlowStart           Duration          `yaml:"slow_start"`
	Stickiness          *Stickiness       `yaml:"stickiness"`
	Retry               *Retry            `yaml:"retry"`
	OutlierDetection    *OutlierDetection `yaml:"outlier_detection"`
	DeregistrationDelay Duration          `yaml:"deregistration_delay"`
	RequestTimeout      Duration          `yaml:"request_timeout"`
	Protocol            string            `yaml:"protocol"`    // HTTP (default) or HTTPS to targets
	CAFile              string            `yaml:"ca_file"`     // verifies HTTPS targets
	ServerName          string            `yaml:"server_name"` // SNI and name checked for HTTPS
	DNSRefresh          Duration          `yaml:"dns_refresh"` // re-resolution of hostname targets
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
	// Port is the port checks are sent to; 0 (the default) is the target's own port.
	Port int `yaml:"port"`
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
	// DefaultCustomResponse names the custom response of a default block (optional).
	DefaultCustomResponse string `yaml:"default_custom_response"`
	// BodyInspectionLimit is how many body bytes statements inspect (0: DefaultBodyInspectionLimit).
	// A longer body is never buffered whole; OversizeHandling says what body statements do then.
	BodyInspectionLimit int    `yaml:"body_inspection_limit"`
	OversizeHandling    string `yaml:"oversize_handling"`
	// CustomResponses are the named responses that block rules may send instead of 403 JSON.
	CustomResponses map[string]CustomResponse `yaml:"custom_responses"`
	// RateLimitStore and OnStoreError hold rate_based counters, as the gateway's keys of the same
	// names do: memory (the default) or a redis:// URL shared by every replica.
	RateLimitStore string `yaml:"rate_limit_store"`
	OnStoreError   string `yaml:"on_store_error"`
}

// WAFRule is one web ACL rule; lower priority values are evaluated first.
type WAFRule struct {
	Name      string    `yaml:"name"`
	Priority  int       `yaml:"priority"`
	Action    string    `yaml:"action"`
	Statement Statement `yaml:"statement"`
	// Labels are added to the request when the rule matches; later rules match them with
	// label_match.
	Labels []string `yaml:"labels"`
	// CustomResponse names one of the ACL's custom_responses, for a block rule.
	CustomResponse string `yaml:"custom_response"`
}

// Statement is a WAF match condition. Exactly one field is set.
type Statement struct {
	Not          *Statement             `yaml:"not"`
	And          []Statement            `yaml:"and"`
	Or           []Statement            `yaml:"or"`
	OriginVerify *OriginVerifyStatement `yaml:"origin_verify"`
	ByteMatch    *ByteMatchStatement    `yaml:"byte_match"`

	RegexMatch       *RegexMatchStatement       `yaml:"regex_match"`
	IPSet            *IPSetStatement            `yaml:"ip_set"`
	SizeConstraint   *SizeConstraintStatement   `yaml:"size_constraint"`
	SQLiMatch        *InjectionMatchStatement   `yaml:"sqli_match"`
	XSSMatch         *InjectionMatchStatement   `yaml:"xss_match"`
	LabelMatch       *LabelMatchStatement       `yaml:"label_match"`
	ManagedRuleGroup *ManagedRuleGroupStatement `yaml:"managed_rule_group"`
	MTLS             *MTLSStatement             `yaml:"mtls"` // types_originverify.go
	RateBased        *RateBasedStatement        `yaml:"rate_based"`
}

// Origin-verify modes (see docs/origin-verify.md).
const (
	OriginVerifyStatic = "static" // the header holds a key of the keyring
	OriginVerifySigned = "signed" // the header holds a short-lived token signed with a key
)

// OriginVerifyStatement matches when the header holds a value of an active key of the keyring:
// the key itself (mode static, the default) or a signed token for this request (mode signed).
type OriginVerifyStatement struct {
	Header string `yaml:"header"`
	Secret string `yaml:"secret"`
	Mode   string `yaml:"mode"`
	// MaxSkew is how far a signed token's time may be from the clock (default 30s).
	MaxSkew Duration `yaml:"max_skew"`
	// ReplayStore and OnStoreError: where signed mode remembers nonces (types_originverify.go).
	ReplayStore  string `yaml:"replay_store"`
	OnStoreError string `yaml:"on_store_error"`
}

// Byte match positional constraints, as in AWS WAF.
const (
	MatchExactly    = "EXACTLY"
	MatchStartsWith = "STARTS_WITH"
	MatchEndsWith   = "ENDS_WITH"
	MatchContains   = "CONTAINS"
	// MatchContainsWord: the string appears delimited by characters other than letters, digits
	// and underscore (or the start or end of the value).
	MatchContainsWord = "CONTAINS_WORD"
)

// ByteMatchStatement compares a part of the request with a string. Header is the original
// shorthand for field_to_match: {single_header: NAME}; set one of the two.
type ByteMatchStatement struct {
	Header               string        `yaml:"header"`
	FieldToMatch         *FieldToMatch `yaml:"field_to_match"`
	PositionalConstraint string        `yaml:"positional_constraint"`
	SearchString         string        `yaml:"search_string"`
	TextTransformations  []string      `yaml:"text_transformations"`
}

// WAF defaults and enums (see docs/waf.md).
const (
	DefaultBodyInspectionLimit = 16 * 1024
	OversizeContinue           = "continue"
	OversizeMatch              = "match"
	OversizeNoMatch            = "no_match"
	ManagedGroupOWASPCRS       = "owasp-crs"
	CRSModeBlock               = "block"
	CRSModeDetect              = "detect"
)

// Whole selects a part of the request that has no parameters, such as uri_path: {}.
type Whole struct{}

// MatchScope selects the keys, the values or both (ALL, the default) of a multi-valued part.
type MatchScope struct {
	MatchScope string `yaml:"match_scope"`
}

// FieldToMatch is the part of the request a statement inspects. Exactly one field is set.
type FieldToMatch struct {
	SingleHeader        string      `yaml:"single_header"`
	AllHeaders          *MatchScope `yaml:"all_headers"`
	Cookie              string      `yaml:"cookie"`
	AllCookies          *MatchScope `yaml:"all_cookies"`
	URIPath             *Whole      `yaml:"uri_path"`
	QueryString         *Whole      `yaml:"query_string"`
	SingleQueryArgument string      `yaml:"single_query_argument"`
	AllQueryArguments   *MatchScope `yaml:"all_query_arguments"`
	Method              *Whole      `yaml:"method"`
	Body                *Whole      `yaml:"body"`
	JSONBody            *MatchScope `yaml:"json_body"`
	FormField           string      `yaml:"form_field"`
}

// RegexMatchStatement matches a part of the request against an RE2 regular expression.
type RegexMatchStatement struct {
	FieldToMatch        FieldToMatch `yaml:"field_to_match"`
	Regex               string       `yaml:"regex"`
	TextTransformations []string     `yaml:"text_transformations"`
}

// IPSetStatement matches the client address against CIDRs: the connection's source address, or
// an address taken from a forwarded-IP header.
type IPSetStatement struct {
	Addresses   []string     `yaml:"addresses"`
	ForwardedIP *ForwardedIP `yaml:"forwarded_ip"`
}

// ForwardedIP reads the client address from a header such as X-Forwarded-For.
type ForwardedIP struct {
	Header string `yaml:"header"`
	// Position is FIRST (default), LAST or ANY.
	Position string `yaml:"position"`
	// FallbackBehavior is MATCH or NO_MATCH (default): what an absent or invalid header does.
	FallbackBehavior string `yaml:"fallback_behavior"`
}

// SizeConstraintStatement compares the length in bytes of a part of the request with Size.
type SizeConstraintStatement struct {
	FieldToMatch        FieldToMatch `yaml:"field_to_match"`
	ComparisonOperator  string       `yaml:"comparison_operator"` // EQ NE LE LT GE GT
	Size                int          `yaml:"size"`
	TextTransformations []string     `yaml:"text_transformations"`
}

// InjectionMatchStatement is sqli_match or xss_match: libinjection detection on a part of the
// request.
type InjectionMatchStatement struct {
	FieldToMatch        FieldToMatch `yaml:"field_to_match"`
	TextTransformations []string     `yaml:"text_transformations"`
}

// LabelMatchStatement matches a label added by an earlier rule (scope LABEL, the default) or any
// label of a namespace (scope NAMESPACE, key ending in ':').
type LabelMatchStatement struct {
	Scope string `yaml:"scope"`
	Key   string `yaml:"key"`
}

// ManagedRuleGroupStatement runs a managed rule group; this build has owasp-crs, the OWASP Core
// Rule Set through Coraza. In block mode it matches when the inbound anomaly score reaches the
// threshold; in detect mode it only logs.
type ManagedRuleGroupStatement struct {
	Name                    string        `yaml:"name"`
	ParanoiaLevel           int           `yaml:"paranoia_level"`            // 1-4, default 1
	InboundAnomalyThreshold int           `yaml:"inbound_anomaly_threshold"` // default 5
	Mode                    string        `yaml:"mode"`                      // block (default) | detect
	Exclusions              CRSExclusions `yaml:"exclusions"`
}

// CRSExclusions switch off CRS rules by id, by tag, or for one field only.
type CRSExclusions struct {
	RuleIDs []int            `yaml:"rule_ids"`
	Tags    []string         `yaml:"tags"`
	Fields  []FieldExclusion `yaml:"fields"`
}

// FieldExclusion stops one rule from inspecting one field, written as a ModSecurity variable
// such as ARGS:password or REQUEST_COOKIES:session.
type FieldExclusion struct {
	RuleID int    `yaml:"rule_id"`
	Field  string `yaml:"field"`
}

// CustomResponse is a response a block rule sends instead of 403 JSON.
type CustomResponse struct {
	Status      int               `yaml:"status"`
	ContentType string            `yaml:"content_type"`
	Headers     map[string]string `yaml:"headers"`
	Body        string            `yaml:"body"`
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
	// Token, when set, is the bearer token every admin route but /healthz and /readyz requires
	// (validate_admin.go, docs/admin-api.md). Required when Listen is not a loopback address.
	Token string `yaml:"token"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "250ms", "10m").
type Duration struct {
	time.Duration
}

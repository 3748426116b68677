package config

// Rate-based statement enums and defaults (web_acls[].rules[].statement.rate_based).
const (
	RateKeyIP          = "IP"           // the connection's source address
	RateKeyForwardedIP = "FORWARDED_IP" // an address from a header such as X-Forwarded-For
	RateKeyHeader      = "HEADER"       // the value of one request header
	RateKeyConstant    = "CONSTANT"     // one counter for every request in scope

	DefaultRateWindowSec = 300
)

// RateWindows are the evaluation windows a rate_based statement accepts, in seconds (AWS WAF's).
func RateWindows() []int { return []int{60, 120, 300, 600} }

// RateBasedStatement matches the requests of a client (a source IP, a forwarded IP, a header
// value, or everyone) beyond Limit per evaluation window. Only the requests that match
// ScopeDownStatement (every request when it is absent) are counted and limited.
type RateBasedStatement struct {
	Limit               int    `yaml:"limit"`
	EvaluationWindowSec int    `yaml:"evaluation_window_sec"` // 60, 120, 300 (default) or 600
	AggregateKeyType    string `yaml:"aggregate_key_type"`    // IP (default), FORWARDED_IP, HEADER, CONSTANT
	// ForwardedIP is the header and position of FORWARDED_IP (position FIRST or LAST).
	ForwardedIP *ForwardedIP `yaml:"forwarded_ip"`
	// Header is the header whose value is the key of HEADER.
	Header             string     `yaml:"header"`
	ScopeDownStatement *Statement `yaml:"scope_down_statement"`
}

// Children returns the statements nested directly in s (not, and, or, and a rate-based rule's
// scope-down statement), so that code walking statement trees cannot forget a kind.
func (s *Statement) Children() []*Statement {
	var out []*Statement
	if s.Not != nil {
		out = append(out, s.Not)
	}
	for i := range s.And {
		out = append(out, &s.And[i])
	}
	for i := range s.Or {
		out = append(out, &s.Or[i])
	}
	if s.RateBased != nil && s.RateBased.ScopeDownStatement != nil {
		out = append(out, s.RateBased.ScopeDownStatement)
	}
	return out
}

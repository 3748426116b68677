// Package waf implements web ACLs: prioritized rules whose statements match requests, with the
// actions allow, block and count, and a default action.
//
// The statement that matters most is origin_verify: the load balancer's "gateway-only" ACL blocks
// every request that does not carry the origin-verify secret the gateway injects, which closes the
// path around the gateway. Evaluation fails closed: if anything goes wrong the request is blocked.
//
// WAF log lines name the ACL, rule, action, method, path, source IP and request id; they never
// contain a header's value, so the secret cannot leak through them.
package waf

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
	"github.com/rampart-edge/rampart/internal/proxy"
)

// Decision is the outcome of evaluating a web ACL against one request.
type Decision struct {
	// Action is config.ActionAllow or config.ActionBlock; count never terminates evaluation.
	Action string
	// Rule is the name of the rule that decided, or "" when the default action applied.
	Rule string
	// Counted names the count rules that matched before the decision, in evaluation order.
	Counted []string
}

// defaultRuleLabel stands for the default action in log lines.
const defaultRuleLabel = "(default action)"

// WebACL is a compiled, immutable web ACL, safe for concurrent use.
type WebACL struct {
	name          string
	defaultAction string
	rules         []rule
	secretHeaders []string
	logger        *slog.Logger
}

type rule struct {
	name   string
	action string
	match  matcher
}

// New compiles cfg. keyrings maps secret names to keyrings; every origin_verify statement must
// name one of them. A nil logger discards WAF logs. Errors do not repeat the ACL's name: the
// caller adds it.
func New(cfg config.WebACL, keyrings map[string]*originverify.Keyring, logger *slog.Logger) (*WebACL, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !isTerminal(cfg.DefaultAction) {
		return nil, fmt.Errorf("default_action %q: want allow or block", cfg.DefaultAction)
	}
	a := &WebACL{name: cfg.Name, defaultAction: cfg.DefaultAction, logger: logger}

	// Stable: rules with equal priorities keep their file order.
	ordered := slices.Clone(cfg.Rules)
	slices.SortStableFunc(ordered, func(x, y config.WAFRule) int { return cmp.Compare(x.Priority, y.Priority) })

	c := &compiler{keyrings: keyrings}
	for _, r := range ordered {
		if r.Action != config.ActionCount && !isTerminal(r.Action) {
			return nil, fmt.Errorf("rule %q: action %q: want allow, block or count", r.Name, r.Action)
		}
		m, err := c.compile(r.Statement, "statement")
		if err != nil {
			return nil, fmt.Errorf("rule %q: %w", r.Name, err)
		}
		a.rules = append(a.rules, rule{name: r.Name, action: r.Action, match: m})
	}
	a.secretHeaders = c.secretHeaders
	return a, nil
}

func isTerminal(action string) bool {
	return action == config.ActionAllow || action == config.ActionBlock
}

// Name is the ACL's name in the config.
func (a *WebACL) Name() string { return a.name }

// SecretHeaders returns the canonical names of the headers that origin_verify statements read.
// A proxy behind the ACL removes them so that the secret never reaches an app.
func (a *WebACL) SecretHeaders() []string { return slices.Clone(a.secretHeaders) }

// Evaluate runs the rules in priority order and returns the decision. Count rules are logged and
// evaluation continues; the first matching allow or block rule decides; otherwise the default
// action does. Every block and count is logged.
func (a *WebACL) Evaluate(r *http.Request) (d Decision) {
	defer func() {
		// Fail closed: a bug in a matcher must not let a request through. The panic value is
		// not logged, as it could hold request data.
		if recover() != nil {
			a.logger.Error("web ACL evaluation failed; blocking the request", "acl", a.name, "method", r.Method, "path", r.URL.Path)
			d = Decision{Action: config.ActionBlock, Rule: d.Rule, Counted: d.Counted}
		}
	}()
	for _, rl := range a.rules {
		if !rl.match(r) {
			continue
		}
		if rl.action == config.ActionCount {
			d.Counted = append(d.Counted, rl.name)
			a.log(r, rl.name, rl.action)
			continue
		}
		d.Action, d.Rule = rl.action, rl.name
		if d.Action == config.ActionBlock {
			a.log(r, rl.name, d.Action)
		}
		return d
	}
	d.Action = a.defaultAction
	if d.Action == config.ActionBlock {
		a.log(r, defaultRuleLabel, d.Action)
	}
	return d
}

// log writes one WAF log line. It deliberately takes no header values except the request id.
func (a *WebACL) log(r *http.Request, ruleName, action string) {
	a.logger.LogAttrs(r.Context(), slog.LevelInfo, "waf",
		slog.String("acl", a.name),
		slog.String("rule", ruleName),
		slog.String("action", action),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("source_ip", sourceIP(r)),
		slog.String("request_id", r.Header.Get("X-Request-Id")),
	)
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wrap returns a handler that evaluates the ACL before next. A blocked request gets 403
// {"message":"Forbidden"} and never reaches next.
func (a *WebACL) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Evaluate(r).Action != config.ActionAllow {
			proxy.WriteJSONError(w, http.StatusForbidden, "Forbidden")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Package waf implements web ACLs as AWS WAF has them: prioritized rules whose statements match
// parts of the request after text transformations, with the actions allow, block (403 JSON or a
// named custom response) and count, labels that later rules match, a default action, and the
// OWASP Core Rule Set as the managed rule group owasp-crs (through Coraza).
//
// The statement that matters most is origin_verify: the load balancer's "gateway-only" ACL blocks
// every request that does not carry the origin-verify secret the gateway injects, which closes the
// path around the gateway. Evaluation fails closed: if anything goes wrong the request is blocked.
//
// The body is inspected up to body_inspection_limit bytes; those bytes are put back in front of
// the unread rest, so the next handler gets the body intact and a large body is never buffered.
//
// WAF log lines name the ACL, rule, action, labels, the matched field and a truncated value, the
// request id and the source IP. Values of the origin-verify header and of credential headers are
// never logged, and neither is any keyring secret.
package waf

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
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
	// Labels are the labels the matching rules added, in the order they were added.
	Labels []string
	// Status is the status a block answers with: 403, a custom response's status, 400 for a
	// body that could not be read, or 500 when the WAF itself failed (fail closed).
	Status int

	response *customResponse
}

// defaultRuleLabel stands for the default action in log lines.
const defaultRuleLabel = "(default action)"

// maxLoggedValue bounds the matched value in a WAF log line, in bytes.
const maxLoggedValue = 64

// WebACL is a compiled, immutable web ACL, safe for concurrent use.
type WebACL struct {
	name          string
	defaultAction string
	defaultResp   *customResponse
	rules         []rule
	secretHeaders []string
	keyrings      []*originverify.Keyring
	bodyLimit     int
	logger        *slog.Logger
	shared        *Shared
	ownsShared    bool
	crs           []*crsGroup // the managed rule groups this ACL holds (Close releases them)
	pool          sync.Pool   // *evalCtx
	hasCRS        bool
	metrics       *observe.Metrics // WithMetrics (metrics.go)
	tracer        trace.Tracer     // WithTracer (metrics.go)
}

type rule struct {
	name     string
	action   string
	labels   []string
	response *customResponse
	match    cond
	crs      bool // a managed rule group: its findings are logged
}

// customResponse is a compiled custom_responses entry.
type customResponse struct {
	status  int
	header  http.Header
	body    []byte
	ctype   string
	hasBody bool
}

// Shared holds what the web ACLs of one config share: the compiled managed rule groups. Its
// owner closes it when the config is replaced, which releases the compiled rules.
type Shared struct {
	mu     sync.Mutex
	crs    map[string]*crsGroup
	closed bool         // Close has run: the groups are freed
	replay replayStores // statement.go: Redis replay stores of signed origin_verify statements
	rate   rateStores   // rate.go: rate_based counters
	// matches are the recent matches of the ACLs built with this Shared (matches.go).
	matches *Matches
}

// NewShared returns an empty Shared.
func NewShared() *Shared {
	return &Shared{crs: map[string]*crsGroup{}, matches: NewMatches(DefaultSampledMatches)}
}

// ManagedGroups is the number of compiled managed rule groups s holds: one per distinct set of
// CRS settings among the ACLs built with it and not closed yet.
func (s *Shared) ManagedGroups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.crs)
}

// Matches returns the ring of the recent matches of the ACLs built with s, for the admin API.
func (s *Shared) Matches() *Matches { return s.matches }

// release drops one reference to each group, freeing those no ACL holds any more. The caller
// holds s.mu.
func (s *Shared) release(groups []*crsGroup) {
	if s.closed {
		return // Close freed every group already
	}
	for _, g := range groups {
		if g.refs--; g.refs == 0 {
			if s.crs[g.key] == g {
				delete(s.crs, g.key)
			}
			g.close()
		}
	}
}

// Close releases the compiled managed rule groups. ACLs built with s must not be used after.
func (s *Shared) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, g := range s.crs {
		g.close()
		delete(s.crs, k)
	}
	s.closed = true
	s.replay.close()
	s.rate.close()
}

// Option changes how New builds an ACL.
type Option func(*options)

type options struct {
	shared   *Shared
	crsExtra string
	redact   []string // WithRedactedHeaders (redact.go), lowercase
	metrics  *observe.Metrics
	tracer   trace.Tracer
}

// WithShared makes the ACL share compiled managed rule groups with the other ACLs built with s.
// The caller then closes s; WebACL.Close does not.
func WithShared(s *Shared) Option { return func(o *options) { o.shared = s } }

// New compiles cfg. keyrings maps secret names to keyrings; every origin_verify statement must
// name one of them. A nil logger discards WAF logs. Errors do not repeat the ACL's name: the
// caller adds it. Close releases what New compiled.
func New(cfg config.WebACL, keyrings map[string]*originverify.Keyring, logger *slog.Logger, opts ...Option) (*WebACL, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !isTerminal(cfg.DefaultAction) {
		return nil, fmt.Errorf("default_action %q: want allow or block", cfg.DefaultAction)
	}
	a := &WebACL{name: cfg.Name, defaultAction: cfg.DefaultAction, logger: logger, bodyLimit: cfg.BodyInspectionLimit}
	a.metrics, a.tracer = o.metrics, o.tracer
	if a.bodyLimit <= 0 {
		a.bodyLimit = config.DefaultBodyInspectionLimit
	}
	oversize := cfg.OversizeHandling
	switch oversize {
	case "":
		oversize = config.OversizeContinue
	case config.OversizeContinue, config.OversizeMatch, config.OversizeNoMatch:
	default:
		return nil, fmt.Errorf("oversize_handling %q: want continue, match or no_match", oversize)
	}
	responses := map[string]*customResponse{}
	for name, cr := range cfg.CustomResponses {
		c, err := compileResponse(cr)
		if err != nil {
			return nil, fmt.Errorf("custom_responses.%s: %w", name, err)
		}
		responses[name] = c
	}
	if n := cfg.DefaultCustomResponse; n != "" {
		if a.defaultResp = responses[n]; a.defaultResp == nil {
			return nil, fmt.Errorf("default_custom_response: %q is not in custom_responses", n)
		}
	}

	a.shared = o.shared
	if a.shared == nil {
		a.shared, a.ownsShared = NewShared(), true
	}
	a.shared.mu.Lock()
	defer a.shared.mu.Unlock()
	ok := false
	var b *builder
	defer func() {
		switch {
		case ok:
		case a.ownsShared:
			for _, g := range a.shared.crs {
				g.close()
			}
			a.shared.crs = nil
			a.shared.replay.close()
		case b != nil:
			a.shared.release(b.crs) // a failed build keeps no group alive
		}
	}()

	// Stable: rules with equal priorities keep their file order.
	ordered := slices.Clone(cfg.Rules)
	slices.SortStableFunc(ordered, func(x, y config.WAFRule) int { return cmp.Compare(x.Priority, y.Priority) })

	b = &builder{compiler: &compiler{keyrings: keyrings, shared: a.shared, logger: logger, metrics: o.metrics}, oversize: oversize, bodyLimit: a.bodyLimit, crsExtra: o.crsExtra, shared: a.shared}
	var store *rateStore // the ACL's rate_limit_store, opened by its first rate_based rule (rate.go)
	for _, r := range ordered {
		if r.Action != config.ActionCount && !isTerminal(r.Action) {
			return nil, fmt.Errorf("rule %q: action %q: want allow, block or count", r.Name, r.Action)
		}
		rl := rule{name: r.Name, action: r.Action, labels: slices.Clone(r.Labels)}
		if n := r.CustomResponse; n != "" {
			if rl.response = responses[n]; rl.response == nil {
				return nil, fmt.Errorf("rule %q: custom_response %q is not in custom_responses", r.Name, n)
			}
		}
		if g := r.Statement.ManagedRuleGroup; g != nil && countKinds(r.Statement) == 1 {
			group, err := b.managedRuleGroup(*g, "statement.managed_rule_group")
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", r.Name, err)
			}
			if r.Action == config.ActionAllow {
				return nil, fmt.Errorf("rule %q: a managed rule group cannot allow", r.Name)
			}
			if group.detect {
				rl.action = config.ActionCount
			}
			rl.match, rl.crs = group.cond, true
			a.hasCRS = true
		} else if rb := r.Statement.RateBased; rb != nil && countKinds(r.Statement) == 1 {
			if store == nil {
				lim, err := a.shared.rate.limiter(cfg.RateLimitStore)
				if err != nil {
					return nil, err
				}
				store = &rateStore{limiter: lim, allowOnError: cfg.OnStoreError == config.StoreErrorAllow}
			}
			m, err := b.rateBased(*rb, store, logger, a.name, r.Name, "statement.rate_based")
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", r.Name, err)
			}
			rl.match = m
		} else {
			m, err := b.compile(r.Statement, "statement")
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", r.Name, err)
			}
			rl.match = m
		}
		a.rules = append(a.rules, rl)
	}
	a.secretHeaders = slices.Concat(b.secretHeaders, o.redact)
	for _, name := range slices.Sorted(maps.Keys(keyrings)) {
		a.keyrings = append(a.keyrings, keyrings[name])
	}
	a.pool.New = func() any { return &evalCtx{} }
	a.crs = b.crs
	ok = true
	return a, nil
}

func countKinds(s config.Statement) int {
	n := 0
	for _, set := range []bool{s.Not != nil, s.And != nil, s.Or != nil, s.OriginVerify != nil, s.ByteMatch != nil,
		s.RegexMatch != nil, s.IPSet != nil, s.SizeConstraint != nil, s.SQLiMatch != nil, s.XSSMatch != nil,
		s.LabelMatch != nil, s.ManagedRuleGroup != nil, s.MTLS != nil, s.RateBased != nil} {
		if set {
			n++
		}
	}
	return n
}

func compileResponse(cr config.CustomResponse) (*customResponse, error) {
	if cr.Status < 200 || cr.Status > 599 {
		return nil, fmt.Errorf("status %d: want 200-599", cr.Status)
	}
	c := &customResponse{status: cr.Status, header: http.Header{}, ctype: cr.ContentType}
	for k, v := range cr.Headers {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("headers.%s: value contains a line break", k)
		}
		c.header.Set(k, v)
	}
	switch {
	case cr.Body != "":
		c.body, c.hasBody = []byte(cr.Body), true
		if c.ctype == "" {
			c.ctype = "text/plain; charset=utf-8"
		}
	case c.ctype == "" || c.ctype == "application/json":
		text := http.StatusText(cr.Status)
		if text == "" {
			text = "HTTP " + strconv.Itoa(cr.Status)
		}
		c.ctype = "application/json"
		c.body, c.hasBody = []byte(`{"message":`+strconv.Quote(text)+`}`), true
	}
	return c, nil
}

func isTerminal(action string) bool {
	return action == config.ActionAllow || action == config.ActionBlock
}

// Name is the ACL's name in the config.
func (a *WebACL) Name() string { return a.name }

// SecretHeaders returns the canonical names of the headers that origin_verify statements read.
// A proxy behind the ACL removes them so that the secret never reaches an app.
func (a *WebACL) SecretHeaders() []string { return slices.Clone(a.secretHeaders) }

// Close releases the ACL's hold on its managed rule groups: those that no other open ACL of the
// same Shared uses are freed (a CRS build is tens of MiB), so that a reload that changes CRS
// settings does not keep the old build for good. Call it once no request is in the ACL, at most
// once; an ACL whose Shared was not given with WithShared frees all of it.
func (a *WebACL) Close() {
	if a.ownsShared {
		a.shared.Close()
		return
	}
	a.shared.mu.Lock()
	defer a.shared.mu.Unlock()
	a.shared.release(a.crs)
	a.crs = nil
}

// Evaluate runs the rules in priority order and returns the decision. A matching count rule is
// logged and evaluation continues; the first matching allow or block rule decides; otherwise the
// default action does. Every rule that matches adds its labels. If a rule reads the body, r.Body
// is replaced by a reader that yields the same bytes.
func (a *WebACL) Evaluate(r *http.Request) (d Decision) {
	ec := a.pool.Get().(*evalCtx)
	ec.r, ec.acl = r, a
	defer func() {
		// Fail closed: a bug in a matcher must not let a request through. The panic value is
		// not logged, as it could hold request data.
		if recover() != nil {
			a.logger.Error("web ACL evaluation failed; blocking the request", "acl", a.name, "method", r.Method, "path", r.URL.Path)
			d = Decision{Action: config.ActionBlock, Rule: d.Rule, Counted: d.Counted, Labels: d.Labels, Status: http.StatusInternalServerError}
		}
		ec.reset()
		a.pool.Put(ec)
	}()
	d = a.evaluate(ec)
	return d
}

func (a *WebACL) evaluate(ec *evalCtx) Decision {
	var d Decision
	for i := range a.rules {
		rl := &a.rules[i]
		ec.hit, ec.crs = hit{}, nil
		matched := rl.match(ec)
		if ec.storeErr != nil {
			// on_store_error: deny. The rate-limit store cannot decide: refuse, as the gateway does.
			d.Action, d.Rule, d.Status = config.ActionBlock, rl.name, http.StatusServiceUnavailable
			d.Labels = cloneLabels(ec.labels)
			return d
		}
		if ec.internalErr != nil || ec.bodyErr != nil {
			d.Action, d.Rule, d.Status = config.ActionBlock, rl.name, http.StatusInternalServerError
			msg := "web ACL evaluation failed; blocking the request"
			err := ec.internalErr
			if err == nil {
				// The client's body broke off or was malformed: its fault, not the WAF's.
				d.Status, msg, err = http.StatusBadRequest, "request body could not be read; blocking the request", ec.bodyErr
			}
			a.logger.LogAttrs(ec.r.Context(), slog.LevelError, msg, slog.String("acl", a.name), slog.String("rule", rl.name), slog.String("error", err.Error()))
			d.Labels = cloneLabels(ec.labels)
			return d
		}
		if !matched {
			continue
		}
		ec.labels = append(ec.labels, rl.labels...)
		if rl.crs && ec.crs != nil {
			for _, id := range ec.crs.ids {
				ec.labels = append(ec.labels, "owasp-crs:"+strconv.Itoa(id))
			}
		}
		if rl.action == config.ActionCount {
			d.Counted = append(d.Counted, rl.name)
			a.log(ec, rl, rl.name, rl.action)
			continue
		}
		d.Action, d.Rule = rl.action, rl.name
		if d.Action == config.ActionBlock {
			d.Status, d.response = http.StatusForbidden, rl.response
			if rl.response != nil {
				d.Status = rl.response.status
			}
		}
		a.log(ec, rl, rl.name, d.Action)
		d.Labels = cloneLabels(ec.labels)
		return d
	}
	d.Action = a.defaultAction
	ec.hit, ec.crs = hit{}, nil
	if d.Action == config.ActionBlock {
		d.Status, d.response = http.StatusForbidden, a.defaultResp
		if a.defaultResp != nil {
			d.Status = a.defaultResp.status
		}
		a.log(ec, nil, defaultRuleLabel, d.Action)
	}
	d.Labels = cloneLabels(ec.labels)
	return d
}

func cloneLabels(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return slices.Clone(l)
}

// credentialHeaders are never logged, whatever matched in them.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}

// log writes one WAF log line for a terminating or counted match, and records the same match,
// redacted the same way, in the shared ring the admin API reads (matches.go).
func (a *WebACL) log(ec *evalCtx, rl *rule, ruleName, action string) {
	r := ec.r
	m := Match{Time: time.Now(), ACL: a.name, Rule: ruleName, Action: action, Method: r.Method, Path: r.URL.Path,
		SourceIP: sourceIP(r), RequestID: r.Header.Get("X-Request-Id")}
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs,
		slog.String("acl", a.name),
		slog.String("rule", ruleName),
		slog.String("action", action),
	)
	if len(ec.labels) > 0 {
		m.Labels = slices.Clone(ec.labels)
		attrs = append(attrs, slog.Any("labels", m.Labels))
	}
	if ec.hit.set {
		m.Field, m.Value = ec.hit.field, a.loggable(ec.hit.field, ec.hit.value)
		attrs = append(attrs, slog.String("field", m.Field), slog.String("value", m.Value))
	}
	if rl != nil && rl.crs && ec.crs != nil {
		score := ec.crs.score
		m.CRSRuleIDs, m.CRSAnomalyScore = slices.Clone(ec.crs.ids), &score
		attrs = append(attrs, slog.Any("crs_rule_ids", m.CRSRuleIDs), slog.Int("crs_anomaly_score", score))
	}
	attrs = append(attrs,
		slog.String("method", m.Method),
		slog.String("path", m.Path),
		slog.String("source_ip", m.SourceIP),
		slog.String("request_id", m.RequestID),
	)
	a.logger.LogAttrs(r.Context(), slog.LevelInfo, "waf", attrs...)
	a.shared.matches.add(m)
	a.metrics.WAFMatch(a.name, ruleName, action)
}

// loggable returns the value to log for a match in field: redacted when the field is a secret or
// credential header or parameter (redactedField, redact.go) or the value holds a keyring secret,
// else truncated to maxLoggedValue bytes.
func (a *WebACL) loggable(field, value string) string {
	if a.redactedField(field, value) {
		return "[REDACTED]"
	}
	for _, kr := range a.keyrings {
		for _, s := range kr.Secrets() {
			if s != "" && strings.Contains(value, s) {
				return "[REDACTED]"
			}
		}
	}
	if len(value) <= maxLoggedValue {
		return value
	}
	cut := maxLoggedValue
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	return value[:cut] + "…"
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wrap returns a handler that evaluates the ACL before next. A blocked request gets 403
// {"message":"Forbidden"} (or the rule's custom response, or 500 when the WAF failed) and never
// reaches next.
func (a *WebACL) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := a.evaluateSpan(r) // Evaluate, in a span when tracing is on (metrics.go)
		if d.Action == config.ActionAllow {
			next.ServeHTTP(w, r)
			return
		}
		writeBlock(w, d)
	})
}

func writeBlock(w http.ResponseWriter, d Decision) {
	switch {
	case d.response != nil:
		c := d.response
		h := w.Header()
		for k, vs := range c.header {
			h[k] = slices.Clone(vs)
		}
		if c.ctype != "" {
			h.Set("Content-Type", c.ctype)
		}
		if c.hasBody {
			h.Set("Content-Length", strconv.Itoa(len(c.body)))
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body)
	case d.Status == http.StatusInternalServerError:
		proxy.WriteJSONError(w, http.StatusInternalServerError, "Internal Server Error")
	case d.Status == http.StatusServiceUnavailable:
		proxy.WriteJSONError(w, http.StatusServiceUnavailable, "Service Unavailable")
	case d.Status == http.StatusBadRequest:
		proxy.WriteJSONError(w, http.StatusBadRequest, "Bad Request")
	default:
		proxy.WriteJSONError(w, http.StatusForbidden, "Forbidden")
	}
}

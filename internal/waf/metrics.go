package waf

import (
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// WithMetrics makes the ACL count its logged matches (rampart_waf_matches_total) and its
// origin_verify checks by result and key id (rampart_origin_verify_results_total). Nil m: none.
func WithMetrics(m *observe.Metrics) Option { return func(o *options) { o.metrics = m } }

// WithTracer makes Wrap record a span per evaluation, with the decision as attributes. Nil t:
// none, at no cost.
func WithTracer(t trace.Tracer) Option { return func(o *options) { o.tracer = t } }

// evaluateSpan is Evaluate inside a "waf ACL" span when tracing is on.
func (a *WebACL) evaluateSpan(r *http.Request) Decision {
	if a.tracer == nil {
		return a.Evaluate(r)
	}
	_, span := a.tracer.Start(r.Context(), "waf "+a.name, trace.WithAttributes(attribute.String("rampart.acl", a.name)))
	d := a.Evaluate(r)
	span.SetAttributes(attribute.String("rampart.waf.action", d.Action))
	if d.Rule != "" {
		span.SetAttributes(attribute.String("rampart.waf.rule", d.Rule))
	}
	if d.Status != 0 {
		span.SetAttributes(attribute.Int("rampart.waf.status", d.Status))
	}
	span.End()
	return d
}

// presenceResult is the result of a check whose header is absent or repeated.
func presenceResult(values []string) string {
	if len(values) == 0 {
		return observe.OriginVerifyMissing
	}
	return observe.OriginVerifyDuplicate
}

func staticResult(ok bool) string {
	if ok {
		return observe.OriginVerifyOK
	}
	return observe.OriginVerifyInvalid
}

// signedResult maps a signed token's verification error to its result label.
func signedResult(err error) string {
	switch {
	case err == nil:
		return observe.OriginVerifyOK
	case errors.Is(err, originverify.ErrSkew):
		return observe.OriginVerifyExpired
	case errors.Is(err, originverify.ErrReplay):
		return observe.OriginVerifyReplayed
	case errors.Is(err, originverify.ErrUnknownKey):
		return observe.OriginVerifyUnknownKey
	case errors.Is(err, originverify.ErrMalformed), errors.Is(err, originverify.ErrBadMAC):
		return observe.OriginVerifyInvalid
	default:
		return observe.OriginVerifyError // the replay cache is full or its store failed
	}
}

// Package observe sets up what operators watch: structured logs (log/slog, JSON or text, log.go),
// Prometheus metrics (metrics.go) and OpenTelemetry tracing (tracing.go); docs/observability.md
// lists them all. Secrets are redacted in every log record and never become a label value.
package observe

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// Redactor holds secret values that must never reach a log. Components never log secrets on
// purpose; this is the second line of defence for an error string or a dumped header that would.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
}

// Add registers secrets to redact. Empty and very short values are ignored: redacting "a" would
// mangle every record without protecting anything.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 8 {
			r.secrets = append(r.secrets, s)
		}
	}
}

// Redact replaces every registered secret in s.
func (r *Redactor) Redact(s string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, secret := range r.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}

// NewLogger returns a logger writing to w in format "json" or "text" at level, redacting every
// string, error and stringer attribute and the message through red.
func NewLogger(w io.Writer, format string, level slog.Level, red *Redactor) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if red == nil {
			return a
		}
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindString:
			a.Value = slog.StringValue(red.Redact(v.String()))
		case slog.KindAny:
			switch x := v.Any().(type) {
			case error:
				a.Value = slog.StringValue(red.Redact(x.Error()))
			case fmt.Stringer:
				a.Value = slog.StringValue(red.Redact(x.String()))
			default:
				// Maps, slices and structs (an http.Header, say) keep their shape unless their
				// rendering holds a secret; then the redacted rendering replaces them.
				if s := fmt.Sprint(x); red.Redact(s) != s {
					a.Value = slog.StringValue(red.Redact(s))
				}
			}
		}
		return a
	}}
	var h slog.Handler
	switch format {
	case "json", "":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: write json or text", format)
	}
	return slog.New(h), nil
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: write debug, info, warn or error", s)
	}
	return l, nil
}

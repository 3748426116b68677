package observe

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	const secret = "s3cr3t-value-0123456789"
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		red := &Redactor{}
		red.Add(secret, "x") // the short one is ignored
		log, err := NewLogger(&buf, format, slog.LevelDebug, red)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("msg", "plain", "header="+secret, "err", errors.New("bad key "+secret),
			slog.Group("g", "nested", secret), "short", "axb",
			"headers", http.Header{"X-Origin-Verify": {secret}}, "list", []string{"a", secret})
		out := buf.String()
		if strings.Contains(out, secret) {
			t.Errorf("%s: secret leaked: %s", format, out)
		}
		if got := strings.Count(out, "[REDACTED]"); got != 5 {
			t.Errorf("%s: %d redactions, want 5: %s", format, got, out)
		}
		if !strings.Contains(out, "axb") { // "x" is too short to be redacted
			t.Errorf("%s: output mangled: %s", format, out)
		}
	}
}

func TestNewLoggerRejectsUnknownFormat(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "xml", slog.LevelInfo, nil); err == nil {
		t.Fatal("want an error for format xml")
	}
	if _, err := ParseLevel("loud"); err == nil {
		t.Fatal("want an error for level loud")
	}
}

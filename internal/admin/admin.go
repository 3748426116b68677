// Package admin serves the admin listener. Today it answers health probes; the admin API, metrics
// and the dashboard arrive with the operations issue.
package admin

import (
	"encoding/json"
	"net/http"
)

// New returns the admin handler. version is reported by /healthz so a probe can tell what runs.
func New(version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version})
	})
	return mux
}

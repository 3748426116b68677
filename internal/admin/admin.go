// Package admin serves the admin listener: health probes, the read-only JSON views that the
// components register (keyrings, WAF matches, metrics, …), the admin API over a Backend (api.go:
// readiness, config, targets, reload, state) with its bearer token, and the dashboard page
// (dashboard.go). docs/admin-api.md documents every route.
package admin

import (
	"encoding/json"
	"net/http"
)

// Route is one admin endpoint a component contributes, e.g. {"GET /keyrings", handler}.
type Route struct {
	Pattern string // a net/http ServeMux pattern with its method
	Handler http.Handler
}

// New returns the admin handler. version is reported by /healthz so a probe can tell what runs.
func New(version string, routes ...Route) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": version})
	})
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	return mux
}

// WriteJSON writes v as a JSON response. Admin views never hold secrets: the components that
// register them expose ids and states only.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

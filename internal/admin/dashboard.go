package admin

import (
	_ "embed"
	"net/http"
)

// dashboardPage is the whole dashboard: markup, style and script in one file, so that it works
// offline and behind any proxy (no CDN, no other request than GET /api/state).
//
//go:embed dashboard.html
var dashboardPage []byte

// serveDashboard serves the page shell. It holds no data: the script fetches /api/state, with the
// admin token when one is set (the page takes it from the URL fragment, #token=…, which browsers
// never send to a server, so it stays out of access logs).
func serveDashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// Inline script and style only, fetches to this origin only: nothing else can run here.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	_, _ = w.Write(dashboardPage)
}

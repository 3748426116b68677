// Package demoweb serves the demo page: a small self-contained page (no external resources) that
// lists and creates items through the API gateway with fetch(). Served from an origin the gateway
// allows, it works; the very same handler served from any other origin shows its requests being
// refused, which is what the CORS part of the demo is about. The page never names its own origin.
package demoweb

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

type asset struct {
	contentType string
	body        []byte
}

// New returns the demo page handler. gatewayURL is the gateway's base URL (scheme, host and an
// optional path prefix); the page calls gatewayURL + "/items". It reaches the page as an
// HTML-escaped attribute value, never as script text, and its origin is the only one the page's
// Content-Security-Policy lets it connect to. An unusable gatewayURL (not absolute http or https)
// gives a page that reports the problem and may connect nowhere.
func New(gatewayURL string) http.Handler {
	base, origin := parseGateway(gatewayURL)
	connect := "'none'"
	if origin != "" {
		connect = origin
	}
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src " + connect +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

	var page bytes.Buffer
	tmpl := template.Must(template.ParseFS(static, "static/index.html"))
	if err := tmpl.Execute(&page, struct{ Gateway string }{base}); err != nil {
		// The template is embedded and its one input is a string: failure is a programming error.
		panic("demoweb: page template: " + err.Error())
	}
	assets := map[string]asset{
		"/":        {"text/html; charset=utf-8", page.Bytes()},
		"/app.js":  {"text/javascript; charset=utf-8", mustRead("static/app.js")},
		"/app.css": {"text/css; charset=utf-8", mustRead("static/app.css")},
	}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		a, ok := assets[r.URL.Path]
		if !ok {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", a.contentType)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// parseGateway returns the base URL the page uses (no trailing slash) and its origin for the CSP,
// or two empty strings when gatewayURL is not an absolute http(s) URL whose origin is safe to
// place in a header.
func parseGateway(gatewayURL string) (base, origin string) {
	u, err := url.Parse(gatewayURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", ""
	}
	for _, c := range u.Host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return "", ""
		}
	}
	return strings.TrimRight(gatewayURL, "/"), u.Scheme + "://" + u.Host
}

func mustRead(name string) []byte {
	b, err := static.ReadFile(name)
	if err != nil {
		panic("demoweb: embedded " + name + ": " + err.Error())
	}
	return b
}

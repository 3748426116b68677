package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Backend is what the admin API reads and changes: the running topology (internal/topology).
type Backend interface {
	// Ready reports whether the process serves: listeners open and every load balancer target
	// has had a first health verdict. waiting says what it still waits for.
	Ready() (ready bool, waiting []string)
	// Config is the running config with its secrets redacted.
	Config() map[string]any
	// Targets lists every load balancer's target groups.
	Targets() []LoadBalancer
	// Register adds a target to a group; Deregister drains and removes one. Errors wrap
	// ErrNotFound, ErrConflict or ErrInvalid.
	Register(lb, group, addr string, weight int) error
	Deregister(lb, group, addr string) error
	// Reload reloads the config file. A rejected config returns an error that has a
	// Messages() []string method (one line per problem, with file:line:col).
	Reload(ctx context.Context) (ReloadResult, error)
	// State is everything the dashboard and `rampart status` show.
	State() State
}

// Errors of Register and Deregister, mapped to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// ErrNotReloadable, wrapped by Reload's error, answers 200 with reloaded false: there is nothing
// to do (the embedded default has no file), which is not the caller's mistake.
var ErrNotReloadable = errors.New("not reloadable")

// ReloadResult is the body of a successful POST /reload.
type ReloadResult struct {
	Reloaded   bool   `json:"reloaded"`
	Message    string `json:"message,omitempty"`
	ConfigHash string `json:"config_hash,omitempty"`
	Reloads    int64  `json:"reloads"`
}

// LoadBalancer is one load balancer's target groups.
type LoadBalancer struct {
	Name      string        `json:"name"`
	Listeners []LBListener  `json:"listeners"`
	Groups    []TargetGroup `json:"target_groups"`
}

// LBListener is one listener of a load balancer.
type LBListener struct {
	Listen string `json:"listen"`
	WebACL string `json:"web_acl,omitempty"`
}

// TargetGroup is one target group and its targets.
type TargetGroup struct {
	Name      string   `json:"name"`
	Algorithm string   `json:"algorithm,omitempty"`
	Targets   []Target `json:"targets"`
}

// Target is one registered target.
type Target struct {
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	// State is healthy, unhealthy, ejected (outlier detection) or draining.
	State     string `json:"state"`
	Healthy   bool   `json:"healthy"`
	InFlight  int64  `json:"in_flight"`
	SlowStart bool   `json:"slow_start,omitempty"`
}

// State is the body of GET /api/state.
type State struct {
	Version       string         `json:"version"`
	Time          time.Time      `json:"time"`
	Ready         bool           `json:"ready"`
	Waiting       []string       `json:"waiting,omitempty"`
	Config        Config         `json:"config"`
	Reloads       Reloads        `json:"reloads"`
	Listeners     []Endpoint     `json:"listeners"`
	Gateways      []Gateway      `json:"gateways"`
	LoadBalancers []LoadBalancer `json:"load_balancers"`
	Apps          []App          `json:"apps"`
	Keyrings      []Keyring      `json:"keyrings"`
	// WAFBlocks are the latest blocked requests, newest first; WAFMatches counts every match.
	WAFBlocks  []WAFBlock `json:"waf_blocks"`
	WAFMatches int64      `json:"waf_matches"`
	// Requests are the request counters by component (from rampart_requests_total); the
	// dashboard turns two successive samples into rates. Nil when metrics are off.
	Requests []Requests `json:"requests"`
}

// Config identifies the running config.
type Config struct {
	File       string `json:"file"`
	Hash       string `json:"hash"`
	Reloadable bool   `json:"reloadable"`
}

// Reloads counts reloads and describes the last attempt.
type Reloads struct {
	OK       int64      `json:"ok"`
	Rejected int64      `json:"rejected"`
	Last     LastReload `json:"last"`
}

// LastReload is the last reload attempt.
type LastReload struct {
	Time   time.Time `json:"time"`
	Cause  string    `json:"cause"`
	OK     bool      `json:"ok"`
	Errors []string  `json:"errors,omitempty"`
}

// Endpoint is one listener of the process.
type Endpoint struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Listen string `json:"listen"`
	Note   string `json:"note,omitempty"`
}

// Gateway is one gateway and the upstreams its routes call.
type Gateway struct {
	Name      string   `json:"name"`
	Listen    string   `json:"listen"`
	CORS      string   `json:"cors"`
	WebACL    string   `json:"web_acl,omitempty"`
	Routes    int      `json:"routes"`
	Upstreams []string `json:"upstreams"` // host:port of the integrations
}

// App is one app group and its instances.
type App struct {
	Name      string   `json:"name"`
	Instances []string `json:"instances"` // listen addresses
}

// Keyring is one loaded keyring: the id of the key in use, never its value.
type Keyring struct {
	Name      string   `json:"name"`
	CurrentID string   `json:"current_key_id"`
	Keys      []string `json:"keys"` // "id (state)"
}

// WAFBlock is one blocked request.
type WAFBlock struct {
	Time   time.Time `json:"time"`
	ACL    string    `json:"acl"`
	Rule   string    `json:"rule"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Source string    `json:"source_ip"`
}

// Requests are one component's request counters since start, by status class.
type Requests struct {
	Component string             `json:"component"`
	Name      string             `json:"name"`
	Total     float64            `json:"total"`
	ByClass   map[string]float64 `json:"by_class"`
}

// API returns the admin API in front of next (the components' own routes, /healthz among them).
// When token is not empty every route but /healthz and /readyz, and the dashboard page shell
// (which holds no data), needs "Authorization: Bearer TOKEN".
func API(b Backend, version, token string, next http.Handler) http.Handler {
	return APIWithToken(b, version, func() string { return token }, next)
}

// APIWithToken is API with the token read at each request, so that a config reload that changes
// or revokes admin.token is in force at once, on connections already open too.
func APIWithToken(b Backend, version string, token func() string, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, waiting := b.Ready()
		status := http.StatusOK
		body := map[string]any{"status": "ready"}
		if !ready {
			status, body = http.StatusServiceUnavailable, map[string]any{"status": "not ready", "waiting": waiting}
		}
		WriteJSON(w, status, body)
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"version": version})
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, b.Config())
	})
	mux.HandleFunc("GET /targets", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]any{"load_balancers": b.Targets()})
	})
	mux.HandleFunc("POST /targets/{lb}/{group}", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Address string `json:"address"`
			Weight  int    `json:"weight"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Address == "" {
			writeError(w, http.StatusBadRequest, `send {"address": "HOST:PORT", "weight": N}`, err)
			return
		}
		if err := b.Register(r.PathValue("lb"), r.PathValue("group"), req.Address, req.Weight); err != nil {
			writeError(w, statusOf(err), "", err)
			return
		}
		WriteJSON(w, http.StatusCreated, map[string]any{"registered": req.Address, "load_balancer": r.PathValue("lb"), "target_group": r.PathValue("group")})
	})
	mux.HandleFunc("DELETE /targets/{lb}/{group}/{addr}", func(w http.ResponseWriter, r *http.Request) {
		if err := b.Deregister(r.PathValue("lb"), r.PathValue("group"), r.PathValue("addr")); err != nil {
			writeError(w, statusOf(err), "", err)
			return
		}
		WriteJSON(w, http.StatusAccepted, map[string]any{"draining": r.PathValue("addr"), "load_balancer": r.PathValue("lb"), "target_group": r.PathValue("group")})
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		res, err := b.Reload(r.Context())
		switch {
		case errors.Is(err, ErrNotReloadable):
			WriteJSON(w, http.StatusOK, res)
		case err != nil:
			body := map[string]any{"reloaded": false, "error": "the new config was rejected; the running config stays"}
			var m interface{ Messages() []string }
			if errors.As(err, &m) {
				body["errors"] = m.Messages()
			} else {
				body["errors"] = []string{err.Error()}
			}
			WriteJSON(w, http.StatusUnprocessableEntity, body)
		default:
			WriteJSON(w, http.StatusOK, res)
		}
	})
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, b.State())
	})
	mux.HandleFunc("GET /{$}", serveDashboard)
	mux.Handle("/", next)
	return guard(token, mux)
}

// guard applies the bearer token and refuses what a web page on another site could send to a
// loopback admin listener: a cross-origin write (no token needed for that kind of CSRF, as a
// form or a "simple" fetch needs no preflight), and a request by a name that is not an address
// (DNS rebinding: a page at evil.example made to resolve to 127.0.0.1).
func guard(tokenOf func() string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := tokenOf()
		open := r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || (r.URL.Path == "/" && r.Method == http.MethodGet)
		if o := r.Header.Get("Origin"); o != "" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				writeError(w, http.StatusForbidden, "the admin API takes no cross-origin writes", nil)
				return
			}
		}
		if token == "" {
			if !open && !addressHost(r.Host) {
				writeError(w, http.StatusForbidden, "call the admin listener by its address (127.0.0.1:PORT), or set admin.token", nil)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !open {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="rampart admin"`)
				writeError(w, http.StatusUnauthorized, "send Authorization: Bearer <admin.token>", nil)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// addressHost reports whether host (a Host header) is an IP address or localhost.
func addressHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost")
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

func writeError(w http.ResponseWriter, status int, hint string, err error) {
	body := map[string]string{"error": http.StatusText(status)}
	if err != nil {
		body["error"] = err.Error()
	}
	if hint != "" {
		body["hint"] = hint
	}
	WriteJSON(w, status, body)
}

// Errorf returns an error of kind (ErrNotFound, …) whose text is the message alone.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

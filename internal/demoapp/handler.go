// Package demoapp is the bundled items service: the private app tier of the demo topology. It is a
// small JSON CRUD API over a Store (SQLite by default), plus /healthz for the load balancer's health
// checks and /whoami, which shows what the app actually received after the gateway and the load
// balancer had their say (for example, that the origin-verify header was stripped).
package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-edge/rampart/internal/observe"
)

const (
	// MaxBodyBytes bounds a request body; a larger one is rejected with 400.
	MaxBodyBytes = 64 << 10
	// MaxNameLen is the longest accepted item name, in characters.
	MaxNameLen = 200
	// healthTimeout bounds the store ping behind /healthz, well inside a typical health check
	// timeout, so that a stuck database reads as unhealthy rather than as a hung target.
	healthTimeout = 2 * time.Second
	// StoreTimeout bounds each request's database work, so that a database that stops answering
	// (a hung host, a dropped route) turns into a quick 503 rather than a request that hangs until
	// the load balancer gives up on it.
	StoreTimeout = 5 * time.Second
	// maxRequestIDLen bounds the X-Request-Id value copied into the access log.
	maxRequestIDLen = 128
)

type handler struct {
	instance     string
	store        Store
	logger       *slog.Logger
	storeTimeout time.Duration
}

// New returns the items service for one instance. Every response carries X-Served-By: instance, so
// that a client can watch the load balancer spread requests. A nil logger discards logs.
func New(instance string, store Store, logger *slog.Logger) http.Handler {
	return newHandler(instance, store, logger, StoreTimeout)
}

// newHandler is New with the per-request store timeout as a parameter, for tests.
func newHandler(instance string, store Store, logger *slog.Logger, storeTimeout time.Duration) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{instance: instance, store: store, logger: logger, storeTimeout: storeTimeout}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items", h.list)
	mux.HandleFunc("POST /items", h.create)
	mux.HandleFunc("GET /items/{id}", h.get)
	mux.HandleFunc("PUT /items/{id}", h.update)
	mux.HandleFunc("DELETE /items/{id}", h.delete)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /whoami", h.whoami)
	// The mux's own 404 and 405 answers are plain text; these catch-alls give the JSON ones.
	mux.Handle("/items", methodNotAllowed("GET, HEAD, POST"))
	mux.Handle("/items/{id}", methodNotAllowed("DELETE, GET, HEAD, PUT"))
	mux.Handle("/healthz", methodNotAllowed("GET, HEAD"))
	mux.Handle("/whoami", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})
	return h.accessLog(mux)
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	})
}

// accessLog sets X-Served-By and writes one log line per request. Of the request headers it logs
// X-Request-Id alone: others (Authorization, the origin-verify header if a hop failed to strip it)
// may hold secrets.
func (h *handler) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Served-By", h.instance)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		reqID := r.Header.Get("X-Request-Id")
		if len(reqID) > maxRequestIDLen {
			reqID = reqID[:maxRequestIDLen]
		}
		h.logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("component", "app"),
			slog.String("instance", h.instance),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote_addr", r.RemoteAddr),
			slog.String("request_id", reqID),
			// The W3C trace id the request arrived with ("" without a traceparent): the link from
			// this line to the gateway's and load balancer's spans (docs/observability.md).
			slog.String("otel_trace_id", observe.TraceIDFromHeader(r.Header.Get("Traceparent"))),
		)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	s.wroteHeader = true
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// storeContext is the request's context bounded by the store timeout.
func (h *handler) storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), h.storeTimeout)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.storeContext(r)
	defer cancel()
	items, err := h.store.List(ctx)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.storeContext(r)
	defer cancel()
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "item not found")
		return
	}
	it, err := h.store.Get(ctx, id)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	in, err := decodeInput(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// The store timeout starts once the body is in: it bounds the database, not the upload.
	ctx, cancel := h.storeContext(r)
	defer cancel()
	it, err := h.store.Create(ctx, in.Name, in.Note)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/items/"+strconv.FormatInt(it.ID, 10))
	writeJSON(w, http.StatusCreated, it)
}

func (h *handler) update(w http.ResponseWriter, r *http.Request) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "item not found")
		return
	}
	in, err := decodeInput(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := h.storeContext(r)
	defer cancel()
	it, err := h.store.Update(ctx, id, in.Name, in.Note)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := h.storeContext(r)
	defer cancel()
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, "item not found")
		return
	}
	if err := h.store.Delete(ctx, id); err != nil {
		h.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		h.logger.Warn("health check failed", "component", "app", "instance", h.instance, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"status": "unavailable", "instance": h.instance, "message": "database unavailable",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "instance": h.instance})
}

// whoami mirrors the request as the app received it, like traefik/whoami. Values of headers whose
// names suggest a credential are replaced by "[redacted]": their presence is the interesting part,
// and if a hop ever failed to strip the origin-verify header, echoing it would hand the secret to
// any browser that can call this endpoint.
func (h *handler) whoami(w http.ResponseWriter, r *http.Request) {
	headers := make(map[string][]string, len(r.Header))
	for name, values := range r.Header {
		if sensitiveHeader(name) {
			red := make([]string, len(values))
			for i := range red {
				red[i] = "[redacted]"
			}
			values = red
		}
		headers[name] = values
	}
	writeJSON(w, http.StatusOK, struct {
		Instance   string              `json:"instance"`
		RemoteAddr string              `json:"remote_addr"`
		Method     string              `json:"method"`
		Host       string              `json:"host"`
		Path       string              `json:"path"`
		Headers    map[string][]string `json:"headers"`
	}{h.instance, r.RemoteAddr, r.Method, r.Host, r.URL.Path, headers})
}

// sensitiveHeader reports whether a header name suggests a credential.
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"authorization", "cookie", "secret", "token", "verify", "api-key", "apikey", "password", "signature"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// storeError maps a store error to a response. Details stay in the log: a client learns only
// whether the item is missing or the database is.
func (h *handler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "item not found")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		writeError(w, http.StatusServiceUnavailable, "request canceled")
	default:
		h.logger.Error("store error", "component", "app", "instance", h.instance, "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
	}
}

// parseID accepts the canonical decimal form of a positive id only, so that /items/01 and
// /items/+1 do not alias /items/1.
func parseID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != s {
		return 0, false
	}
	return id, true
}

// itemInput is the body of POST /items and PUT /items/{id}.
type itemInput struct {
	Name string `json:"name"`
	Note string `json:"note"`
}

// decodeInput reads and validates an item body. Its errors are safe to show to the client.
func decodeInput(w http.ResponseWriter, r *http.Request) (itemInput, error) {
	return parseInput(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
}

// parseInput decodes exactly one JSON object with known fields only, then validates it. The name
// is trimmed of surrounding space; the note is kept as sent.
func parseInput(body io.Reader) (itemInput, error) {
	var in itemInput
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return itemInput{}, inputError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return itemInput{}, inputError(err)
		}
		return itemInput{}, errors.New("request body must be a single JSON object")
	}
	in.Name = strings.TrimSpace(in.Name)
	switch {
	case in.Name == "":
		return itemInput{}, errors.New("name is required")
	case strings.ContainsRune(in.Name, 0) || strings.ContainsRune(in.Note, 0):
		// PostgreSQL's text type cannot hold NUL; refusing it here keeps both stores answering
		// alike (SQLite would store it, PostgreSQL would fail the statement).
		return itemInput{}, errors.New("name and note must not contain NUL (\\u0000)")
	case utf8.RuneCountInString(in.Name) > MaxNameLen:
		return itemInput{}, fmt.Errorf("name is longer than %d characters", MaxNameLen)
	}
	return in, nil
}

// inputError turns a decoding error into a short message that does not echo the body.
func inputError(err error) error {
	var (
		tooBig    *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("request body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return errors.New("request body is empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntax):
		return errors.New("request body is not valid JSON")
	case errors.As(err, &typeError):
		if typeError.Field != "" {
			return fmt.Errorf("field %q must be a string", typeError.Field)
		}
		return errors.New("request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errors.New("request body has an unknown field; allowed: name, note")
	default:
		return errors.New("request body is not a valid item")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeError writes {"message": msg}, the error shape used across Rampart.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Message string `json:"message"`
	}{msg})
}

package demoapp

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rampart-edge/rampart/internal/observe"
)

// Instrument counts the requests of an app instance built with New in m
// (rampart_requests_total{component="app"} by route pattern, and the request duration). Nil m
// returns h itself.
func Instrument(h http.Handler, instance string, m *observe.Metrics) http.Handler {
	if m == nil {
		return h
	}
	in := &instrumented{next: h, m: m, instance: instance, duration: m.Duration(observe.ComponentApp, instance), routes: map[string]*observe.RouteRequests{}}
	return in
}

type instrumented struct {
	next     http.Handler
	m        *observe.Metrics
	instance string
	duration *observe.Histogram
	mu       sync.RWMutex
	routes   map[string]*observe.RouteRequests // by mux pattern path: a fixed, small set
}

func (in *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	in.next.ServeHTTP(rec, r)
	in.duration.Since(start)
	// The mux records the pattern it chose on the request it was given, which is r: its path part
	// ("/items/{id}") is the route label, never the raw path.
	route := r.Pattern
	if i := strings.IndexByte(route, ' '); i >= 0 {
		route = route[i+1:]
	}
	in.requests(route).Inc(r.Method, rec.status)
}

func (in *instrumented) requests(route string) *observe.RouteRequests {
	in.mu.RLock()
	rr := in.routes[route]
	in.mu.RUnlock()
	if rr != nil {
		return rr
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if rr = in.routes[route]; rr == nil {
		rr = in.m.Requests(observe.ComponentApp, in.instance, route)
		in.routes[route] = rr
	}
	return rr
}

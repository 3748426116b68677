package gateway

import (
	"net/http"
)

// limitBody enforces the route's max_body_bytes. A declared Content-Length over the limit is
// refused with 413 before a byte of the body is read (and before any authorizer or throttle
// spends work on it). A body of unknown length (chunked) is wrapped in http.MaxBytesReader: when
// it goes over, the read fails with *http.MaxBytesError, the transport abandons the backend
// request without its final chunk (so the backend sees a broken body, never a short one that
// looks whole), and the proxy answers 413 (proxy.Classify).
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := exchangeFrom(r.Context()).route
		if rt == nil || rt.maxBody <= 0 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > rt.maxBody {
			// Close rather than drain: net/http would otherwise read up to 256 KiB of the
			// unwanted body before answering.
			w.Header().Set("Connection", "close")
			reply(w, r, respTooLarge)
			return
		}
		if r.ContentLength < 0 {
			r2 := new(http.Request)
			*r2 = *r
			r2.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

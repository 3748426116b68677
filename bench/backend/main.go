// Command backend is the benchmark's origin: a 64-byte answer to every request, after reading the
// whole request body (so a 4 KB POST costs what it would cost a real service).
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "address to listen on")
	flag.Parse()
	// 64 bytes: 21 of JSON framing and newline, 43 of padding.
	body := []byte(`{"ok":true,"pad":"` + strings.Repeat("x", 43) + "\"}\n")
	length := strconv.Itoa(len(body))
	log.Fatal(http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		_, _ = w.Write(body)
	})))
}

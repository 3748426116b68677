package gateway

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/rampart-edge/rampart/internal/config"
)

// maxFieldErrors bounds the errors listed in one 400: enough to fix a request, never a body the
// size of the client's mistakes.
const maxFieldErrors = 10

// validation is a route's compiled request_validation.
type validation struct {
	headers []string // canonical names
	query   []string
	schema  *jsonschema.Schema
}

func newValidation(v *config.RequestValidation) *validation {
	if v == nil {
		return nil
	}
	out := &validation{query: v.RequiredQuery, schema: v.Schema}
	for _, h := range v.RequiredHeaders {
		out.headers = append(out.headers, textproto.CanonicalMIMEHeaderKey(h))
	}
	return out
}

// validate checks the route's request_validation: required headers and query parameters (400
// BAD_REQUEST_PARAMETERS), then the body against the schema (400 BAD_REQUEST_BODY). It runs
// after authentication and throttling, so that an anonymous flood never gets a body parsed. The
// body is read whole (max_body_bytes bounds it) and handed on to the backend as read.
func (g *Gateway) validate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := exchangeFrom(r.Context()).route
		if rt == nil || rt.validation == nil {
			next.ServeHTTP(w, r)
			return
		}
		v := rt.validation
		var errs []fieldError
		for _, h := range v.headers {
			if strings.TrimSpace(strings.Join(r.Header[h], "")) == "" {
				errs = append(errs, fieldError{Field: "header." + h, Error: "required header is missing"})
			}
		}
		if len(v.query) > 0 {
			q := r.URL.Query()
			for _, name := range v.query {
				if q.Get(name) == "" {
					errs = append(errs, fieldError{Field: "query." + name, Error: "required query parameter is missing"})
				}
			}
		}
		if len(errs) > 0 {
			replyWith(w, r, respBadParameters, replyOpts{errors: errs})
			return
		}
		if v.schema != nil {
			// The media type first: a body that cannot be JSON is refused before a byte of it is
			// buffered.
			if errs := checkContentType(r.Header.Get("Content-Type")); len(errs) > 0 {
				if r.ProtoMajor == 1 {
					// Rather than drain the unread body (HTTP/2 resets the stream by itself; there
					// "Connection: close" would end the client's other streams' connection).
					w.Header().Set("Connection", "close")
				}
				replyWith(w, r, respBadBody, replyOpts{errors: errs})
				return
			}
			body, ok := readBody(w, r)
			if !ok {
				return
			}
			if errs := checkBody(v.schema, body); len(errs) > 0 {
				replyWith(w, r, respBadBody, replyOpts{errors: errs})
				return
			}
			r2 := new(http.Request)
			*r2 = *r
			r2.Body = io.NopCloser(bytes.NewReader(body))
			r2.ContentLength = int64(len(body))
			r2.TransferEncoding = nil
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole body; on failure it has answered (413 over the limit, 408 too slow,
// 400 malformed).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	body, err := io.ReadAll(r.Body)
	if err == nil {
		return body, true
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		w.Header().Set("Connection", "close")
		reply(w, r, respTooLarge)
	case errors.Is(err, os.ErrDeadlineExceeded):
		reply(w, r, respRequestTimeout)
	default:
		reply(w, r, respBadRequest)
	}
	return nil, false
}

// checkContentType refuses a body whose media type is not JSON.
func checkContentType(contentType string) []fieldError {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return []fieldError{{Field: "/", Error: "Content-Type must be application/json"}}
	}
	return nil
}

// maxFieldErrorBytes bounds the text of one error. A message may quote the failing value ("'…'
// does not match pattern"), and a 400 must not echo a large body back (JSON escaping would even
// multiply it: "<" is written \u003c).
const maxFieldErrorBytes = 200

// shortError cuts msg to maxFieldErrorBytes, on a rune boundary, marking the cut with "…".
func shortError(msg string) string {
	if len(msg) <= maxFieldErrorBytes {
		return msg
	}
	cut := maxFieldErrorBytes
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// checkBody validates a JSON body against schema and lists what failed, by JSON pointer.
func checkBody(schema *jsonschema.Schema, body []byte) []fieldError {
	if len(bytes.TrimSpace(body)) == 0 {
		return []fieldError{{Field: "/", Error: "a JSON body is required"}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []fieldError{{Field: "/", Error: shortError("malformed JSON: " + err.Error())}}
	}
	err = schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []fieldError{{Field: "/", Error: shortError(err.Error())}}
	}
	var out []fieldError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(out) >= maxFieldErrors {
			return
		}
		if len(e.Causes) == 0 {
			// Point at the property itself where the schema names it, as a form would.
			switch k := e.ErrorKind.(type) {
			case *kind.Required:
				for _, name := range k.Missing {
					out = append(out, fieldError{Field: shortError(jsonPointer(append(slices.Clip(e.InstanceLocation), name))), Error: "required property is missing"})
				}
				return
			case *kind.AdditionalProperties:
				for _, name := range slices.Sorted(slices.Values(k.Properties)) {
					out = append(out, fieldError{Field: shortError(jsonPointer(append(slices.Clip(e.InstanceLocation), name))), Error: "property is not allowed"})
				}
				return
			}
			msg := "invalid"
			if u := e.BasicOutput(); u.Error != nil {
				msg = u.Error.String()
			}
			out = append(out, fieldError{Field: shortError(jsonPointer(e.InstanceLocation)), Error: shortError(msg)})
			return
		}
		// The library lists the causes of an object's properties in map order: sorted, the same
		// body always gets the same errors, and the same ten when there are more.
		causes := slices.SortedStableFunc(slices.Values(e.Causes), func(a, b *jsonschema.ValidationError) int {
			return slices.Compare(a.InstanceLocation, b.InstanceLocation)
		})
		for _, c := range causes {
			walk(c)
		}
	}
	walk(ve)
	return out[:min(len(out), maxFieldErrors)]
}

// jsonPointer writes an instance location as a JSON pointer ("/" for the whole body).
func jsonPointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
)

// responseType names an error the gateway itself produces, as AWS API Gateway's gateway
// responses do (gateway_responses keys; config.GatewayResponseTypes lists them).
type responseType = string

// The gateway responses. Each has a default status and message; gateway_responses overrides
// them per type, and DEFAULT_4XX / DEFAULT_5XX per class.
const (
	respUnauthorized      = config.RespUnauthorized         // 401: missing or invalid token
	respAccessDenied      = config.RespAccessDenied         // 403: token lacks a scope
	respInvalidAPIKey     = config.RespInvalidAPIKey        // 403: missing or unknown API key
	respThrottled         = config.RespThrottled            // 429: a token bucket is empty
	respQuotaExceeded     = config.RespQuotaExceeded        // 429: the usage plan's quota is used up
	respStoreUnavailable  = config.RespThrottleStoreError   // 503: on_store_error: deny and the store failed
	respAuthorizerError   = config.RespAuthorizerFailure    // 503: no JWKS keys could be loaded
	respBadRequest        = config.RespBadRequest           // 400: malformed path (a ".." segment)
	respBadBody           = config.RespBadRequestBody       // 400: the body fails the route's schema
	respBadParameters     = config.RespBadRequestParameters // 400: a required header or query parameter is missing
	respTooLarge          = config.RespRequestTooLarge      // 413: the body is over max_body_bytes
	respRequestTimeout    = config.RespRequestTimeout       // 408: the body did not arrive in time
	respHeadersTooLarge   = config.RespHeaderFieldsTooLarge // 431: the headers are over max_header_bytes
	respIntegrationFailed = config.RespIntegrationFailure   // 502: the backend cannot be reached
	respIntegrationTimout = config.RespIntegrationTimeout   // 504: the backend did not answer in time
	respMissingRoute      = config.RespMissingRoute         // 404: no route matches the path
	respMethodNotAllowed  = config.RespMethodNotAllowed     // 405: the path matches, the method does not
	respCORSRejected      = config.RespCORSRejected         // 403: enforce mode refused the origin
	respWAFBlocked        = config.RespWAFBlocked           // 403: the web ACL blocked the request
	respInternal          = config.RespInternalServerFailure
)

type responseDefault struct {
	status  int
	message string
}

var responseDefaults = map[responseType]responseDefault{
	respUnauthorized:      {http.StatusUnauthorized, "Unauthorized"},
	respAccessDenied:      {http.StatusForbidden, "Forbidden"},
	respInvalidAPIKey:     {http.StatusForbidden, "Forbidden"},
	respThrottled:         {http.StatusTooManyRequests, "Too Many Requests"},
	respQuotaExceeded:     {http.StatusTooManyRequests, "Limit Exceeded"},
	respStoreUnavailable:  {http.StatusServiceUnavailable, "Service Unavailable"},
	respAuthorizerError:   {http.StatusServiceUnavailable, "Service Unavailable"},
	respBadRequest:        {http.StatusBadRequest, "Bad Request"},
	respBadBody:           {http.StatusBadRequest, "Invalid request body"},
	respBadParameters:     {http.StatusBadRequest, "Missing required request parameters"},
	respTooLarge:          {http.StatusRequestEntityTooLarge, "Request Entity Too Large"},
	respRequestTimeout:    {http.StatusRequestTimeout, "Request Timeout: the request body did not arrive in time"},
	respHeadersTooLarge:   {http.StatusRequestHeaderFieldsTooLarge, "Request Header Fields Too Large"},
	respIntegrationFailed: {http.StatusBadGateway, "Bad Gateway"},
	respIntegrationTimout: {http.StatusGatewayTimeout, "Endpoint request timed out"},
	respMissingRoute:      {http.StatusNotFound, "Not Found"},
	respMethodNotAllowed:  {http.StatusMethodNotAllowed, "Method Not Allowed"},
	respCORSRejected:      {http.StatusForbidden, "CORS: origin not allowed"},
	respWAFBlocked:        {http.StatusForbidden, "Forbidden"},
	respInternal:          {http.StatusInternalServerError, "Internal Server Error"},
}

// fieldError is one failed check of request validation: the field (a JSON pointer into the
// body, or "header:NAME" / "query:NAME") and what is wrong with it.
type fieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// override is one compiled gateway_responses entry.
type override struct {
	status  int    // 0: the type's own
	body    []byte // the body template; nil: the default JSON
	rawBody bool   // body is a string sent as it is, not JSON
	headers [][2]string
}

// responses is a gateway's compiled gateway_responses.
type responses struct {
	byType map[responseType]*override
}

func compileResponses(cfg map[string]config.GatewayResponse) *responses {
	rs := &responses{byType: map[responseType]*override{}}
	for name, c := range cfg {
		o := &override{status: c.Status}
		if c.Body.IsSet() {
			if s, ok := c.Body.String(); ok {
				o.body, o.rawBody = []byte(s), true
			} else {
				o.body = c.Body.JSON
			}
		}
		for _, k := range slices.Sorted(mapsKeys(c.Headers)) {
			o.headers = append(o.headers, [2]string{http.CanonicalHeaderKey(k), c.Headers[k]})
		}
		rs.byType[name] = o
	}
	return rs
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// lookup is the override that applies to type t with status: its own, else its class default.
func (rs *responses) lookup(t responseType, status int) *override {
	if rs == nil {
		return nil
	}
	if o := rs.byType[t]; o != nil {
		return o
	}
	if status >= 500 {
		return rs.byType[config.RespDefault5XX]
	}
	return rs.byType[config.RespDefault4XX]
}

// replyOpts carry what a response needs beyond its type.
type replyOpts struct {
	message string       // replaces the type's default message
	errors  []fieldError // request validation failures
}

// reply writes the gateway response t. Headers set before (CORS, request id, Retry-After,
// WWW-Authenticate) stay on it.
func reply(w http.ResponseWriter, r *http.Request, t responseType) {
	replyWith(w, r, t, replyOpts{})
}

func replyWith(w http.ResponseWriter, r *http.Request, t responseType, opts replyOpts) {
	ex := exchangeFrom(r.Context())
	d := responseDefaults[t]
	if d.status == 0 {
		d = responseDefaults[respInternal]
	}
	msg := opts.message
	if msg == "" {
		msg = d.message
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	o := ex.responses.lookup(t, d.status)
	status := d.status
	var body []byte
	if o == nil || o.body == nil {
		body = defaultBody(msg, opts.errors)
	} else {
		body = expandResponse(o.body, !o.rawBody, t, msg, ex.id, opts.errors)
	}
	if o != nil {
		// A class default (DEFAULT_4XX, DEFAULT_5XX) reshapes the body and headers; each type
		// keeps its own status unless its own entry sets one.
		if o.status != 0 && o == ex.responses.byType[t] {
			status = o.status
		}
		for _, kv := range o.headers {
			h.Set(kv[0], string(expandResponse([]byte(kv[1]), false, t, msg, ex.id, opts.errors)))
		}
	}
	ex.errorType = t
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func defaultBody(msg string, errs []fieldError) []byte {
	body, _ := json.Marshal(struct {
		Message string       `json:"message"`
		Errors  []fieldError `json:"errors,omitempty"`
	}{msg, errs})
	return append(body, '\n')
}

// expandResponse fills the ${…} references of a gateway response template. In a JSON body the
// values are inserted JSON-escaped, since every reference sits inside a JSON string.
func expandResponse(tmpl []byte, inJSON bool, t responseType, msg, requestID string, errs []fieldError) []byte {
	if !bytes.Contains(tmpl, []byte("${")) {
		return tmpl
	}
	value := func(ref string) (string, bool) {
		switch ref {
		case "context.requestId":
			return requestID, true
		case "context.error.message":
			return msg, true
		case "context.error.type":
			return t, true
		case "context.error.validationErrorString":
			parts := make([]string, len(errs))
			for i, e := range errs {
				parts[i] = e.Field + ": " + e.Error
			}
			return strings.Join(parts, "; "), true
		}
		return "", false
	}
	var out bytes.Buffer
	rest := tmpl
	for {
		i := bytes.Index(rest, []byte("${"))
		if i < 0 {
			out.Write(rest)
			break
		}
		end := bytes.IndexByte(rest[i:], '}')
		if end < 0 {
			out.Write(rest)
			break
		}
		out.Write(rest[:i])
		v, ok := value(string(rest[i+2 : i+end]))
		if !ok {
			out.Write(rest[i : i+end+1])
		} else if inJSON {
			q, _ := json.Marshal(v)
			out.Write(q[1 : len(q)-1])
		} else {
			out.WriteString(v)
		}
		rest = rest[i+end+1:]
	}
	return out.Bytes()
}

// seconds rounds d up to whole seconds, at least 1, for Retry-After and RateLimit-Reset.
func seconds(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(int64(s), 10)
}

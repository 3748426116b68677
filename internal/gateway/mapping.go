package gateway

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// mapping is one compiled request_headers entry.
type mapping struct {
	name  string // canonical header name
	parts []mappingPart
}

type mappingPart struct {
	kind    config.RefKind
	text    string
	keyring *originverify.Keyring // for RefSecret and RefSigned
}

// mappedHeader is a mapping's value for one request. A signed origin-verify token covers the
// outbound request line, which is known only once the proxy has rewritten the URL, so it is made
// in applyMappings from signer instead of here.
type mappedHeader struct {
	name, value string
	signer      *originverify.Keyring
}

func compileMappings(hm []config.HeaderMapping, keyrings map[string]*originverify.Keyring) ([]mapping, error) {
	var out []mapping
	for _, h := range hm {
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return nil, fmt.Errorf("request_headers: %q is not a header name", h.Name)
		}
		m := mapping{name: name}
		for _, p := range h.Value.Parts {
			mp := mappingPart{kind: p.Kind, text: p.Text}
			if p.Kind == config.RefSecret || p.Kind == config.RefSigned {
				k := keyrings[p.Text]
				if k == nil {
					return nil, fmt.Errorf("request_headers %s: secret %q has no keyring", h.Name, p.Text)
				}
				mp.keyring = k
			}
			if p.Kind == config.RefSigned && len(h.Value.Parts) != 1 {
				return nil, fmt.Errorf("request_headers %s: ${signed:%s} must be the whole value", h.Name, p.Text)
			}
			m.parts = append(m.parts, mp)
		}
		out = append(out, m)
	}
	return out, nil
}

// evaluateMappings appends every mapping's value from the inbound request to out.
func evaluateMappings(out []mappedHeader, ms []mapping, r *http.Request, requestID string) []mappedHeader {
	for i := range ms {
		m := &ms[i]
		if len(m.parts) == 1 && m.parts[0].kind == config.RefSigned {
			out = append(out, mappedHeader{name: m.name, signer: m.parts[0].keyring})
			continue
		}
		out = append(out, mappedHeader{name: m.name, value: mappingValue(m, r, requestID)})
	}
	return out
}

// mappingValue is the value of an unsigned mapping for request r.
func mappingValue(m *mapping, r *http.Request, requestID string) string {
	if len(m.parts) == 1 {
		// One part, as a header set to a secret or the request id is: its value as it is (a
		// strings.Builder copied it into a new allocation).
		switch p := &m.parts[0]; p.kind {
		case config.RefLiteral:
			return p.text
		case config.RefSecret:
			return p.keyring.Current().Secret
		case config.RefRequestID:
			return requestID
		}
	}
	var b strings.Builder
	for _, p := range m.parts {
		switch p.kind {
		case config.RefLiteral:
			b.WriteString(p.text)
		case config.RefSecret:
			b.WriteString(p.keyring.Current().Secret)
		case config.RefRequestID:
			b.WriteString(requestID)
		case config.RefSourceIP:
			b.WriteString(peerIP(r))
		case config.RefRequestHeader:
			b.WriteString(strings.Join(r.Header.Values(p.text), ", "))
		case config.RefClaim, config.RefAPIKeyID:
			b.WriteString(identityValue(r, p.kind, p.text)) // access.go
		}
	}
	return b.String()
}

// applyMappings gives mapped headers overwrite semantics on the outbound request's header: every
// copy of a mapped name is removed, whatever its case and whether it is spelled with "_" or "-",
// then the gateway's value is set. An empty value (such as a ${request.header.NAME} the client
// did not send) leaves the header absent. It runs after the outbound URL is final, so that a
// signed token covers what is actually sent.
//
// The "_" spelling matters because CGI, WSGI, Rack and PHP backends expose both X-User and X_User
// as HTTP_X_USER: a client X_User that survived would stand in for, or shadow, the gateway's.
func (g *Gateway) applyMappings(out *http.Request, ex *exchange) {
	h := out.Header
	ms := g.mappings
	if ex.route != nil {
		ms = ex.route.mappings // the gateway's merged with the route's (edge.go)
	}
	for k := range h {
		for _, m := range ms {
			if sameHeaderCGI(k, m.name) {
				delete(h, k)
				break
			}
		}
	}
	// One backing array for every value, each header getting a one-element slice of it (capped,
	// so that an append elsewhere copies): one allocation per request instead of one per header.
	values := make([]string, len(ex.mapped))
	for i, mh := range ex.mapped {
		if mh.signer != nil {
			host := out.Host
			if host == "" {
				host = out.URL.Host
			}
			mh.value = mh.signer.Sign(out.Method, host, out.URL.RequestURI(), time.Now())
		}
		if mh.value != "" {
			values[i] = mh.value
			h[mh.name] = values[i : i+1 : i+1]
		}
	}
}

// sameHeaderCGI reports whether header names a and b are the same once "_" is read as "-" and
// ASCII case is ignored: the name a CGI-style backend (HTTP_X_USER) gives both.
func sameHeaderCGI(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

package config

import (
	"fmt"
	"net/textproto"
	"strings"
)

// RefKind says what a ${…} reference in a header template stands for.
type RefKind int

// Reference kinds. Env references are resolved at load time; the others at request time.
const (
	RefLiteral       RefKind = iota // plain text, in Part.Text
	RefSecret                       // ${secret:NAME}: the current key of keyring NAME
	RefRequestID                    // ${context.requestId}
	RefSourceIP                     // ${context.sourceIp}: the TCP peer's address
	RefRequestHeader                // ${request.header.NAME}: an inbound header's value
	RefSigned                       // ${signed:NAME}: a signed origin-verify token made with keyring NAME
	RefClaim                        // ${context.authorizer.claims.NAME}: a claim of the request's verified JWT
	RefAPIKeyID                     // ${context.identity.apiKeyId}: the id (never the value) of the request's API key
)

// Part is one piece of a Template.
type Part struct {
	Kind RefKind
	// Text is the literal for RefLiteral; the secret name for RefSecret and RefSigned; the canonical header
	// name for RefRequestHeader.
	Text string
}

// Template is a parsed header value such as "${secret:origin-verify}" or "id=${context.requestId}".
type Template struct {
	Raw   string
	Parts []Part
}

// ParseTemplate parses s. lookupEnv resolves ${env:NAME} at parse time; it reports false when
// the variable is unset, which is an error (an empty secret header is worse than a failed start).
func ParseTemplate(s string, lookupEnv func(string) (string, bool)) (Template, error) {
	t := Template{Raw: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.Parts = append(t.Parts, Part{Kind: RefLiteral, Text: lit.String()})
			lit.Reset()
		}
	}
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			lit.WriteString(rest)
			break
		}
		lit.WriteString(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return Template{}, fmt.Errorf("unterminated reference %q: close it with }", rest[i:])
		}
		ref := rest[i+2 : i+end]
		rest = rest[i+end+1:]
		switch {
		case strings.HasPrefix(ref, "secret:"):
			name := strings.TrimPrefix(ref, "secret:")
			if name == "" {
				return Template{}, fmt.Errorf("empty secret name in ${%s}: write ${secret:NAME}", ref)
			}
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefSecret, Text: name})
		case strings.HasPrefix(ref, "signed:"):
			name := strings.TrimPrefix(ref, "signed:")
			if name == "" {
				return Template{}, fmt.Errorf("empty secret name in ${%s}: write ${signed:NAME}", ref)
			}
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefSigned, Text: name})
		case strings.HasPrefix(ref, "env:"):
			name := strings.TrimPrefix(ref, "env:")
			v, ok := lookupEnv(name)
			if !ok {
				return Template{}, fmt.Errorf("environment variable %s is not set (referenced as ${%s})", name, ref)
			}
			lit.WriteString(v)
		case ref == "context.requestId":
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefRequestID})
		case ref == "context.sourceIp":
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefSourceIP})
		case strings.HasPrefix(ref, "context.authorizer.claims."):
			name := strings.TrimPrefix(ref, "context.authorizer.claims.")
			if name == "" {
				return Template{}, fmt.Errorf("empty claim name in ${%s}: write ${context.authorizer.claims.NAME}", ref)
			}
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefClaim, Text: name})
		case ref == "context.identity.apiKeyId":
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefAPIKeyID})
		case strings.HasPrefix(ref, "request.header."):
			name := strings.TrimPrefix(ref, "request.header.")
			if name == "" {
				return Template{}, fmt.Errorf("empty header name in ${%s}: write ${request.header.NAME}", ref)
			}
			flush()
			t.Parts = append(t.Parts, Part{Kind: RefRequestHeader, Text: textproto.CanonicalMIMEHeaderKey(name)})
		default:
			return Template{}, fmt.Errorf("unknown reference ${%s}: write one of ${secret:NAME}, ${signed:NAME}, ${env:NAME}, ${context.requestId}, ${context.sourceIp}, ${request.header.NAME}", ref)
		}
	}
	flush()
	return t, nil
}

// Secrets returns the names of the keyrings the template references.
func (t Template) Secrets() []string {
	var names []string
	for _, p := range t.Parts {
		if p.Kind == RefSecret || p.Kind == RefSigned {
			names = append(names, p.Text)
		}
	}
	return names
}

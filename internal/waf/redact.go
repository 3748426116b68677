package waf

import "strings"

// WithRedactedHeaders names more headers whose matched values the WAF log and the recent-matches
// sample never show, besides the built-in credential headers (Authorization, Cookie, X-Api-Key,
// …) and the origin_verify headers. A gateway passes its api_keys.header: its web ACL runs before
// authorization, so a rule that matches in the key header would otherwise log the raw key.
func WithRedactedHeaders(names ...string) Option {
	return func(o *options) {
		for _, n := range names {
			if n = strings.TrimSpace(n); n != "" {
				o.redact = append(o.redact, strings.ToLower(n))
			}
		}
	}
}

// credentialParamWords redact a parameter (query argument, form field, JSON member, CRS ARGS:…
// name) whose name contains one of them, such as new_password or csrf_token.
var credentialParamWords = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
	"access_key", "accesskey", "credential", "private_key", "signature", "session", "sessid",
	"authorization",
}

// credentialParamNames redact a parameter with exactly one of these names: short words that are
// credentials as a name of their own but too common inside other names.
var credentialParamNames = []string{
	"key", "pwd", "pass", "pin", "otp", "code", "sid", "auth", "jwt", "sig", "bearer", "csrf", "xsrf",
}

// isCredentialParam reports whether a parameter name names a credential. name may be a path
// (a Coraza JSON path such as json.user.password, or a PHP-style user[password]): any segment
// counts. Redacting too much costs a less useful log line; too little, a leaked credential.
func isCredentialParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range credentialParamWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	for seg := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		for _, n := range credentialParamNames {
			if seg == n {
				return true
			}
		}
	}
	return false
}

// mentionsCredential reports whether a value of a whole-container field (the query string, the
// body, the URI) carries a credential parameter: name=… or "name" for a name of
// credentialParamNames, or any of credentialParamWords, as written or URL-decoded (tok%65n=).
func mentionsCredential(value string) bool {
	return mentionsCredentialText(strings.ToLower(value)) || mentionsCredentialText(strings.ToLower(urlDecode(value, true)))
}

func mentionsCredentialText(v string) bool {
	for _, w := range credentialParamWords {
		if strings.Contains(v, w) {
			return true
		}
	}
	for _, n := range credentialParamNames {
		if strings.Contains(v, n+"=") || strings.Contains(v, `"`+n+`"`) {
			return true
		}
	}
	return false
}

// redactedField reports whether the value matched in field must not be logged: field is the
// name the match was recorded under, such as header:X-Api-Key, query_argument:token,
// json_body:password, ARGS:access_token or REQUEST_HEADERS:Authorization; value is what matched.
func (a *WebACL) redactedField(field, value string) bool {
	lf := strings.ToLower(field)
	for _, h := range a.secretHeaders {
		if strings.Contains(lf, strings.ToLower(h)) {
			return true
		}
	}
	for _, h := range credentialHeaders {
		if strings.Contains(lf, h) {
			return true
		}
	}
	i := strings.IndexByte(field, ':')
	if i < 0 {
		// A whole container (query_string, body, uri_path, a CRS REQUEST_BODY or REQUEST_URI).
		return mentionsCredential(value)
	}
	// The parameter is what follows the kind, and for header:, cookie: and the CRS
	// REQUEST_HEADERS: / REQUEST_COOKIES: the name of a header or cookie.
	return isCredentialParam(field[i+1:])
}

package cors

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-edge/rampart/internal/reliability"
)

// TestBypassCorpus holds origins that attackers use against allow lists; none may match
// https://app.example.com or https://*.example.com. The list follows the classic CORS
// misconfiguration write-ups: suffix and prefix tricks, scheme and port changes, trailing dots,
// userinfo, encodings, look-alike Unicode and punycode, null, and sheer size.
func TestBypassCorpus(t *testing.T) {
	m, err := NewMatcher([]string{"https://app.example.com", "https://*.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	mustNotMatch := []string{
		"https://example.com",                  // the wildcard needs a label
		"https://example.com.evil.net",         // suffix appended
		"https://app.example.com.evil.net",     // suffix appended to an exact origin
		"https://evilexample.com",              // prefix glued to the domain
		"https://evil-example.com",             //
		"https://app.example.co",               // truncated
		"https://app.example.comm",             //
		"http://app.example.com",               // scheme downgrade
		"http://a.example.com",                 // scheme downgrade on the wildcard
		"wss://app.example.com",                // other scheme
		"https://app.example.com:444",          // other port
		"https://a.example.com:8443",           //
		"https://app.example.com.",             // trailing dot: another origin to a browser
		"https://a.example.com.",               //
		"null",                                 // sandboxed iframes, file://, redirects
		"",                                     //
		"https://user@app.example.com",         // userinfo
		"https://app.example.com@evil.net",     //
		"https://evil.net#app.example.com",     // fragment
		"https://evil.net?app.example.com",     // query
		"https://evil.net/app.example.com",     // path
		"https://app.example.com/",             // even a bare path
		"https://app%2eexample.com",            // percent-encoding
		"https://app.example.com%00",           // NUL
		"https://app.example.com\x00",          //
		"https://app.example.com\r\n",          // header splitting
		" https://app.example.com",             // whitespace
		"https://app.example.com ",             //
		"https://app.example.com, https://x.y", // a list in one header
		"https://аpp.example.com",              // Cyrillic а (U+0430)
		"https://app.exаmple.com",              // Cyrillic а in the registrable domain
		"https://xn--pp-7ja.example.com.evil.net",
		"https://xn--exmple-4nf.com",      // punycode of a look-alike of example.com
		"https://*.example.com",           // the pattern itself is not an origin
		"https://app.example.com:443:443", //
		"https://app.example.com:0443",    // leading zero port
		"https://[::1]",                   // IP literals never match a wildcard
		"https://127.0.0.1",               //
		"https://" + strings.Repeat("a.", 5000) + "example.com.evil.net",
		"https://" + strings.Repeat("a", 100000) + ".example.com.",
	}
	bypassed, refused := 0, 0
	for _, o := range mustNotMatch {
		if m.Match(o) {
			bypassed++
			t.Errorf("origin %q matched the allow list", truncate(o))
		}
	}

	// Decided and documented (docs/gateway.md): host names compare case-insensitively, as RFC 6454
	// says; browsers always send lowercase, so only non-browser clients send other cases.
	// Subdomains at any depth match the wildcard; the default port may be written out.
	mustMatch := []string{
		"https://app.example.com",
		"https://a.example.com",
		"https://a.b.example.com",
		"https://APP.EXAMPLE.COM",
		"https://app.example.com:443",
		"https://xn--80ak6aa92e.example.com", // punycode labels are ordinary labels under the domain
	}
	for _, o := range mustMatch {
		if !m.Match(o) {
			refused++
			t.Errorf("origin %q did not match", o)
		}
	}
	reliability.Record(t, reliability.Scenario{Area: "CORS bypass corpus", Name: "allow list https://app.example.com, https://*.example.com",
		Expected: fmt.Sprintf("none of %d attack origins matches; %d legitimate forms (case, explicit :443, deeper subdomains, punycode label) match", len(mustNotMatch), len(mustMatch)),
		Measured: fmt.Sprintf("%d attack origins matched, %d legitimate ones did not", bypassed, refused),
		Sent:     len(mustNotMatch) + len(mustMatch), Failed: refused, Leaked: int64(bypassed)})
}

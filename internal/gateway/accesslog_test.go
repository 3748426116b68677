package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// accessLine polls logs for the access line of the request with id and returns it decoded.
func accessLine(t *testing.T, logs *syncBuffer, id string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "request" && e["request_id"] == id {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

func TestAccessLogAPIKeyAndLatency(t *testing.T) {
	f, _ := newKeysFixture(t, "memory")
	r := f.do("GET", "/a", "X-Api-Key", keyAcme)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	line := accessLine(t, f.logs, r.header.Get("X-Request-Id"))
	if line["api_key_id"] != "acme" {
		t.Errorf("api_key_id = %v, want acme", line["api_key_id"])
	}
	if lat, ok := line["integration_latency"].(float64); !ok || lat <= 0 {
		t.Errorf("integration_latency = %v, want a positive duration", line["integration_latency"])
	}
	if _, ok := line["jwt_sub"]; ok {
		t.Errorf("jwt_sub logged without an authorizer: %v", line)
	}

	// Refused before the backend: no key id (none authenticated), no integration latency.
	r = f.do("GET", "/a", "X-Api-Key", "nope-0123456789abcdefghij")
	line = accessLine(t, f.logs, r.header.Get("X-Request-Id"))
	for _, k := range []string{"api_key_id", "integration_latency"} {
		if _, ok := line[k]; ok {
			t.Errorf("refused request logs %s: %v", k, line)
		}
	}
	if strings.Contains(f.logs.String(), keyAcme) || strings.Contains(f.logs.String(), "nope-0123456789abcdefghij") {
		t.Fatalf("a key value reached the logs:\n%s", f.logs)
	}
}

func TestAccessLogJWTSubject(t *testing.T) {
	s := newSigner(t, "ES256", "ec1")
	js := &jwksServer{}
	js.set(jwksJSON(s))
	srv := httptest.NewServer(js)
	t.Cleanup(srv.Close)
	f := newAccessFixture(t, strings.Replace(jwtYAML, "%SOURCE%", "jwks_url: "+srv.URL, 1))
	tok := s.token(t, goodClaims())
	r := f.do("GET", "/items", "Authorization", "Bearer "+tok)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	line := accessLine(t, f.logs, r.header.Get("X-Request-Id"))
	if line["jwt_sub"] != "alice" {
		t.Errorf("jwt_sub = %v, want alice", line["jwt_sub"])
	}
	if _, ok := line["api_key_id"]; ok {
		t.Errorf("api_key_id logged without API keys: %v", line)
	}
	// A rejected token names no subject.
	r = f.do("GET", "/items", "Authorization", "Bearer "+s.token(t, map[string]any{"sub": "mallory"}))
	if r.status != 401 {
		t.Fatalf("bad token: %d", r.status)
	}
	if line := accessLine(t, f.logs, r.header.Get("X-Request-Id")); line["jwt_sub"] != nil {
		t.Errorf("jwt_sub = %v on a 401", line["jwt_sub"])
	}
	if strings.Contains(f.logs.String(), tok[strings.LastIndexByte(tok, '.')+1:]) || strings.Contains(f.logs.String(), "mallory") {
		t.Fatal("a token or an unverified subject reached the logs")
	}
}

func TestTruncateUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"日本", 4, "日"}} {
		if got := truncateUTF8(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

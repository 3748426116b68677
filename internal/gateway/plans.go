package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/ratelimit"
)

// maxAPIKeyBytes bounds an API key header value.
const maxAPIKeyBytes = 256

// plan is a compiled usage plan.
type plan struct {
	name   string
	rules  []throttleRule // the plan's throttle, per key (none or one)
	quota  int64
	period ratelimit.Period
}

// apiKey is a known key: its id (what logs and throttle keys use) and its plan.
type apiKey struct {
	id   string
	plan *plan
}

// keyFile is the API key file: {"keys": [{"id": "acme", "value": "…"}]}. A key with
// "enabled": false is refused like an unknown key.
type keyFile struct {
	Keys []struct {
		ID      string `json:"id"`
		Value   string `json:"value"`
		Enabled *bool  `json:"enabled"`
	} `json:"keys"`
}

// loadAPIKeys reads the key file and indexes the keys by the SHA-256 of their value, so that a
// lookup compares digests (a timing difference tells nothing about a key) and the values
// themselves are not kept. Keys in no plan are left out, with a warning that names their id.
func loadAPIKeys(cfg config.Gateway, logger *slog.Logger) (map[[32]byte]*apiKey, error) {
	plans := map[string]*plan{} // key id → plan
	for _, up := range cfg.UsagePlans {
		p := &plan{name: up.Name}
		if t := up.Throttle; t != nil {
			p.rules = []throttleRule{{prefix: fmt.Sprintf("p|%s|%s|%g/%d|", cfg.Name, up.Name, t.Rate, t.Burst),
				kind: keyAPIKey, limit: ratelimit.Limit{Rate: t.Rate, Burst: t.Burst}}}
		}
		if q := up.Quota; q != nil {
			p.quota, p.period = q.Limit, ratelimit.Period(q.Period)
		}
		for _, id := range up.Keys {
			plans[id] = p
		}
	}
	data, err := os.ReadFile(cfg.APIKeys.File)
	if err != nil {
		return nil, fmt.Errorf("api_keys: %w (the file lists keys as {\"keys\": [{\"id\": \"acme\", \"value\": \"…\"}]})", err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		// The error of a JSON syntax error quotes no input, but a type error could: say only where.
		return nil, fmt.Errorf("api_keys: %s is not a key file: want {\"keys\": [{\"id\": \"acme\", \"value\": \"…\"}]}", cfg.APIKeys.File)
	}
	out := map[[32]byte]*apiKey{}
	seen := map[string]bool{}
	for i, k := range f.Keys {
		switch {
		case k.ID == "":
			return nil, fmt.Errorf("api_keys: %s: key %d has no id", cfg.APIKeys.File, i)
		case seen[k.ID]:
			return nil, fmt.Errorf("api_keys: %s: key id %q is listed twice", cfg.APIKeys.File, k.ID)
		case len(k.Value) < 20 || len(k.Value) > maxAPIKeyBytes || !validKeyValue(k.Value):
			return nil, fmt.Errorf("api_keys: %s: key %q: a value is 20 to %d printable ASCII characters without spaces", cfg.APIKeys.File, k.ID, maxAPIKeyBytes)
		}
		seen[k.ID] = true
		sum := sha256.Sum256([]byte(k.Value))
		if _, dup := out[sum]; dup {
			return nil, fmt.Errorf("api_keys: %s: key %q has the same value as another key", cfg.APIKeys.File, k.ID)
		}
		if k.Enabled != nil && !*k.Enabled {
			continue
		}
		p := plans[k.ID]
		if p == nil {
			logger.Warn("API key is in no usage plan and will be refused", "key_id", k.ID)
			continue
		}
		out[sum] = &apiKey{id: k.ID, plan: p}
	}
	var missing []string
	for id := range plans {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	for _, id := range missing {
		logger.Warn("usage plan names a key id that the key file does not have", "key_id", id)
	}
	return out, nil
}

// validKeyValue: printable ASCII, no space.
func validKeyValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// apiKeyValue extracts the key from the header's values: exactly one value, surrounding spaces
// ignored, within maxAPIKeyBytes, printable ASCII. Anything else is no key.
func apiKeyValue(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	v := values[0]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	if v == "" || len(v) > maxAPIKeyBytes || !validKeyValue(v) {
		return "", false
	}
	return v, true
}

// lookupKey finds the key whose value the client sent.
func lookupKey(keys map[[32]byte]*apiKey, value string) *apiKey {
	return keys[sha256.Sum256([]byte(value))]
}

// quotaKey is the counter of a key's quota in its plan: changing a key's plan starts a new count.
func quotaKey(gateway string, k *apiKey) string {
	return "quota|" + gateway + "|" + k.plan.name + "|" + k.id
}

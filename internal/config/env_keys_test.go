package config

import (
	"strings"
	"testing"
)

// TestEnvInMappingKeys: a file shared by many hosts takes target addresses from the environment,
// and the weights keyed by those targets must follow them.
func TestEnvInMappingKeys(t *testing.T) {
	const file = `version: 1
load_balancers:
  - name: alb
    listeners:
      - listen: 127.0.0.1:18081
        default_action: {forward: {target_group: items}}
    target_groups:
      - name: items
        algorithm: weighted_random
        targets: ["${env:APP_1}", "${env:APP_2}"]
        weights: {"${env:APP_1}": 3, "${env:APP_2}": 1}
`
	env := map[string]string{"APP_1": "10.0.2.11:9001", "APP_2": "10.0.2.12:9001"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := Parse("shared.yaml", []byte(file), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	w := cfg.LoadBalancers[0].TargetGroups[0].Weights
	if w["10.0.2.11:9001"] != 3 || w["10.0.2.12:9001"] != 1 || len(w) != 2 {
		t.Fatalf("weights = %v", w)
	}
	delete(env, "APP_2")
	_, err = Parse("shared.yaml", []byte(file), lookup)
	if err == nil || !strings.Contains(err.Error(), `environment variable "APP_2" is not set`) {
		t.Fatalf("unset variable in a key: %v", err)
	}
}

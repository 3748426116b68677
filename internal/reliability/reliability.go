// Package reliability records what the reliability suite measured, so that docs/reliability.md is
// produced by the suite itself rather than written by hand.
//
// A test describes each scenario it runs (what must hold and what it measured) with Record. When
// the environment variable RAMPART_RELIABILITY_REPORT names a file, the scenario is appended to it
// as one JSON line once the test has finished, with the test's verdict; otherwise Record does
// nothing, so ordinary test runs write no file. bench/reliability-report turns the lines into the
// table in docs/reliability.md.
package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// EnvReport is the environment variable naming the JSON-lines file scenarios are appended to.
const EnvReport = "RAMPART_RELIABILITY_REPORT"

// Scenario is one row of the report.
type Scenario struct {
	Area     string `json:"area"`     // "isolation", "faults", "hostile", "fuzz", "soak", …
	Name     string `json:"name"`     // what was done, e.g. "target killed mid-load"
	Expected string `json:"expected"` // the outcome that must hold
	Measured string `json:"measured"` // what was observed, in words and numbers

	Sent    int   `json:"sent"`    // requests (or inputs) sent
	Failed  int   `json:"failed"`  // requests that failed in a way the scenario counts as a failure
	Leaked  int64 `json:"leaked"`  // requests or bytes that reached something they must not
	Crashes int   `json:"crashes"` // processes that died on their own

	// Gap marks a scenario that measured a known, documented shortfall which does not fail the
	// test (the Measured text says what it is); the report shows it as a gap, not as holding.
	Gap bool `json:"gap,omitempty"`

	Pass bool      `json:"pass"` // filled in from the test's verdict
	Test string    `json:"test"` // filled in: the test that recorded it
	At   time.Time `json:"at"`   // filled in
}

// mu serialises appends from parallel tests of one process; O_APPEND keeps lines from separate
// processes (packages run in parallel by go test) whole, as each line is one write.
var mu sync.Mutex

// Record appends s to the report file, if one is configured, when t finishes. Pass is true when
// t has not failed by then; a skipped test records nothing.
func Record(t testing.TB, s Scenario) {
	t.Helper()
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	t.Cleanup(func() {
		if t.Skipped() {
			return
		}
		s.Pass = !t.Failed()
		s.Test = t.Name()
		s.At = time.Now().UTC()
		if err := Append(path, s); err != nil {
			t.Errorf("reliability report: %v", err)
		}
	})
}

// Append writes s to path as one JSON line. Programs outside tests (bench/soak) use it directly.
func Append(path string, s Scenario) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encoding scenario %q: %w", s.Name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// Read returns every scenario of a JSON-lines report file.
func Read(path string) ([]Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Scenario
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var s Scenario
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("%s: scenario %d: %w", path, len(out)+1, err)
		}
		out = append(out, s)
	}
	return out, nil
}

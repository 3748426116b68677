package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	// The settings are process-wide: restore them.
	percent0 := debug.SetGCPercent(100)
	limit0 := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent0)
		debug.SetMemoryLimit(limit0)
	})
	const mib = 1 << 20
	for name, tc := range map[string]struct {
		s           gcSettings
		env         map[string]string
		wantPercent int
		minLimit    int64 // the automatic limit may be above the default (twice the live heap)
		wantLimit   int64 // exact when set
	}{
		"defaults":            {wantPercent: defaultGCPercent, minLimit: defaultMemoryLimitMiB * mib},
		"GOGC and GOMEMLIMIT": {env: map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}, wantPercent: 100, wantLimit: math.MaxInt64},
		"flags win over env":  {s: gcSettings{percent: 250, memoryLimitMiB: 100}, env: map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}, wantPercent: 250, wantLimit: 100 * mib},
		"off":                 {s: gcSettings{percent: -1, memoryLimitMiB: -1}, wantPercent: -1, wantLimit: math.MaxInt64},
	} {
		t.Run(name, func(t *testing.T) {
			// What the runtime would have applied from the environment: here, its defaults.
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			tuneGC(tc.s, func(k string) string { return tc.env[k] }, slog.New(slog.DiscardHandler))
			percent := debug.SetGCPercent(100)
			limit := debug.SetMemoryLimit(-1)
			if percent != tc.wantPercent {
				t.Errorf("gc percent %d, want %d", percent, tc.wantPercent)
			}
			switch {
			case tc.wantLimit != 0 && limit != tc.wantLimit:
				t.Errorf("memory limit %d, want %d", limit, tc.wantLimit)
			case tc.minLimit != 0 && (limit < tc.minLimit || limit == math.MaxInt64):
				t.Errorf("memory limit %d, want at least %d", limit, tc.minLimit)
			}
		})
	}
}

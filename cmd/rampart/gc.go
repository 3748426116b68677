package main

import (
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
)

// Garbage collector defaults of the serving commands (docs/performance.md). A proxy's live heap is
// small (a few MiB) while it allocates tens of KB per request, so Go's default GOGC=100 runs a
// collection every few hundred requests: BenchmarkChainAllInOne counts 113-123 cycles per 10 000
// requests at GOGC=100, 53 at 200 and 23 at 400, for a heap that stays a few MiB. 200, not 400:
// bench/chain.sh measured peak RSS of 60-65 MiB per process at 400 (over issue 9's 64 MiB goal)
// and 46-61 MiB at 200. The soft memory limit bounds what the laxer percent could grow to.
const (
	defaultGCPercent = 200
	// defaultMemoryLimitMiB keeps a process's Go memory (heap, stacks, runtime) under 48 MiB,
	// which leaves room for the binary's resident pages under the 64 MiB RSS goal of issue 9.
	defaultMemoryLimitMiB = 48
)

// gcSettings are the --gc-percent and --memory-limit flags: 0 means the default unless the
// GOGC (GOMEMLIMIT) environment variable is set, which then wins; a negative value turns the
// collector (the limit) off, as GOGC=off (GOMEMLIMIT=off) would.
type gcSettings struct {
	percent        int
	memoryLimitMiB int
}

// tuneGC applies s. It runs once the components are built, so that the automatic memory limit is
// never below twice the heap they keep live: a config whose rules (the OWASP CRS, say) hold more
// than the limit would otherwise make the collector run without pause.
func tuneGC(s gcSettings, getenv func(string) string, logger *slog.Logger) {
	percent := "GOGC"
	switch {
	case s.percent < 0:
		debug.SetGCPercent(-1)
		percent = "off"
	case s.percent > 0 || getenv("GOGC") == "":
		p := s.percent
		if p == 0 {
			p = defaultGCPercent
		}
		debug.SetGCPercent(p)
		percent = fmt.Sprint(p)
	}
	limit := "GOMEMLIMIT"
	switch {
	case s.memoryLimitMiB < 0:
		debug.SetMemoryLimit(math.MaxInt64)
		limit = "off"
	case s.memoryLimitMiB > 0 || getenv("GOMEMLIMIT") == "":
		b := int64(s.memoryLimitMiB) << 20
		if b == 0 {
			b = max(int64(defaultMemoryLimitMiB)<<20, 2*liveHeap())
		}
		debug.SetMemoryLimit(b)
		limit = memoryLimitString(b)
	}
	logger.Debug("garbage collector", "gc_percent", percent, "memory_limit", limit)
}

func memoryLimitString(b int64) string {
	if b == math.MaxInt64 {
		return "off"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// liveHeap is the heap the last collection found live, in bytes (0 before the first).
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

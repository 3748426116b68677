// Package ratelimit is the gateway's throttling and quota store: one Limiter interface with an
// in-memory implementation (one process) and a Redis one (N gateway replicas share one limit).
//
// Buckets are token buckets computed with GCRA (the generic cell rate algorithm): a bucket is one
// number, the "theoretical arrival time" at which it will be full again, so an update is a single
// read-modify-write that Redis can do atomically in one script. A bucket of rate r and burst b
// admits b requests at once and then r per second, exactly like a token bucket of capacity b.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limit is a token bucket: Rate tokens per second, at most Burst tokens.
type Limit struct {
	Rate  float64
	Burst int
}

// interval is the time one token takes to come back, at least 1µs.
func (l Limit) interval() time.Duration {
	if l.Rate <= 0 {
		return time.Duration(math.MaxInt64 / 4)
	}
	d := time.Duration(float64(time.Second) / l.Rate)
	if d < time.Microsecond {
		d = time.Microsecond
	}
	return d
}

// Valid reports whether l can be used: a positive rate and burst.
func (l Limit) Valid() bool { return l.Rate > 0 && l.Burst > 0 && !math.IsInf(l.Rate, 0) }

// Result is a limiter's decision and what the RateLimit-* response headers say about it.
type Result struct {
	Allowed bool
	// Limit is the bucket's burst, Remaining the tokens left after this request.
	Limit, Remaining int
	// RetryAfter is how long until one token is back when the request was refused (0 otherwise);
	// Reset is how long until the bucket is full again.
	RetryAfter, Reset time.Duration
}

// Limiter takes one token from the bucket key, whose limit is l. An error means the store could
// not decide (Redis unreachable); the caller applies its on_store_error policy. Implementations
// are safe for concurrent use.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Result, error)
}

// Period is a quota's calendar window, in UTC.
type Period string

// Quota periods.
const (
	Day   Period = "day"
	Week  Period = "week" // ISO weeks, starting on Monday
	Month Period = "month"
)

// window returns the start and end of the period that contains t, in UTC.
func (p Period) window(t time.Time) (start, end time.Time, err error) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch p {
	case Day:
		return day, day.AddDate(0, 0, 1), nil
	case Week:
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		start = day.AddDate(0, 0, -back)
		return start, start.AddDate(0, 0, 7), nil
	case Month:
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("unknown quota period %q", p)
}

// QuotaResult is a quota's decision.
type QuotaResult struct {
	Allowed bool
	// Used counts the requests admitted in this period, this one included when Allowed.
	Used, Limit int64
	// Reset is when the period ends.
	Reset time.Time
}

// Quota counts requests per calendar period. Consume admits one more request to key unless limit
// are already used in the current period; refused requests are not counted.
type Quota interface {
	Consume(ctx context.Context, key string, limit int64, p Period) (QuotaResult, error)
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("ratelimit: store closed")

// gcra is the bucket update shared by the memory store (and mirrored by the Redis script):
// tat is the stored theoretical arrival time (zero for a new bucket), now the current time. It
// returns the decision and the new tat to store (unchanged when refused).
func gcra(tat, now time.Duration, l Limit) (Result, time.Duration) {
	t := l.interval()
	burst := time.Duration(l.Burst) * t
	if tat < now {
		tat = now
	}
	next := tat + t
	allowAt := next - burst
	res := Result{Limit: l.Burst}
	if now < allowAt {
		res.RetryAfter = allowAt - now
		res.Reset = tat - now
		res.Remaining = int((now - (tat - burst)) / t)
		if res.Remaining < 0 {
			res.Remaining = 0
		}
		return res, tat
	}
	res.Allowed = true
	res.Reset = next - now
	res.Remaining = int((now - allowAt) / t)
	return res, next
}

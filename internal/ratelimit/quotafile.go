package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileQuota is the Quota of the memory store: counters in memory, written to a JSON file at most
// once per FlushInterval and on Close, and read back on start, so that a restart does not hand
// every key a fresh quota. (With several replicas, use the Redis store: each replica's file
// counts only its own requests.) A crash loses at most the last interval's counts.
type FileQuota struct {
	path   string
	logger *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	counters map[string]fileCounter
	dirty    bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// FlushInterval is how often a FileQuota writes its counters when they changed.
const FlushInterval = time.Second

// fileCounter is one key's count in one period; Start identifies the period.
type fileCounter struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Used  int64     `json:"used"`
}

type quotaFile struct {
	Version  int                    `json:"version"`
	Counters map[string]fileCounter `json:"counters"`
}

// NewFileQuota loads the counters in path (absent: none) and starts writing them back. An empty
// path keeps counters in memory only. Close stops the writer.
func NewFileQuota(path string, logger *slog.Logger) (*FileQuota, error) {
	return newFileQuota(path, logger, time.Now)
}

func newFileQuota(path string, logger *slog.Logger, now func() time.Time) (*FileQuota, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &FileQuota{path: path, logger: logger, now: now, counters: map[string]fileCounter{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("quota file: %w", err)
		default:
			var f quotaFile
			if err := json.Unmarshal(b, &f); err != nil {
				return nil, fmt.Errorf("quota file %s: %w (delete it to start the counts afresh)", path, err)
			}
			now := q.now()
			for k, c := range f.Counters {
				if c.End.After(now) {
					q.counters[k] = c
				}
			}
		}
	}
	go q.run()
	return q, nil
}

func (q *FileQuota) run() {
	defer close(q.done)
	if q.path == "" {
		<-q.stop
		return
	}
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			if err := q.Flush(); err != nil {
				q.logger.Warn("quota file not written", "err", err)
			}
		}
	}
}

// Consume implements Quota. It never fails.
func (q *FileQuota) Consume(_ context.Context, key string, limit int64, p Period) (QuotaResult, error) {
	start, end, err := p.window(q.now())
	if err != nil {
		return QuotaResult{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.counters[key]
	if !c.Start.Equal(start) {
		c = fileCounter{Start: start, End: end}
	}
	res := QuotaResult{Used: c.Used, Limit: limit, Reset: end}
	if c.Used >= limit {
		return res, nil
	}
	c.Used++
	q.counters[key] = c
	q.dirty = true
	res.Allowed, res.Used = true, c.Used
	return res, nil
}

// Flush writes the counters now if they changed, atomically (temporary file and rename).
func (q *FileQuota) Flush() error {
	if q.path == "" {
		return nil
	}
	q.mu.Lock()
	if !q.dirty {
		q.mu.Unlock()
		return nil
	}
	now := q.now()
	f := quotaFile{Version: 1, Counters: make(map[string]fileCounter, len(q.counters))}
	for k, c := range q.counters {
		if c.End.After(now) {
			f.Counters[k] = c
		} else {
			delete(q.counters, k)
		}
	}
	q.dirty = false
	q.mu.Unlock()

	b, err := json.Marshal(f)
	if err == nil {
		err = writeFileAtomic(q.path, b)
	}
	if err != nil {
		q.mu.Lock()
		q.dirty = true
		q.mu.Unlock()
		return fmt.Errorf("quota file: %w", err)
	}
	return nil
}

// Close stops the writer and writes the counters one last time.
func (q *FileQuota) Close() error {
	q.once.Do(func() { close(q.stop) })
	<-q.done
	return q.Flush()
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".quota-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

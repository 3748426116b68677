package gateway

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rampart-edge/rampart/internal/config"
)

// keysReloadDelay lets a burst of file events (an editor's write, truncate and rename) settle
// into one reload.
const keysReloadDelay = 100 * time.Millisecond

// watchKeys reloads the API key file whenever it changes, so that a key can be added, disabled
// or revoked without a restart. A file that does not load (bad JSON, a short value, removed) is
// logged and the keys in use stay. It returns the function that stops the watcher (Close calls
// it), or nil when there is nothing to watch.
//
// The directory is watched rather than the file, and any change in it rechecks the file: tools
// that replace a file atomically (write a temporary file, rename it over the old one) would
// otherwise end the watch at the first change, and a Kubernetes Secret volume changes the file by
// swapping the ..data symlink it points through, an event that never names the file. The file is
// loaded again only when its content changed.
func (a *access) watchKeys(cfg config.Gateway) func() {
	if cfg.APIKeys == nil || cfg.APIKeys.File == "" {
		return nil
	}
	file := filepath.Clean(cfg.APIKeys.File)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.logger.Warn("API key file changes will need a restart: cannot watch it", "file", file, "err", err)
		return nil
	}
	if err := w.Add(filepath.Dir(file)); err != nil {
		_ = w.Close()
		a.logger.Warn("API key file changes will need a restart: cannot watch it", "file", file, "err", err)
		return nil
	}
	loaded, _ := fileSum(file) // the content newAccess loaded
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		timer := time.NewTimer(0)
		if !timer.Stop() {
			<-timer.C
		}
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op != fsnotify.Chmod {
					timer.Reset(keysReloadDelay)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				a.logger.Warn("watching the API key file", "file", file, "err", err)
			case <-timer.C:
				sum, err := fileSum(file)
				if err == nil && sum == loaded {
					continue // another file of the directory changed
				}
				if a.reloadKeys(cfg) {
					loaded = sum
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// reloadKeys loads the key file again and swaps it in, or keeps the keys in use and reports
// false.
func (a *access) reloadKeys(cfg config.Gateway) bool {
	keys, err := loadAPIKeys(cfg, a.logger)
	if err != nil {
		// loadAPIKeys's errors name ids and the file, never a key value.
		a.logger.Warn("API key file not reloaded; the previous keys stay in use", "err", err)
		return false
	}
	a.keys.Store(&keys)
	a.logger.Info("API key file reloaded", "file", cfg.APIKeys.File, "keys", len(keys))
	return true
}

// fileSum is the SHA-256 of a file's content, following symlinks.
func fileSum(name string) ([32]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(data), nil
}

package originverify

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay gathers the events of one save (an editor's write, chmod and rename; a temp file
// and its rename) into one reload.
const reloadDelay = 20 * time.Millisecond

// Watch keeps keyrings live until ctx is done: it reloads a keyring when anything changes in its
// file's directory, and every keyring when reload delivers. Watching the directory rather than the
// file survives the atomic replacement (temp file + rename) that `rampart secret rotate`, editors
// and Kubernetes secret volumes use, which would orphan a watch on the file itself. A file that
// does not parse is logged and ignored; the keys already loaded stay in use.
//
// If the platform cannot watch files, Watch logs it and still serves reload.
func Watch(ctx context.Context, keyrings []*Keyring, reload <-chan struct{}, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	byDir := map[string][]*Keyring{}
	for _, k := range keyrings {
		if k.path == "" {
			continue
		}
		dir := filepath.Dir(k.path)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		byDir[dir] = append(byDir[dir], k)
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Warn("cannot watch keyring files; reload them with SIGHUP", "error", err)
	} else {
		defer w.Close()
		for dir := range byDir {
			if err := w.Add(dir); err != nil {
				logger.Warn("cannot watch keyring directory; reload it with SIGHUP", "dir", dir, "error", err)
			}
		}
		events, errs = w.Events, w.Errors
	}

	dirty := map[*Keyring]bool{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dir := filepath.Dir(ev.Name)
			if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			for _, k := range byDir[dir] {
				dirty[k] = true
			}
			timer.Reset(reloadDelay)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			logger.Warn("keyring watch error", "error", err)
		case <-reload:
			for _, k := range keyrings {
				dirty[k] = true
			}
			timer.Reset(0)
		case <-timer.C:
			for k := range dirty {
				reloadOne(k, logger)
			}
			clear(dirty)
		}
	}
}

func reloadOne(k *Keyring, logger *slog.Logger) {
	changed, err := k.Reload()
	if err != nil {
		logger.Error("keyring reload failed", "secret", k.name, "error", err)
		return
	}
	if !changed {
		return
	}
	var ids []string
	for _, ks := range k.Keys() {
		ids = append(ids, ks.ID+"="+ks.State)
	}
	logger.Info("keyring reloaded", "secret", k.name, "path", k.path, "keys", ids)
}

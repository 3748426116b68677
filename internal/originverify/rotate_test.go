package originverify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchReloadsOnRenameAndSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ov.keys")
	k, err := LoadOrCreate("ov", path)
	if err != nil {
		t.Fatal(err)
	}
	first := k.Current()
	var mu sync.Mutex
	var loaded []string
	k.OnLoad(func(s []string) {
		mu.Lock()
		loaded = append(loaded, s...)
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); Watch(ctx, []*Keyring{k}, reload, nil) }()
	t.Cleanup(func() { cancel(); <-done })

	// An atomic replacement (temp file + rename) is picked up.
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pending, _, err := f.AddPending()
	if err != nil {
		t.Fatal(err)
	}
	// fsnotify may miss a change made before the watch was in place; write until seen.
	waitFor(t, "the pending key to load", func() bool {
		if _, ok := k.Verify(pending.Secret); ok {
			return true
		}
		if err := WriteFile(path, f); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		_, ok := k.Verify(pending.Secret)
		return ok
	})
	if k.Current().ID != first.ID {
		t.Fatal("adding a pending key changed the current key")
	}
	mu.Lock()
	sawPending := strings.Contains(strings.Join(loaded, " "), pending.Secret)
	mu.Unlock()
	if !sawPending {
		t.Fatal("OnLoad did not see the new secret before it went live")
	}

	// A broken file is ignored; the keys in use stay.
	if err := os.WriteFile(path, []byte(`{"keys":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, ok := k.Verify(pending.Secret); !ok || k.Current().ID != first.ID {
		t.Fatal("a broken keyring file replaced the running keys")
	}

	// A change the watch cannot see (here: made while it is told nothing) is loaded on reload,
	// the path SIGHUP takes.
	if _, err := f.Promote(pending.ID); err != nil {
		t.Fatal(err)
	}
	data, _ := f.Marshal()
	if _, err := k.Replace([]byte(`{}`)); err == nil {
		t.Fatal("Replace accepted an empty keyring")
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	waitFor(t, "the promotion to load", func() bool { return k.Current().ID == pending.ID })
	if _, ok := k.Verify(first.Secret); !ok {
		t.Fatal("the previous key is no longer accepted")
	}
}

func TestRotateFourSteps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ov.keys")
	k, err := LoadOrCreate("ov", path)
	if err != nil {
		t.Fatal(err)
	}
	old := k.Current()
	var lines []string
	var mu sync.Mutex
	states := func() string {
		f, err := ReadFile(path)
		if err != nil {
			t.Error(err)
			return ""
		}
		var s []string
		for _, key := range f.Keys {
			s = append(s, key.State)
		}
		return strings.Join(s, ",")
	}
	var seen []string
	progress := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, line)
		seen = append(seen, states())
	}
	if err := Rotate(context.Background(), path, RotateOptions{Propagation: 10 * time.Millisecond, Grace: 10 * time.Millisecond, Progress: progress}); err != nil {
		t.Fatal(err)
	}
	want := []string{"current,pending", "current,pending", "previous,current", "retired,current"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("states after each step = %v, want %v", seen, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	out := strings.Join(lines, "\n")
	if strings.Contains(out, old.Secret) {
		t.Fatal("progress shows a secret")
	}
	f, _ := ReadFile(path)
	for _, key := range f.Keys {
		if strings.Contains(out, key.Secret) {
			t.Fatal("progress shows a secret")
		}
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the keyring (no temp files)", len(entries))
	}

	// A second rotation retires nothing early and refuses to run beside another.
	unlock, err := lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Rotate(context.Background(), path, RotateOptions{}); err == nil || !strings.Contains(err.Error(), "another rotation") {
		t.Fatalf("concurrent rotation: %v", err)
	}
	unlock()

	// An interrupted rotation leaves its pending key, and the next run resumes with it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Rotate(ctx, path, RotateOptions{Propagation: time.Hour}); err == nil {
		t.Fatal("cancelled rotation reported success")
	}
	f, _ = ReadFile(path)
	pending := f.Keys[f.find(StatePending)].ID
	lines = nil
	if err := Rotate(context.Background(), path, RotateOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	f, _ = ReadFile(path)
	if f.Keys[f.find(StateCurrent)].ID != pending || !strings.Contains(lines[0], "resuming") {
		t.Fatalf("resumed rotation: %v", lines)
	}
}

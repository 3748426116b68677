package originverify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ReadFile reads and checks a keyring file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return f, nil
}

// WriteFile replaces the keyring at path atomically: it writes a temp file (mode 0600) in the same
// directory, syncs it and renames it over path, so a reader sees the old file or the new one,
// never a part of either.
func WriteFile(path string, f *File) error {
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	if _, err := ParseFile(data); err != nil {
		return fmt.Errorf("refusing to write an invalid keyring: %w", err)
	}
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op after the rename
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}

// writeTemp writes data to a new, synced temp file (mode 0600) beside path and returns its name;
// the caller moves it into place (rename, or link when it must not replace a file) and removes it.
func writeTemp(path string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	name := tmp.Name()
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// find returns the index of the first key in state, or -1.
func (f *File) find(state string) int {
	for i, k := range f.Keys {
		if k.State == state {
			return i
		}
	}
	return -1
}

// AddPending adds a fresh pending key, unless one is already pending (an interrupted rotation),
// in which case that one is returned and added is false.
func (f *File) AddPending() (key Key, added bool, err error) {
	if i := f.find(StatePending); i >= 0 {
		return f.Keys[i], false, nil
	}
	for {
		key, err = NewKey(StatePending)
		if err != nil {
			return Key{}, false, err
		}
		dup := false
		for _, k := range f.Keys {
			dup = dup || k.ID == key.ID
		}
		if !dup {
			break
		}
	}
	f.Keys = append(f.Keys, key)
	return key, true, nil
}

// Promote makes the pending key id current. The current key becomes previous and a key that was
// still previous from an earlier rotation is retired. It returns the id of the new previous key.
func (f *File) Promote(id string) (previous string, err error) {
	pi := -1
	for i, k := range f.Keys {
		if k.ID == id {
			pi = i
		}
	}
	if pi < 0 || f.Keys[pi].State != StatePending {
		return "", fmt.Errorf("key %s is no longer pending; another rotation or an edit changed the keyring", id)
	}
	for i := range f.Keys {
		switch f.Keys[i].State {
		case StatePrevious:
			f.Keys[i].State = StateRetired
		case StateCurrent:
			f.Keys[i].State = StatePrevious
			previous = f.Keys[i].ID
		}
	}
	f.Keys[pi].State = StateCurrent
	return previous, nil
}

// Retire retires the key id if it is previous. A key already retired is left alone.
func (f *File) Retire(id string) {
	for i := range f.Keys {
		if f.Keys[i].ID == id && f.Keys[i].State == StatePrevious {
			f.Keys[i].State = StateRetired
		}
	}
}

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Propagation is how long every verifier may take to load the pending key before injectors
	// switch to it. It must exceed the slowest reload (file sync to other hosts included).
	Propagation time.Duration
	// Grace is how long the old key stays accepted after injectors switched: the slowest
	// injector's reload plus the longest request in flight.
	Grace time.Duration
	// Progress receives one line per step. It never receives a secret.
	Progress func(line string)
	// Confirm, when set, replaces the Propagation delay: it returns once every verifier has
	// loaded the pending key id (for example ConfirmLoaded on their admin APIs), or an error,
	// which stops the rotation with the key still pending.
	Confirm func(ctx context.Context, keyID string) error
}

// Rotate runs the four-step rotation on the keyring at path: add a pending key (verifiers accept
// it), wait Propagation, make it current (injectors send it; the old key becomes previous), wait
// Grace, retire the old key. Every step rewrites the file atomically; processes watching it pick
// the change up. A rotation holds path+".lock" so that two cannot interleave; a rotation that was
// interrupted after its first step resumes with the pending key it left.
func Rotate(ctx context.Context, path string, o RotateOptions) error {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	unlock, err := lock(path)
	if err != nil {
		return err
	}
	defer unlock()

	// Step 1: add a pending key.
	f, err := ReadFile(path)
	if err != nil {
		return err
	}
	pending, added, err := f.AddPending()
	if err != nil {
		return err
	}
	if added {
		if err := WriteFile(path, f); err != nil {
			return err
		}
		progress(fmt.Sprintf("1/4 added pending key %s; verifiers accept it once they reload", pending.ID))
	} else {
		progress(fmt.Sprintf("1/4 resuming with pending key %s left by an interrupted rotation", pending.ID))
	}

	// Step 2: let every verifier load it.
	if o.Confirm != nil {
		progress(fmt.Sprintf("2/4 waiting until every verifier confirms it has loaded key %s", pending.ID))
		if err := o.Confirm(ctx, pending.ID); err != nil {
			return fmt.Errorf("key %s stays pending, gateways still send the current key (run rotate again to resume): %w", pending.ID, err)
		}
	} else {
		progress(fmt.Sprintf("2/4 waiting %s for every verifier to load it", o.Propagation))
		if err := sleep(ctx, o.Propagation); err != nil {
			return fmt.Errorf("interrupted while key %s is pending (run rotate again to resume): %w", pending.ID, err)
		}
	}

	// Step 3: injectors switch.
	if f, err = ReadFile(path); err != nil {
		return err
	}
	old, err := f.Promote(pending.ID)
	if err != nil {
		return err
	}
	if err := WriteFile(path, f); err != nil {
		return err
	}
	progress(fmt.Sprintf("3/4 key %s is current; %s is previous, accepted for %s more", pending.ID, old, o.Grace))

	// Step 4: retire the old key after the grace period.
	if err := sleep(ctx, o.Grace); err != nil {
		return fmt.Errorf("interrupted during the grace period; key %s stays previous until the next rotation: %w", old, err)
	}
	if f, err = ReadFile(path); err != nil {
		return err
	}
	f.Retire(old)
	if err := WriteFile(path, f); err != nil {
		return err
	}
	progress(fmt.Sprintf("4/4 retired key %s; rotation done", old))
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lock takes path+".lock", created exclusively, and returns its release.
func lock(path string) (func(), error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("another rotation holds %s; if none is running, remove that file", name)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return func() { os.Remove(name) }, nil
}

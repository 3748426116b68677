// Package originverify owns the origin-verify secret: keyrings on disk, the value the gateway
// injects and the check the WAF's origin_verify statement makes.
//
// A keyring file is JSON:
//
//	{"version":1,"keys":[{"id":"k1a2b3c4","secret":"<43 chars of base64url>","state":"current","created":"…"}]}
//
// Keys move through the states pending → current → previous → retired during a rotation (see
// docs/origin-verify.md). Injectors send the current key; verifiers accept every key that is not
// retired, so a rotation never has a moment where an injector sends a key a verifier refuses.
//
// Two modes use a keyring. In static mode the header value is the secret itself, compared in
// constant time. In signed mode the header is a short-lived token bound to the request (see
// signed.go) that is useless once captured.
//
// A *Keyring is live: Reload swaps in the file's new content atomically while requests are being
// verified, and Watch reloads it when the file changes. Every reader sees either the old or the
// new key set, never a mix.
package originverify

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Key states.
const (
	StateCurrent  = "current"  // injected by gateways, accepted by verifiers
	StatePrevious = "previous" // accepted by verifiers during a rotation's grace period
	StatePending  = "pending"  // accepted by verifiers, not yet injected
	StateRetired  = "retired"  // kept for the record, never accepted
)

// Key is one secret of a keyring. Its String never shows the secret.
type Key struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// String redacts the secret so that a stray %v cannot leak it.
func (k Key) String() string { return fmt.Sprintf("key %s (%s)", k.ID, k.State) }

// GoString redacts the secret for %#v as well.
func (k Key) GoString() string { return k.String() }

// File is the on-disk form of a keyring.
type File struct {
	Version int   `json:"version"`
	Keys    []Key `json:"keys"`
}

// Keyring is a live keyring: an atomically replaced, immutable snapshot of the keys, and per-key
// match counters that survive reloads. It is safe for concurrent use.
type Keyring struct {
	name string
	path string // "" for a keyring made by Parse

	snap atomic.Pointer[snapshot]

	reloadMu sync.Mutex // serializes Replace, so that an older file never wins over a newer one
	mu       sync.Mutex // guards counters, onLoad and replay
	counters map[string]*atomic.Uint64
	onLoad   func(secrets []string)
	replay   map[int64]*ReplayCache // by max skew in seconds
}

// snapshot is one loaded version of the file. It is never modified after it is published.
type snapshot struct {
	raw      []byte   // the file's bytes, so that an unchanged file is not re-published
	all      []string // every secret, retired ones too, for log redaction
	current  Key
	active   []activeKey // every non-retired key, current first
	byID     map[string]int
	keyIDs   []string // ids of every key, for Keys
	keyState []string
}

type activeKey struct {
	id      string
	secret  []byte
	matches *atomic.Uint64
	mac     *sync.Pool // of *macState for signed mode
}

// LoadOrCreate reads the keyring at path. When the file does not exist it creates it (and its
// directory) with one random 256-bit current key, mode 0600, so the first run is secure without a
// setup step.
func LoadOrCreate(name, path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := create(path); err != nil {
			return nil, fmt.Errorf("secret %q: create keyring %s: %w", name, path, err)
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	k, err := Parse(name, data)
	if err != nil {
		return nil, fmt.Errorf("secret %q: keyring %s: %w", name, path, err)
	}
	k.path = path
	return k, nil
}

// Parse decodes a keyring file's content into a keyring that has no file to reload from.
func Parse(name string, data []byte) (*Keyring, error) {
	k := &Keyring{name: name, counters: map[string]*atomic.Uint64{}}
	s, err := k.parse(data)
	if err != nil {
		return nil, err
	}
	k.snap.Store(s)
	return k, nil
}

// ParseFile decodes and checks a keyring file's content, for tools that edit the file.
func ParseFile(data []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		// json errors quote input only by offset or type, never the secret itself.
		return nil, fmt.Errorf("not a keyring (JSON with a \"keys\" list): %w", err)
	}
	if f.Version != 0 && f.Version != 1 {
		return nil, fmt.Errorf("keyring version %d: this build reads version 1", f.Version)
	}
	seen := map[string]bool{}
	currents := 0
	for i, key := range f.Keys {
		if key.ID == "" {
			return nil, fmt.Errorf("key #%d has no id", i+1)
		}
		if !validKeyID(key.ID) {
			return nil, fmt.Errorf("key #%d: id %q: use 1 to 64 letters, digits, '-' and '_'", i+1, key.ID)
		}
		if seen[key.ID] {
			return nil, fmt.Errorf("key id %q appears twice", key.ID)
		}
		seen[key.ID] = true
		if len(key.Secret) < 16 {
			return nil, fmt.Errorf("key %q: secret is shorter than 16 characters", key.ID)
		}
		switch key.State {
		case StateCurrent:
			currents++
		case StatePrevious, StatePending, StateRetired:
		default:
			return nil, fmt.Errorf("key %q: unknown state %q (write current, previous, pending or retired)", key.ID, key.State)
		}
	}
	if currents != 1 {
		return nil, fmt.Errorf("has %d current keys, want exactly 1", currents)
	}
	return &f, nil
}

// validKeyID reports whether id can appear in a signed token: 1 to 64 of [A-Za-z0-9_-].
func validKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !tokenChar(id[i]) {
			return false
		}
	}
	return true
}

// parse builds a snapshot, reusing the counters of key ids already known.
func (k *Keyring) parse(data []byte) (*snapshot, error) {
	f, err := ParseFile(data)
	if err != nil {
		return nil, err
	}
	s := &snapshot{raw: bytes.Clone(data), byID: map[string]int{}}
	k.mu.Lock()
	defer k.mu.Unlock()
	var rest []activeKey
	for _, key := range f.Keys {
		s.all = append(s.all, key.Secret)
		s.keyIDs = append(s.keyIDs, key.ID)
		s.keyState = append(s.keyState, key.State)
		if key.State == StateRetired {
			continue
		}
		c := k.counters[key.ID]
		if c == nil {
			c = new(atomic.Uint64)
			k.counters[key.ID] = c
		}
		ak := activeKey{id: key.ID, secret: []byte(key.Secret), matches: c, mac: newMACPool([]byte(key.Secret))}
		if key.State == StateCurrent {
			s.current = key
			s.active = append(s.active, ak)
		} else {
			rest = append(rest, ak)
		}
	}
	s.active = append(s.active, rest...)
	for i, ak := range s.active {
		s.byID[ak.id] = i
	}
	return s, nil
}

func create(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	key, err := NewKey(StateCurrent)
	if err != nil {
		return err
	}
	data, err := (&File{Version: 1, Keys: []Key{key}}).Marshal()
	if err != nil {
		return err
	}
	// The key is written to a temp file that is then hard-linked into place: the link fails if
	// another process created the keyring first (two first runs must not each write a different
	// key), and a reader never sees the file before its content is complete.
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Marshal returns the file's JSON form, indented, with a final newline.
func (f *File) Marshal() ([]byte, error) {
	if f.Version == 0 {
		f.Version = 1
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// NewKey returns a fresh random 256-bit key in the given state.
func NewKey(state string) (Key, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	id := make([]byte, 4)
	if _, err := rand.Read(id); err != nil {
		return Key{}, err
	}
	return Key{
		ID:      "k" + hex.EncodeToString(id),
		Secret:  base64.RawURLEncoding.EncodeToString(secret),
		State:   state,
		Created: time.Now().UTC().Truncate(time.Second),
	}, nil
}

// Name is the keyring's name in the config's secrets section.
func (k *Keyring) Name() string { return k.name }

// Path is the file the keyring reloads from, or "" for a keyring made by Parse.
func (k *Keyring) Path() string { return k.path }

// Current returns the key injectors send.
func (k *Keyring) Current() Key { return k.snap.Load().current }

// KeyState is a key's id and state, without its secret.
type KeyState struct {
	ID, State string
}

// Keys lists every key's id and state in file order. It never returns a secret.
func (k *Keyring) Keys() []KeyState {
	s := k.snap.Load()
	out := make([]KeyState, len(s.keyIDs))
	for i := range s.keyIDs {
		out[i] = KeyState{ID: s.keyIDs[i], State: s.keyState[i]}
	}
	return out
}

// Verify reports whether value is the secret of a non-retired key, and which, and counts the
// match for that key. Every active key is compared, in constant time, whatever matches first, so
// timing tells nothing about which key or how much of it matched.
func (k *Keyring) Verify(value string) (keyID string, ok bool) {
	s := k.snap.Load()
	match := -1
	for i := range s.active {
		if equalConstantTime(value, s.active[i].secret) && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	ak := &s.active[match]
	ak.matches.Add(1)
	return ak.id, true
}

// Matches returns how many requests each key id has verified, static and signed modes together,
// since the keyring was loaded. Counts survive reloads; a retired key keeps its final count.
func (k *Keyring) Matches() map[string]uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]uint64, len(k.counters))
	for _, id := range slices.Sorted(maps.Keys(k.counters)) {
		out[id] = k.counters[id].Load()
	}
	return out
}

// MatchCount returns the number of verified requests for one key id.
func (k *Keyring) MatchCount(id string) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.counters[id]; c != nil {
		return c.Load()
	}
	return 0
}

// Secrets returns every secret of the keyring, retired ones included. It exists for log redaction
// alone: nothing else may hold on to these values.
func (k *Keyring) Secrets() []string { return slices.Clone(k.snap.Load().all) }

// OnLoad registers fn to be called with every secret of a newly read file before Reload makes it
// live, so that a log redactor knows a key before any request can carry it. fn must not call back
// into the keyring.
func (k *Keyring) OnLoad(fn func(secrets []string)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.onLoad = fn
}

// Reload reads the keyring's file again and, when its content changed and is a valid keyring,
// swaps it in atomically. On any error the running keys stay in use. It reports whether the keys
// changed.
func (k *Keyring) Reload() (changed bool, err error) {
	if k.path == "" {
		return false, errors.New("keyring has no file")
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return false, fmt.Errorf("secret %q: %w", k.name, err)
	}
	return k.Replace(data)
}

// Replace parses data and, when it differs from the running keyring and is valid, swaps it in.
func (k *Keyring) Replace(data []byte) (changed bool, err error) {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if bytes.Equal(data, k.snap.Load().raw) {
		return false, nil
	}
	s, err := k.parse(data)
	if err != nil {
		return false, fmt.Errorf("secret %q: keyring %s: %w (keeping the keys already loaded)", k.name, k.path, err)
	}
	k.mu.Lock()
	fn := k.onLoad
	k.mu.Unlock()
	if fn != nil {
		fn(slices.Clone(s.all))
	}
	k.snap.Store(s)
	return true, nil
}

// equalConstantTime compares a and b in time that depends only on their lengths, like
// subtle.ConstantTimeCompare, without converting a to a new byte slice.
func equalConstantTime(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := 0; i < len(b); i++ {
		v |= a[i] ^ b[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}

// LoosePermissions reports whether the keyring file at path can be read by any user, or written by
// users other than its owner. Rampart creates keyrings 0600; a file copied into place by hand often
// is 0644, and anyone who can read it can forge the header the load balancer trusts. Group read is
// allowed, as for TLS private keys (a Kubernetes Secret mounted for a non-root user is 0440 with
// an fsGroup).
func LoosePermissions(path string) (fs.FileMode, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	mode := fi.Mode().Perm()
	return mode, mode&0o027 != 0
}

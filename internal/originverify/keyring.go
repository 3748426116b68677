// Package originverify owns the origin-verify secret: keyrings on disk, the value the gateway
// injects and the check the WAF's origin_verify statement makes.
//
// A keyring file is JSON so that later rotation tooling can add states without a format change:
//
//	{"version":1,"keys":[{"id":"k1a2b3c4","secret":"<43 chars of base64url>","state":"current","created":"…"}]}
//
// The header value is the secret string itself. The injector sends the current key; the verifier
// accepts every key that is not retired, compared in constant time.
package originverify

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Key states.
const (
	StateCurrent  = "current"  // injected by gateways, accepted by verifiers
	StatePrevious = "previous" // accepted by verifiers during a rotation's grace period
	StatePending  = "pending"  // accepted by verifiers, not yet injected
	StateRetired  = "retired"  // kept for the record, never accepted
)

// Key is one secret of a keyring. Its String and LogValue never show the secret.
type Key struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// String redacts the secret so that a stray %v cannot leak it.
func (k Key) String() string { return fmt.Sprintf("key %s (%s)", k.ID, k.State) }

type file struct {
	Version int   `json:"version"`
	Keys    []Key `json:"keys"`
}

// Keyring is an immutable, loaded keyring.
type Keyring struct {
	name    string
	all     []string // every secret, retired ones too, for log redaction
	current Key
	active  [][]byte // every non-retired secret, current first
	ids     []string // ids parallel to active
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
	return k, nil
}

// Parse decodes a keyring file's content.
func Parse(name string, data []byte) (*Keyring, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		// json errors quote input only by offset, never the secret itself.
		return nil, fmt.Errorf("not a keyring (JSON with a \"keys\" list): %w", err)
	}
	k := &Keyring{name: name}
	seen := map[string]bool{}
	currents := 0
	for i, key := range f.Keys {
		if key.ID == "" {
			return nil, fmt.Errorf("key #%d has no id", i+1)
		}
		if seen[key.ID] {
			return nil, fmt.Errorf("key id %q appears twice", key.ID)
		}
		seen[key.ID] = true
		k.all = append(k.all, key.Secret)
		if len(key.Secret) < 16 {
			return nil, fmt.Errorf("key %q: secret is shorter than 16 characters", key.ID)
		}
		switch key.State {
		case StateCurrent:
			currents++
			k.current = key
			k.active = append([][]byte{[]byte(key.Secret)}, k.active...)
			k.ids = append([]string{key.ID}, k.ids...)
		case StatePrevious, StatePending:
			k.active = append(k.active, []byte(key.Secret))
			k.ids = append(k.ids, key.ID)
		case StateRetired:
		default:
			return nil, fmt.Errorf("key %q: unknown state %q (write current, previous, pending or retired)", key.ID, key.State)
		}
	}
	if currents != 1 {
		return nil, fmt.Errorf("has %d current keys, want exactly 1", currents)
	}
	return k, nil
}

func create(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	key, err := NewKey(StateCurrent)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(file{Version: 1, Keys: []Key{key}}, "", "  ")
	if err != nil {
		return err
	}
	// O_EXCL: two processes starting at once must not each write a different key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
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

// Current returns the key injectors send.
func (k *Keyring) Current() Key { return k.current }

// Verify reports whether value is the secret of a non-retired key, and which. Every active key is
// compared, in constant time, whatever matches first, so timing tells nothing about which key or
// how much of it matched.
func (k *Keyring) Verify(value string) (keyID string, ok bool) {
	v := []byte(value)
	match := -1
	for i, s := range k.active {
		if subtle.ConstantTimeCompare(v, s) == 1 && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return k.ids[match], true
}

// Secrets returns every secret of the keyring, retired ones included. It exists for log redaction
// alone: nothing else may hold on to these values.
func (k *Keyring) Secrets() []string { return slices.Clone(k.all) }

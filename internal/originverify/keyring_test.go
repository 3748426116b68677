package originverify

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateMakesAPrivateRandomKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "origin-verify.keys")
	k, err := LoadOrCreate("origin-verify", path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := base64.RawURLEncoding.DecodeString(k.Current().Secret)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret is not 256 bits of base64url: %d bytes, %v", len(raw), err)
	}
	if id, ok := k.Verify(k.Current().Secret); !ok || id != k.Current().ID {
		t.Fatalf("Verify(current) = %q, %v", id, ok)
	}
	// A second load reads the same key instead of making a new one.
	k2, err := LoadOrCreate("origin-verify", path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Current().Secret != k.Current().Secret {
		t.Fatal("second load created a different key")
	}
	if strings.Contains(k.Current().String(), k.Current().Secret) {
		t.Fatal("Key.String leaks the secret")
	}
}

func TestConcurrentCreateAgreesOnOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.keys")
	var wg sync.WaitGroup
	secrets := make([]string, 8)
	errs := make([]error, 8)
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreate("x", path)
			errs[i] = err
			if err == nil {
				secrets[i] = k.Current().Secret
			}
		}()
	}
	wg.Wait()
	for i := range secrets {
		if errs[i] != nil {
			t.Fatalf("loader %d: %v", i, errs[i])
		}
		if secrets[i] != secrets[0] {
			t.Fatal("concurrent first runs created different keys")
		}
	}
}

func keyringJSON(t testing.TB, keys ...Key) []byte {
	t.Helper()
	b, err := json.Marshal(File{Version: 1, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyStates(t *testing.T) {
	cur := Key{ID: "a", Secret: "current-secret-0000000", State: StateCurrent}
	prev := Key{ID: "b", Secret: "previous-secret-000000", State: StatePrevious}
	pend := Key{ID: "c", Secret: "pending-secret-0000000", State: StatePending}
	ret := Key{ID: "d", Secret: "retired-secret-0000000", State: StateRetired}
	k, err := Parse("x", keyringJSON(t, prev, cur, pend, ret))
	if err != nil {
		t.Fatal(err)
	}
	if k.Current().ID != "a" {
		t.Fatalf("current = %s", k.Current().ID)
	}
	for _, tt := range []struct {
		value string
		id    string
		ok    bool
	}{
		{cur.Secret, "a", true},
		{prev.Secret, "b", true},
		{pend.Secret, "c", true},
		{ret.Secret, "", false},
		{"", "", false},
		{cur.Secret + "x", "", false},
		{cur.Secret[:len(cur.Secret)-1], "", false},
	} {
		id, ok := k.Verify(tt.value)
		if id != tt.id || ok != tt.ok {
			t.Errorf("Verify(%q) = %q, %v; want %q, %v", tt.value, id, ok, tt.id, tt.ok)
		}
	}
}

func TestParseErrorsNeverShowSecrets(t *testing.T) {
	const secret = "do-not-print-this-secret"
	for name, data := range map[string][]byte{
		"no current":   keyringJSON(t, Key{ID: "a", Secret: secret, State: StatePending}),
		"two currents": keyringJSON(t, Key{ID: "a", Secret: secret, State: StateCurrent}, Key{ID: "b", Secret: secret + "2", State: StateCurrent}),
		"short":        keyringJSON(t, Key{ID: "a", Secret: "short", State: StateCurrent}),
		"bad state":    keyringJSON(t, Key{ID: "a", Secret: secret, State: "active"}),
		"duplicate id": keyringJSON(t, Key{ID: "a", Secret: secret, State: StateCurrent}, Key{ID: "a", Secret: secret, State: StatePrevious}),
		"missing id":   keyringJSON(t, Key{Secret: secret, State: StateCurrent}),
		"not json":     []byte(secret),
		"wrong type":   []byte(`{"keys":"` + secret + `"}`),
	} {
		_, err := Parse("x", data)
		if err == nil {
			t.Errorf("%s: want an error", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	cur := Key{ID: "a", Secret: "current-secret-0000000", State: StateCurrent}
	ret := Key{ID: "d", Secret: "retired-secret-0000000", State: StateRetired}
	data, _ := json.Marshal(File{Version: 1, Keys: []Key{cur, ret}})
	k, err := Parse("x", data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("current-secret-0000000")
	f.Add("retired-secret-0000000")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := k.Verify(v)
		if ok != (v == cur.Secret) || (ok && id != "a") {
			t.Fatalf("Verify(%q) = %q, %v", v, id, ok)
		}
	})
}

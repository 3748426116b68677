package originverify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// KeyringsPath is the admin API route that lists the keyrings a process has loaded.
const KeyringsPath = "/keyrings"

// KeyringsStatus is the body of the admin API's GET /keyrings: what a process has loaded, key ids
// and states only. It never holds a secret.
type KeyringsStatus struct {
	Keyrings []KeyringStatus `json:"keyrings"`
}

// KeyringStatus is one loaded keyring.
type KeyringStatus struct {
	Name string      `json:"name"`
	Keys []KeyStatus `json:"keys"`
}

// KeyStatus is one key of a loaded keyring, with the requests it verified in this process.
type KeyStatus struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Matches uint64 `json:"matches"`
}

// Status reports the keys the keyring holds now: ids, states and match counts, never secrets.
func (k *Keyring) Status() KeyringStatus {
	m := k.Matches()
	st := KeyringStatus{Name: k.name, Keys: []KeyStatus{}}
	for _, ks := range k.Keys() {
		st.Keys = append(st.Keys, KeyStatus{ID: ks.ID, State: ks.State, Matches: m[ks.ID]})
	}
	return st
}

// DefaultConfirmInterval is how often ConfirmLoaded asks each admin API again.
const DefaultConfirmInterval = 200 * time.Millisecond

// ConfirmLoaded polls GET /keyrings on the admin API of each verifier (base URLs such as
// http://10.0.1.5:9900) until every one lists key id of keyring name in an accepting state, or ctx
// ends. progress receives one line per verifier when it confirms, and, when ctx ends first, one
// line per verifier that did not, saying what it reported. It never sends or prints a secret.
func ConfirmLoaded(ctx context.Context, client *http.Client, adminURLs []string, name, id string, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	pending := slices.Clone(adminURLs)
	last := map[string]string{} // why each pending verifier has not confirmed yet
	tick := time.NewTicker(DefaultConfirmInterval)
	defer tick.Stop()
	for {
		var still []string
		for _, u := range pending {
			why := checkLoaded(ctx, client, u, name, id)
			if why == "" {
				progress(fmt.Sprintf("%s has loaded key %s", u, id))
				continue
			}
			last[u] = why
			still = append(still, u)
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			for _, u := range pending {
				progress(fmt.Sprintf("%s has not loaded key %s: %s", u, id, last[u]))
			}
			return fmt.Errorf("%d of %d verifiers did not confirm key %s: %w", len(pending), len(adminURLs), id, ctx.Err())
		case <-tick.C:
		}
	}
}

// checkLoaded asks one admin API and returns "" when it lists the key in a state verifiers
// accept, or what it reported instead.
func checkLoaded(ctx context.Context, client *http.Client, base, name, id string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+KeyringsPath, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("GET %s answered %s", KeyringsPath, resp.Status)
	}
	var st KeyringsStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return fmt.Sprintf("GET %s answered no keyring list: %v", KeyringsPath, err)
	}
	for _, kr := range st.Keyrings {
		if kr.Name != name {
			continue
		}
		var have []string
		for _, k := range kr.Keys {
			if k.ID == id && k.State != StateRetired {
				return ""
			}
			have = append(have, k.ID+" "+k.State)
		}
		return "it lists " + strings.Join(have, ", ")
	}
	return fmt.Sprintf("it has no keyring %q loaded (is it a load balancer that verifies this secret?)", name)
}

package topology

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// keyringSet holds the keyrings a topology loaded, by secret name.
type keyringSet map[string]*originverify.Keyring

// Keyring returns the live keyring of the named secret, or nil when no selected component uses
// it. It exposes key ids, states and match counts; callers must not read its secrets.
func (t *Topology) Keyring(name string) *originverify.Keyring { return t.current().keyrings[name] }

// keyringCache holds every keyring the process loaded, by secret name and file, so that a reload
// reuses a loaded keyring (and its watcher, its match counts, its registered secrets) instead of
// loading a second copy of it.
type keyringCache struct {
	mu sync.Mutex
	m  map[[2]string]*originverify.Keyring
}

func (c *keyringCache) loadOrCreate(name, file string, red *observe.Redactor, logger *slog.Logger) (*originverify.Keyring, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := [2]string{name, file}
	if k := c.m[key]; k != nil {
		return k, nil
	}
	k, err := originverify.LoadOrCreate(name, file)
	if err != nil {
		return nil, err
	}
	if mode, loose := originverify.LoosePermissions(file); loose {
		logger.Warn("keyring file is accessible to other users; anyone who can read it can forge the origin-verify header",
			"secret", name, "file", file, "mode", mode.String(), "fix", "chmod 600 "+file)
	}
	if red != nil {
		red.Add(k.Secrets()...)
		k.OnLoad(newSecretRegistrar(red, k.Secrets()))
	}
	if c.m == nil {
		c.m = map[[2]string]*originverify.Keyring{}
	}
	c.m[key] = k
	return k, nil
}

// loadKeyrings loads every keyring that the selected gateways and load balancers reference
// (request_headers, and the origin_verify statements of the web ACLs they use), and
// registers a runner that keeps them live: each is reloaded when its file changes and on SIGHUP
// (runtime.go), and swapped in atomically, so that a rotation needs no restart. Every secret, of
// the first load and of every reload, reaches the redactor before any request can carry it.
func (t *generation) loadKeyrings(cfg *config.Config, gateways []config.Gateway, lbs []config.LoadBalancer, red *observe.Redactor, kc *keyringCache) (map[string]*originverify.Keyring, error) {
	names := map[string]bool{}
	for _, g := range gateways {
		for _, h := range g.RequestHeaders {
			for _, s := range h.Value.Secrets() {
				names[s] = true
			}
		}
	}
	acls := usedWebACLs(gateways, lbs) // webacl.go: the ACLs built, and no other
	for _, acl := range cfg.WebACLs {
		if !acls[acl.Name] {
			continue
		}
		for _, r := range acl.Rules {
			collectStatementSecrets(r.Statement, names)
		}
	}
	keyrings := map[string]*originverify.Keyring{}
	var list []*originverify.Keyring
	for _, name := range slices.Sorted(maps.Keys(names)) {
		spec, ok := cfg.Secrets[name]
		if !ok {
			return nil, fmt.Errorf("secret %q is referenced but not defined in the secrets section", name)
		}
		k, err := kc.loadOrCreate(name, spec.File, red, t.logger)
		if err != nil {
			return nil, err
		}
		keyrings[name] = k
		list = append(list, k)
	}
	t.keyrings = keyrings
	// GET /keyrings on the admin listener: what this process has loaded, which is how
	// `rampart secret rotate --confirm` knows that a verifier accepts the pending key.
	t.adminRoutes = append(t.adminRoutes, admin.Route{Pattern: "GET " + originverify.KeyringsPath, Handler: keyringsHandler(list)})
	if len(list) > 0 {
		logger := t.logger.With("component", "keyring")
		t.runners = append(t.runners, func(ctx context.Context) { originverify.Watch(ctx, list, t.keyringReload, logger) })
	}
	return keyrings, nil
}

// keyringsHandler serves GET /keyrings: each keyring's name, key ids, states and match counts.
// Secrets never leave the process: KeyringStatus has no field for one.
func keyringsHandler(list []*originverify.Keyring) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := originverify.KeyringsStatus{Keyrings: []originverify.KeyringStatus{}}
		for _, k := range list {
			st.Keyrings = append(st.Keyrings, k.Status())
		}
		admin.WriteJSON(w, http.StatusOK, st)
	})
}

// newSecretRegistrar returns an OnLoad hook that adds to red the secrets it has not seen yet, so
// that a long run of reloads does not grow the redactor with copies.
func newSecretRegistrar(red *observe.Redactor, known []string) func([]string) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for _, s := range known {
		seen[s] = true
	}
	return func(secrets []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range secrets {
			if !seen[s] {
				seen[s] = true
				red.Add(s)
			}
		}
	}
}

func collectStatementSecrets(s config.Statement, names map[string]bool) {
	if s.OriginVerify != nil {
		names[s.OriginVerify.Secret] = true
	}
	for _, c := range s.Children() {
		collectStatementSecrets(*c, names)
	}
}

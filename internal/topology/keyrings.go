package topology

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// keyringSet holds the keyrings a topology loaded, by secret name.
type keyringSet map[string]*originverify.Keyring

// Keyring returns the live keyring of the named secret, or nil when no selected component uses
// it. It exposes key ids, states and match counts; callers must not read its secrets.
func (t *Topology) Keyring(name string) *originverify.Keyring { return t.keyrings[name] }

// loadKeyrings loads every keyring that the selected gateways and load balancers reference, and
// registers a runner that keeps them live: each is reloaded when its file changes and on SIGHUP,
// and swapped in atomically, so that a rotation needs no restart. Every secret, of the first load
// and of every reload, reaches the redactor before any request can carry it.
func (t *Topology) loadKeyrings(cfg *config.Config, gateways []config.Gateway, lbs []config.LoadBalancer, red *observe.Redactor) (map[string]*originverify.Keyring, error) {
	names := map[string]bool{}
	for _, g := range gateways {
		for _, h := range g.RequestHeaders {
			for _, s := range h.Value.Secrets() {
				names[s] = true
			}
		}
	}
	if len(lbs) > 0 {
		for _, acl := range cfg.WebACLs {
			for _, r := range acl.Rules {
				collectStatementSecrets(r.Statement, names)
			}
		}
	}
	keyrings := map[string]*originverify.Keyring{}
	var list []*originverify.Keyring
	for _, name := range slices.Sorted(maps.Keys(names)) {
		spec, ok := cfg.Secrets[name]
		if !ok {
			return nil, fmt.Errorf("secret %q is referenced but not defined in the secrets section", name)
		}
		k, err := originverify.LoadOrCreate(name, spec.File)
		if err != nil {
			return nil, err
		}
		if mode, loose := originverify.LoosePermissions(spec.File); loose {
			t.logger.Warn("keyring file is accessible to other users; anyone who can read it can forge the origin-verify header",
				"secret", name, "file", spec.File, "mode", mode.String(), "fix", "chmod 600 "+spec.File)
		}
		if red != nil {
			red.Add(k.Secrets()...)
			k.OnLoad(newSecretRegistrar(red, k.Secrets()))
		}
		keyrings[name] = k
		list = append(list, k)
	}
	t.keyrings = keyrings
	// GET /keyrings on the admin listener: what this process has loaded, which is how
	// `rampart secret rotate --confirm` knows that a verifier accepts the pending key.
	t.adminRoutes = append(t.adminRoutes, admin.Route{Pattern: "GET " + originverify.KeyringsPath, Handler: keyringsHandler(list)})

	// SIGHUP is caught from Build on, not from when the runner starts, so that a reload signal
	// sent right after start never falls to the default action (exit). A process that loads no
	// keyring (an app tier) has nothing to reload, but must not die of the signal that operators
	// and tools send to every process of a deployment either.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	t.closers = append(t.closers, func() { signal.Stop(hup) })
	logger := t.logger.With("component", "keyring")
	if len(list) > 0 {
		t.runners = append(t.runners, func(ctx context.Context) { watchKeyrings(ctx, list, hup, logger) })
	} else {
		t.runners = append(t.runners, func(ctx context.Context) { ignoreSIGHUP(ctx, hup, logger) })
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

// ignoreSIGHUP consumes SIGHUP until ctx is done, logging that there is nothing to reload.
func ignoreSIGHUP(ctx context.Context, hup <-chan os.Signal, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("SIGHUP ignored: this process loads no keyring")
		}
	}
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

// watchKeyrings reloads the keyrings on file changes and on SIGHUP until ctx is done.
func watchKeyrings(ctx context.Context, keyrings []*originverify.Keyring, hup <-chan os.Signal, logger *slog.Logger) {
	reload := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		originverify.Watch(ctx, keyrings, reload, logger)
	}()
	for {
		select {
		case <-ctx.Done():
			<-done
			return
		case <-hup:
			logger.Info("SIGHUP: reloading keyrings")
			select {
			case reload <- struct{}{}:
			case <-ctx.Done():
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

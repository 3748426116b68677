package topology

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/lb"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// adminAPI is the admin API's view of the topology (admin.Backend). It always reads the current
// generation, so an admin request sees the config that serves now, whichever generation's admin
// listener it arrived on.
type adminAPI struct {
	topo *Topology

	mu         sync.Mutex
	registered map[[3]string]bool // lb, group, address of the targets registered through the API
}

// afterReload warns about the targets registered through the API that the new config does not
// list: they are gone with the generation they were registered in (docs/admin-api.md).
func (a *adminAPI) afterReload(cfg *config.Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.registered {
		kept := false
		for _, lc := range cfg.LoadBalancers {
			for _, tg := range lc.TargetGroups {
				if lc.Name == k[0] && tg.Name == k[1] && slices.Contains(tg.Targets, k[2]) {
					kept = true
				}
			}
		}
		if !kept {
			a.topo.logger.Warn("a target registered through the admin API is not in the reloaded config: it is no longer registered",
				"load_balancer", k[0], "group", k[1], "target", k[2], "hint", "list it in the file to keep it across reloads")
		}
	}
	clear(a.registered)
}

// handler is the admin listener's handler in generation g: the admin API in front of the routes
// the components registered (inner), guarded by g's admin.token.
//
// The token in force is the running generation's, not g's: once a reload has replaced admin.token,
// the old one opens nothing, not even on a keep-alive connection that g accepted and still serves
// while it drains. A newer generation without a token (or without an admin listener) does not
// open g's draining connections: they keep g's token.
func (a *adminAPI) handler(g *generation, inner http.Handler) http.Handler {
	own := adminToken(g.cfg)
	return admin.APIWithToken(a, a.topo.opts.Version, func() string {
		if cur := a.topo.current(); cur != nil && cur.seq > g.seq && cur.has(KindAdmin) {
			if tok := adminToken(cur.cfg); tok != "" {
				return tok
			}
		}
		return own
	}, inner)
}

func adminToken(cfg *config.Config) string {
	if cfg.Admin == nil {
		return ""
	}
	return cfg.Admin.Token
}

// checkAdminReach applies admin.token's rule (validate_admin.go) to the admin address the process
// actually listens on, which the command line may set (--admin): an admin listener reachable from
// the network needs a token. It runs at start and at every reload, so that a file edited to drop
// admin.token is rejected rather than opening the admin API to the network.
func checkAdminReach(addr string, cfg *config.Config) error {
	if adminToken(cfg) != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listener %q: want HOST:PORT", addr)
	}
	if config.LoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("the admin listener %s is reachable from the network: set admin.token in %s (docs/admin-api.md), or listen on a loopback address", addr, cfg.File)
}

func (a *adminAPI) Ready() (bool, []string) {
	t := a.topo
	t.stateMu.Lock()
	serving, stopping, since := t.serving, t.stopping, t.startedAt
	t.stateMu.Unlock()
	switch {
	case stopping:
		return false, []string{"shutting down"}
	case !serving:
		return false, []string{"listeners"}
	}
	// Counted from the start of serving, not of the current generation: readiness must not flap
	// on every reload (targets of a new generation start healthy and are checked at once).
	g := t.current()
	if len(g.lbs) > 0 {
		if left := g.firstVerdict - time.Since(since); left > 0 {
			return false, []string{fmt.Sprintf("first health verdict of every target (%v)", left.Round(time.Millisecond))}
		}
	}
	return true, nil
}

func (a *adminAPI) Config() map[string]any {
	return redactedConfig(a.topo.current().cfg, a.topo.opts.Redactor)
}

func (a *adminAPI) Targets() []admin.LoadBalancer {
	g := a.topo.current()
	out := []admin.LoadBalancer{}
	for _, lc := range g.cfg.LoadBalancers {
		l := g.lbs[lc.Name]
		if l == nil {
			continue
		}
		v := admin.LoadBalancer{Name: lc.Name, Listeners: []admin.LBListener{}, Groups: []admin.TargetGroup{}}
		for _, li := range lc.Listeners {
			v.Listeners = append(v.Listeners, admin.LBListener{Listen: li.Listen, WebACL: li.WebACL})
		}
		for _, tg := range lc.TargetGroups {
			sts, err := l.Targets(tg.Name)
			if err != nil {
				continue
			}
			grp := admin.TargetGroup{Name: tg.Name, Algorithm: tg.Algorithm, Targets: []admin.Target{}}
			for _, st := range sts {
				grp.Targets = append(grp.Targets, admin.Target{Address: st.Address, Weight: st.Weight, State: st.State,
					Healthy: st.State == "healthy" || st.State == "ejected", InFlight: st.InFlight, SlowStart: st.SlowStart})
			}
			v.Groups = append(v.Groups, grp)
		}
		out = append(out, v)
	}
	return out
}

// target looks the group up and reports whether addr is registered (and not draining) in it.
func (a *adminAPI) target(lbName, group, addr string) (registered bool, err error) {
	l := a.topo.current().lbs[lbName]
	if l == nil {
		return false, admin.Errorf(admin.ErrNotFound, "no load balancer %q in this process", lbName)
	}
	sts, err := l.Targets(group)
	if err != nil {
		return false, admin.Errorf(admin.ErrNotFound, "load balancer %q has no target group %q", lbName, group)
	}
	return slices.ContainsFunc(sts, func(s lb.TargetStatus) bool { return s.Address == addr && s.State != "draining" }), nil
}

func (a *adminAPI) Register(lbName, group, addr string, weight int) error {
	// Not during a reload: a target registered in the generation being replaced would be
	// answered 201 and be gone at once.
	a.topo.mu.Lock()
	defer a.topo.mu.Unlock()
	registered, err := a.target(lbName, group, addr)
	if err != nil {
		return err
	}
	if registered {
		return admin.Errorf(admin.ErrConflict, "target %s is already registered in %s/%s", addr, lbName, group)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return admin.Errorf(admin.ErrInvalid, "address %q: want HOST:PORT", addr)
	}
	if weight < 0 || weight > config.MaxTargetGroupWeight {
		return admin.Errorf(admin.ErrInvalid, "weight %d: want 1-%d (0 means 1)", weight, config.MaxTargetGroupWeight)
	}
	if err := a.topo.current().lbs[lbName].Register(group, addr, weight); err != nil {
		return admin.Errorf(admin.ErrInvalid, "%v", err)
	}
	a.mu.Lock()
	if a.registered == nil {
		a.registered = map[[3]string]bool{}
	}
	a.registered[[3]string{lbName, group, addr}] = true
	a.mu.Unlock()
	a.topo.logger.Info("target registered through the admin API", "load_balancer", lbName, "group", group, "target", addr, "weight", weight)
	return nil
}

func (a *adminAPI) Deregister(lbName, group, addr string) error {
	a.topo.mu.Lock()
	defer a.topo.mu.Unlock()
	registered, err := a.target(lbName, group, addr)
	if err != nil {
		return err
	}
	if !registered {
		return admin.Errorf(admin.ErrNotFound, "target %s is not registered in %s/%s (or is draining already)", addr, lbName, group)
	}
	if err := a.topo.current().lbs[lbName].Deregister(group, addr); err != nil {
		return admin.Errorf(admin.ErrNotFound, "%v", err)
	}
	a.mu.Lock()
	delete(a.registered, [3]string{lbName, group, addr})
	a.mu.Unlock()
	a.topo.logger.Info("target deregistered through the admin API", "load_balancer", lbName, "group", group, "target", addr)
	return nil
}

func (a *adminAPI) Reload(ctx context.Context) (admin.ReloadResult, error) {
	t := a.topo
	// The request's context ends with the request; the new generation must outlive it.
	err := t.Reload(context.WithoutCancel(ctx), "admin API")
	ok, _ := t.ReloadCount()
	if errors.Is(err, ErrNotReloadable) {
		return admin.ReloadResult{Message: err.Error(), Reloads: ok}, fmt.Errorf("%w: %w", admin.ErrNotReloadable, err)
	}
	if err != nil {
		return admin.ReloadResult{}, err
	}
	return admin.ReloadResult{Reloaded: true, ConfigHash: t.LastReload().Hash, Reloads: ok}, nil
}

func (a *adminAPI) State() admin.State {
	t := a.topo
	g := t.current()
	ready, waiting := a.Ready()
	okN, rejected := t.ReloadCount()
	last := t.LastReload()
	s := admin.State{
		Version: t.opts.Version, Time: time.Now(), Ready: ready, Waiting: waiting,
		Config:        admin.Config{File: g.cfg.File, Hash: g.hash, Reloadable: t.opts.ConfigPath != ""},
		Reloads:       admin.Reloads{OK: okN, Rejected: rejected, Last: admin.LastReload{Time: last.Time, Cause: last.Cause, OK: last.OK, Errors: last.Errors}},
		Listeners:     []admin.Endpoint{},
		Gateways:      []admin.Gateway{},
		LoadBalancers: a.Targets(),
		Apps:          []admin.App{},
		Keyrings:      []admin.Keyring{},
		WAFBlocks:     []admin.WAFBlock{},
	}
	for _, e := range g.Endpoints {
		s.Listeners = append(s.Listeners, admin.Endpoint{Kind: string(e.Kind), Name: e.Name, Listen: e.Listen, Note: e.Note})
	}
	for _, gc := range pick(g.cfg.Gateways, g.sel, KindGateway, func(x config.Gateway) string { return x.Name }) {
		v := admin.Gateway{Name: gc.Name, Listen: gc.Listen, CORS: gc.CORS.Mode, WebACL: gc.WebACL, Routes: len(gc.Routes), Upstreams: []string{}}
		for _, r := range gc.Routes {
			if u, err := url.Parse(r.Integration.URL); err == nil && u.Host != "" && !slices.Contains(v.Upstreams, u.Host) {
				v.Upstreams = append(v.Upstreams, u.Host)
			}
		}
		s.Gateways = append(s.Gateways, v)
	}
	for _, e := range g.Endpoints {
		if e.Kind != KindApp {
			continue
		}
		group := e.Name // instances are named <app>-<n> (addApp)
		if i := strings.LastIndex(e.Name, "-"); i > 0 {
			group = e.Name[:i]
		}
		if n := len(s.Apps); n > 0 && s.Apps[n-1].Name == group {
			s.Apps[n-1].Instances = append(s.Apps[n-1].Instances, e.Listen)
		} else {
			s.Apps = append(s.Apps, admin.App{Name: group, Instances: []string{e.Listen}})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(g.keyrings)) {
		st := g.keyrings[name].Status()
		k := admin.Keyring{Name: name, Keys: []string{}}
		for _, ks := range st.Keys {
			k.Keys = append(k.Keys, ks.ID+" ("+ks.State+")")
			if ks.State == originverify.StateCurrent {
				k.CurrentID = ks.ID
			}
		}
		s.Keyrings = append(s.Keyrings, k)
	}
	if g.matches != nil {
		list, total := g.matches.Last(g.matches.Capacity(), "")
		s.WAFMatches = total
		for _, m := range list {
			if m.Action != "block" || len(s.WAFBlocks) == 20 {
				continue
			}
			s.WAFBlocks = append(s.WAFBlocks, admin.WAFBlock{Time: m.Time, ACL: m.ACL, Rule: m.Rule, Method: m.Method, Path: m.Path, Source: m.SourceIP})
		}
	}
	if t.opts.Metrics != nil {
		s.Requests = requestCounters(t.opts.Metrics.Gatherer())
	}
	return s
}

// redactedConfig is cfg as the file reads (YAML keys), with what could be a secret replaced:
// values under keys that name one (token, password, …), passwords in URLs, literal values of
// credential headers (Authorization, Cookie, API key headers), and any loaded keyring secret that
// an ${env:…} expansion put in the text. ${secret:NAME} references stay as written: they name a
// keyring, not its keys. Empty and null values are left out.
func redactedConfig(cfg *config.Config, red *observe.Redactor) map[string]any {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return map[string]any{"error": "cannot render the config: " + err.Error()}
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return map[string]any{"error": "cannot render the config: " + err.Error()}
	}
	credHeaders := map[string]bool{"authorization": true, "proxy-authorization": true, "cookie": true, "x-api-key": true}
	for _, g := range cfg.Gateways {
		if g.APIKeys != nil && g.APIKeys.Header != "" {
			credHeaders[strings.ToLower(g.APIKeys.Header)] = true
		}
	}
	out, _ := redactValue(tree, "", credHeaders, red).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	out["file"] = cfg.File
	return out
}

const redacted = "[REDACTED]"

// secretKeys are config keys whose value is a credential.
var secretKeys = map[string]bool{"token": true, "password": true, "passwd": true, "client_secret": true, "secret_value": true, "api_key": true, "bearer": true}

func redactValue(v any, key string, credHeaders map[string]bool, red *observe.Redactor) any {
	switch x := v.(type) {
	case map[string]any:
		// A request/response header mapping: {name: Authorization, value: "Bearer …"}.
		if n, ok := x["name"].(string); ok && credentialHeader(n, credHeaders) {
			if val, ok := x["value"].(string); ok && !onlyReferences(val) {
				x["value"] = redacted
			}
		}
		out := map[string]any{}
		for k, e := range x {
			// A header map (custom responses): {Authorization: "Bearer …"}.
			if val, ok := e.(string); ok && strings.EqualFold(key, "headers") && credentialHeader(k, credHeaders) && !onlyReferences(val) {
				out[k] = redacted
				continue
			}
			if r := redactValue(e, k, credHeaders, red); r != nil {
				out[k] = r
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if r := redactValue(e, key, credHeaders, red); r != nil {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case string:
		if x == "" {
			return nil
		}
		if secretKeys[strings.ToLower(key)] {
			return redacted
		}
		if strings.Contains(x, "://") {
			x = redactURL(x)
		}
		if red != nil {
			x = red.Redact(x)
		}
		return x
	case nil:
		return nil
	default:
		return x
	}
}

// credentialWords are parts of a header name that say its value is a credential
// (X-Auth-Token, X-Shared-Secret, X-Api-Key, Cookie, …).
var credentialWords = []string{"auth", "token", "secret", "key", "cookie", "pass", "session", "signature", "credential", "verify"}

// credentialHeader reports whether a header of this name carries a credential: a known one, or one
// whose name says so. Overmatching only hides a value from the admin view.
func credentialHeader(name string, known map[string]bool) bool {
	n := strings.ToLower(name)
	if known[n] {
		return true
	}
	for _, w := range credentialWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactURL hides the password of a URL's userinfo and the values of query parameters that name a
// credential (postgres ?password=, ?access_token=, …). The userinfo is found by the last '@', not
// by url.Parse alone: a password with '/', '?' or '#' in it makes the parser see another host, or
// fail, and the password would show.
func redactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	head, rest := s[:i+3], s[i+3:]
	u, err := url.Parse(s)
	if err != nil || u.User != nil {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if name, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
				rest = name + ":xxxxx" + rest[at:]
			}
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		query, frag, hasFrag := strings.Cut(rest[q+1:], "#")
		params := strings.Split(query, "&")
		for j, p := range params {
			k, _, ok := strings.Cut(p, "=")
			if ok && credentialParam(k) {
				params[j] = k + "=xxxxx"
			}
		}
		rest = rest[:q+1] + strings.Join(params, "&")
		if hasFrag {
			rest += "#" + frag
		}
	}
	return head + rest
}

// credentialParam reports whether a URL query parameter holds a credential.
func credentialParam(k string) bool {
	k = strings.ToLower(k)
	if uk, err := url.QueryUnescape(k); err == nil {
		k = uk
	}
	switch k {
	case "password", "passwd", "pwd", "sslpassword", "key", "apikey", "api_key", "sig", "signature", "auth", "code":
		return true
	}
	return strings.Contains(k, "token") || strings.Contains(k, "secret") || strings.Contains(k, "password")
}

// onlyReferences reports whether a header template is made of ${…} references only (no literal
// text that could be a credential).
func onlyReferences(s string) bool {
	for s != "" {
		if !strings.HasPrefix(s, "${") {
			return false
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return false
		}
		s = s[end+1:]
	}
	return true
}

// sortRequests orders counters by component (gateway, lb, app, others) then name.
func sortRequests(rs []admin.Requests) {
	order := func(c string) int {
		if i := slices.Index([]string{"gateway", "lb", "app"}, c); i >= 0 {
			return i
		}
		return 3
	}
	slices.SortFunc(rs, func(a, b admin.Requests) int {
		return cmp.Or(cmp.Compare(order(a.Component), order(b.Component)), cmp.Compare(a.Component, b.Component), cmp.Compare(a.Name, b.Name))
	})
}

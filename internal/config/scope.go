package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Scope names the components one process runs (`rampart gateway|lb|app [--name N]`), so that
// loading the file requires only the ${env:NAME} variables that matter to that process. The zero
// Scope is the whole file, as `rampart run` and `rampart validate` read it: every variable must
// be set.
//
// A process of a narrower scope requires the variables referenced by:
//   - the selected gateways, load balancers or app groups (every key under them), and the name
//     of every component of a selected kind (the name decides what --name selects);
//   - the web ACLs that a selected gateway or load balancer listener names, and then, when there
//     is one, the name of every web ACL;
//   - the secrets that those gateways (request_headers, api_keys) and web ACLs (origin_verify)
//     reference, and then, when there is one, every secret written with a variable in its name;
//   - every gateway's api_keys.header, which every process redacts from its logs;
//   - admin, tracing, version and any other top-level section, which every process reads.
//
// Not required: the other components, unused web ACLs and secrets, and web (the demo page runs
// in `rampart run` only). A value whose variable is not set there is replaced by a marker that
// is no valid address, path, URL or header value (a header mapping is dropped), and the checks of
// the entry that holds it (that gateway, load balancer, app group, web ACL or secret) report
// nothing, since they would be about the marker. The whole file is still decoded, so a syntax
// error or an unknown key is reported anywhere. The process never builds what it does not use:
// topology builds only the web ACLs and keyrings of its components, the same rule as here.
type Scope struct {
	// Gateways, LoadBalancers and Apps select components by kind. With none set the Scope is the
	// whole file.
	Gateways, LoadBalancers, Apps bool
	// Name, when set, narrows the selected kinds to the components of that name.
	Name string
}

// whole reports whether s is the whole file.
func (s Scope) whole() bool { return !s.Gateways && !s.LoadBalancers && !s.Apps }

// unsetMarker is what an unset ${env:NAME} of an unused section expands to. The NUL byte makes it
// fail as an address, a file name, a URL and a header value, should anything ever use it.
func unsetMarker(name string) string { return "\x00unset ${env:" + name + "}" }

// deferredEnv is an unset ${env:NAME} met while decoding under a narrower Scope. Whether it is an
// error depends on what the scope uses, which is known once the whole file is decoded.
type deferredEnv struct {
	path string
	key  bool // the reference is in a mapping key, such as a secret's name
	err  *Error
	// otherwise, when set, is reported instead of err when the scope does not use the value: a
	// mistake read after the variable, which the whole file reports once the variable is set.
	otherwise *Error
}

// scopeNeeds is what one Scope uses of one decoded file.
type scopeNeeds struct {
	scope               Scope
	gateways, lbs, apps map[int]bool // indexes of the selected components
	acls, secrets       map[string]bool
	aclNames            []string // web_acls[i].name, by index
	secretNames         []string // the keys of secrets, longest first
}

// needs works out which components, web ACLs and secrets s uses in cfg.
func (s Scope) needs(cfg *Config) *scopeNeeds {
	n := &scopeNeeds{scope: s, gateways: map[int]bool{}, lbs: map[int]bool{}, apps: map[int]bool{},
		acls: map[string]bool{}, secrets: map[string]bool{}}
	picked := func(kind bool, name string) bool { return kind && (s.Name == "" || name == s.Name) }
	for i := range cfg.Gateways {
		g := &cfg.Gateways[i]
		if !picked(s.Gateways, g.Name) {
			continue
		}
		n.gateways[i] = true
		if g.WebACL != "" {
			n.acls[g.WebACL] = true
		}
		templates := g.RequestHeaders
		for _, r := range g.Routes {
			templates = append(templates[:len(templates):len(templates)], r.RequestHeaders...)
		}
		for _, h := range templates {
			for _, name := range h.Value.Secrets() {
				n.secrets[name] = true
			}
		}
		if g.APIKeys != nil && g.APIKeys.Secret != "" {
			n.secrets[g.APIKeys.Secret] = true
		}
	}
	for i := range cfg.LoadBalancers {
		l := &cfg.LoadBalancers[i]
		if !picked(s.LoadBalancers, l.Name) {
			continue
		}
		n.lbs[i] = true
		for _, li := range l.Listeners {
			if li.WebACL != "" {
				n.acls[li.WebACL] = true
			}
		}
	}
	for i := range cfg.Apps {
		if picked(s.Apps, cfg.Apps[i].Name) {
			n.apps[i] = true
		}
	}
	for i := range cfg.WebACLs {
		n.aclNames = append(n.aclNames, cfg.WebACLs[i].Name)
		if !n.acls[cfg.WebACLs[i].Name] {
			continue
		}
		for j := range cfg.WebACLs[i].Rules {
			statementSecrets(&cfg.WebACLs[i].Rules[j].Statement, n.secrets)
		}
	}
	for name := range cfg.Secrets {
		n.secretNames = append(n.secretNames, name)
	}
	// Longest first: secret names may hold dots, and secrets.a.b.file is in secrets.a.b.
	slices.SortFunc(n.secretNames, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return n
}

func statementSecrets(s *Statement, names map[string]bool) {
	if s.OriginVerify != nil && s.OriginVerify.Secret != "" {
		names[s.OriginVerify.Secret] = true
	}
	for _, c := range s.Children() {
		statementSecrets(c, names)
	}
}

// settle runs once the file is decoded and defaulted, when d deferred unset variables: those
// that s uses become errors; the others stay stand-ins. It returns which paths the checks must
// not report: those of every entry that s does not use (a gateway, load balancer, app group, web
// ACL, secret, or web) and that holds a stand-in, or may name one (an unresolved web ACL or secret
// name could be the one an unused entry refers to).
func (s Scope) settle(cfg *Config, d *decoder) func(path string) bool {
	n := s.needs(cfg)
	tainted := map[string]bool{}
	every := false
	for _, u := range d.deferred {
		if n.requires(u.path, u.key) {
			d.errs = append(d.errs, u.err)
			continue
		}
		if u.otherwise != nil {
			d.errs = append(d.errs, u.otherwise)
		}
		if e, unused := n.entry(u.path); unused {
			tainted[e] = true
		}
		if _, rest, ok := listIndex(u.path, "web_acls"); (ok && rest == ".name") || (u.key && strings.HasPrefix(u.path, "secrets.")) {
			every = true
		}
	}
	return func(path string) bool {
		e, unused := n.entry(path)
		return unused && (every || tainted[e])
	}
}

// entry returns the entry of the file that path is in (gateways[1], secrets.origin-verify, web),
// and whether the scope leaves it unused; "" for paths outside such entries.
func (n *scopeNeeds) entry(path string) (string, bool) {
	top := path
	if i := strings.IndexAny(path, ".["); i >= 0 {
		top = path[:i]
	}
	i, _, ok := listIndex(path, top)
	switch {
	case top == "gateways" && ok:
		return fmt.Sprintf("gateways[%d]", i), !n.gateways[i]
	case top == "load_balancers" && ok:
		return fmt.Sprintf("load_balancers[%d]", i), !n.lbs[i]
	case top == "apps" && ok:
		return fmt.Sprintf("apps[%d]", i), !n.apps[i]
	case top == "web_acls" && ok:
		return fmt.Sprintf("web_acls[%d]", i), !n.acls[n.aclName(i)]
	case top == "secrets":
		for _, name := range n.secretNames {
			if p := "secrets." + name; path == p || strings.HasPrefix(path, p+".") {
				return p, !n.secrets[name]
			}
		}
	case top == "web":
		return "web", true
	}
	return "", false
}

// requires reports whether the value at path (a mapping key when key is set) is one the scope
// uses. Anything it does not recognise is required: an unset variable fails closed.
func (n *scopeNeeds) requires(path string, key bool) bool {
	top := path
	if i := strings.IndexAny(path, ".["); i >= 0 {
		top = path[:i]
	}
	switch top {
	case "gateways":
		i, rest, ok := listIndex(path, top)
		return !ok || n.gateways[i] || (n.scope.Gateways && rest == ".name") || rest == ".api_keys.header"
	case "load_balancers":
		i, rest, ok := listIndex(path, top)
		return !ok || n.lbs[i] || (n.scope.LoadBalancers && rest == ".name")
	case "apps":
		i, rest, ok := listIndex(path, top)
		return !ok || n.apps[i] || (n.scope.Apps && rest == ".name")
	case "web_acls":
		// The names are read to find the ACLs in use; an unnamed (unresolved) ACL may be one.
		i, rest, ok := listIndex(path, top)
		return !ok || (len(n.acls) > 0 && rest == ".name") || n.acls[n.aclName(i)]
	case "secrets":
		if key {
			return len(n.secrets) > 0 // an unresolved name may be the name of a used secret
		}
		p := strings.TrimPrefix(path, "secrets.")
		for name := range n.secrets {
			if p == name || strings.HasPrefix(p, name+".") {
				return true
			}
		}
		return path == "secrets"
	case "web":
		return false
	default:
		return true
	}
}

// aclName is the name of web_acls[i].
func (n *scopeNeeds) aclName(i int) string {
	if i < 0 || i >= len(n.aclNames) {
		return "\x00"
	}
	return n.aclNames[i]
}

// listIndex splits "top[i]rest" into i and rest; false when path is not in list top.
func listIndex(path, top string) (int, string, bool) {
	s, ok := strings.CutPrefix(path, top)
	if !ok {
		return 0, "", false
	}
	if !strings.HasPrefix(s, "[") {
		return 0, "", false
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return 0, "", false
	}
	i, err := strconv.Atoi(s[1:end])
	if err != nil {
		return 0, "", false
	}
	return i, s[end+1:], true
}

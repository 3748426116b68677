package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

// probeResult is one check of `rampart probe`: an attempt an attacker would make, what a
// secure deployment answers, and what this one answered. It never holds a secret or a token.
type probeResult struct {
	Component string `json:"component"` // "lb app-alb", "gateway public-api", "app items"
	Target    string `json:"target"`    // address probed
	Check     string `json:"check"`
	Expect    string `json:"expect"`
	Got       string `json:"got"`
	Status    string `json:"status"` // pass, fail or skip
}

const (
	probePass = "pass"
	probeFail = "fail"
	probeSkip = "skip"
)

// prober runs checks against one deployment.
type prober struct {
	cfg     *config.Config
	client  *http.Client
	results []probeResult
}

func probeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rampart probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var file string
	fs.StringVar(&file, "c", "", "config file of the deployment")
	fs.StringVar(&file, "config", "", "config file (same as -c)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout of each attempt")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart probe: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	p := &prober{cfg: cfg, client: &http.Client{
		Timeout: *timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			// An attacker does not care who the server is; a listener that requires a client
			// certificate refuses the handshake, which the checks count as a refusal.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probing, not trusting
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	p.run(ctx)

	failed := 0
	for _, r := range p.results {
		if r.Status == probeFail {
			failed++
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Config  string        `json:"config"`
			Failed  int           `json:"failed"`
			Results []probeResult `json:"results"`
		}{cfg.File, failed, p.results})
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tCOMPONENT\tTARGET\tCHECK\tEXPECT\tGOT")
		for _, r := range p.results {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(r.Status), r.Component, r.Target, r.Check, r.Expect, r.Got)
		}
		tw.Flush()
		if failed > 0 {
			fmt.Fprintf(stdout, "\n%d check(s) failed: traffic can get around the gateway or its policy.\n", failed)
		} else {
			fmt.Fprintf(stdout, "\nall %d checks passed (skipped ones excepted).\n", len(p.results))
		}
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func (p *prober) add(r probeResult) { p.results = append(p.results, r) }

// run probes every load balancer listener, gateway and app of the config.
func (p *prober) run(ctx context.Context) {
	for _, lb := range p.cfg.LoadBalancers {
		for _, li := range lb.Listeners {
			p.probeListener(ctx, lb.Name, li)
		}
	}
	for _, g := range p.cfg.Gateways {
		p.probeGateway(ctx, g)
	}
	for _, a := range p.cfg.Apps {
		for _, addr := range a.Listen {
			p.probeApp(ctx, a.Name, addr)
		}
	}
}

// dialAddr turns a listen address into one to connect to.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// originVerifyOf finds the first origin_verify statement of a web ACL.
func originVerifyOf(acl *config.WebACL) *config.OriginVerifyStatement {
	var find func(s *config.Statement) *config.OriginVerifyStatement
	find = func(s *config.Statement) *config.OriginVerifyStatement {
		if s.OriginVerify != nil {
			return s.OriginVerify
		}
		if s.Not != nil {
			if ov := find(s.Not); ov != nil {
				return ov
			}
		}
		for _, list := range [][]config.Statement{s.And, s.Or} {
			for i := range list {
				if ov := find(&list[i]); ov != nil {
					return ov
				}
			}
		}
		return nil
	}
	for i := range acl.Rules {
		if ov := find(&acl.Rules[i].Statement); ov != nil {
			return ov
		}
	}
	return nil
}

// probePath picks a path the listener serves: a gateway route that integrates with it, else a
// rule's path condition, else /.
func (p *prober) probePath(li config.Listener) string {
	addr := dialAddr(li.Listen)
	for _, g := range p.cfg.Gateways {
		for _, r := range g.Routes {
			if strings.Contains(r.Integration.URL, "://"+addr) || strings.Contains(r.Integration.URL, "://"+li.Listen) {
				return routeExample(r.Path)
			}
		}
	}
	for _, r := range li.Rules {
		for _, pat := range r.Conditions.Path {
			if strings.HasPrefix(pat, "/") {
				return strings.NewReplacer("*", "probe", "?", "p").Replace(pat)
			}
		}
	}
	return "/"
}

// routeExample fills a route template's parameters: /items/{id} → /items/1.
func routeExample(tmpl string) string {
	segs := strings.Split(tmpl, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			segs[i] = "1"
		}
	}
	return strings.Join(segs, "/")
}

// send makes one request and describes the outcome: "403", or "refused (…)" when no HTTP
// response came back.
func (p *prober) send(ctx context.Context, method, url string, header http.Header) (status int, got string) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "bad request: " + err.Error()
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, "refused (" + connError(err) + ")"
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}

// connError names why a connection produced no response, without echoing request data.
func connError(err error) string {
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		return "TLS certificate"
	case strings.Contains(err.Error(), "tls:"), strings.Contains(err.Error(), "remote error"):
		return "TLS handshake"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"), errors.Is(err, io.EOF), strings.Contains(err.Error(), "EOF"):
		return "connection reset"
	case errors.As(err, &opErr) && opErr.Timeout(), strings.Contains(err.Error(), "Client.Timeout"):
		return "timeout"
	default:
		return "no response"
	}
}

func (p *prober) probeListener(ctx context.Context, lbName string, li config.Listener) {
	addr := dialAddr(li.Listen)
	scheme := "http"
	if li.TLS != nil {
		scheme = "https"
	}
	path := p.probePath(li)
	url := scheme + "://" + addr + path
	comp := "lb " + lbName
	header, mode, secret := "X-Origin-Verify", config.OriginVerifyStatic, ""
	var acl *config.WebACL
	for i := range p.cfg.WebACLs {
		if p.cfg.WebACLs[i].Name == li.WebACL {
			acl = &p.cfg.WebACLs[i]
		}
	}
	if acl != nil {
		if ov := originVerifyOf(acl); ov != nil {
			header, secret = ov.Header, ov.Secret
			if ov.Mode == config.OriginVerifySigned {
				mode = config.OriginVerifySigned
			}
		}
	}
	const expect = "403 or refused"
	blocked := func(status int) bool { return status == 0 || status == http.StatusForbidden }
	check := func(name string, h http.Header, method, target string) {
		status, got := p.send(ctx, method, target, h)
		st := probeFail
		if blocked(status) {
			st = probePass
		}
		p.add(probeResult{Component: comp, Target: addr, Check: name, Expect: expect, Got: got, Status: st})
	}
	check("direct, without "+header, nil, "GET", url)
	check("direct, wrong "+header, http.Header{http.CanonicalHeaderKey(header): {"rampart-probe-" + rand.Text()}}, "GET", url)
	check("direct, "+header+" twice", http.Header{http.CanonicalHeaderKey(header): {"a-" + rand.Text(), "b-" + rand.Text()}}, "GET", url)

	if mode != config.OriginVerifySigned {
		p.add(probeResult{Component: comp, Target: addr, Check: "signed-token attacks", Expect: "-", Got: "static mode: a leaked key is valid until rotated", Status: probeSkip})
		return
	}
	k := p.loadKeyring(secret)
	if k == nil {
		p.add(probeResult{Component: comp, Target: addr, Check: "signed-token attacks", Expect: "-", Got: "keyring not readable here; run probe where the keyring is", Status: probeSkip})
		return
	}
	name := http.CanonicalHeaderKey(header)
	tok := func(method, target string, at time.Time) http.Header {
		return http.Header{name: {k.Sign(method, addr, target, at)}}
	}
	now := time.Now()
	check("direct, expired signed token", tok("GET", path, now.Add(-time.Hour)), "GET", url)
	check("direct, signed token for another path", tok("GET", path+"-other", now), "GET", url)
	check("direct, signed token for another method", tok("DELETE", path, now), "GET", url)
	// In signed mode the key itself never crosses the network; the probe must not be the first
	// to send it in clear, where anyone on the path could then mint tokens.
	if strings.HasPrefix(url, "https://") {
		check("direct, static key in signed mode", http.Header{name: {k.Current().Secret}}, "GET", url)
	} else {
		p.add(probeResult{Component: comp, Target: addr, Check: "direct, static key in signed mode", Expect: expect, Got: "not sent: the listener is plain HTTP and would expose the key", Status: probeSkip})
	}
	// Replay: the first use of a fresh token is what the gateway would send, so it passes the
	// web ACL; the same token again must not.
	replay := tok("GET", path, now)
	if status, _ := p.send(ctx, "GET", url, replay); status == 0 {
		p.add(probeResult{Component: comp, Target: addr, Check: "direct, replayed signed token", Expect: expect, Got: "first use refused; nothing to replay", Status: probeSkip})
		return
	}
	check("direct, replayed signed token", replay, "GET", url)
}

// loadKeyring reads the keyring of secret without creating it; nil when it is not readable.
func (p *prober) loadKeyring(secret string) *originverify.Keyring {
	spec, ok := p.cfg.Secrets[secret]
	if !ok {
		return nil
	}
	data, err := os.ReadFile(spec.File)
	if err != nil {
		return nil
	}
	k, err := originverify.Parse(secret, data)
	if err != nil {
		return nil
	}
	return k
}

func (p *prober) probeGateway(ctx context.Context, g config.Gateway) {
	addr := dialAddr(g.Listen)
	comp := "gateway " + g.Name
	path := "/"
	method := "GET"
	if len(g.Routes) > 0 {
		path = routeExample(g.Routes[0].Path)
		method = g.Routes[0].Methods[0]
	}
	url := "http://" + addr + path
	const evil = "https://rampart-probe.invalid"
	for _, c := range []struct {
		name, method string
		h            http.Header
	}{
		{"request from a disallowed origin", method, http.Header{"Origin": {evil}}},
		{"preflight from a disallowed origin", http.MethodOptions, http.Header{"Origin": {evil}, "Access-Control-Request-Method": {method}}},
	} {
		status, got := p.send(ctx, c.method, url, c.h)
		st := probeFail
		if status == http.StatusForbidden {
			st = probePass
		}
		p.add(probeResult{Component: comp, Target: addr, Check: c.name, Expect: "403", Got: got, Status: st})
	}
}

// probeApp connects straight to an app instance: the private tier must not answer.
func (p *prober) probeApp(ctx context.Context, name, listen string) {
	addr := dialAddr(listen)
	status, got := p.send(ctx, "GET", "http://"+addr+"/healthz", nil)
	st := probeFail
	if status == 0 {
		st = probePass
	}
	p.add(probeResult{Component: "app " + name, Target: addr, Check: "direct connection to the private tier", Expect: "refused", Got: got, Status: st})
}

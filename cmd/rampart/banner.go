package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/topology"
)

// palette colours the banner; every field is empty when colour is off.
type palette struct {
	bold, dim, reset string
	kind             map[topology.Kind]string
}

// colorFor returns the palette for w: colour when w is a terminal and NO_COLOR
// (https://no-color.org) is not set; plain text for files, pipes and tests.
func colorFor(w io.Writer) palette {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return palette{kind: map[topology.Kind]string{}}
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return palette{kind: map[topology.Kind]string{}}
	}
	// Every code has the same length, so tabwriter's columns stay aligned.
	return palette{bold: "\x1b[1m", dim: "\x1b[2m", reset: "\x1b[0m", kind: map[topology.Kind]string{
		topology.KindGateway: "\x1b[36m", topology.KindLB: "\x1b[35m", topology.KindApp: "\x1b[32m",
		topology.KindWeb: "\x1b[34m", topology.KindAdmin: "\x1b[33m",
	}}
}

// printBanner tells a person what is running where and, for `rampart run`, three requests that show
// the architecture at work: the secure path, a blocked bypass, a blocked origin.
func printBanner(w io.Writer, cmd string, cfg *config.Config, topo *topology.Topology) {
	printBannerColor(w, colorFor(w), cmd, cfg, topo)
}

func printBannerColor(w io.Writer, p palette, cmd string, cfg *config.Config, topo *topology.Topology) {
	fmt.Fprintf(w, "%sRampart %s%s: %s (config: %s)\n", p.bold, version(), p.reset, cmd, cfg.File)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	addrs := topo.Addrs()
	dashboard := ""
	for i, e := range topo.Endpoints {
		url := "http://" + addrs[i].String()
		if e.Kind == topology.KindAdmin {
			dashboard = url + "/"
			url += "/healthz"
		}
		c, reset := p.kind[e.Kind], p.reset
		if c == "" {
			reset = ""
		}
		fmt.Fprintf(tw, "  %s%s%s\t%s\t%s\t%s%s%s\n", c, e.Kind, reset, e.Name, url, p.dim, e.Note, p.reset)
	}
	tw.Flush()
	if dashboard != "" {
		fmt.Fprintf(w, "Dashboard: %s%s%s   (admin API: docs/admin-api.md; rampart status --admin %s)\n", p.bold, dashboard, p.reset, strings.TrimSuffix(strings.TrimPrefix(dashboard, "http://"), "/"))
	}
	if cmd == "run" {
		if lines := tryLines(cfg); len(lines) > 0 {
			fmt.Fprintln(w, "Try:")
			for _, l := range lines {
				fmt.Fprintln(w, "  "+l)
			}
		}
	}
	if cfg.File != "" && !strings.HasPrefix(cfg.File, "<") {
		fmt.Fprintf(w, "Reloads %s on change, on SIGHUP and on POST /reload.\n", cfg.File)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}

// tryLines builds the three curl commands from the config, so they stay right for any topology
// that has a gateway and a load balancer.
func tryLines(cfg *config.Config) []string {
	if len(cfg.Gateways) == 0 || len(cfg.Gateways[0].Routes) == 0 {
		return nil
	}
	g := cfg.Gateways[0]
	path := firstConcretePath(g.Routes)
	gw := "http://" + g.Listen + path
	lines := []string{fmt.Sprintf("curl -i %s   # through the gateway: 200", gw)}
	if len(cfg.LoadBalancers) > 0 && len(cfg.LoadBalancers[0].Listeners) > 0 {
		lines = append(lines, fmt.Sprintf("curl -i http://%s%s   # bypassing the gateway: 403 from the WAF", cfg.LoadBalancers[0].Listeners[0].Listen, path))
	}
	if g.CORS.Mode == config.CORSEnforce {
		lines = append(lines, fmt.Sprintf("curl -i -H 'Origin: https://evil.example' %s   # disallowed origin: 403 from the gateway", gw))
	}
	return lines
}

func firstConcretePath(routes []config.Route) string {
	for _, r := range routes {
		if !strings.Contains(r.Path, "{") {
			return r.Path
		}
	}
	return routes[0].Path
}

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/topology"
)

// printBanner tells a person what is running where and, for `rampart run`, three requests that show
// the architecture at work: the secure path, a blocked bypass, a blocked origin.
func printBanner(w io.Writer, cmd string, cfg *config.Config, topo *topology.Topology) {
	fmt.Fprintf(w, "Rampart %s: %s (config: %s)\n", version(), cmd, cfg.File)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, e := range topo.Endpoints {
		url := "http://" + topo.Addrs()[i].String()
		if e.Kind == topology.KindAdmin {
			url += "/healthz"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Kind, e.Name, url, e.Note)
	}
	tw.Flush()
	if cmd == "run" {
		if lines := tryLines(cfg); len(lines) > 0 {
			fmt.Fprintln(w, "Try:")
			for _, l := range lines {
				fmt.Fprintln(w, "  "+l)
			}
		}
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

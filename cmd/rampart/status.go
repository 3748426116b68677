package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rampart-edge/rampart/internal/admin"
	"github.com/rampart-edge/rampart/internal/config"
)

// defaultAdmin is admin.listen in the embedded default config.
const defaultAdmin = "127.0.0.1:9900"

// statusCmd prints the live state of a running instance from its admin API (GET /api/state).
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rampart status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", defaultAdmin, "the admin listener (HOST:PORT or a URL)")
	token := fs.String("token", "", "the admin token (default: $RAMPART_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print the state as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart status: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *token == "" {
		*token = os.Getenv("RAMPART_ADMIN_TOKEN")
	}
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(base, "/")
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/state", nil)
	if err != nil {
		fmt.Fprintf(stderr, "rampart status: %v\n", err)
		return 2
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "rampart status: is rampart running with its admin listener on %s? %v\n", *addr, err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		fmt.Fprintf(stderr, "rampart status: reading the answer: %v\n", err)
		return 1
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && *token != "":
		// Sent but refused: saying "it wants a token" would send the user looking for a flag they
		// already passed.
		fmt.Fprintf(stderr, "rampart status: the admin API on %s refused the token (from --token or RAMPART_ADMIN_TOKEN): it is not the running config's admin.token\n", *addr)
		return 1
	case resp.StatusCode == http.StatusUnauthorized:
		fmt.Fprintln(stderr, "rampart status: the admin API wants its token: --token T or RAMPART_ADMIN_TOKEN")
		return 1
	case resp.StatusCode != http.StatusOK:
		fmt.Fprintf(stderr, "rampart status: GET %s/api/state: %s: %s\n", base, resp.Status, bytes.TrimSpace(body))
		return 1
	}
	if *asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			fmt.Fprintf(stderr, "rampart status: the answer is not JSON: %v\n", err)
			return 1
		}
		out.WriteByte('\n')
		_, _ = stdout.Write(out.Bytes())
		return 0
	}
	var st admin.State
	if err := json.Unmarshal(body, &st); err != nil {
		fmt.Fprintf(stderr, "rampart status: the answer is not a state: %v\n", err)
		return 1
	}
	printStatus(stdout, base, st)
	return 0
}

// printStatus writes st as tables a person reads at a glance.
func printStatus(w io.Writer, base string, st admin.State) {
	ready := "ready"
	if !st.Ready {
		ready = "not ready (waiting for " + strings.Join(st.Waiting, ", ") + ")"
	}
	fmt.Fprintf(w, "Rampart %s at %s: %s\n", st.Version, base, ready)
	fmt.Fprintf(w, "Config %s  hash %s  reloads %d ok, %d rejected", st.Config.File, st.Config.Hash, st.Reloads.OK, st.Reloads.Rejected)
	if l := st.Reloads.Last; l.Cause != "" && l.Cause != "start" {
		res := "ok"
		if !l.OK {
			res = "rejected"
		}
		fmt.Fprintf(w, "  (last: %s by %s at %s)", res, l.Cause, l.Time.Local().Format(time.TimeOnly))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "\nListeners")
	fmt.Fprintln(tw, "  KIND\tNAME\tLISTEN\tNOTE")
	for _, e := range st.Listeners {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Kind, e.Name, e.Listen, e.Note)
	}
	tw.Flush()

	if len(st.LoadBalancers) > 0 {
		fmt.Fprintln(w, "\nTarget groups")
		fmt.Fprintln(tw, "  LOAD BALANCER\tGROUP\tTARGET\tSTATE\tWEIGHT\tIN FLIGHT")
		for _, l := range st.LoadBalancers {
			for _, g := range l.Groups {
				if len(g.Targets) == 0 {
					fmt.Fprintf(tw, "  %s\t%s\t-\tno target\t\t\n", l.Name, g.Name)
				}
				for _, t := range g.Targets {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d\n", l.Name, g.Name, t.Address, t.State, t.Weight, t.InFlight)
				}
			}
		}
		tw.Flush()
	}

	if len(st.Keyrings) > 0 {
		fmt.Fprintln(w, "\nKeyrings")
		fmt.Fprintln(tw, "  NAME\tIN USE\tKEYS")
		for _, k := range st.Keyrings {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.Name, k.CurrentID, strings.Join(k.Keys, ", "))
		}
		tw.Flush()
	}

	if st.Requests != nil {
		fmt.Fprintln(w, "\nRequests since start")
		fmt.Fprintln(tw, "  COMPONENT\tNAME\tTOTAL\t2XX\t4XX\t5XX")
		for _, r := range st.Requests {
			fmt.Fprintf(tw, "  %s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", r.Component, r.Name, r.Total, r.ByClass["2xx"], r.ByClass["4xx"], r.ByClass["5xx"])
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nWAF: %d matches, %d recent blocks\n", st.WAFMatches, len(st.WAFBlocks))
}

// checkAdminFlag applies admin.token's rule (docs/admin-api.md) to --admin ADDR too: an admin
// listener reachable from the network needs the config's admin.token.
func checkAdminFlag(addr string, cfg *config.Config) error {
	if addr == "" || (cfg.Admin != nil && cfg.Admin.Token != "") {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin %q: want HOST:PORT", addr)
	}
	if config.LoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("--admin %s is reachable from the network: set admin.token in %s (docs/admin-api.md), or use a loopback address", addr, cfg.File)
}

// Command rampart runs Rampart's secure edge: the whole topology in one process (`rampart run`), or
// one component per process (`rampart gateway|lb|app`) from the same config file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-edge/rampart/examples"
	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/observe"
	"github.com/rampart-edge/rampart/internal/topology"
)

const usage = `Rampart: a self-hosted secure edge (gateway → load balancer + WAF → private apps).

Usage:
  rampart run      [-c FILE]            the whole topology in one process (embedded default without -c)
  rampart gateway  -c FILE [--name N]   the gateway(s) of FILE
  rampart lb       -c FILE [--name N]   the load balancer(s) of FILE
  rampart app      -c FILE [--name N] [--listen ADDR]
                                        the app instances of FILE (--listen: just that instance)
  rampart validate -c FILE [--for gateway|lb|app [--name N]]
                                        check FILE and print every error with file:line:column
                                        (--for: as that command loads it, with only its variables)
  rampart secret rotate NAME -c FILE [--propagation 10s] [--grace 1m]
                                        rotate a keyring without downtime (secret list NAME: its key states)
  rampart certs init --dir DIR          a private CA and certificates for mTLS from gateway to load balancer
  rampart probe -c FILE [--json]        audit a running deployment from outside; exits 1 if a bypass works
  rampart status [--admin ADDR] [--token T] [--json]
                                        the live state of a running instance, from its admin API
  rampart version                       print the version

Common flags: --log-format json|text (default json), --log-level debug|info|warn|error (default info),
--grace DURATION (how long in-flight requests may take at shutdown, default 10s),
--drain-delay DURATION (at shutdown, how long to keep accepting while /readyz answers 503, default 0),
--admin ADDR (for gateway/lb/app: also serve the admin listener there).

gateway, lb and app need only the ${env:NAME} variables of what they run; run and validate need
every variable of FILE, validate --for only those of that command (docs/configuration.md).
A process started with -c FILE reloads FILE on SIGHUP, when FILE changes, and on POST /reload to
its admin listener; a config that does not validate is rejected and the running one stays.
The admin listener serves the dashboard at / and the admin API (docs/admin-api.md).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process exit, so the CLI can be tested in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "rampart", version())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "validate":
		return validate(args, stdout, stderr)
	case "run", "gateway", "lb", "app":
		return serve(cmd, args, stdout, stderr)
	case "secret": // secret.go
		return secretCmd(context.Background(), args, stdout, stderr)
	case "certs": // certs.go
		return certsCmd(args, stdout, stderr)
	case "probe": // probe.go
		return probeCmd(context.Background(), args, stdout, stderr)
	case "status": // status.go
		return statusCmd(context.Background(), args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

type flags struct {
	file, name, listen, admin string
	logFormat, logLevel       string
	grace                     time.Duration
	drainDelay                time.Duration
	loopbackHop               bool
	validateFor               string     // validate --for gateway|lb|app
	gc                        gcSettings // gc.go
}

func parseFlags(cmd string, args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("rampart "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.file, "c", "", "config file")
	fs.StringVar(&f.file, "config", "", "config file (same as -c)")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if cmd != "validate" {
		fs.DurationVar(&f.grace, "grace", 10*time.Second, "how long in-flight requests may take at shutdown")
		// 0 by default: without something polling /readyz (a load balancer, Kubernetes) there is
		// nothing to wait for, and the queued connections are served even without a delay.
		fs.DurationVar(&f.drainDelay, "drain-delay", 0, "at shutdown, how long to keep accepting while /readyz answers 503 and responses close their connections, before the listeners close")
		fs.IntVar(&f.gc.percent, "gc-percent", 0, "garbage collector target percent (0: 200 unless GOGC is set; negative: off)")
		fs.IntVar(&f.gc.memoryLimitMiB, "memory-limit", 0, "soft memory limit in MiB (0: 48, or twice the live heap after start, unless GOMEMLIMIT is set; negative: none)")
	}
	if cmd == "run" {
		fs.BoolVar(&f.loopbackHop, "loopback-hop", false, "gateways call the load balancers of this process over loopback connections instead of in-process")
	}
	if cmd == "validate" {
		fs.StringVar(&f.validateFor, "for", "", "check the file as `rampart gateway|lb|app` loads it: only the ${env:NAME} variables of those components (and --name) must be set")
		fs.StringVar(&f.name, "name", "", "with --for: the component of this name")
	}
	if cmd == "gateway" || cmd == "lb" || cmd == "app" {
		fs.StringVar(&f.name, "name", "", "run only the "+cmd+" of this name")
		fs.StringVar(&f.admin, "admin", "", "also serve the admin listener on this address")
	}
	if cmd == "app" {
		fs.StringVar(&f.listen, "listen", "", "run only the instance listening on this address")
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q (flags go like -c FILE)", fs.Arg(0))
	}
	if f.file == "" && cmd != "run" {
		return f, fmt.Errorf("rampart %s needs a config file: -c FILE", cmd)
	}
	return f, nil
}

// loadConfig reads the whole file, or the embedded default when file is empty: every ${env:NAME}
// variable it references must be set.
func loadConfig(file string) (*config.Config, error) { return loadScope(file, config.Scope{}) }

// loadScope is loadConfig for the components of scope: ${env:NAME} variables that only other
// components reference may be unset.
func loadScope(file string, scope config.Scope) (*config.Config, error) {
	if file == "" {
		return scope.Parse("<embedded default>", examples.Default, os.LookupEnv)
	}
	return scope.Load(file)
}

func validate(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags("validate", args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	scope := config.Scope{Name: f.name}
	switch f.validateFor {
	case "":
		if f.name != "" {
			fmt.Fprintln(stderr, "--name needs --for gateway, lb or app")
			return 2
		}
	case "gateway":
		scope.Gateways = true
	case "lb":
		scope.LoadBalancers = true
	case "app":
		scope.Apps = true
	default:
		fmt.Fprintf(stderr, "--for %q: write gateway, lb or app\n", f.validateFor)
		return 2
	}
	cfg, err := loadScope(f.file, scope)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if f.name != "" && !hasComponent(cfg, f.validateFor, f.name) {
		fmt.Fprintf(stderr, "no %s named %q in %s\n", f.validateFor, f.name, f.file)
		return 1
	}
	if f.validateFor != "" {
		fmt.Fprintf(stdout, "%s: ok for rampart %s\n", f.file, strings.TrimSpace(f.validateFor+" "+nameFlag(f.name)))
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok\n", f.file)
	return 0
}

// hasComponent reports whether cfg has a component of kind (gateway, lb, app) named name, as
// `rampart KIND --name NAME` requires.
func hasComponent(cfg *config.Config, kind, name string) bool {
	switch kind {
	case "gateway":
		return slices.ContainsFunc(cfg.Gateways, func(g config.Gateway) bool { return g.Name == name })
	case "lb":
		return slices.ContainsFunc(cfg.LoadBalancers, func(l config.LoadBalancer) bool { return l.Name == name })
	default:
		return slices.ContainsFunc(cfg.Apps, func(a config.App) bool { return a.Name == name })
	}
}

func nameFlag(name string) string {
	if name == "" {
		return ""
	}
	return "--name " + name
}

func serve(cmd string, args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags(cmd, args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return 2
	}
	level, err := observe.ParseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	redactor := &observe.Redactor{}
	logger, err := observe.NewLogger(stderr, f.logFormat, level, redactor)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	sel := topology.Selection{Name: f.name, Listen: f.listen, AdminListen: f.admin, Kinds: map[topology.Kind]bool{}}
	switch cmd {
	case "run":
		for _, k := range []topology.Kind{topology.KindGateway, topology.KindLB, topology.KindApp, topology.KindWeb, topology.KindAdmin} {
			sel.Kinds[k] = true
		}
	default:
		sel.Kinds[topology.Kind(cmd)] = true
		sel.Kinds[topology.KindAdmin] = f.admin != ""
	}
	// The same scope as every reload (topology.Selection.ConfigScope): `rampart run` needs every
	// variable of the file, `rampart gateway|lb|app` those of what it runs.
	cfg, err := loadScope(f.file, sel.ConfigScope())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	if err := checkAdminFlag(f.admin, cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// One registry and one tracer provider per process, shared by every component and kept
	// across reloads (docs/observability.md).
	metrics := observe.NewMetrics()
	tracing, err := observe.NewTracing(cfg.Tracing, observe.WithTraceStderr(stderr))
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	defer func() {
		// Export the spans still queued, without holding the exit for an unreachable collector.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tracing.Shutdown(sctx); err != nil {
			logger.Warn("tracing shutdown", "error", err)
		}
	}()
	topo, err := topology.Build(ctx, cfg, sel, topology.Options{Logger: logger, Redactor: redactor, Version: version(),
		Metrics: metrics, Tracing: tracing, ConfigPath: f.file, DrainDelay: f.drainDelay, LoopbackHop: f.loopbackHop})
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	tuneGC(f.gc, os.Getenv, logger) // gc.go: once the components hold their live heap
	if err := topo.Listen(); err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	printBanner(stdout, cmd, cfg, topo)
	logger.Info("started", "command", cmd, "config", cfg.File, "version", version())
	if err := topo.Serve(ctx, f.grace); err != nil {
		logger.Error("server failed", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

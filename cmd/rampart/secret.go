package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-edge/rampart/internal/originverify"
)

const secretUsage = `Usage:
  rampart secret rotate NAME -c FILE [--propagation 10s | --confirm URL[,URL…] [--confirm-timeout 1m]] [--grace 1m]
      rotate the keyring of secret NAME without downtime: add a pending key (verifiers accept it),
      wait --propagation for every load balancer to load it — or, with --confirm, until the admin
      API (GET /keyrings) of every listed load balancer lists it — make it current (gateways send
      it; the old key becomes previous), wait --grace, retire the old key
  rampart secret list NAME -c FILE
      print the keyring's key ids and states (never the secrets)
`

// secretCmd runs `rampart secret …`. It never prints a secret.
func secretCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, secretUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	if sub != "rotate" && sub != "list" {
		fmt.Fprintf(stderr, "rampart secret: unknown subcommand %q\n\n%s", sub, secretUsage)
		return 2
	}
	fs := flag.NewFlagSet("rampart secret "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var file string
	fs.StringVar(&file, "c", "", "config file")
	fs.StringVar(&file, "config", "", "config file (same as -c)")
	propagation := fs.Duration("propagation", 10*time.Second, "how long every verifier may take to load the new key")
	grace := fs.Duration("grace", time.Minute, "how long the old key stays accepted after gateways switched")
	confirm := fs.String("confirm", "", "comma-separated admin URLs of the verifiers (load balancers) that must list the pending key before it becomes current; replaces --propagation")
	confirmTimeout := fs.Duration("confirm-timeout", time.Minute, "how long --confirm waits for every verifier before giving up (the key stays pending)")
	// NAME may come before or after the flags.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart secret %s: unexpected argument %q\n", sub, fs.Arg(0))
		return 2
	}
	if name == "" {
		fmt.Fprintf(stderr, "rampart secret %s: name the secret, such as origin-verify\n\n%s", sub, secretUsage)
		return 2
	}
	cfg, err := loadConfig(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	spec, ok := cfg.Secrets[name]
	if !ok {
		var names []string
		for n := range cfg.Secrets {
			names = append(names, n)
		}
		slices.Sort(names)
		fmt.Fprintf(stderr, "rampart secret %s: %s defines no secret %q (it defines: %s)\n", sub, cfg.File, name, strings.Join(names, ", "))
		return 1
	}
	// The first run creates the keyring, as the servers do, so that a rotation can be the first
	// thing an operator does.
	if _, err := originverify.LoadOrCreate(name, spec.File); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	switch sub {
	case "list":
		f, err := originverify.ReadFile(spec.File)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%-12s %-9s %s\n", "ID", "STATE", "CREATED")
		for _, k := range f.Keys {
			fmt.Fprintf(stdout, "%-12s %-9s %s\n", k.ID, k.State, k.Created.Format(time.RFC3339))
		}
		return 0
	default:
		if *propagation < 0 || *grace < 0 || *confirmTimeout <= 0 {
			fmt.Fprintln(stderr, "rampart secret rotate: --propagation and --grace must not be negative, --confirm-timeout must be positive")
			return 2
		}
		urls, err := confirmURLs(*confirm)
		if err != nil {
			fmt.Fprintf(stderr, "rampart secret rotate: --confirm: %v\n", err)
			return 2
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		progress := func(line string) { fmt.Fprintf(stdout, "secret %s: %s\n", name, line) }
		opts := originverify.RotateOptions{Propagation: *propagation, Grace: *grace, Progress: progress}
		if len(urls) > 0 {
			opts.Confirm = func(ctx context.Context, id string) error {
				ctx, cancel := context.WithTimeout(ctx, *confirmTimeout)
				defer cancel()
				err := originverify.ConfirmLoaded(ctx, nil, urls, name, id, func(line string) { progress("    " + line) })
				if errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("%w after --confirm-timeout %s", err, *confirmTimeout)
				}
				return err
			}
		}
		err = originverify.Rotate(ctx, spec.File, opts)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				fmt.Fprintf(stderr, "rampart secret rotate: %v\n", err)
				return 130
			}
			fmt.Fprintf(stderr, "rampart secret rotate: %v\n", err)
			return 1
		}
		return 0
	}
}

// confirmURLs splits the --confirm list of admin base URLs and checks each is http(s)://host.
func confirmURLs(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var urls []string
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an admin URL; write http://HOST:PORT (the --admin address of each load balancer)", raw)
		}
		urls = append(urls, strings.TrimSuffix(raw, "/"))
	}
	return urls, nil
}

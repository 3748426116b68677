package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-edge/rampart/internal/originverify"
)

const secretUsage = `Usage:
  rampart secret rotate NAME -c FILE [--propagation 10s] [--grace 1m]
      rotate the keyring of secret NAME without downtime: add a pending key (verifiers accept it),
      wait --propagation for every load balancer to load it, make it current (gateways send it;
      the old key becomes previous), wait --grace, retire the old key
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
		if *propagation < 0 || *grace < 0 {
			fmt.Fprintln(stderr, "rampart secret rotate: --propagation and --grace must not be negative")
			return 2
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := originverify.Rotate(ctx, spec.File, originverify.RotateOptions{
			Propagation: *propagation,
			Grace:       *grace,
			Progress:    func(line string) { fmt.Fprintf(stdout, "secret %s: %s\n", name, line) },
		})
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

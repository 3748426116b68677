// Command reliability-report turns the scenario lines the reliability suite recorded
// (RAMPART_RELIABILITY_REPORT=FILE go test …) into docs/reliability.md.
//
// Usage: go run ./bench/reliability-report -in FILE [-in FILE2 …] [-out docs/reliability.md]
//
//	reliability-report -add -area A -name N -expected E -measured M [-sent N] [-failed N] [-fail]
//	    appends one scenario to $RAMPART_RELIABILITY_REPORT (for scripts such as bench/fuzz.sh).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rampart-edge/rampart/internal/reliability"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

const header = `# Reliability

This file is generated: ` + "`bench/reliability.sh`" + ` runs the reliability suite (network namespaces,
faults under load, hostile input, fuzzing, soak) with ` + "`RAMPART_RELIABILITY_REPORT`" + ` set, and
` + "`go run ./bench/reliability-report`" + ` writes the tables below from what the tests recorded. Do not
edit it by hand; docs/testing.md explains how to run each part.

Columns: *sent* is requests (or fuzz inputs) sent; *failed* counts the requests the scenario
treats as failures (for hostile input: answers other than the expected status); *leaked* counts
requests or connections that reached something they must not (a target, a tier); *crashes*
counts processes that died on their own. *holds* is "yes", **NO** (the test failed), or "known
gap" (a measured shortfall the scenario documents without failing the suite).

`

func main() {
	var in files
	flag.Var(&in, "in", "a JSON-lines scenario file (repeatable)")
	out := flag.String("out", "docs/reliability.md", "the Markdown file to write")
	add := flag.Bool("add", false, "append one scenario to $"+reliability.EnvReport+" instead of writing the report")
	var s reliability.Scenario
	flag.StringVar(&s.Area, "area", "", "with -add: the scenario's area")
	flag.StringVar(&s.Name, "name", "", "with -add: its name")
	flag.StringVar(&s.Expected, "expected", "", "with -add: what must hold")
	flag.StringVar(&s.Measured, "measured", "", "with -add: what was measured")
	flag.IntVar(&s.Sent, "sent", 0, "with -add: inputs sent")
	flag.IntVar(&s.Failed, "failed", 0, "with -add: failures")
	fail := flag.Bool("fail", false, "with -add: the scenario does not hold")
	test := flag.String("test", "", "with -add: what produced it")
	flag.Parse()
	if *add {
		path := os.Getenv(reliability.EnvReport)
		if path == "" || s.Area == "" || s.Name == "" {
			fmt.Fprintln(os.Stderr, "reliability-report -add: needs $"+reliability.EnvReport+", -area and -name")
			os.Exit(2)
		}
		s.Pass, s.Test, s.At = !*fail, *test, time.Now().UTC()
		if err := reliability.Append(path, s); err != nil {
			fmt.Fprintln(os.Stderr, "reliability-report:", err)
			os.Exit(1)
		}
		return
	}
	if len(in) == 0 {
		fmt.Fprintln(os.Stderr, "reliability-report: -in FILE is required")
		os.Exit(2)
	}
	var all []reliability.Scenario
	for _, f := range in {
		s, err := reliability.Read(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability-report:", err)
			os.Exit(1)
		}
		all = append(all, s...)
	}
	var b bytes.Buffer
	b.WriteString(header)
	if err := reliability.Markdown(&b, all); err != nil {
		fmt.Fprintln(os.Stderr, "reliability-report:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "reliability-report:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d scenario records\n", *out, len(all))
}

// Command report turns bench/chain.sh's raw results into a table of medians, spread and ratios to
// the nginx chain and to direct.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

type run struct {
	rps, p50, p99, cpuPer100k, rssMiB float64
	errors                            int
}

type key struct{ config, workload string }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: report RESULTS_FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	runs, order, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	writeTable(os.Stdout, runs, order)
}

// parse reads lines like
// "rampart get64 1 RESULT requests=1 seconds=1 p50_us=1 p99_us=1 errors=0 cpu_ticks=1 hz=100 rss_kib=1".
func parse(r io.Reader) (map[key][]run, []key, error) {
	runs := map[key][]run{}
	var order []key
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "RESULT" {
			continue
		}
		v := map[string]float64{}
		for _, kv := range fields[4:] {
			name, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%q: %w", kv, err)
			}
			v[name] = x
		}
		if v["seconds"] == 0 || v["requests"] == 0 || v["hz"] == 0 {
			return nil, nil, fmt.Errorf("incomplete line %q", sc.Text())
		}
		k := key{fields[0], fields[1]}
		if _, seen := runs[k]; !seen {
			order = append(order, k)
		}
		runs[k] = append(runs[k], run{
			rps:        v["requests"] / v["seconds"],
			p50:        v["p50_us"] / 1000,
			p99:        v["p99_us"] / 1000,
			cpuPer100k: v["cpu_ticks"] / v["hz"] / v["requests"] * 100000,
			rssMiB:     v["rss_kib"] / 1024,
			errors:     int(v["errors"]),
		})
	}
	return runs, order, sc.Err()
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func pick(rs []run, f func(run) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func writeTable(w io.Writer, runs map[key][]run, order []key) {
	for _, workload := range []string{"get64", "post4k"} {
		fmt.Fprintf(w, "### %s\n\n", workload)
		fmt.Fprintln(w, "| config | req/s median [min–max] | × nginx | × plain Go | × direct | p50 ms | p99 ms | p99 × nginx | CPU s / 100k req | peak RSS MiB | errors |")
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		ref := func(config string, f func(run) float64) float64 {
			rs := runs[key{config, workload}]
			if len(rs) == 0 {
				return 0
			}
			return median(pick(rs, f))
		}
		rps := func(r run) float64 { return r.rps }
		p99 := func(r run) float64 { return r.p99 }
		nginxRPS, directRPS, nginxP99 := ref("nginx", rps), ref("direct", rps), ref("nginx", p99)
		goRPS := ref("gochain", rps) // the goal's other reference: two httputil.ReverseProxy processes
		for _, k := range order {
			if k.workload != workload {
				continue
			}
			rs := runs[k]
			r := pick(rs, rps)
			errs := 0
			for _, x := range rs {
				errs += x.errors
			}
			fmt.Fprintf(w, "| %s | %.0f [%.0f–%.0f] | %s | %s | %s | %.2f | %.2f | %s | %.2f | %.1f | %d |\n",
				k.config, median(r), slices.Min(r), slices.Max(r),
				ratio(median(r), nginxRPS), ratio(median(r), goRPS), ratio(median(r), directRPS),
				median(pick(rs, func(r run) float64 { return r.p50 })), median(pick(rs, p99)),
				ratio(median(pick(rs, p99)), nginxP99),
				median(pick(rs, func(r run) float64 { return r.cpuPer100k })),
				slices.Max(pick(rs, func(r run) float64 { return r.rssMiB })), errs)
		}
		fmt.Fprintln(w)
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

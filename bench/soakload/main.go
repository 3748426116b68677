// Command soakload is bench/soak.sh's load generator and sampler: it sends a mixed load to a
// running topology (GET and POST through the gateway, CORS-rejected and WAF-blocked requests)
// and samples the server process's memory, threads, open files and, when its admin listener
// exports them, goroutines, every -every. It prints one table row per sample and exits 1 when
// RSS after warm-up grows by more than -max-growth.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rampart-edge/rampart/internal/reliability"
)

type sample struct {
	at                     time.Duration
	rssKiB, threads, fds   int64
	goroutines             int64 // -1: not exported
	sent, ok, refused, bad int64
}

func main() {
	gw := flag.String("gateway", "", "gateway base URL")
	lb := flag.String("lb", "", "load balancer base URL (for requests the WAF must block)")
	allowed := flag.String("origin", "http://127.0.0.1:3000", "an allowed Origin")
	pid := flag.Int("pid", 0, "the server process to sample")
	metrics := flag.String("metrics", "", "admin /metrics URL (optional; go_goroutines is read from it when present)")
	duration := flag.Duration("duration", 2*time.Minute, "how long to run")
	every := flag.Duration("every", 10*time.Second, "sampling interval")
	workers := flag.Int("workers", 8, "concurrent clients")
	maxGrowth := flag.Float64("max-growth", 0.25, "largest allowed RSS growth after warm-up, as a fraction")
	report := flag.String("report", "", "append the result as a reliability scenario to this JSON-lines file")
	free := flag.String("free-port", "", "print a free TCP port on this IP and exit (for the script)")
	flag.Parse()
	if *free != "" {
		ln, err := net.Listen("tcp", net.JoinHostPort(*free, "0"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "soakload:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return
	}
	if *gw == "" || *lb == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "soakload: -gateway, -lb and -pid are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	var sent, ok, refused, bad atomic.Int64
	// One item every GET reads, so responses stay the same size however long the soak runs.
	itemURL := *gw + "/items/1"
	if resp, err := client.Post(*gw+"/items", "application/json", strings.NewReader(`{"name":"soak"}`)); err == nil {
		var id struct {
			ID int64 `json:"id"`
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i := strings.Index(string(b), `"id":`); i >= 0 {
			fmt.Sscanf(string(b[i+5:]), "%d", &id.ID)
			itemURL = fmt.Sprintf("%s/items/%d", *gw, id.ID)
		}
	}
	type shot struct {
		method, url, body, origin string
		want                      int
	}
	mix := []shot{
		{"GET", itemURL, "", "", 200},
		{"GET", itemURL, "", *allowed, 200},
		{"GET", itemURL, "", "", 200},
		{"POST", *gw + "/items", `{"name":"soak-item"}`, *allowed, 201},
		{"GET", itemURL, "", "https://evil.example", 403}, // CORS-rejected at the gateway
		{"GET", *lb + "/items", "", "", 403},              // no origin-verify header: WAF block
		{"OPTIONS", *gw + "/items", "", *allowed, 204},    // preflight
		{"GET", *gw + "/nope", "", "", 404},
	}
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				s := mix[i%len(mix)]
				var body io.Reader
				if s.body != "" {
					body = strings.NewReader(s.body)
				}
				req, _ := http.NewRequestWithContext(ctx, s.method, s.url, body)
				if s.origin != "" {
					req.Header.Set("Origin", s.origin)
				}
				if s.method == "OPTIONS" {
					req.Header.Set("Access-Control-Request-Method", "POST")
				}
				if s.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(req)
				sent.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						refused.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == s.want {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}

	begin := time.Now()
	var samples []sample
	take := func() {
		s := sample{at: time.Since(begin), goroutines: -1, sent: sent.Load(), ok: ok.Load(), refused: refused.Load(), bad: bad.Load()}
		s.rssKiB, s.threads = procStatus(*pid)
		if ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(*pid), "fd")); err == nil {
			s.fds = int64(len(ents))
		}
		if *metrics != "" {
			s.goroutines = goroutines(*metrics)
		}
		samples = append(samples, s)
		g := "-"
		if s.goroutines >= 0 {
			g = strconv.FormatInt(s.goroutines, 10)
		}
		fmt.Printf("%8s %10d %8d %6d %10s %10d %10d %8d %8d\n", s.at.Round(time.Second), s.rssKiB, s.threads, s.fds, g, s.sent, s.ok, s.bad, s.refused)
	}
	fmt.Printf("%8s %10s %8s %6s %10s %10s %10s %8s %8s\n", "time", "rss_kib", "threads", "fds", "goroutines", "sent", "as_expected", "other", "errors")
	take()
	tick := time.NewTicker(*every)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			take()
		}
	}
	wg.Wait()
	take()

	// Warm-up is the first quarter: caches, pools and the runtime's heap goal settle there.
	var base *sample
	for i := range samples {
		if samples[i].at >= *duration/4 {
			base = &samples[i]
			break
		}
	}
	last := samples[len(samples)-1]
	verdict, code := "flat", 0
	growth := 0.0
	if base == nil || base.rssKiB == 0 {
		verdict, code = "too short to judge (no sample after warm-up)", 1
	} else {
		growth = float64(last.rssKiB-base.rssKiB) / float64(base.rssKiB)
		if growth > *maxGrowth {
			verdict, code = fmt.Sprintf("RSS grew %.0f%% after warm-up (limit %.0f%%)", growth*100, *maxGrowth*100), 1
		}
	}
	if last.bad+last.refused > 0 {
		verdict, code = verdict+fmt.Sprintf("; %d unexpected answers, %d errors", last.bad, last.refused), 1
	}
	fmt.Printf("result: %s (RSS %d → %d KiB after warm-up, %+.1f%%; threads %d → %d; fds %d → %d; %d requests)\n",
		verdict, base.rssKiB, last.rssKiB, growth*100, base.threads, last.threads, base.fds, last.fds, last.sent)
	if *report != "" {
		g := ""
		if last.goroutines >= 0 {
			g = fmt.Sprintf("; goroutines %d → %d", base.goroutines, last.goroutines)
		}
		s := reliability.Scenario{Area: "soak", Name: fmt.Sprintf("default topology (rampart run), %v of mixed load, %d clients", duration.Round(time.Second), *workers),
			Expected: fmt.Sprintf("RSS growth after warm-up ≤ %.0f%%; threads and fds flat; every answer as expected", *maxGrowth*100),
			Measured: fmt.Sprintf("RSS %d → %d KiB (%+.1f%%); threads %d → %d; fds %d → %d%s; %s", base.rssKiB, last.rssKiB, growth*100, base.threads, last.threads, base.fds, last.fds, g, verdict),
			Sent:     int(last.sent), Failed: int(last.bad + last.refused), Pass: code == 0, Test: "bench/soak.sh", At: time.Now().UTC()}
		if err := reliability.Append(*report, s); err != nil {
			fmt.Fprintln(os.Stderr, "soakload:", err)
		}
	}
	os.Exit(code)
}

// procStatus reads VmRSS (KiB) and Threads from /proc/PID/status.
func procStatus(pid int) (rss, threads int64) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			rss, _ = strconv.ParseInt(fields[1], 10, 64)
		case "Threads:":
			threads, _ = strconv.ParseInt(fields[1], 10, 64)
		}
	}
	return rss, threads
}

// goroutines reads go_goroutines from a Prometheus text endpoint, or -1.
func goroutines(url string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int64(n)
			}
		}
	}
	return -1
}

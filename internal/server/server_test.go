package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"127.0.0.3/32", "127.0.0.3/32", false},
		{"10.1.2.3/8", "10.0.0.0/8", false},
		{"127.0.0.3", "127.0.0.3/32", false},
		{"::1", "::1/128", false},
		{"nope", "", true},
		{"10.0.0.0/33", "", true},
	}
	for _, tt := range tests {
		got, err := ParseAllow([]string{tt.in})
		if (err != nil) != tt.wantErr {
			t.Fatalf("ParseAllow(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
		}
		if err == nil && got[0].String() != tt.want {
			t.Errorf("ParseAllow(%q) = %v, want %v", tt.in, got[0], tt.want)
		}
	}
}

// clientFrom returns an HTTP client whose connections originate from src.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func TestListenAllowFrom(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
	ln, err := Listen("127.0.0.2:0", allow, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan string, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served <- r.RemoteAddr
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/"

	resp, err := clientFrom("127.0.0.3").Get(url)
	if err != nil {
		t.Fatalf("allowed source: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("allowed source: status %d", resp.StatusCode)
	}
	<-served

	for _, src := range []string{"127.0.0.1", "127.0.0.4"} {
		resp, err := clientFrom(src).Get(url)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("source %s: got status %d, want the connection refused", src, resp.StatusCode)
		}
	}
	select {
	case addr := <-served:
		t.Fatalf("handler ran for a refused source %s", addr)
	default:
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, []Unit{{Name: "test", Listener: ln, Handler: h}}, 5*time.Second, nil) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel() // shutdown starts while the request is in flight

	// New connections are refused once shutdown began.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: body %q, err %v; want it to finish", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownByTier: a request the outer tier accepted before shutdown still reaches the inner
// tier, because the inner tier stops only after the outer one has drained.
func TestShutdownByTier(t *testing.T) {
	inner, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	innerURL := "http://" + inner.Addr().String()
	entered, release := make(chan struct{}), make(chan struct{})
	outerH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(innerURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	innerH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inner") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, []Unit{{Name: "inner", Listener: inner, Handler: innerH, Tier: 1}, {Name: "outer", Listener: outer, Handler: outerH, Tier: 0}}, 5*time.Second, nil)
	}()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + outer.Addr().String())
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-entered
	cancel()
	// The outer tier stops accepting while the inner one still serves.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", outer.Addr().String(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if r := <-got; r != "200 inner" {
		t.Fatalf("in-flight request across tiers: %q, want \"200 inner\"", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

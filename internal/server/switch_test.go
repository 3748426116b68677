package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

func getBody(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestSwitchSwapsGenerations: a new generation takes every new connection at once, on the same
// socket; a request in flight on the old one finishes there while the old one shuts down.
func TestSwitchSwapsGenerations(t *testing.T) {
	sw, err := Open("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	a := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "A")
	})
	b := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") })
	if old := sw.Install(Generation{Name: "a", Handler: a}); old != nil {
		t.Fatal("first Install returned a previous generation")
	}
	runDone := make(chan error, 1)
	go func() { runDone <- sw.Run() }()
	url := "http://" + sw.Addr().String()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if got := getBody(t, fresh, url+"/"); got != "A" {
		t.Fatalf("generation a: %q", got)
	}
	slow := make(chan string, 1)
	go func() { slow <- getBody(t, fresh, url+"/slow") }()
	<-entered

	old := sw.Install(Generation{Name: "b", Handler: b})
	if got := getBody(t, fresh, url+"/"); got != "B" {
		t.Fatalf("after the swap: %q", got)
	}
	shut := make(chan error, 1)
	go func() { shut <- old.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("the old generation shut down with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-slow; got != "A" {
		t.Fatalf("the in-flight request: %q, want it served by the old generation", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if got := getBody(t, fresh, url+"/"); got != "B" {
		t.Fatalf("after the old generation stopped: %q", got)
	}
	if err := sw.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", sw.Addr().String(), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the socket still accepts after Shutdown")
	}
}

// TestSwitchGenerationAllow: the security group is a property of the generation, so a reload can
// change it without reopening the socket.
func TestSwitchGenerationAllow(t *testing.T) {
	sw, err := Open("127.0.0.2:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Shutdown(context.Background()) })
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	sw.Install(Generation{Name: "closed", Handler: h, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}})
	go sw.Run()
	url := "http://" + sw.Addr().String() + "/"
	if resp, err := clientFrom("127.0.0.1").Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a source outside allow_from was served")
	}
	old := sw.Install(Generation{Name: "open", Handler: h})
	go old.Shutdown(context.Background())
	resp, err := clientFrom("127.0.0.1").Get(url)
	if err != nil {
		t.Fatalf("after the swap to an open generation: %v", err)
	}
	resp.Body.Close()
}

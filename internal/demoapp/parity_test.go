package demoapp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/demoapp/pgtest"
)

// testStoreHandlerInputs drives the HTTP handler over each backend: the same body must get the
// same status whatever the database. PostgreSQL's TEXT cannot hold a NUL character (SQLSTATE
// 22021) while SQLite's can, so a NUL must be refused (400) before it reaches either, not be
// stored by one and reported as an outage (503) by the other.
func testStoreHandlerInputs(t *testing.T, b storeBackend) {
	srv := httptest.NewServer(New("app-1", openDSN(t, b.fresh(t)), nil))
	t.Cleanup(srv.Close)
	create := func(body string) int {
		resp, err := srv.Client().Post(srv.URL+"/items", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"name":"plain","note":"ok"}`, http.StatusCreated},
		{`{"name":"a\u0000b"}`, http.StatusBadRequest},
		{`{"name":"ok","note":"x\u0000y"}`, http.StatusBadRequest},
		{`{"name":"` + strings.Repeat("é", MaxNameLen) + `"}`, http.StatusCreated},
	} {
		if got := create(tt.body); got != tt.want {
			t.Errorf("POST /items %.60s = %d, want %d", tt.body, got, tt.want)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/items")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), `"id"`) != 2 {
		t.Fatalf("GET /items = %d %s; want the 2 valid items", resp.StatusCode, body)
	}
}

// TestHandlerStoreTimeoutStartsAfterBody: the per-request store timeout bounds the database work,
// not the client's upload. A body that takes longer than the timeout to arrive must still be
// stored (201), not be answered "database unavailable" (503) with the database idle.
func TestHandlerStoreTimeoutStartsAfterBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := openDSN(t, "sqlite::memory:")
	srv := httptest.NewServer(newHandler("app-1", s, nil, timeout))
	t.Cleanup(srv.Close)
	for _, method := range []string{"POST", "PUT"} {
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, `{"name":`)
			time.Sleep(2 * timeout)
			_, _ = io.WriteString(pw, `"slow upload"}`)
			pw.Close()
		}()
		path := "/items"
		if method == "PUT" {
			it, err := s.Create(context.Background(), "to update", "")
			if err != nil {
				t.Fatal(err)
			}
			path = fmt.Sprintf("/items/%d", it.ID)
		}
		req, _ := http.NewRequest(method, srv.URL+path, pr)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("%s %s with a slow body = %d %s; want success", method, path, resp.StatusCode, body)
		}
	}
}

// nonLoopbackIPv4 returns an IPv4 address of this machine outside 127/8, or "".
func nonLoopbackIPv4() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok && p.IP.To4() != nil && !p.IP.IsLoopback() && !p.IP.IsLinkLocalUnicast() {
			return p.IP.String()
		}
	}
	return ""
}

// TestPostgresSourceAddressOnlyWhereItCanWork: OpenStoreFrom binds the app's listen address as
// the source only where that connection can exist. An app that listens on a loopback address
// (127.0.0.2, the one-machine layout) and uses a database on another host (a managed database, a
// database VM) cannot connect from 127.0.0.2 at all (the kernel refuses a loopback source toward a
// non-loopback destination), and a unix-socket URL has no TCP source: both must connect with the
// kernel's choice instead of failing the start after a 30 s wait.
func TestPostgresSourceAddressOnlyWhereItCanWork(t *testing.T) {
	// One server for every case: on a non-loopback address of this machine when there is one
	// (the kernel routes it locally, but it is not loopback), else on 127.0.0.1.
	host := nonLoopbackIPv4()
	listen := host
	if listen == "" {
		listen = "127.0.0.1"
	}
	pg := pgtest.StartWith(t, pgtest.Options{ListenAddress: listen, HBA: "host all all 0.0.0.0/0 trust\n"})
	pg.Exec("postgres", "CREATE DATABASE items")
	t.Run("loopback app, non-loopback database", func(t *testing.T) {
		if host == "" {
			t.Skip("no non-loopback IPv4 address on this machine")
		}
		openFrom(t, pg.URL("items"), "127.0.0.2")
	})
	t.Run("unix socket", func(t *testing.T) {
		openFrom(t, fmt.Sprintf("postgres://postgres@/items?host=%s&port=%d&sslmode=disable", pg.Dir, pg.Port), "127.0.0.2")
	})
	t.Run("IPv6 app, IPv4 database", func(t *testing.T) {
		openFrom(t, pg.URL("items"), "::1")
	})
}

func openFrom(t *testing.T, dsn, source string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := OpenStoreFrom(ctx, dsn, netip.MustParseAddr(source))
	if err != nil {
		t.Fatalf("OpenStoreFrom(source %s): %v", source, err)
	}
	defer s.Close()
	if _, err := s.Create(ctx, "reached", ""); err != nil {
		t.Fatal(err)
	}
}

// TestBindSource: where the app's address is used as the source of a database connection.
func TestBindSource(t *testing.T) {
	tests := []struct {
		source, network, addr string
		want                  bool
	}{
		{"127.0.0.2", "tcp", "127.0.0.4:5432", true},      // one machine: pg_hba sees the app tier
		{"10.0.2.11", "tcp", "10.0.3.10:5432", true},      // several hosts
		{"10.0.2.11", "tcp", "127.0.0.1:5432", true},      // a local database: allowed by the kernel
		{"127.0.0.2", "tcp", "10.0.3.10:5432", false},     // loopback toward another host: impossible
		{"127.0.0.2", "tcp", "[2001:db8::5]:5432", false}, // other family
		{"::1", "tcp", "127.0.0.1:5432", false},
		{"::ffff:127.0.0.2", "tcp", "127.0.0.4:5432", true},
		{"2001:db8::2", "tcp6", "[2001:db8::5]:5432", true},
		{"127.0.0.2", "unix", "/run/postgresql/.s.PGSQL.5432", false},
		{"127.0.0.2", "tcp", "db.internal:5432", false},
	}
	for _, tt := range tests {
		if got := bindSource(netip.MustParseAddr(tt.source), tt.network, tt.addr); got != tt.want {
			t.Errorf("bindSource(%s, %s, %s) = %v, want %v", tt.source, tt.network, tt.addr, got, tt.want)
		}
	}
}

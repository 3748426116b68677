package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-edge/rampart/internal/demoapp/pgtest"
)

// pollStatus polls GET url until it answers want, within d.
func pollStatus(t *testing.T, c *http.Client, url string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: want %d within %v, last %s", url, want, d, last)
}

// TestPostgresOutageAnswers503AndRecovers stops the real PostgreSQL server under a running app:
// every items call must answer 503 with a short JSON body, promptly; after the server is started
// again (same data directory, same port) the app recovers by itself with no data lost. A paused
// server (a hung host: connections open, nothing answers) must give 503 within the per-request
// timeout, not a hang.
func TestPostgresOutageAnswers503AndRecovers(t *testing.T) {
	pg := pgtest.Start(t)
	store := openDSN(t, pg.CreateDatabase("outage"))
	const timeout = time.Second
	srv := httptest.NewServer(newHandler("app-1", store, nil, timeout))
	t.Cleanup(srv.Close)
	c := &http.Client{Timeout: 10 * time.Second}

	var created []Item
	for i := range 3 {
		resp, err := c.Post(srv.URL+"/items", "application/json", strings.NewReader(fmt.Sprintf(`{"name":"before-%d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		var it Item
		if err := json.NewDecoder(resp.Body).Decode(&it); err != nil || resp.StatusCode != 201 {
			t.Fatalf("create: %d %v", resp.StatusCode, err)
		}
		resp.Body.Close()
		created = append(created, it)
	}

	outage := []struct{ method, path, body string }{
		{"GET", "/items", ""},
		{"GET", fmt.Sprintf("/items/%d", created[0].ID), ""},
		{"POST", "/items", `{"name":"during"}`},
		{"PUT", fmt.Sprintf("/items/%d", created[0].ID), `{"name":"during"}`},
		{"DELETE", fmt.Sprintf("/items/%d", created[1].ID), ""},
		{"GET", "/healthz", ""},
	}
	expect503 := func(t *testing.T, phase string) {
		t.Helper()
		for _, o := range outage {
			req, _ := http.NewRequest(o.method, srv.URL+o.path, strings.NewReader(o.body))
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: %s %s: %v", phase, o.method, o.path, err)
			}
			var body map[string]string
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusServiceUnavailable || err != nil || !strings.Contains(body["message"], "database unavailable") {
				t.Fatalf("%s: %s %s = %d %v (%v); want 503 {\"message\":\"database unavailable\"}", phase, o.method, o.path, resp.StatusCode, body, err)
			}
			// The per-request timeout (plus the health check's own) bounds every answer.
			if took > healthTimeout+timeout {
				t.Fatalf("%s: %s %s took %v", phase, o.method, o.path, took)
			}
		}
	}

	pg.Stop()
	expect503(t, "stopped")
	pg.Restart()
	pollStatus(t, c, srv.URL+"/items", 200, 15*time.Second)
	pollStatus(t, c, srv.URL+"/healthz", 200, 15*time.Second)

	pg.Pause()
	outage = []struct{ method, path, body string }{outage[0], outage[2]} // each waits out the timeout
	expect503(t, "paused")
	pg.Resume()
	pollStatus(t, c, srv.URL+"/items", 200, 15*time.Second)

	// Nothing was lost and nothing from the outage was written.
	items, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(created) {
		t.Fatalf("after the outages: %d items, want %d: %+v", len(items), len(created), items)
	}
	for i, it := range items {
		if it != created[i] {
			t.Fatalf("item %d = %+v, want %+v", i, it, created[i])
		}
	}
	resp, err := c.Post(srv.URL+"/items", "application/json", strings.NewReader(`{"name":"after"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create after recovery: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestPostgresPrivateTier applies the pg_hba.conf that docs/deploy.md gives for the private tier:
// PostgreSQL listens on 127.0.0.4 only, and admits the items role to the items database from the
// app tier (127.0.0.2, where the apps of examples/postgres.yaml listen and, through
// OpenStoreFrom, connect from) alone, with a password. A client bound to another source address is
// refused by the server before authentication; a store opened from the app tier works, one opened
// from the public tier does not.
func TestPostgresPrivateTier(t *testing.T) {
	pg := pgtest.StartWith(t, pgtest.Options{
		ListenAddress: "127.0.0.4",
		HBA: "host items items 127.0.0.2/32 scram-sha-256\n" +
			"host all all 0.0.0.0/0 reject\n" +
			"host all all ::/0 reject\n",
	})
	pg.Exec("postgres", "CREATE ROLE items LOGIN PASSWORD 'app-tier-secret'")
	pg.Exec("postgres", "CREATE DATABASE items OWNER items")
	dsn := fmt.Sprintf("postgres://items:app-tier-secret@%s/items?sslmode=disable", pg.Addr())

	connectFrom := func(src string, dsn string) error {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
		cfg.DialFunc = d.DialContext
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	tests := []struct {
		name, src, dsn string
		wantCode       string // "" for success; else the SQLSTATE
	}{
		{"app tier", "127.0.0.2", dsn, ""},
		{"load balancer egress", "127.0.0.3", dsn, "28000"},
		{"public tier", "127.0.0.1", dsn, "28000"},
		{"app tier, wrong password", "127.0.0.2", strings.Replace(dsn, "app-tier-secret", "guess", 1), "28P01"},
		{"app tier, superuser", "127.0.0.2", fmt.Sprintf("postgres://postgres@%s/items?sslmode=disable", pg.Addr()), "28000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := connectFrom(tt.src, tt.dsn)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("connect from %s: %v", tt.src, err)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.wantCode {
				t.Fatalf("connect from %s: %v; want SQLSTATE %s", tt.src, err, tt.wantCode)
			}
		})
	}
	for _, src := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.2", true}, {"127.0.0.1", false}} {
		start := time.Now()
		s, err := OpenStoreFrom(context.Background(), dsn, netip.MustParseAddr(src.addr))
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("OpenStoreFrom(%s) took %v: a refusal must not be waited out", src.addr, took)
		}
		if (err == nil) != src.ok {
			t.Fatalf("OpenStoreFrom(%s): %v; want success %v", src.addr, err, src.ok)
		}
		if err == nil {
			if _, err := s.Create(context.Background(), "from the app tier", ""); err != nil {
				t.Fatal(err)
			}
			s.Close()
		} else if strings.Contains(err.Error(), "app-tier-secret") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
	// Nothing listens on the public loopback address at all.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pg.Port), time.Second); err == nil {
		c.Close()
		t.Fatalf("PostgreSQL also listens on 127.0.0.1:%d; want 127.0.0.4 only", pg.Port)
	}
}

// TestPostgresStartsBeforeDatabase: an app started while its database is still down (a rollout
// that starts both at once) waits for it instead of failing. (TestPostgresPrivateTier checks that
// a refusal by the server fails at once instead.)
func TestPostgresStartsBeforeDatabase(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDatabase("late")
	pg.Stop()
	type result struct {
		s   Store
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := OpenStore(context.Background(), dsn)
		done <- result{s, err}
	}()
	// The database comes up a moment after the app.
	time.Sleep(700 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("OpenStore returned before the database started: %v", r.err)
	default:
	}
	pg.Restart()
	r := <-done
	if r.err != nil {
		t.Fatalf("OpenStore after the database started: %v", r.err)
	}
	defer r.s.Close()
	if _, err := r.s.Create(context.Background(), "late", ""); err != nil {
		t.Fatal(err)
	}

}

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-edge/rampart/internal/demoapp/pgtest"
	"github.com/rampart-edge/rampart/internal/reliability"
)

// freePortOn returns a free port on host.
func freePortOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestPostgresExampleTopology runs examples/postgres.yaml (its ports moved to free ones) as one
// `rampart run` against a real PostgreSQL on the private address 127.0.0.4 with the pg_hba.conf
// the example documents: items written through the gateway land in PostgreSQL; while the database
// is stopped the app tier answers 503 through the gateway (a short JSON body, promptly); after it
// is started again (same data, same port) the topology recovers by itself with nothing lost.
func TestPostgresExampleTopology(t *testing.T) {
	pg := pgtest.StartWith(t, pgtest.Options{
		ListenAddress: "127.0.0.4",
		HBA: "host items items 127.0.0.2/32 scram-sha-256\n" +
			"host all all 0.0.0.0/0 reject\n" +
			"host all all ::/0 reject\n",
	})
	pg.Exec("postgres", "CREATE ROLE items LOGIN PASSWORD 'e2e-db-secret'")
	pg.Exec("postgres", "CREATE DATABASE items OWNER items")

	example, err := os.ReadFile("../examples/postgres.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gw, lb, adm, web := freePort(t), freePort(t), freePort(t), freePort(t)
	app1, app2 := "127.0.0.2:"+freePortOn(t, "127.0.0.2"), "127.0.0.2:"+freePortOn(t, "127.0.0.2")
	cfg := strings.NewReplacer(
		"127.0.0.1:8080", gw, "127.0.0.1:8081", lb, "127.0.0.1:9900", adm, "127.0.0.1:3000", web,
		"127.0.0.2:9001", app1, "127.0.0.2:9002", app2,
		"127.0.0.4:5432", pg.Addr(),
		"interval: 5s, timeout: 2s", "interval: 1s, timeout: 500ms", // health checks fast enough for a test
	).Replace(string(example))
	for line := range strings.SplitSeq(cfg, "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "allow_origins") {
			for _, def := range []string{":8080", ":8081", ":9001", ":9002", ":5432", ":3000", ":9900"} {
				if strings.Contains(l, def+`"`) || strings.Contains(l, def+",") || strings.HasSuffix(l, def) {
					t.Fatalf("a default port survived the rewrite: %s", l)
				}
			}
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "postgres.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"RAMPART_DB_PASSWORD=e2e-db-secret"}
	if out, err := runEnv(t, dir, env, "validate", "-c", "postgres.yaml"); err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	p := startEnv(t, dir, env, "run", "-c", "postgres.yaml")
	base := "http://" + gw
	waitHTTP(t, p, base+"/nothing")

	var created []int64
	eventually(t, 30*time.Second, func() error {
		r, err := tryDo("POST", base+"/items", `{"name":"in postgres"}`, "Content-Type", "application/json")
		if err != nil || r.status != 201 {
			return fmt.Errorf("POST /items: %v %v", r.status, err)
		}
		var it struct{ ID int64 }
		if err := json.Unmarshal([]byte(r.body), &it); err != nil {
			return err
		}
		created = append(created, it.ID)
		return nil
	})
	r := do(t, "POST", base+"/items", `{"name":"second"}`, "Content-Type", "application/json")
	if r.status != 201 {
		t.Fatalf("POST /items = %d %s", r.status, r.body)
	}
	// The rows are in PostgreSQL, in the schema the migrations made.
	rows := pgCount(t, pg)
	if rows != 2 {
		t.Fatalf("items table holds %d rows, want 2", rows)
	}

	pg.Stop()
	stoppedAt := time.Now()
	var outage503 int
	var first503 time.Duration
	eventually(t, 15*time.Second, func() error {
		start := time.Now()
		r, err := tryDo("GET", base+"/items", "")
		if err != nil {
			return err
		}
		if r.status != 503 {
			return fmt.Errorf("GET /items with the database down = %d %s, want 503", r.status, r.body)
		}
		if outage503++; outage503 == 1 {
			first503 = time.Since(stoppedAt)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Fatalf("503 took %v", took)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(r.body) > 200 {
			t.Fatalf("503 body is not a short JSON object: %q", r.body)
		}
		return nil
	})
	if strings.Contains(p.output(), "e2e-db-secret") {
		t.Fatal("the database password appears in rampart's output")
	}

	pg.Restart()
	restartedAt := time.Now()
	eventually(t, 30*time.Second, func() error {
		r, err := tryDo("GET", base+"/items", "")
		if err != nil {
			return err
		}
		if r.status != 200 {
			return fmt.Errorf("GET /items after the database returned = %d", r.status)
		}
		var items []struct{ ID int64 }
		if err := json.Unmarshal([]byte(r.body), &items); err != nil {
			return err
		}
		if len(items) != 2 || items[0].ID != created[0] {
			t.Fatalf("after the outage: %s, want the 2 items written before", r.body)
		}
		return nil
	})
	recovered := time.Since(restartedAt)
	if r := do(t, "POST", base+"/items", `{"name":"after"}`, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("POST after recovery = %d %s", r.status, r.body)
	}
	reliability.Record(t, reliability.Scenario{Area: "faults under load", Name: "PostgreSQL stopped and restarted under the app tier (rampart run, examples/postgres.yaml)",
		Expected: "503 with a short JSON body while the database is down (not 500, not a hang); 200 again by itself once it is back; no item lost",
		Measured: fmt.Sprintf("first 503 %s after the stop; 200 %s after the restart with both items written before the outage; POST works again", first503.Round(time.Millisecond), recovered.Round(time.Millisecond)),
		Sent:     outage503 + 1})
}

// pgCount counts the items rows as the superuser.
func pgCount(t *testing.T, pg *pgtest.Server) int {
	t.Helper()
	return pg.QueryInt("items", "SELECT count(*) FROM items")
}

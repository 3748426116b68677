package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// alive reports whether pid is a live process (a zombie is not: it only waits to be reaped).
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// waitGone polls until none of pids is alive.
func waitGone(t *testing.T, pids []int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range pids {
			if alive(p) {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range pids {
		if alive(p) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			t.Errorf("process %d (%s) is still running", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
			_ = syscall.Kill(p, syscall.SIGCONT)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// TestStopWhilePaused: a test that fails (or ends) while the server is paused must still leave no
// postgres process behind: Stop resumes the backends too, not only the postmaster, so the fast
// shutdown can reach them.
func TestStopWhilePaused(t *testing.T) {
	if !Available() {
		t.Skip("PostgreSQL binaries not found")
	}
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.AdminDSN("postgres")) // one client backend besides the auxiliaries
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	pids := append([]int{s.PID()}, s.children()...)
	if len(pids) < 3 {
		t.Fatalf("postmaster %d has children %v; want its auxiliary processes and a backend", pids[0], pids[1:])
	}
	s.Pause()
	start := time.Now()
	s.Stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Stop of a paused server took %v", took)
	}
	waitGone(t, pids, 10*time.Second)
}

// TestServerDiesWithTestProcess: a test binary killed outright (go test's -timeout, a CI job
// cancelled, kill -9) runs no Cleanup; its postgres must not outlive it and hold its port and
// directory forever.
func TestServerDiesWithTestProcess(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") == "1" {
		s := Start(t)
		fmt.Printf("DIR %s\nPID %d\n", s.Dir, s.PID())
		time.Sleep(time.Minute) // killed by the parent long before
		return
	}
	if !Available() {
		t.Skip("PostgreSQL binaries not found")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid, dir := 0, ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "DIR "); ok {
			dir = d
		}
		if p, ok := strings.CutPrefix(sc.Text(), "PID "); ok {
			pid, _ = strconv.Atoi(p)
			break
		}
	}
	if pid == 0 {
		t.Fatal("the helper did not report its postgres PID")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitGone(t, []int{pid}, 20*time.Second)
	// The killed helper could not remove its directory.
	if strings.HasPrefix(dir, os.TempDir()) {
		os.RemoveAll(dir)
		os.Remove(dir + ".log")
	}
}

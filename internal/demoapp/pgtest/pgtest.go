// Package pgtest runs a throwaway PostgreSQL server for tests: initdb into a temporary directory,
// postgres on a free loopback port with its unix socket in that directory, stopped by PID when the
// test ends. It mirrors internal/ratelimit/redistest.
//
// PostgreSQL refuses to run as root, and the tests do run as root in CI, so as root the server runs
// as an unprivileged user: "rampart-pg" if that user exists, otherwise "nobody". The binaries are
// looked up in $PG_BIN, then /usr/lib/postgresql/*/bin, then $PATH; a test is skipped (with a
// message saying so) only when they are absent.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options change how the server listens and whom it admits. The zero value listens on 127.0.0.1
// and trusts every local connection.
type Options struct {
	// ListenAddress is listen_addresses (default 127.0.0.1). Every 127.x.y.z is local on Linux,
	// so a private-tier address such as 127.0.0.4 works without setup.
	ListenAddress string
	// HBA replaces pg_hba.conf. The unix socket (the test's admin path) is always trusted: a
	// "local all postgres trust" line is put first.
	HBA string
}

// Server is a running (or stopped) PostgreSQL server.
type Server struct {
	t    testing.TB
	bin  string
	Dir  string // data directory and socket directory live under here
	Host string // the TCP listen address
	Port int
	uid  int // -1: run as the current user
	gid  int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start initialises a cluster and starts postgres; it is stopped and removed in t.Cleanup.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := findBin()
	if bin == "" {
		t.Skip("PostgreSQL server binaries (initdb, postgres) not found: install postgresql (Debian: apt-get install postgresql) or set PG_BIN")
	}
	host := o.ListenAddress
	if host == "" {
		host = "127.0.0.1"
	}
	s := &Server{t: t, bin: bin, Host: host, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		s.uid, s.gid = unprivileged(t)
	}
	// Not t.TempDir: that directory is 0700 root, which the unprivileged user cannot enter.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.Dir = dir
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove(dir + ".log")
	})
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if s.uid >= 0 {
		if err := os.Chown(dir, s.uid, s.gid); err != nil {
			t.Fatal(err)
		}
	}
	s.Port = freePort(t, host)

	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres",
		"--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("listen_addresses = '%s'\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"+
		"shared_buffers = 16MB\nlog_min_messages = warning\n",
		host, s.Port, dir)
	s.appendFile(filepath.Join(s.dataDir(), "postgresql.conf"), conf)
	if o.HBA != "" {
		s.writeFile(filepath.Join(s.dataDir(), "pg_hba.conf"), "local all postgres trust\n"+o.HBA)
	}
	// Registered before the first start: a start that times out (t.Fatal inside Restart) must
	// still stop the process it launched.
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

func (s *Server) dataDir() string { return filepath.Join(s.Dir, "data") }

// Addr is host:port of the TCP listener.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// AdminDSN connects as the superuser through the unix socket (always trusted).
func (s *Server) AdminDSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.Dir, s.Port, db)
}

// URL is a postgres:// URL to db over TCP as the superuser (trusted from loopback unless HBA
// says otherwise).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr(), db)
}

// CreateDatabase creates a fresh database with a unique name derived from prefix and returns its
// postgres:// URL (superuser, TCP).
func (s *Server) CreateDatabase(prefix string) string {
	s.t.Helper()
	name := strings.ToLower(prefix) + "_" + randHex(4)
	s.Exec("postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return s.URL(name)
}

// Exec runs SQL as the superuser in db (over the unix socket).
func (s *Server) Exec(db, sql string, args ...any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.AdminDSN(db))
	if err != nil {
		s.t.Fatalf("connect as superuser: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
}

// QueryInt runs a query returning one integer as the superuser in db.
func (s *Server) QueryInt(db, sql string, args ...any) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.AdminDSN(db))
	if err != nil {
		s.t.Fatalf("connect as superuser: %v", err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Restart starts postgres again on the same port and data directory after Stop, and waits until
// it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(s.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	// A test binary killed outright (go test -timeout, kill -9) runs no Cleanup: the kernel then
	// sends the postmaster SIGQUIT (immediate shutdown, which ends its backends too) instead of
	// leaving it running. (Pdeathsig follows the OS thread that started the process; the Go
	// runtime only retires a thread that a goroutine locked and abandoned, which tests do not do.)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start postgres: %v", err)
	}
	s.cmd, s.log, s.done = cmd, logf, make(chan struct{})
	done := s.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.AdminDSN("postgres"))
		if err == nil {
			c.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-done:
			s.t.Fatalf("postgres exited at start:\n%s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postgres on %s did not accept connections within 30s: %v\n%s", s.Addr(), err, s.logTail())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop shuts postgres down by PID (SIGINT: fast shutdown, which rolls back open transactions and
// writes a checkpoint, so committed data survives) and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// In case the test paused it: the backends too, or they would sit stopped with the fast
	// shutdown's SIGTERM pending, the postmaster would wait for them, and the SIGKILL below would
	// leave them behind.
	s.signalAllLocked(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		children := s.childrenLocked()
		_ = s.cmd.Process.Kill()
		for _, p := range children {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		<-s.done
	}
	s.log.Close()
	s.cmd = nil
}

// Pause freezes the postmaster and its backends with SIGSTOP, the way a hung database host
// looks to a client: connections stay open, nothing answers. Resume undoes it.
func (s *Server) Pause() { s.signalAll(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signalAll(syscall.SIGCONT) }

// signalAll signals the postmaster and every process whose parent it is (its backends and
// auxiliary processes). It goes by PID: postgres shares the test's process group.
func (s *Server) signalAll(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signalAllLocked(sig)
}

func (s *Server) signalAllLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	for _, p := range append([]int{s.cmd.Process.Pid}, s.childrenLocked()...) {
		_ = syscall.Kill(p, sig)
	}
}

// PID is the postmaster's process id, 0 while the server is stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// children lists the postmaster's child processes.
func (s *Server) children() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.childrenLocked()
}

func (s *Server) childrenLocked() []int {
	if s.cmd == nil {
		return nil
	}
	pid := strconv.Itoa(s.cmd.Process.Pid)
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name: state ppid ...
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == pid {
			pids = append(pids, child)
		}
	}
	return pids
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.Dir + ".log")
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// command runs name as the unprivileged user when the test runs as root.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}}
		cmd.Dir = s.Dir
	}
	return cmd
}

func (s *Server) appendFile(path, text string) {
	s.t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) writeFile(path, text string) {
	s.t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if s.uid >= 0 {
		if err := os.Chown(path, s.uid, s.gid); err != nil {
			s.t.Fatal(err)
		}
	}
}

// unprivileged picks the user postgres runs as when the test runs as root.
func unprivileged(t testing.TB) (uid, gid int) {
	t.Helper()
	for _, name := range []string{"rampart-pg", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid
	}
	t.Fatal("running as root and neither user rampart-pg nor nobody exists: create one (useradd --system rampart-pg)")
	return 0, 0
}

// Available reports whether the PostgreSQL server binaries are installed.
func Available() bool { return findBin() != "" }

// findBin returns the directory holding initdb and postgres, or "".
func findBin() string {
	var dirs []string
	if d := os.Getenv("PG_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first.
	slices.SortFunc(versions, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	dirs = append(dirs, versions...)
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

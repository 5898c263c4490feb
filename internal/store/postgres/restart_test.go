package postgres

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// cluster is a private PostgreSQL server that a test can crash and
// restart without disturbing anyone else's: initdb in a temporary
// directory, run by the postgres user when the test runs as root.
type cluster struct {
	bin, dir, data string
	port           int
	asPostgres     bool // run the server programs with runuser -u postgres
}

// pgBinDir returns the directory holding initdb and pg_ctl, preferring the
// newest Debian installation, or "" when there is none.
func pgBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, d := range dirs {
		_, err1 := os.Stat(filepath.Join(d, "initdb"))
		_, err2 := os.Stat(filepath.Join(d, "pg_ctl"))
		if err1 == nil && err2 == nil {
			return d
		}
	}
	return ""
}

// newCluster creates and starts a private server, stopped and removed when
// t ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	bin := pgBinDir()
	if bin == "" {
		unavailable(t, "no initdb and pg_ctl (Debian package postgresql) to run a private server")
	}
	dir, err := os.MkdirTemp("", "taxlink-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate") // may be stopped already
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(t, "running as root and there is no postgres user to run a private server: "+err.Error())
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.asPostgres = true
	}
	if out, err := c.cmd("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	c.start(t)
	return c
}

func (c *cluster) cmd(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, prog)
	if c.asPostgres {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *cluster) pgctl(args ...string) ([]byte, error) {
	return c.cmd("pg_ctl", append([]string{"-D", c.data, "-w", "-t", "120"}, args...)...).CombinedOutput()
}

// start starts the server and waits until it accepts connections (after
// crash recovery, when it crashed).
func (c *cluster) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=40 -c shared_buffers=16MB", c.port, c.dir)
	if out, err := c.pgctl("-l", filepath.Join(c.dir, "log"), "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("starting the private server: %v\n%s\nserver log:\n%s", err, out, log)
	}
}

// crash stops the server the way a power cut would look to the database:
// immediate shutdown, no checkpoint, crash recovery at the next start.
func (c *cluster) crash(t *testing.T) {
	t.Helper()
	if out, err := c.pgctl("-m", "immediate", "stop"); err != nil {
		t.Fatalf("stopping the private server: %v\n%s", err, out)
	}
}

func (c *cluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

// TestSurvivesRestart crashes a private server (immediate shutdown) and
// starts it again, twice, while Records run in a loop, and checks that the
// loop gets through after every restart and that every Record that
// returned nil survived crash recovery.
func TestSurvivesRestart(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	s, err := Open(ctx, c.dsn())
	if err != nil {
		t.Fatalf("Open on the private server: %v", err)
	}
	defer s.Close()

	stop := make(chan struct{})
	progress := make(chan struct{}, 1<<12)
	wait := writeUntil(s, 3, "01RESTART", stop, progress)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wait()
		}
	}()
	for round := range 2 {
		awaitProgress(t, progress, 5, time.Minute, fmt.Sprintf("before crash %d", round+1))
		before := s.retries.Load()
		c.crash(t)
		waitUntil(t, time.Minute, "the writers to meet the stopped server", func() bool { return s.retries.Load() > before })
		c.start(t)
		awaitProgress(t, progress, 5, time.Minute, fmt.Sprintf("after restart %d", round+1))
	}
	close(stop)
	outcomes := wait()
	t.Logf("%d Records across 2 crashes, %d retries", len(outcomes), s.retries.Load())
	checkOutcomes(t, s, outcomes)

	// The recordings survive a crash right after the last of them too.
	c.crash(t)
	c.start(t)
	s2, err := Open(ctx, c.dsn())
	if err != nil {
		t.Fatalf("Open after the last crash: %v", err)
	}
	defer s2.Close()
	checkOutcomes(t, s2, outcomes)
}

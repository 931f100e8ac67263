// Package pgtest starts a throwaway PostgreSQL cluster for tests: initdb
// in a temporary directory, a server listening only on a Unix socket in
// that directory (no TCP port to collide with), run as an unprivileged
// user when the tests run as root (initdb refuses root), and removed again
// by Stop. Nothing is mocked: the tests talk to a real server.
//
// A test package shares one cluster, started on first use:
//
//	var cluster = pgtest.New()
//
//	func TestMain(m *testing.M) { os.Exit(cluster.Run(m)) }
//
//	func TestX(t *testing.T) { dsn := cluster.Database(t) ... }
//
// When the PostgreSQL server programs are missing, Database skips the test,
// or fails it when POSTOFFICE_INTEROP=1 (as scripts/test.sh sets), so that
// a machine without PostgreSQL cannot pass by testing nothing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// strictEnv makes a missing PostgreSQL a failure instead of a skip.
const strictEnv = "POSTOFFICE_INTEROP"

// startTimeout bounds initdb plus server start-up.
const startTimeout = 60 * time.Second

// Cluster is a throwaway PostgreSQL cluster, started on first use.
type Cluster struct {
	once     sync.Once
	startErr error
	dir      string // the temporary directory: data/, the socket, the log
	bin      string
	proc     *os.Process
	exited   chan struct{}
	stopOnce sync.Once
	stopped  chan struct{} // closed to let the process's thread go
}

// New returns a cluster that starts when a test first asks for a database.
func New() *Cluster { return &Cluster{} }

// Run runs the tests and stops the cluster, returning the exit code for
// os.Exit; TestMain calls it.
func (c *Cluster) Run(m *testing.M) int {
	code := m.Run()
	c.Stop()
	return code
}

// BinDir finds the PostgreSQL server programs: $POSTOFFICE_PG_BIN, the
// newest /usr/lib/postgresql/*/bin (Debian), or initdb on PATH.
func BinDir() (string, error) {
	if dir := os.Getenv("POSTOFFICE_PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server programs (initdb, postgres) not found; install postgresql-15 or set POSTOFFICE_PG_BIN")
}

// Database creates a fresh, empty database for the test and returns its
// connection string. The cluster starts on the first call.
func (c *Cluster) Database(t testing.TB) string {
	t.Helper()
	c.once.Do(func() { c.startErr = c.start() })
	if c.startErr != nil {
		if os.Getenv(strictEnv) == "1" {
			t.Fatalf("PostgreSQL test cluster: %v (%s=1 requires it)", c.startErr, strictEnv)
		}
		t.Skipf("PostgreSQL test cluster: %v", c.startErr)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	return c.DSN(name)
}

// SocketDir is the directory of the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.dir }

// DSN is the connection string of a database of the cluster.
func (c *Cluster) DSN(database string) string {
	return fmt.Sprintf("host=%s user=postgres dbname=%s sslmode=disable", c.dir, database)
}

// start runs initdb and the server.
func (c *Cluster) start() error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	c.bin = bin
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("running as root and no user nobody to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// A short path: the socket path must fit in a sockaddr_un.
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	data := filepath.Join(c.dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = c.dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(c.dir)
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := c.startServer(cred, data); err != nil {
		c.Stop()
		return err
	}
	// Wait until it accepts connections.
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
			c.Stop()
			return fmt.Errorf("postgres exited during start-up:\n%s", log)
		case <-ctx.Done():
			c.Stop()
			return fmt.Errorf("postgres did not accept connections within %v: %v", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startServer starts postgres as a child of this process. The child gets
// SIGKILL should the test process die (Pdeathsig), so a crashed test run
// leaves no server behind; Pdeathsig follows the thread that started the
// child, so that thread stays locked until Stop.
func (c *Cluster) startServer(cred *syscall.Credential, data string) error {
	logFile, err := os.Create(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return err
	}
	c.exited = make(chan struct{})
	c.stopped = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with the goroutine, after the
		// child is gone.
		cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", data,
			"-c", "listen_addresses=",
			"-c", "unix_socket_directories="+c.dir,
			"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
			"-c", "shared_buffers=32MB", "-c", "max_connections=200",
			"-c", "log_min_messages=warning")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			close(c.exited)
			return
		}
		c.proc = cmd.Process
		started <- nil
		waited := make(chan struct{})
		go func() { cmd.Wait(); logFile.Close(); close(waited) }()
		select {
		case <-waited:
		case <-c.stopped:
			<-waited
		}
		close(c.exited)
	}()
	return <-started
}

// Stop stops the server (a fast shutdown: sessions are ended) and removes
// its directory. It is safe to call more than once, and on a cluster that
// never started.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		if c.proc != nil {
			c.proc.Signal(syscall.SIGINT) // fast shutdown
			close(c.stopped)
			select {
			case <-c.exited:
			case <-time.After(20 * time.Second):
				c.proc.Kill()
				<-c.exited
			}
		}
		if c.dir != "" {
			os.RemoveAll(c.dir)
		}
	})
}

// Log returns what the server logged so far, for failing tests.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return strings.TrimSpace(string(b))
}

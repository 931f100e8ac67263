package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/postoffice-mail/postoffice/internal/ready"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/leakcheck"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// strictEnv, set to 1 by the project's test command (scripts/test.sh),
// turns a test that cannot set up its fault (no tmpfs, no root) from a
// skip into a failure, as it does for the interoperability tests.
const strictEnv = "POSTOFFICE_INTEROP"

// faultEnv names the fault the chaosfault build injects (see
// cmd/postoffice/chaosfault.go).
const faultEnv = "POSTOFFICE_CHAOS_FAULT"

// The binaries are built once per run into binaryDir, which TestMain
// removes: the real server, and the one with the chaosfault build tag.
var (
	binaryDir string
	binaries  = map[string]*binary{"": {}, "chaosfault": {}}
)

type binary struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	leaks := leakcheck.Start()
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	// No goroutine or descriptor of the tests (clients, pipes to the
	// servers they ran) may be left.
	os.Exit(leaks.Check(code))
}

var binaryDirOnce sync.Once

// postofficeBinary builds cmd/postoffice, with the build tag tag ("" for
// the real server), once per run.
func postofficeBinary(t *testing.T, tag string) string {
	t.Helper()
	b := binaries[tag]
	b.once.Do(func() {
		binaryDirOnce.Do(func() { binaryDir, b.err = os.MkdirTemp("", "postoffice-chaos-") })
		if b.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			b.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		b.path = filepath.Join(binaryDir, "postoffice"+tag)
		build := exec.CommandContext(ctx, "go", "build", "-tags", tag, "-o", b.path, "./cmd/postoffice")
		build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build -tags %q ./cmd/postoffice: %v\n%s", tag, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Users of every site; {PLAIN} passwords keep the many logins cheap.
var users = []string{"alice", "carol"}

const password = "chaos secret"

// site is a server's world on disk: its passwd-file, maildrops and
// configuration.
type site struct {
	dir      string
	passwd   string
	mailRoot string // maildrops are mailRoot/<user>/Maildir
}

func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	s := &site{dir: dir, passwd: filepath.Join(dir, "passwd"), mailRoot: filepath.Join(dir, "mail")}
	for _, u := range users {
		if err := passwdfile.Add(s.passwd, u, password, "PLAIN", dir); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// maildir is the user's Maildir directory.
func (s *site) maildir(user string) string { return filepath.Join(s.mailRoot, user, "Maildir") }

// serverOptions are what a test may change about the server.
type serverOptions struct {
	// fault runs the chaosfault build with this fault; "" is the real
	// server.
	fault string
}

// server is a running (or killed) "postoffice serve" with POP3 and LMTP
// on loopback ports, which stay the same across restarts.
type server struct {
	site *site
	opt  serverOptions
	bin  string
	pop3 string // host:port
	lmtp string // host:port
	conf string
	log  string // the log file, one per server, appended to by restarts

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	starts int
}

// startServer starts the server for the site; it is stopped with SIGTERM
// (and must then exit 0) when the test ends, unless it was killed.
func startServer(t *testing.T, s *site, opt serverOptions) *server {
	t.Helper()
	tag := ""
	if opt.fault != "" {
		tag = "chaosfault"
	}
	srv := &server{site: s, opt: opt, bin: postofficeBinary(t, tag), log: filepath.Join(s.dir, "server.log")}
	for attempt := 1; ; attempt++ {
		err := srv.configure()
		if err == nil {
			err = srv.start()
		}
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (last lines):\n%s", srv.logTail(60))
		}
		if err := srv.stop(); err != nil {
			t.Errorf("postoffice serve after SIGTERM: %v", err)
		}
	})
	return srv
}

var errPortTaken = errors.New("port taken")

// configure picks free ports and writes the configuration file.
func (srv *server) configure() error {
	pop3Port, err := freePort()
	if err != nil {
		return err
	}
	lmtpPort, err := freePort()
	if err != nil {
		return err
	}
	srv.pop3 = fmt.Sprintf("127.0.0.1:%d", pop3Port)
	srv.lmtp = fmt.Sprintf("127.0.0.1:%d", lmtpPort)
	srv.conf = filepath.Join(srv.site.dir, "postoffice.toml")
	return os.WriteFile(srv.conf, fmt.Appendf(nil, `# Written by the chaos tests.
[server]
hostname = "mx.example.org"
state_dir = %q
shutdown_timeout = "5s"

[log]
level = "info"

[pop3]
listen = [%q]
listen_tls = []

[lmtp]
listen = [%q]
max_connections = 1000

[users]
passwd_file = %q

[maildir]
location = %q

[limits]
auth_failure_delay = "0s"
max_connections = 2000
max_connections_per_ip = 500
`, filepath.Join(srv.site.dir, "state"), srv.pop3, srv.lmtp, srv.site.passwd,
		filepath.Join(srv.site.mailRoot, "{user}", "Maildir")), 0o600)
}

// start runs the binary and waits for its POP3 greeting.
func (srv *server) start() error {
	logFile, err := os.OpenFile(srv.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(srv.bin, "serve", "-config", srv.conf)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), faultEnv+"="+srv.opt.fault)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	srv.mu.Lock()
	srv.cmd, srv.exited = cmd, exited
	srv.starts++
	srv.mu.Unlock()
	if err := ready.WaitGreeting(srv.pop3, exited); err != nil {
		cmd.Process.Kill()
		<-exited
		if strings.Contains(srv.logTail(20), "address already in use") {
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return fmt.Errorf("postoffice serve did not start: %v\nlog:\n%s", err, srv.logTail(40))
	}
	return nil
}

// restart starts the server again after a kill, on the same ports.
func (srv *server) restart(t *testing.T) {
	t.Helper()
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
}

// pid is the running server's process id.
func (srv *server) pid() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.cmd.Process.Pid
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (srv *server) kill(t *testing.T) {
	t.Helper()
	srv.mu.Lock()
	cmd, exited := srv.cmd, srv.exited
	srv.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not die after SIGKILL")
	}
}

// stop ends a running server with SIGTERM, a graceful shutdown.
func (srv *server) stop() error {
	srv.mu.Lock()
	cmd, exited := srv.cmd, srv.exited
	srv.mu.Unlock()
	if cmd == nil || cmd.ProcessState != nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if cmd.ProcessState != nil && cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			return nil // it was killed by the test just before
		}
		return err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		return errors.New("no exit within 30s of SIGTERM; killed")
	}
}

// logTail is the end of the server's log.
func (srv *server) logTail(lines int) string {
	data, _ := os.ReadFile(srv.log)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// login opens a POP3 session as user.
func (srv *server) login(ctx context.Context, user string) (*pop3client.Client, error) {
	c, err := pop3client.Dial(ctx, srv.pop3, &pop3client.Options{Security: pop3client.SecurityNone, Timeout: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := c.Login(ctx, user, password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialLMTP opens an LMTP connection, reads the greeting and says LHLO.
func dialLMTP(addr string) (*lmtpConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &lmtpConn{nc: nc, r: bufio.NewReader(nc)}
	if line, err := c.reply(); err != nil || !strings.HasPrefix(line, "220 ") {
		nc.Close()
		return nil, fmt.Errorf("greeting %q: %v", line, err)
	}
	fmt.Fprintf(nc, "LHLO chaos.example.net\r\n")
	if line, err := c.reply(); err != nil || !strings.HasPrefix(line, "250") {
		nc.Close()
		return nil, fmt.Errorf("LHLO: %q %v", line, err)
	}
	return c, nil
}

// lmtpConn is an LMTP client connection.
type lmtpConn struct {
	nc net.Conn
	r  *bufio.Reader
}

func (c *lmtpConn) Close() error { return c.nc.Close() }

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *lmtpConn) reply() (string, error) {
	c.nc.SetDeadline(time.Now().Add(20 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if len(line) < 4 {
			return "", fmt.Errorf("short reply %q", line)
		}
		if line[3] != '-' {
			return line, nil
		}
	}
}

// deliver runs one LMTP transaction of message id to the recipients and
// records in the ledger what the sender learned: in flight once the final
// dot is sent, acknowledged at 250. It returns the reply per recipient
// and whether the connection is still usable.
func (c *lmtpConn) deliver(l *ledger, id string, recipients []string, body string) ([]string, bool) {
	fmt.Fprintf(c.nc, "MAIL FROM:<chaos@example.net>\r\n")
	for _, u := range recipients {
		fmt.Fprintf(c.nc, "RCPT TO:<%s@example.org>\r\n", u)
	}
	fmt.Fprintf(c.nc, "DATA\r\n")
	for range 2 + len(recipients) {
		if line, err := c.reply(); err != nil || (line[0] != '2' && line[0] != '3') {
			return nil, false
		}
	}
	if _, err := c.nc.Write([]byte(body)); err != nil {
		return nil, false
	}
	for _, u := range recipients {
		l.sent(u, id)
	}
	if _, err := c.nc.Write([]byte(".\r\n")); err != nil {
		return nil, false
	}
	replies := make([]string, 0, len(recipients))
	for _, u := range recipients {
		line, err := c.reply()
		if err != nil {
			return replies, false
		}
		replies = append(replies, line)
		if strings.HasPrefix(line, "250 ") && strings.Contains(line, "<"+u+"@example.org>") {
			l.acked(u, id)
		}
	}
	return replies, true
}

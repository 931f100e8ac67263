package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/internal/syncbuf"
)

// interopEnv makes a test whose client program is missing fail instead of
// skip; scripts/test.sh sets it.
const interopEnv = "POSTOFFICE_INTEROP"

// commandTimeout bounds every client run: a client that hangs (waiting for
// a reply the server never sends, say) fails its test instead of the
// whole package timing out.
const commandTimeout = 60 * time.Second

// need makes sure program is installed. Under the test command
// (POSTOFFICE_INTEROP=1) a missing program fails the test: a test that
// needs a peer and cannot run must not pass. Otherwise it skips.
func need(t *testing.T, program string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if os.Getenv(interopEnv) == "1" {
		t.Fatalf("%s is not installed, and %s=1 requires every interoperability test to run (scripts/test.sh installs it)", program, interopEnv)
	}
	t.Skipf("%s is not installed; set %s=1 to make this a failure", program, interopEnv)
	return ""
}

// Users of every test server. alice has a one-way hash; carol's {PLAIN}
// secret makes APOP possible for her.
const (
	alice         = "alice"
	alicePassword = "wonder land 42" // a space, as PASS allows (RFC 1939 §7)
	carol         = "carol"
	carolPassword = "apop-secret"
)

// addUsers writes the passwd-file with the project's own tool code, as
// "postoffice user add" would.
func addUsers(t *testing.T, path, home string) {
	t.Helper()
	if err := passwdfile.Add(path, alice, alicePassword, "SHA512-CRYPT", home); err != nil {
		t.Fatal(err)
	}
	// APOP needs the secret itself (RFC 1939 §7).
	if err := passwdfile.Add(path, carol, carolPassword, "PLAIN", home); err != nil {
		t.Fatal(err)
	}
}

// site is everything a server needs on disk: a passwd-file, the Maildir
// root and a certificate. A test builds one, delivers mail into it, and
// hands it to a launcher.
type site struct {
	t        *testing.T
	dir      string
	passwd   string // passwd-file
	mailRoot string // maildrops are mailRoot/{user}/Maildir
	certFile string // also the CA file the clients trust
	keyFile  string
}

// newSite creates a site with alice and carol and empty maildrops.
func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	s := &site{
		t:        t,
		dir:      dir,
		passwd:   filepath.Join(dir, "passwd"),
		mailRoot: filepath.Join(dir, "mail"),
	}
	var err error
	s.certFile, s.keyFile, err = certs.WriteSelfSigned(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addUsers(t, s.passwd, dir)
	for _, u := range []string{alice, carol} {
		for _, sub := range []string{"new", "cur", "tmp"} {
			if err := os.MkdirAll(filepath.Join(s.maildir(u), sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// maildir is the user's Maildir directory.
func (s *site) maildir(user string) string {
	return filepath.Join(s.mailRoot, user, "Maildir")
}

// options are the server settings a test can change.
type options struct {
	// apop enables APOP and the greeting timestamp.
	apop bool
	// mechanisms are the SASL mechanisms AUTH offers ([auth]
	// mechanisms); nil keeps the server's default, PLAIN and LOGIN.
	mechanisms []string
	// oauth is the introspection endpoint that validates bearer tokens
	// for OAUTHBEARER and XOAUTH2 ([oauth]); nil: no OAuth.
	oauth *oauthEndpoint
	// importUIDL and dovecotUIDLFormat are [maildir] import_uidl and
	// dovecot_uidl_format: whose unique ids the maildrops take over.
	importUIDL, dovecotUIDLFormat string
	// dovecotReuseXUIDL is [maildir] dovecot_reuse_xuidl.
	dovecotReuseXUIDL bool
}

// server is a running POP3 server.
type server struct {
	plain  string // host:port of plain POP3, offering STLS
	tls    string // host:port of implicit TLS
	caFile string
	logs   *syncBuffer // what the server logged, shown when a test fails
}

func (s *server) plainPort() string { _, p, _ := net.SplitHostPort(s.plain); return p }
func (s *server) tlsPort() string   { _, p, _ := net.SplitHostPort(s.tls); return p }

// launcher starts a server for a site; it stops when the test ends.
type launcher func(t *testing.T, s *site, opt options) *server

// launchers are the ways to run the server that every client test covers.
// The in-process server is the engine with the real Maildir store and
// passwd-file; the binary is "postoffice serve", the command an
// administrator runs, configured through its TOML file.
var launchers = []struct {
	name   string
	launch launcher
}{
	{"inprocess", startInProcess},
	{"binary", startBinary},
}

// forEachLauncher runs f once per way of running the server.
func forEachLauncher(t *testing.T, f func(t *testing.T, launch launcher)) {
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) { f(t, l.launch) })
	}
}

// freeLoopbackListener opens a listener on a free loopback port.
func freeLoopbackListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// syncBuffer collects output written from other goroutines.
type syncBuffer = syncbuf.Buffer

// showLogsOnFailure prints the server log after a failed test: the
// protocol trace a client prints is only half of the story.
func showLogsOnFailure(t *testing.T, logs *syncBuffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
}

// result is the outcome of one client run.
type result struct {
	stdout, stderr []byte
	exitCode       int
}

// output is stdout and stderr, for failure messages: the end of each,
// where a client says what went wrong, without megabytes of mail.
func (r result) output() string {
	return fmt.Sprintf("exit status %d\n--- stdout:\n%s\n--- stderr:\n%s", r.exitCode, tail(r.stdout), tail(r.stderr))
}

func tail(b []byte) []byte {
	const keep = 8 << 10
	if len(b) > keep {
		return append([]byte("[...]\n"), b[len(b)-keep:]...)
	}
	return b
}

// command describes one client run.
type command struct {
	env []string // added to a minimal environment
}

// run runs a client program to completion with a deadline and returns its
// outputs. It fails the test if the program could not start or ran out of
// time; a non-zero exit is the caller's to judge. The program and all its
// children (an MDA, say) are killed when the deadline passes.
func run(t *testing.T, c command, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = t.TempDir()
	// A clean environment: no user configuration (~/.fetchmailrc,
	// ~/.mpoprc, proxies) can leak in. HOME is a fresh directory unless
	// the caller sets one.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"LC_ALL=C",
		"TMPDIR=" + os.TempDir(),
	}
	cmd.Env = append(cmd.Env, c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killProcessGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no result after %v (killed)\n%s", name, strings.Join(args, " "), time.Since(start).Round(time.Second), r.output())
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.exitCode = exitErr.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", name, err, r.output())
	}
	return r
}

// loggedInUser matches a log line that names a user: a non-empty user
// attribute in slog's text format.
var loggedInUser = regexp.MustCompile(` user=([^" ]|"[^"])`)

// wantTLSSessions checks, from the server's log, that every session that
// logged in ran over TLS (or none did): a client told to use STLS must
// not have quietly gone on in plaintext, and one told to use plain POP3
// must not have upgraded by itself. Sessions without a login, such as
// the start-up probe of startBinary, are left out.
func (s *server) wantTLSSessions(t *testing.T, wantTLS bool) {
	t.Helper()
	want := fmt.Sprintf("tls=%t", wantTLS)
	loggedIn := 0
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if !strings.Contains(line, `msg="session ended"`) || !loggedInUser.MatchString(line) {
			continue
		}
		loggedIn++
		if !strings.Contains(line, " "+want+" ") {
			t.Errorf("session logged without %s: %s", want, line)
		}
	}
	if loggedIn == 0 {
		t.Errorf("the server logged no finished session with a login")
	}
}

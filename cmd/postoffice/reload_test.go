package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/internal/syncbuf"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// syncBuffer collects output written from other goroutines.
type syncBuffer = syncbuf.Buffer

// waitLog waits until the log holds want n times.
func waitLog(t *testing.T, logs *syncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(logs.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("log never had %q %d times:\n%s", want, n, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reloadSite is a server directory: a configuration written from a
// template, a passwd-file, maildrops and certificates.
type reloadSite struct {
	dir, config, passwd string
	plain, secure       string // listener addresses
	logExtra            string // settings for [log]
}

const sessionUsers = 6

func newReloadSite(t *testing.T) *reloadSite {
	t.Helper()
	dir := t.TempDir()
	s := &reloadSite{dir: dir, config: filepath.Join(dir, "postoffice.toml"), passwd: filepath.Join(dir, "passwd")}
	s.plain, s.secure = fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	st, err := maildir.New(maildir.Config{Location: dir + "/mail/{user}"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range sessionUsers {
		name := fmt.Sprintf("u%d", i)
		if err := passwdfile.Add(s.passwd, name, "pw", "PLAIN", dir); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("Subject: for %s\r\n\r\n%s\r\n", name, strings.Repeat("line of text\r\n", 500))
		if _, err := st.Deliver(t.Context(), store.Account{Name: name}, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// write writes the configuration with the certificate in cert.pem and
// key.pem under certDir, and extra appended.
func (s *reloadSite) write(t *testing.T, certDir, extra string) {
	t.Helper()
	doc := fmt.Sprintf(`[server]
hostname = "pop.example.org"
[log]
format = "json"
%s
[pop3]
listen = [%q]
listen_tls = [%q]
[tls]
cert = %q
key = %q
[users]
passwd_file = "passwd"
[maildir]
location = %q
[auth]
penalty_base = "0s"
[limits]
auth_failure_delay = "0s"
%s`, s.logExtra, s.plain, s.secure, filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem"), s.dir+"/mail/{user}", extra)
	if err := os.WriteFile(s.config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newCert writes a new self-signed pair into a new directory and returns
// the directory, the pair's serial and a pool that trusts it.
func newCert(t *testing.T, roots *x509.CertPool) (string, *big.Int) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := certs.WriteSelfSigned(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := certs.LoadPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots.AddCert(pair.Leaf)
	return dir, pair.Leaf.SerialNumber
}

// popConn is a minimal POP3 client for these tests.
type popConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialPOP(t *testing.T, addr string, roots *x509.CertPool) (*popConn, *big.Int) {
	t.Helper()
	var nc net.Conn
	var serial *big.Int
	var err error
	if roots != nil {
		tc, terr := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if terr == nil {
			serial = tc.ConnectionState().PeerCertificates[0].SerialNumber
		}
		nc, err = tc, terr
	} else {
		nc, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &popConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.want("+OK")
	return c, serial
}

func (c *popConn) line() (string, error) {
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	return c.r.ReadString('\n')
}

func (c *popConn) want(prefix string) string {
	c.t.Helper()
	line, err := c.line()
	if err != nil || !strings.HasPrefix(line, prefix) {
		c.t.Fatalf("got %q, %v; want %s", line, err, prefix)
	}
	return line
}

func (c *popConn) cmd(line, prefix string) string {
	c.t.Helper()
	fmt.Fprintf(c.nc, "%s\r\n", line)
	return c.want(prefix)
}

// retr fetches message 1 and checks it whole. It runs on the load
// goroutines, so it reports instead of failing.
func (c *popConn) retr(user string) error {
	fmt.Fprintf(c.nc, "RETR 1\r\n")
	if line, err := c.line(); err != nil || !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("RETR: %q, %v", line, err)
	}
	lines := 0
	for {
		line, err := c.line()
		if err != nil {
			return fmt.Errorf("RETR body after %d lines: %v", lines, err)
		}
		if line == ".\r\n" {
			break
		}
		lines++
	}
	if lines != 503 {
		return fmt.Errorf("RETR for %s: %d lines, want 503", user, lines)
	}
	return nil
}

// TestReloadUnderLoad reloads a server whose sessions are busy: they go
// on undisturbed with what they started with, new sessions get the new
// certificate and limits, a broken file changes nothing and says why,
// and a certificate renewed on disk is served without any reload.
func TestReloadUnderLoad(t *testing.T) {
	s := newReloadSite(t)
	roots := x509.NewCertPool()
	certA, serialA := newCert(t, roots)
	s.write(t, certA, "")
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	hup := make(chan os.Signal, 1)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- serveWith(ctx, cfg, &logs, serveOptions{configFile: s.config, reload: hup,
			ready: func(_, _ []net.Addr) { close(ready) }})
	}()
	// Registered before the connections' own cleanups, so it runs
	// after them: the server does not wait for open sessions.
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("server not ready:\n%s", logs.String())
	}
	reloads := 0
	reload := func(want string) {
		t.Helper()
		reloads++
		hup <- nil
		waitLog(t, &logs, "reloading configuration", reloads)
		waitLog(t, &logs, want, 1)
	}

	// The load: sessions that keep fetching across every reload.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, sessionUsers)
	retrieved := make([]int, sessionUsers)
	for i := range sessionUsers {
		c, serial := dialPOP(t, s.secure, roots)
		if serial.Cmp(serialA) != 0 {
			t.Fatalf("first certificate: serial %v, want %v", serial, serialA)
		}
		user := fmt.Sprintf("u%d", i)
		c.cmd("USER "+user, "+OK")
		c.cmd("PASS pw", "+OK")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := c.retr(user); err != nil {
					errs <- err
					return
				}
				retrieved[i]++
				select {
				case <-stop:
					fmt.Fprintf(c.nc, "QUIT\r\n")
					if line, err := c.line(); err != nil || !strings.HasPrefix(line, "+OK") {
						errs <- fmt.Errorf("QUIT: %q, %v", line, err)
					}
					return
				default:
				}
			}
		}()
	}

	// A new certificate and a longer line limit.
	roots2 := x509.NewCertPool()
	certB, serialB := newCert(t, roots2)
	s.write(t, certB, "max_line_length = 300\n")
	reload(`"msg":"configuration reloaded"`)
	if _, serial := dialPOP(t, s.secure, roots2); serial.Cmp(serialB) != 0 {
		t.Errorf("after reload: serial %v, want the new %v", serial, serialB)
	}
	plain, _ := dialPOP(t, s.plain, nil)
	if line := plain.cmd("NOOP "+strings.Repeat("x", 270), "-ERR"); strings.Contains(line, "too long") {
		t.Errorf("a 277-octet line after raising the limit to 300: %q", line)
	}

	// A broken file: the server keeps what it runs and says why.
	s.write(t, certB, "max_line_length = 300\nidle_timeout = \"1m\"\n")
	reload(`"setting":"limits.idle_timeout"`)
	if !strings.Contains(logs.String(), `"msg":"configuration not reloaded; still running the previous one"`) ||
		!strings.Contains(logs.String(), `"line":`) {
		t.Errorf("refused reload not explained:\n%s", logs.String())
	}
	// An unreadable certificate.
	s.write(t, filepath.Join(s.dir, "no-such-dir"), "max_line_length = 300\n")
	reload("no-such-dir")
	// A bad passwd-file line.
	good, err := os.ReadFile(s.passwd)
	if err != nil {
		t.Fatal(err)
	}
	s.write(t, certB, "max_line_length = 300\n")
	os.WriteFile(s.passwd+".new", append(append([]byte{}, good...), "broken line without colons\n"...), 0o600)
	os.Rename(s.passwd+".new", s.passwd)
	reload(s.passwd + ":" + fmt.Sprint(sessionUsers+1))
	os.WriteFile(s.passwd+".new", good, 0o600)
	os.Rename(s.passwd+".new", s.passwd)
	if _, serial := dialPOP(t, s.secure, roots2); serial.Cmp(serialB) != 0 {
		t.Errorf("after refused reloads: serial %v, want %v", serial, serialB)
	}
	if line := plain.cmd("NOOP "+strings.Repeat("x", 270), "-ERR"); strings.Contains(line, "too long") {
		t.Errorf("the limit of the running configuration was lost: %q", line)
	}

	// A setting that needs a restart is reported and ignored.
	// With it, a log level: the pop3 subsystem's info records stop.
	// And a trace of one user, its password masked.
	s.logExtra = "levels = { pop3 = \"warn\" }\ntrace_user = \"u0\""
	s.write(t, certB, "max_line_length = 300\n[store]\nbackend = \"postgres\"\n[postgres]\ndsn = \"postgres://localhost/none\"\n")
	reload(`"setting":"store.backend"`)
	waitLog(t, &logs, `"msg":"configuration reloaded"`, 2)
	ended := strings.Count(logs.String(), `"msg":"session ended"`)
	quiet, _ := dialPOP(t, s.plain, nil)
	quiet.cmd("USER u0", "+OK")
	quiet.cmd("PASS wrong", "-ERR")
	quiet.cmd("QUIT", "+OK")
	quiet.nc.Close()
	waitLog(t, &logs, `"msg":"authentication failed"`, 1) // a warning: still logged
	time.Sleep(200 * time.Millisecond)                    // the session's end, which would follow
	if n := strings.Count(logs.String(), `"msg":"session ended"`); n != ended {
		t.Errorf("pop3 info records logged after the level was raised to warn:\n%s", logs.String())
	}
	for _, want := range []string{`"dir":"C","line":"USER u0","subsystem":"trace"`, `"dir":"C","line":"PASS ***","subsystem":"trace"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("trace lacks %s:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "wrong") {
		t.Errorf("the password is in the log:\n%s", logs.String())
	}

	// A certificate renewed in place is served without a reload.
	roots3 := x509.NewCertPool()
	certC, serialC := newCert(t, roots3)
	for _, name := range []string{"key.pem", "cert.pem"} {
		data, _ := os.ReadFile(filepath.Join(certC, name))
		os.WriteFile(filepath.Join(certB, name+".new"), data, 0o600)
		os.Rename(filepath.Join(certB, name+".new"), filepath.Join(certB, name))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tc, err := tls.Dial("tcp", s.secure, &tls.Config{RootCAs: roots3, ServerName: "localhost"})
		if err == nil {
			got := tc.ConnectionState().PeerCertificates[0].SerialNumber
			tc.Close()
			if got.Cmp(serialC) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate not served within 10s:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("session in flight: %v", err)
	}
	for i, n := range retrieved {
		if n < 2 {
			t.Errorf("session %d retrieved %d times across the reloads", i, n)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR","msg":"panic`) {
		t.Errorf("panic logged:\n%s", logs.String())
	}
}

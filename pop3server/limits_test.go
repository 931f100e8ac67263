package pop3server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
)

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func TestLongLines(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.send("USER " + strings.Repeat("a", 248)).wantOK() // 255 octets with CRLF
	c.send("USER " + strings.Repeat("a", 249)).wantErr("")
	c.send("NOOP " + strings.Repeat("x", 100000)).wantErr("")
	c.login("alice", "wonderland")
}

func TestBinaryJunk(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.send("\x00\x01\x02\xff\xfe").wantErr("")
	c.send("USER \x1b[31malice").wantErr("")
	c.send("\r").wantErr("")
	c.login("alice", "wonderland")
}

func TestErrorBudget(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBadCommands = 3 })
	c := ts.dial()
	c.send("BAD").wantErr("")
	c.send("BAD").wantErr("")
	c.send("BAD").wantErr("")
	c.readLine() // "too many errors"
	c.wantClosed()
}

func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	ts.deliver("alice", msg1)
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("DELE 1").wantOK()
	c.wantClosed()
	// Timed out without QUIT: nothing deleted.
	if n := len(ts.store.Messages("alice")); n != 1 {
		t.Fatalf("%d messages after idle timeout, want 1", n)
	}
}

func TestConnectionsPerAddress(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConnectionsPerIP = 2 })
	a, b := ts.dial(), ts.dial()
	nc := dialRaw(t, ts.addr)
	line := newReader(nc).readStatus(t)
	if r, _ := pop3.ParseReply(line); r.OK || r.Code != pop3.CodeSysTemp {
		t.Fatalf("third connection got %q, want -ERR [SYS/TEMP]", line)
	}
	a.send("QUIT").wantOK()
	a.wantClosed()
	waitFor(t, func() bool { return ts.srv.Sessions() < 2 })
	ts.dial().send("NOOP")
	_ = b
}

// A server full of logged-in sessions refuses a new connection (one full
// of connections not logged in evicts the oldest: TestEvictOldestNotLoggedIn).
func TestMaxConnections(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConnections = 1 })
	ts.dial().login("alice", "wonderland")
	line := newReader(dialRaw(t, ts.addr)).readStatus(t)
	if r, _ := pop3.ParseReply(line); r.OK || r.Code != pop3.CodeSysTemp {
		t.Fatalf("second connection got %q", line)
	}
}

// Shutdown lets a session finish; one that does not is cut at the deadline
// without applying its deletions.
func TestShutdown(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", msg1, msg2)
	finishing, stuck := ts.dial(), ts.dial()
	finishing.login("alice", "wonderland")
	finishing.send("DELE 1").wantOK()
	stuck.login("bob", "builder")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond)
	finishing.send("QUIT").wantOK()
	if err := <-done; err == nil {
		t.Error("Shutdown reported success although a session had to be cut")
	}
	stuck.wantClosed()
	if n := len(ts.store.Messages("alice")); n != 1 {
		t.Errorf("%d messages left, want 1 (the finished session's QUIT applies)", n)
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("server still accepts connections after Shutdown")
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); sleep() {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

type rawReader struct {
	nc net.Conn
}

func newReader(nc net.Conn) rawReader { return rawReader{nc} }

func (r rawReader) readStatus(t *testing.T) string {
	t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := r.nc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(buf[:n]), "\r\n")
}

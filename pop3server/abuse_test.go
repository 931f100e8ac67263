package pop3server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
)

// A full server makes room for a new connection by closing the oldest one
// not logged in (with SYS/TEMP), never a logged-in session; when every
// session is logged in, the new connection is refused.
func TestEvictOldestNotLoggedIn(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxConnections = 3 })
	ts.auth.mu.Lock()
	ts.auth.passwords["carol"] = "secret"
	ts.auth.mu.Unlock()
	alice := ts.dial()
	alice.login("alice", "wonderland")
	oldest, newer := ts.dial(), ts.dial()

	// Full: a fourth connection evicts the oldest one not logged in.
	fourth := ts.dial()
	if line := oldest.readLine(); line != evictedReply {
		t.Errorf("evicted connection got %q, want %q", line, evictedReply)
	}
	oldest.wantClosed()
	newer.send("CAPA").wantOK()
	newer.readBody()
	alice.send("STAT").wantOK()

	// The next one evicts the fourth, the oldest left not logged in.
	newer.login("bob", "builder")
	// The evicted session has ended (until then, it takes a place of the
	// headroom above the limit).
	waitFor(t, func() bool { return ts.srv.Sessions() == 3 })
	fifth := ts.dial()
	if line := fourth.readLine(); line != evictedReply {
		t.Errorf("evicted connection got %q", line)
	}
	fourth.wantClosed()

	// Every place logged in: a new connection is refused and closed.
	fifth.login("carol", "secret")
	waitFor(t, func() bool { return ts.srv.Sessions() == 3 })
	nc := dialRaw(t, ts.addr)
	refused := newReader(nc).readStatus(t)
	if r, _ := pop3.ParseReply(refused); r.OK || r.Code != pop3.CodeSysTemp || !strings.Contains(refused, "too many connections") {
		t.Fatalf("connection to a server full of logged-in sessions got %q", refused)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("refused connection left open (read %d, %v)", n, err)
	}
	for _, c := range []*testConn{alice, newer, fifth} {
		c.send("STAT").wantOK()
	}

	// A place freed is a place taken.
	alice.send("QUIT").wantOK()
	alice.wantClosed()
	waitFor(t, func() bool { return ts.srv.Sessions() == 2 })
	ts.dial().login("alice", "wonderland")
}

// The accept loop waits out the errors that pass (descriptors or memory
// running out, a connection reset in the queue) and stops on the others.
func TestRetryAccept(t *testing.T) {
	accept := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{accept(syscall.EMFILE), true},
		{accept(syscall.ENFILE), true},
		{accept(syscall.ENOBUFS), true},
		{accept(syscall.ENOMEM), true},
		{accept(syscall.ECONNABORTED), true},
		{fmt.Errorf("proxy listener: %w", accept(syscall.EMFILE)), true},
		{syscall.EMFILE, true},
		{accept(syscall.EBADF), false},
		{accept(syscall.EINVAL), false},
		{net.ErrClosed, false},
		{errors.New("listener gone"), false},
	} {
		if got := retryAccept(tc.err); got != tc.want {
			t.Errorf("retryAccept(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// descriptors does, and then hands out real connections.
type flakyListener struct {
	net.Listener
	failures int
	failed   int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failed < l.failures {
		l.failed++
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Serve keeps going through EMFILE, backing off, and then serves.
func TestServeThroughEMFILE(t *testing.T) {
	ts := newTestServer(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &flakyListener{Listener: inner, failures: 5}
	done := make(chan error, 1)
	go func() { done <- ts.srv.Serve(l) }()
	start := time.Now()
	nc, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestConn(t, nc) // the greeting: served after the failures
	c.login("alice", "wonderland")
	c.send("QUIT").wantOK()
	// 5 + 10 + 20 + 40 + 80 ms of back-off.
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("served after %v: the accept loop did not back off", d)
	}
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			t.Logf("Serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
}

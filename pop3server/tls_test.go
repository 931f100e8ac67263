package pop3server

import (
	"bufio"
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
)

func TestImplicitTLS(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", msg2)
	c := ts.dialTLS()
	c.send("CAPA").wantOK()
	capa := c.readBody()
	if slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
		t.Errorf("CAPA over TLS: %q", capa)
	}
	c.login("alice", "wonderland")
	c.send("RETR 1").wantOK()
	c.wantLines("Subject: two", "", "second")
	c.send("QUIT").wantOK()
}

func (c *testConn) startTLS(ts *testServer) {
	c.t.Helper()
	c.send("STLS").wantOK()
	tc := tls.Client(c.nc, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
}

func TestSTLS(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", msg2)
	c := ts.dial()
	c.send("USER alice").wantOK()
	c.startTLS(ts)
	// RFC 2595 §4: state from before TLS is forgotten.
	c.send("PASS wonderland").wantErr("")
	c.send("STLS").wantErr("")
	c.login("alice", "wonderland")
	c.send("RETR 1").wantOK()
	c.wantLines("Subject: two", "", "second")
}

func TestSTLSMinimumVersion(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.send("STLS").wantOK()
	tc := tls.Client(c.nc, &tls.Config{RootCAs: ts.roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

// Commands pipelined after STLS would run as if they came over TLS: the
// server must refuse them rather than upgrade.
func TestSTLSCommandInjection(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.nc.Write([]byte("STLS\r\nUSER alice\r\nPASS wonderland\r\n"))
	c.last = "STLS+injection"
	c.wantErr("")
	c.wantClosed()
}

func TestSTLSWithoutTLSConfig(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.TLS = nil })
	c := ts.dial()
	c.send("CAPA").wantOK()
	if capa := c.readBody(); slices.Contains(capa, "STLS") {
		t.Errorf("STLS offered without TLS: %q", capa)
	}
	c.send("STLS").wantErr("")
}

func TestTLSHandshakeTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.TLSHandshakeTimeout = 200 * time.Millisecond })
	nc := dialRaw(t, ts.tls)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := nc.Read(make([]byte, 1)); err == nil {
		t.Fatal("server sent data to a client that never started TLS")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("handshake timeout took %v", d)
	}
}

func TestPipelining(t *testing.T) {
	_, c := loggedIn(t, msg1, msg2, msg3)
	var cmds strings.Builder
	for _, cmd := range []string{"STAT", "LIST", "RETR 2", "UIDL 1", "DELE 1", "TOP 3 1", "XYZ", "NOOP"} {
		cmds.WriteString(cmd + "\r\n")
	}
	c.nc.Write([]byte(cmds.String()))
	c.wantOK()
	c.wantOK()
	c.readBody()
	c.wantOK()
	c.wantLines("Subject: two", "", "second")
	c.wantOK()
	c.wantOK()
	c.wantOK()
	c.wantLines("Subject: three", "", "third line 1")
	c.wantErr("")
	c.wantOK()
	_ = pop3.CodeAuth
}

// countingConn counts the server's writes to its socket.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// RFC 2449 §6.6: a pipelined burst is answered in order, and written in
// one batch rather than one write per reply.
func TestPipelinedRepliesAreBatched(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", msg1, msg2)
	l := newPipeListener()
	go ts.srv.Serve(l)
	defer l.Close()
	server, client := net.Pipe()
	var writes atomic.Int64
	l.conns <- countingConn{fakeAddrConn{server, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}, &writes}
	c := newTestConn(t, client)
	c.login("alice", "wonderland")

	var burst strings.Builder
	for range 20 {
		burst.WriteString("STAT\r\nLIST 1\r\nUIDL 2\r\nNOOP\r\n")
	}
	before := writes.Load()
	go client.Write([]byte(burst.String()))
	for range 20 {
		c.wantOK()
		if got := c.wantOK(); !strings.HasPrefix(got, "1 ") {
			t.Fatalf("LIST 1 answered %q: out of order", got)
		}
		if got := c.wantOK(); !strings.HasPrefix(got, "2 ") {
			t.Fatalf("UIDL 2 answered %q: out of order", got)
		}
		c.wantOK()
	}
	// net.Pipe delivers the burst in one read, so one write should do;
	// allow a little slack for how the reads split.
	if n := writes.Load() - before; n > 3 {
		t.Errorf("80 pipelined replies took %d writes", n)
	}
}

package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// fakeAuth is a user database in a map. Users with a "plain:" password
// support APOP.
type fakeAuth struct {
	mu          sync.Mutex
	passwords   map[string]string
	stored      map[string]string // "{SCHEME}data" for users without a plaintext password
	delays      map[string]time.Duration
	unavailable bool
}

func (f *fakeAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unavailable {
		return nil, auth.ErrUnavailable
	}
	if pw, ok := f.passwords[name]; ok && pw == password {
		return &auth.User{Name: name, LoginDelay: f.delays[name]}, nil
	}
	return nil, auth.ErrFailed
}

func (f *fakeAuth) AuthenticateAPOP(ctx context.Context, name, stamp, digest string) (*auth.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pw, ok := f.passwords[name]; ok && apopDigest(stamp, pw) == digest {
		return &auth.User{Name: name}, nil
	}
	return nil, auth.ErrFailed
}

// testServer is a real server on a loopback port.
type testServer struct {
	t     testing.TB
	srv   *Server
	store *memstore.Store
	auth  *fakeAuth
	addr  string // plain POP3 (with STLS)
	tls   string // implicit TLS
	roots *x509.CertPool
}

func newTestServer(t testing.TB, configure ...func(*Config)) *testServer {
	t.Helper()
	cert, certPEM, _, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	ts := &testServer{
		t:     t,
		store: memstore.New(),
		auth:  &fakeAuth{passwords: map[string]string{"alice": "wonderland", "bob": "builder"}},
		roots: roots,
	}
	cfg := Config{
		Hostname:         "pop.test",
		Auth:             ts.auth,
		Store:            ts.store,
		TLS:              &tls.Config{Certificates: []tls.Certificate{cert}},
		AuthFailureDelay: -1,
		Implementation:   "postoffice-test",
	}
	for _, f := range configure {
		f(&cfg)
	}
	ts.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr, ts.tls = plain.Addr().String(), tlsL.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ts.srv.Serve(plain) }()
	go func() { defer wg.Done(); ts.srv.ServeTLS(tlsL) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		wg.Wait()
		if n := ts.srv.Panics(); n != 0 {
			t.Errorf("%d panics recovered", n)
		}
	})
	return ts
}

// deliver puts messages into a user's maildrop.
func (ts *testServer) deliver(user string, msgs ...string) {
	ts.t.Helper()
	for _, m := range msgs {
		if _, err := ts.store.Deliver(context.Background(), store.Account{Name: user}, strings.NewReader(m)); err != nil {
			ts.t.Fatal(err)
		}
	}
}

// testConn is a client connection that reads like a conversation.
type testConn struct {
	t        testing.TB
	nc       net.Conn
	r        *bufio.Reader
	greeting string
	last     string
}

func (ts *testServer) dial() *testConn {
	ts.t.Helper()
	nc, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		ts.t.Fatal(err)
	}
	return newTestConn(ts.t, nc)
}

func (ts *testServer) dialTLS() *testConn {
	ts.t.Helper()
	nc, err := tls.Dial("tcp", ts.tls, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err != nil {
		ts.t.Fatal(err)
	}
	return newTestConn(ts.t, nc)
}

func newTestConn(t testing.TB, nc net.Conn) *testConn {
	t.Helper()
	c := &testConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	c.greeting = c.readLine()
	if !strings.HasPrefix(c.greeting, "+OK") {
		t.Fatalf("greeting %q", c.greeting)
	}
	return c
}

func (c *testConn) readLine() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read after %q: %v", c.last, err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func (c *testConn) send(line string) *testConn {
	c.t.Helper()
	c.last = line
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
	return c
}

// wantOK reads a status line and fails unless it is positive; it returns
// the text after "+OK ".
func (c *testConn) wantOK() string {
	c.t.Helper()
	line := c.readLine()
	r, ok := pop3.ParseReply(line)
	if !ok || !r.OK {
		c.t.Fatalf("%q: got %q, want +OK", c.last, line)
	}
	return r.Text
}

// wantErr reads a status line and fails unless it is -ERR with the given
// response code ("" for none); it returns the reply text.
func (c *testConn) wantErr(code string) string {
	c.t.Helper()
	line := c.readLine()
	r, ok := pop3.ParseReply(line)
	if !ok || r.OK || r.Code != code {
		c.t.Fatalf("%q: got %q, want -ERR [%s]", c.last, line, code)
	}
	return r.Text
}

// wantLines reads a multi-line body and compares it with lines (without
// the terminating ".", dot-stuffing as on the wire).
func (c *testConn) wantLines(lines ...string) {
	c.t.Helper()
	got := c.readBody()
	if strings.Join(got, "\n") != strings.Join(lines, "\n") {
		c.t.Fatalf("%q: body\n%q\nwant\n%q", c.last, got, lines)
	}
}

func (c *testConn) readBody() []string {
	c.t.Helper()
	var got []string
	for {
		line := c.readLine()
		if line == "." {
			return got
		}
		got = append(got, line)
	}
}

// wantClosed checks that the server closed the connection.
func (c *testConn) wantClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := c.r.ReadString('\n'); err == nil {
		c.t.Fatalf("want closed connection, got %q", line)
	}
}

func (c *testConn) login(user, pass string) string {
	c.t.Helper()
	c.send("USER " + user).wantOK()
	return c.send("PASS " + pass).wantOK()
}

func sleep() { time.Sleep(10 * time.Millisecond) }

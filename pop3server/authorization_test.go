package pop3server

import (
	"context"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/pop3"
)

func TestGreetingAndQuit(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	if strings.Contains(c.greeting, "<") {
		t.Errorf("greeting %q has an APOP timestamp although APOP is off", c.greeting)
	}
	c.send("QUIT").wantOK()
	c.wantClosed()
}

func TestAPOPGreetingTimestampUnique(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.APOP = true })
	stamp := regexp.MustCompile(`<[^<>@]+@pop\.test>`)
	a, b := stamp.FindString(ts.dial().greeting), stamp.FindString(ts.dial().greeting)
	if a == "" || b == "" || a == b {
		t.Fatalf("timestamps %q and %q: want two different <...@pop.test>", a, b)
	}
}

func TestAPOP(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.APOP = true })
	ts.deliver("alice", "Subject: x\r\n\r\nbody\r\n")
	c := ts.dial()
	stamp := regexp.MustCompile(`<.*>`).FindString(c.greeting)
	c.send("APOP alice " + apopDigest(stamp, "wrong")).wantErr(pop3.CodeAuth)
	c.send("APOP alice " + apopDigest(stamp, "wonderland")).wantOK()
	c.send("STAT").wantOK()
}

func TestAPOPDisabled(t *testing.T) {
	ts := newTestServer(t)
	ts.dial().send("APOP alice 0123456789abcdef0123456789abcdef").wantErr("")
}

func TestNewRefusesAPOPWithoutSupport(t *testing.T) {
	_, err := New(Config{Auth: plainOnlyAuth{}, Store: newTestServer(t).store, APOP: true})
	if err == nil {
		t.Fatal("New accepted APOP with a user database that cannot check it")
	}
}

// plainOnlyAuth can check passwords but not APOP digests.
type plainOnlyAuth struct{}

func (plainOnlyAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	return nil, auth.ErrFailed
}

func TestUserPass(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", "a\r\n", "bb\r\n")
	c := ts.dial()
	c.send("USER alice").wantOK()
	if got := c.send("PASS wonderland").wantOK(); got != "maildrop has 2 messages (7 octets)" {
		t.Errorf("PASS reply %q", got)
	}
}

func TestPasswordWithSpaces(t *testing.T) {
	ts := newTestServer(t)
	ts.auth.passwords["carol"] = "open sesame "
	c := ts.dial()
	c.send("USER carol").wantOK()
	c.send("PASS open sesame ").wantOK()
}

// Unknown users and wrong passwords must get the same answer.
func TestFailedLoginsLookAlike(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.send("USER alice").wantOK()
	wrong := c.send("PASS nope").wantErr(pop3.CodeAuth)
	c.send("USER nobody").wantOK()
	unknown := c.send("PASS nope").wantErr(pop3.CodeAuth)
	c.send("USER ../../etc/passwd").wantOK()
	invalid := c.send("PASS nope").wantErr(pop3.CodeAuth)
	if wrong != unknown || wrong != invalid {
		t.Errorf("replies differ: %q / %q / %q", wrong, unknown, invalid)
	}
}

func TestFailedLoginDelay(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = 300 * time.Millisecond })
	c := ts.dial()
	c.send("USER alice").wantOK()
	start := time.Now()
	c.send("PASS nope").wantErr(pop3.CodeAuth)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("failure answered after %v, want at least 300ms", d)
	}
}

func TestAuthorizationSequence(t *testing.T) {
	ts := newTestServer(t)
	c := ts.dial()
	c.send("PASS wonderland").wantErr("") // no USER yet
	c.send("USER alice").wantOK()
	c.send("PASS nope").wantErr(pop3.CodeAuth)
	c.send("PASS wonderland").wantErr("") // RFC 1939: USER again after a failure
	c.send("USER")
	c.wantErr("")
	c.send("user alice").wantOK()
	c.send("pass wonderland").wantOK()
	c.send("USER bob").wantErr("") // not in TRANSACTION
}

func TestUserDatabaseUnavailable(t *testing.T) {
	ts := newTestServer(t)
	ts.auth.unavailable = true
	c := ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS wonderland").wantErr(pop3.CodeSysTemp)
}

func TestInUse(t *testing.T) {
	ts := newTestServer(t)
	first := ts.dial()
	first.login("alice", "wonderland")
	second := ts.dial()
	second.send("USER alice").wantOK()
	second.send("PASS wonderland").wantErr(pop3.CodeInUse)
	first.send("QUIT").wantOK()
	first.wantClosed()
	second.login("alice", "wonderland")
}

func TestLoginDelay(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.LoginDelay = time.Hour })
	c := ts.dial()
	c.send("CAPA").wantOK()
	c.wantLinesContaining("LOGIN-DELAY 3600 USER")
	c.login("alice", "wonderland")
	c.send("CAPA").wantOK()
	c.wantLinesContaining("LOGIN-DELAY 3600")
	c.send("QUIT").wantOK()
	c = ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS wonderland").wantErr(pop3.CodeLoginDelay)
	// A wrong password is still just a wrong password.
	c.send("USER alice").wantOK()
	c.send("PASS nope").wantErr(pop3.CodeAuth)
	c.login("bob", "builder")
}

func (c *testConn) wantLinesContaining(want ...string) []string {
	c.t.Helper()
	got := c.readBody()
	for _, w := range want {
		if !slices.Contains(got, w) {
			c.t.Errorf("%q: %q lacks %q", c.last, got, w)
		}
	}
	return got
}

func TestCapa(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.ExpireDays, c.ExpireSet = 30, true })
	c := ts.dial()
	c.send("CAPA").wantOK()
	before := c.wantLinesContaining("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
		"USER", "STLS", "EXPIRE 30", "LOGIN-DELAY 0 USER", "IMPLEMENTATION postoffice-test")
	c.login("alice", "wonderland")
	c.send("CAPA").wantOK()
	after := c.readBody()
	// RFC 2449 §5: the same list after login (USER stays), but STLS,
	// which only AUTHORIZATION allows, and LOGIN-DELAY's USER argument,
	// which becomes the user's own value (§6.5).
	before = slices.DeleteFunc(before, func(s string) bool { return s == "STLS" })
	for i, s := range before {
		before[i] = strings.TrimSuffix(s, " USER")
	}
	for i, s := range after {
		after[i] = strings.TrimSuffix(s, " USER") // UTF8 USER appears in both
	}
	if !slices.Equal(before, after) {
		t.Errorf("CAPA after login %q, before %q", after, before)
	}
}

func TestCapaDefaultExpireNever(t *testing.T) {
	c := newTestServer(t).dial()
	c.send("CAPA").wantOK()
	c.wantLinesContaining("EXPIRE NEVER")
}

// pipeListener hands out in-memory connections that claim to come from a
// public address, to test the policy for non-loopback clients without
// sending traffic anywhere.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

type fakeAddrConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeAddrConn) RemoteAddr() net.Addr { return c.remote }

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) dial(t *testing.T, from string) *testConn {
	server, client := net.Pipe()
	l.conns <- fakeAddrConn{server, &net.TCPAddr{IP: net.ParseIP(from), Port: 40000}}
	return newTestConn(t, client)
}

func servePipe(t *testing.T, ts *testServer) *pipeListener {
	l := newPipeListener()
	go ts.srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestPlaintextRefusedWithoutTLS(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.APOP = true })
	l := servePipe(t, ts)
	c := l.dial(t, "192.0.2.10")
	c.send("CAPA").wantOK()
	capa := c.readBody()
	if slices.Contains(capa, "USER") || !slices.Contains(capa, "STLS") {
		t.Errorf("CAPA on plaintext from a remote address: %q", capa)
	}
	c.send("USER alice").wantErr(pop3.CodeAuth)
	c.send("APOP alice 0123456789abcdef0123456789abcdef").wantErr(pop3.CodeAuth)
}

func TestAllowInsecureAuth(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.AllowInsecureAuth = true })
	c := servePipe(t, ts).dial(t, "2001:db8::1")
	c.send("CAPA").wantOK()
	c.wantLinesContaining("USER")
	c.login("alice", "wonderland")
}

// A user's own login_delay overrides the server's, and CAPA after login
// shows it.
func TestPerUserLoginDelay(t *testing.T) {
	ts := newTestServer(t)
	ts.auth.delays = map[string]time.Duration{"alice": 15 * time.Minute}
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("CAPA").wantOK()
	c.wantLinesContaining("LOGIN-DELAY 900")
	c.send("QUIT").wantOK()
	c.wantClosed()
	c = ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS wonderland").wantErr(pop3.CodeLoginDelay)
	c.login("bob", "builder") // no delay for bob, none server-wide
	c.send("QUIT").wantOK()
	ts.dial().login("bob", "builder")
}

package pop3client

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postoffice-mail/postoffice/pop3"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestLoginStatQuit(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("USER alice\r\n"), S("+OK\r\n"),
		C("PASS wonder land\r\n"), S("+OK maildrop has 2 messages (320 octets)\r\n"),
		C("STAT\r\n"), S("+OK 2 320\r\n"),
		C("QUIT\r\n"), S("+OK bye\r\n"),
	)
	c := s.dial()
	if c.Greeting() != "POP3 ready <1896.697170952@dbc.mtview.ca.us>" {
		t.Errorf("greeting %q", c.Greeting())
	}
	if err := c.Login(ctx(t), "alice", "wonder land"); err != nil {
		t.Fatal(err)
	}
	n, size, err := c.Stat(ctx(t))
	if err != nil || n != 2 || size != 320 {
		t.Fatalf("STAT = %d, %d, %v", n, size, err)
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("NOOP after QUIT: %v", err)
	}
}

// The example of RFC 1939 §7.
func TestAPOP(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"), S("+OK maildrop has 1 message (369 octets)\r\n"),
	)
	c := s.dial()
	if c.APOPTimestamp() != "<1896.697170952@dbc.mtview.ca.us>" {
		t.Fatalf("timestamp %q", c.APOPTimestamp())
	}
	if err := c.APOP(ctx(t), "mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestAPOPWithoutTimestamp(t *testing.T) {
	s := play(t, false, S("+OK hello\r\n"))
	c := s.dial()
	wantErrIs(t, c.APOP(ctx(t), "mrose", "tanstaaf"), ErrNoAPOP)
	c.Close()
}

func TestResponseCodes(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("USER alice\r\n"), S("+OK\r\n"),
		C("PASS x\r\n"), S("-ERR [AUTH] authentication failed\r\n"),
		C("USER alice\r\n"), S("+OK\r\n"),
		C("PASS y\r\n"), S("-ERR [IN-USE] maildrop is locked\r\n"),
		C("USER alice\r\n"), S("+OK\r\n"),
		C("PASS y\r\n"), S("-ERR [LOGIN-DELAY] wait 300 more seconds\r\n"),
		C("USER alice\r\n"), S("+OK\r\n"),
		C("PASS y\r\n"), S("-ERR [SYS/TEMP] cannot open maildrop\r\n"),
		C("USER alice\r\n"), S("-ERR\r\n"),
	)
	c := s.dial()
	err := c.Login(ctx(t), "alice", "x")
	wantCode(t, err, pop3.CodeAuth)
	if perr, _ := ReplyError(err); perr.Temporary() || perr.Text != "authentication failed" {
		t.Errorf("AUTH: %+v", perr)
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Command != "PASS" || strings.Contains(err.Error(), "x") && strings.Contains(err.Error(), "PASS x") {
		t.Errorf("error %q should name PASS without the password", err)
	}
	for _, code := range []string{pop3.CodeInUse, pop3.CodeLoginDelay, pop3.CodeSysTemp} {
		err := c.Login(ctx(t), "alice", "y")
		wantCode(t, err, code)
		if perr, _ := ReplyError(err); !perr.Temporary() || !HasCode(err, code) {
			t.Errorf("%s should be temporary", code)
		}
	}
	wantCode(t, c.Login(ctx(t), "alice", "y"), "")
	c.Close()
}

func TestCapabilities(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S(crlf("+OK capability list follows", "TOP", "UIDL", "SASL PLAIN scram-sha-256", "LOGIN-DELAY 900", "EXPIRE 30", "PIPELINING", "STLS", ".")),
	)
	c := s.dial()
	caps, err := c.Capabilities(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !caps.Has("uidl") || !caps.Has("STLS") || caps.Has("USER") {
		t.Errorf("caps %v", caps)
	}
	if !caps.HasSASL("SCRAM-SHA-256") || strings.Join(caps.SASL(), " ") != "PLAIN SCRAM-SHA-256" {
		t.Errorf("SASL %v", caps.SASL())
	}
	if d, ok := caps.LoginDelay(); !ok || d != 900*time.Second {
		t.Errorf("LOGIN-DELAY %v %v", d, ok)
	}
	if days, never, ok := caps.Expire(); !ok || never || days != 30 {
		t.Errorf("EXPIRE %d %v %v", days, never, ok)
	}
	if !c.Pipeline().Active() {
		t.Error("pipelining not active")
	}
	c.Close()
}

// A server without CAPA (RFC 1939 only) answers -ERR; the connection
// goes on.
func TestCapaUnsupported(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S("-ERR unknown command\r\n"),
		C("NOOP\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	if _, err := c.Capabilities(ctx(t)); !isNegative(err) {
		t.Fatalf("CAPA: %v", err)
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// The body as sent on the wire and what the reader must return: stuffed
// dots removed, a "." line (stuffed as "..") kept, a bare LF passed
// through, CRLF kept, the terminator removed.
func TestRetrUnstuffs(t *testing.T) {
	wire := "Subject: dots\r\n\r\n..leading dot\r\n..\r\nbare LF\nline\r\n...two\r\n\r\n.\r\n"
	want := "Subject: dots\r\n\r\n.leading dot\r\n.\r\nbare LF\nline\r\n..two\r\n\r\n"
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK 62 octets\r\n"+wire),
		C("NOOP\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	m, err := c.Retr(ctx(t), 1)
	got := readAll(t, m, err)
	if got != want {
		t.Fatalf("body %q\nwant %q", got, want)
	}
	if m.N() != int64(len(want)) || m.Status() != "62 octets" {
		t.Errorf("N %d status %q", m.N(), m.Status())
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A lax server that ends the body with ".\n": accepted.
func TestRetrBareLFTerminator(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK\r\nline one\nline two\n.\n"),
		C("NOOP\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	m, err := c.Retr(ctx(t), 1)
	if got := readAll(t, m, err); got != "line one\nline two\n" {
		t.Fatalf("body %q", got)
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A 3 MiB line with no line end but the last, and a 5 MiB body, read in
// small pieces: the reader never needs the line in memory.
func TestRetrHugeLine(t *testing.T) {
	huge := strings.Repeat("x", 3<<20)
	wire := "Subject: huge\r\n\r\n" + huge + "\r\n" + strings.Repeat(".y\r\n", 1<<19) + ".\r\n"
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK\r\n"+wire),
		C("QUIT\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	m, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	var total int64
	var prefix bytes.Buffer
	for {
		n, err := m.Read(buf)
		total += int64(n)
		if prefix.Len() < 20 {
			prefix.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := int64(len("Subject: huge\r\n\r\n") + len(huge) + 2 + 3*(1<<19))
	if total != want || m.N() != want {
		t.Fatalf("read %d octets (N %d), want %d", total, m.N(), want)
	}
	if !strings.HasPrefix(prefix.String(), "Subject: huge") {
		t.Errorf("prefix %q", prefix.String())
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// The server dies in the middle of a message: the reader fails (never
// a short message that looks complete) and the client is broken.
func TestRetrConnectionDrop(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK\r\nSubject: cut\r\n\r\nhalf a mess"), Hangup(),
	)
	c := s.dial()
	m, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(m)
	wantErrIs(t, err, pop3.ErrUnexpectedEOF)
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Command != "RETR 1" {
		t.Errorf("error %v does not name RETR 1", err)
	}
	wantErrIs(t, c.Noop(ctx(t)), ErrBroken)
	c.Close()
}

// A server that stops answering: ErrTimeout after Options.Timeout.
func TestSlowServer(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK\r\nSubject: slow\r\n"), Pause(700*time.Millisecond), S("body\r\n.\r\n"),
	)
	c := s.dial(func(o *Options) { o.Timeout = 200 * time.Millisecond })
	m, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(m)
	wantErrIs(t, err, ErrTimeout)
	c.Close()
}

// A slow server that keeps sending is not cut off: the timeout is per
// wait, not per command.
func TestSlowButSteadyServer(t *testing.T) {
	steps := []step{S(greeting), C("RETR 1\r\n"), S("+OK\r\n")}
	for i := 0; i < 6; i++ {
		steps = append(steps, Pause(100*time.Millisecond), S("line\r\n"))
	}
	steps = append(steps, S(".\r\n"))
	s := play(t, false, steps...)
	c := s.dial(func(o *Options) { o.Timeout = 300 * time.Millisecond })
	m, err := c.Retr(ctx(t), 1)
	if got := readAll(t, m, err); got != strings.Repeat("line\r\n", 6) {
		t.Fatalf("body %q", got)
	}
	c.Close()
}

func TestContextCancel(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("NOOP\r\n"), Pause(500*time.Millisecond),
	)
	c := s.dial()
	cctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := c.Noop(cctx)
	wantErrIs(t, err, context.Canceled)
	if time.Since(start) > 400*time.Millisecond {
		t.Errorf("cancel took %v", time.Since(start))
	}
	wantErrIs(t, c.Noop(ctx(t)), ErrBroken)
	c.Close()
}

func TestContextDeadline(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("NOOP\r\n"), Pause(500*time.Millisecond),
	)
	c := s.dial()
	dctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	wantErrIs(t, c.Noop(dctx), context.DeadlineExceeded)
	c.Close()
}

func TestTop(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("TOP 2 0\r\n"), S("+OK\r\nSubject: top\r\n\r\n.\r\n"),
	)
	c := s.dial()
	m, err := c.Top(ctx(t), 2, 0)
	if got := readAll(t, m, err); got != "Subject: top\r\n\r\n" {
		t.Fatalf("TOP %q", got)
	}
	c.Close()
}

func TestListUidl(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("LIST\r\n"), S(crlf("+OK 2 messages", "1 120", "2 200", ".")),
		C("UIDL\r\n"), S(crlf("+OK", "1 whqtswO00WBw418f9t5JxYwZ", "2 QhdPYR:00WBw1Ph7x7", ".")),
		C("LIST 2\r\n"), S("+OK 2 200\r\n"),
		C("UIDL 1\r\n"), S("+OK 1 whqtswO00WBw418f9t5JxYwZ\r\n"),
		C("LIST 3\r\n"), S("-ERR no such message\r\n"),
	)
	c := s.dial()
	list, err := c.List(ctx(t))
	if err != nil || len(list) != 2 || list[1] != (MessageInfo{Number: 2, Size: 200}) {
		t.Fatalf("LIST %v %v", list, err)
	}
	uidl, err := c.Uidl(ctx(t))
	if err != nil || len(uidl) != 2 || uidl[1].UID != "QhdPYR:00WBw1Ph7x7" {
		t.Fatalf("UIDL %v %v", uidl, err)
	}
	one, err := c.ListOne(ctx(t), 2)
	if err != nil || one.Size != 200 {
		t.Fatalf("LIST 2 %v %v", one, err)
	}
	u, err := c.UidlOne(ctx(t), 1)
	if err != nil || u.UID != "whqtswO00WBw418f9t5JxYwZ" {
		t.Fatalf("UIDL 1 %v %v", u, err)
	}
	if _, err := c.ListOne(ctx(t), 3); !isNegative(err) {
		t.Fatalf("LIST 3: %v", err)
	}
	c.Close()
}

// A listing with a unique id containing a control character is a broken
// server, not data to store.
func TestMalformedListing(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("UIDL\r\n"), S("+OK\r\n1 good\r\n2 \x01bad\r\n.\r\n"),
	)
	c := s.dial()
	_, err := c.Uidl(ctx(t))
	wantErrIs(t, err, ErrMalformedReply)
	c.Close()
}

func TestMalformedStatus(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("NOOP\r\n"), S("OK fine\r\n"),
	)
	c := s.dial()
	wantErrIs(t, c.Noop(ctx(t)), ErrMalformedReply)
	wantErrIs(t, c.Noop(ctx(t)), ErrBroken)
	c.Close()
}

// A status line longer than any server needs is refused, not buffered.
func TestOverlongStatus(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("NOOP\r\n"), S("+OK "+strings.Repeat("a", 20000)+"\r\n"),
	)
	c := s.dial()
	wantErrIs(t, c.Noop(ctx(t)), ErrMalformedReply)
	c.Close()
}

func TestDeleRsetQuitError(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("DELE 1\r\n"), S("+OK marked\r\n"),
		C("RSET\r\n"), S("+OK\r\n"),
		C("DELE 1\r\n"), S("+OK\r\n"),
		C("QUIT\r\n"), S("-ERR [SYS/TEMP] some deleted messages not removed\r\n"),
	)
	c := s.dial()
	for _, f := range []func(context.Context) error{
		func(ctx context.Context) error { return c.Dele(ctx, 1) },
		c.Rset,
		func(ctx context.Context) error { return c.Dele(ctx, 1) },
	} {
		if err := f(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, c.Quit(ctx(t)), pop3.CodeSysTemp)
}

// With PIPELINING the client sends a batch of commands before reading:
// the script expects all of them before answering the first.
func TestPipelining(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S(crlf("+OK", "PIPELINING", "UIDL", ".")),
		C("LIST\r\nUIDL\r\n"),
		S(crlf("+OK", "1 10", "2 12", ".")), S(crlf("+OK", "1 a", "2 b", ".")),
		C("RETR 1\r\nRETR 2\r\n"),
		S("+OK\r\nmessage 1\r\n.\r\n+OK\r\nmessage two\r\n.\r\n"),
		C("DELE 1\r\nDELE 2\r\nQUIT\r\n"),
		S("+OK\r\n+OK\r\n+OK bye\r\n"),
	)
	c := s.dial()
	if _, err := c.Capabilities(ctx(t)); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Messages(ctx(t))
	if err != nil || len(msgs) != 2 || msgs[1] != (MessageInfo{Number: 2, Size: 12, UID: "b"}) {
		t.Fatalf("Messages %v %v", msgs, err)
	}
	p := c.Pipeline()
	r1, r2 := p.Retr(ctx(t), 1), p.Retr(ctx(t), 2)
	m1, err := r1.Message(ctx(t))
	if got := readAll(t, m1, err); got != "message 1\r\n" {
		t.Fatalf("1: %q", got)
	}
	m2, err := r2.Message(ctx(t))
	if got := readAll(t, m2, err); got != "message two\r\n" {
		t.Fatalf("2: %q", got)
	}
	d1, d2 := p.Dele(ctx(t), 1), p.Dele(ctx(t), 2)
	q := c.send(ctx(t), kindSingle, "QUIT")
	if err := q.Wait(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if d1.Wait(ctx(t)) != nil || d2.Wait(ctx(t)) != nil {
		t.Fatal("DELE failed")
	}
	c.Close()
}

// Without PIPELINING the same calls go one at a time, and a message reply
// read past is discarded (ErrSkipped), not mixed into the next.
func TestNoPipeliningWithoutCapability(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S(crlf("+OK", "UIDL", ".")),
		C("RETR 1\r\n"), S("+OK\r\nmessage 1\r\n.\r\n"),
		C("RETR 2\r\n"), S("+OK\r\nmessage two\r\n.\r\n"),
	)
	c := s.dial()
	if _, err := c.Capabilities(ctx(t)); err != nil {
		t.Fatal(err)
	}
	p := c.Pipeline()
	if p.Active() {
		t.Fatal("pipelining active without the capability")
	}
	r1 := p.Retr(ctx(t), 1)
	r2 := p.Retr(ctx(t), 2)
	m2, err := r2.Message(ctx(t))
	if got := readAll(t, m2, err); got != "message two\r\n" {
		t.Fatalf("2: %q", got)
	}
	if _, err := r1.Message(ctx(t)); !errors.Is(err, ErrSkipped) {
		t.Fatalf("1: %v, want ErrSkipped", err)
	}
	c.Close()
}

// An unread message is drained before the next command's reply.
func TestUnreadMessageDrained(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("RETR 1\r\n"), S("+OK\r\nline\r\n..\r\nmore\r\n.\r\n"),
		C("NOOP\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	m, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	m.Read(buf)
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestRetrNegative(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("RETR 9\r\n"), S("-ERR no such message\r\n"),
		C("NOOP\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	if _, err := c.Retr(ctx(t), 9); !isNegative(err) {
		t.Fatalf("RETR 9: %v", err)
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestAuthPlain(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("AUTH PLAIN "+b64("\x00alice\x00secret")+"\r\n"), S("+OK logged in\r\n"),
	)
	c := s.dial()
	if err := c.Auth(ctx(t), sasl.NewPlainClient("", "alice", "secret")); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// RFC 5034 §4: an initial response that would make the line longer than
// 255 octets is sent after an empty challenge instead.
func TestAuthLongInitialResponse(t *testing.T) {
	token := strings.Repeat("t", 400)
	ir := b64("user=alice\x01auth=Bearer " + token + "\x01\x01")
	s := play(t, false,
		S(greeting),
		C("AUTH XOAUTH2\r\n"), S("+ \r\n"),
		C(ir+"\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	if err := c.Auth(ctx(t), NewXOAUTH2Client("alice", token)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// XOAUTH2 failure: the server's error arrives as a challenge, answered
// with an empty line; then -ERR.
func TestAuthXOAUTH2Failure(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("AUTH XOAUTH2 "+b64("user=alice\x01auth=Bearer tok\x01\x01")+"\r\n"),
		S("+ "+b64(`{"status":"401","schemes":"bearer"}`)+"\r\n"),
		C("\r\n"), S("-ERR [AUTH] invalid token\r\n"),
	)
	c := s.dial()
	wantCode(t, c.Auth(ctx(t), NewXOAUTH2Client("alice", "tok")), pop3.CodeAuth)
	c.Close()
}

func TestAuthOAuthBearer(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("AUTH OAUTHBEARER "+b64("n,a=alice,\x01host=127.0.0.1\x01port=995\x01auth=Bearer tok\x01\x01")+"\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	if err := c.Auth(ctx(t), sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "alice", Token: "tok", Host: "127.0.0.1", Port: 995})); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestAuthLogin(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("AUTH LOGIN\r\n"), S("+ "+b64("Username:")+"\r\n"),
		C(b64("alice")+"\r\n"), S("+ "+b64("Password:")+"\r\n"),
		C(b64("secret")+"\r\n"), S("+OK\r\n"),
	)
	c := s.dial()
	if err := c.Auth(ctx(t), NewLoginClient("alice", "secret")); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// The SCRAM-SHA-256 example of RFC 7677 §3, with the server's signature
// sent as a final challenge (as Dovecot does) and answered with an empty
// line.
func TestAuthSCRAM(t *testing.T) {
	const (
		clientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	nonce := func() string { return "rOprNGfwEbeRWgbNEkqO" }
	t.Run("verified", func(t *testing.T) {
		s := play(t, false,
			S(greeting),
			C("AUTH SCRAM-SHA-256 "+b64(clientFirst)+"\r\n"), S("+ "+b64(serverFirst)+"\r\n"),
			C(b64(clientFinal)+"\r\n"), S("+ "+b64(serverFinal)+"\r\n"),
			C("\r\n"), S("+OK\r\n"),
		)
		c := s.dial()
		mech, err := newSCRAMClient("user", "pencil", nonce)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Auth(ctx(t), mech); err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("wrong server signature", func(t *testing.T) {
		s := play(t, false,
			S(greeting),
			C("AUTH SCRAM-SHA-256 "+b64(clientFirst)+"\r\n"), S("+ "+b64(serverFirst)+"\r\n"),
			C(b64(clientFinal)+"\r\n"), S("+ "+b64("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")+"\r\n"),
			C("*\r\n"), S("-ERR cancelled\r\n"),
		)
		c := s.dial()
		mech, _ := newSCRAMClient("user", "pencil", nonce)
		if err := c.Auth(ctx(t), mech); err == nil || isNegative(err) {
			t.Fatalf("want a verification error, got %v", err)
		}
		c.Close()
	})
	t.Run("server skips its proof", func(t *testing.T) {
		s := play(t, false,
			S(greeting),
			C("AUTH SCRAM-SHA-256 "+b64(clientFirst)+"\r\n"), S("+ "+b64(serverFirst)+"\r\n"),
			C(b64(clientFinal)+"\r\n"), S("+OK\r\n"),
		)
		c := s.dial()
		mech, _ := newSCRAMClient("user", "pencil", nonce)
		wantErrIs(t, c.Auth(ctx(t), mech), ErrServerNotVerified)
		c.Close()
	})
}

// Passwords do not cross a connection that is neither TLS nor loopback.
func TestInsecureAuthRefused(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go io.WriteString(server, greeting)
	c, err := NewClient(ctx(t), client, "pop.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantErrIs(t, c.Login(ctx(t), "alice", "pw"), ErrInsecureAuth)
	wantErrIs(t, c.Auth(ctx(t), sasl.NewPlainClient("", "alice", "pw")), ErrInsecureAuth)
}

func TestSTLS(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S(crlf("+OK", "STLS", "PIPELINING", ".")),
		C("STLS\r\n"), S("+OK begin TLS\r\n"), ServerTLS(),
		C("CAPA\r\n"), S(crlf("+OK", "USER", ".")),
		C("QUIT\r\n"), S("+OK\r\n"),
	)
	c := s.dial(func(o *Options) { o.Security = SecuritySTLS })
	if !c.IsTLS() {
		t.Fatal("not TLS after STLS")
	}
	if c.LastCapabilities() != nil || c.Pipeline().Active() {
		t.Error("capabilities from before TLS kept")
	}
	caps, err := c.Capabilities(ctx(t))
	if err != nil || !caps.Has("USER") {
		t.Fatalf("CAPA over TLS: %v %v", caps, err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		t.Error("no TLS state")
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// SecuritySTLS never goes on in plaintext.
func TestSTLSRequired(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		s := play(t, false,
			S(greeting),
			C("CAPA\r\n"), S(crlf("+OK", "USER", ".")),
			C("STLS\r\n"), S("-ERR not here\r\n"),
		)
		_, err := s.dialErr(func(o *Options) { o.Security = SecuritySTLS })
		wantErrIs(t, err, ErrTLSRequired)
	})
	t.Run("no CAPA", func(t *testing.T) {
		s := play(t, false,
			S(greeting),
			C("CAPA\r\n"), S("-ERR what?\r\n"),
			C("STLS\r\n"), S("-ERR what?\r\n"),
		)
		_, err := s.dialErr(func(o *Options) { o.Security = SecuritySTLS })
		wantErrIs(t, err, ErrTLSRequired)
	})
}

// Plaintext bytes after the STLS reply would be read as if they came over
// TLS: refused.
func TestSTLSInjection(t *testing.T) {
	s := play(t, false,
		S(greeting),
		C("CAPA\r\n"), S(crlf("+OK", "STLS", ".")),
		C("STLS\r\n"), S("+OK begin TLS\r\n+OK injected\r\n"),
	)
	_, err := s.dialErr(func(o *Options) { o.Security = SecuritySTLS })
	if err == nil || !strings.Contains(err.Error(), "injection") {
		t.Fatalf("want injection error, got %v", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := play(t, true,
		S(greeting),
		C("QUIT\r\n"), S("+OK\r\n"),
	)
	c := s.dial(func(o *Options) { o.Security = SecurityTLS })
	if !c.IsTLS() {
		t.Fatal("not TLS")
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// A certificate the client does not trust ends the connection before any
// credentials are sent.
func TestBadCertificate(t *testing.T) {
	s := play(t, true)
	_, err := s.dialErr(func(o *Options) {
		o.Security = SecurityTLS
		o.TLSConfig = nil // the system roots do not know the test CA
	})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error, got %v", err)
	}
	// The scripted server saw a failed handshake; its error is expected.
	<-s.done
	s.done <- nil
}

func TestGreetingErr(t *testing.T) {
	s := play(t, false, S("-ERR [SYS/TEMP] too many connections\r\n"))
	_, err := s.dialErr()
	wantCode(t, err, pop3.CodeSysTemp)
}

package pop3server

import (
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/pop3"
)

func TestMaskCommand(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"PASS wonderland", "PASS ***"},
		{"pass two words", "pass ***"},
		{"PASS", "PASS"},
		{"APOP alice c4c9334bac560ecc979e58001b3e22fb", "APOP alice ***"},
		{"APOP alice", "APOP alice"},
		{"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=", "AUTH PLAIN ***"},
		{"AUTH PLAIN", "AUTH PLAIN"},
		{"AUTH", "AUTH"},
		{"USER alice", "USER alice"},
		{"RETR 1", "RETR 1"},
	} {
		if got := maskCommand([]byte(tc.in)); got != tc.want {
			t.Errorf("maskCommand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The traced user's sessions are traced from the greeting on, with every
// secret masked; other users' sessions leave nothing in the trace.
func TestTrace(t *testing.T) {
	var logs logBuffer
	ts := newTestServer(t, func(c *Config) {
		c.Logger = jsonLogger(&logs)
		c.TraceUser = "alice"
		c.APOP = true
	})
	ts.deliver("alice", "Subject: hi\r\n\r\nsecret body\r\n")

	c := ts.dial()
	c.send("CAPA").wantOK()
	c.readBody()
	c.login("alice", "wonderland")
	c.send("RETR 1").wantOK()
	c.readBody()
	c.send("QUIT").wantOK()
	c.wantClosed()

	// AUTH PLAIN, initial response and as a continuation line.
	plain := pop3.EncodeSASL([]byte("\x00alice\x00wonderland"))
	c = ts.dial()
	c.send("AUTH PLAIN " + plain).wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()
	c = ts.dial()
	c.send("AUTH PLAIN").readLine()
	c.send(plain).wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()

	// A wrong password for the traced user is traced too.
	c = ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS guess-one").wantErr("AUTH")
	c.send("QUIT").wantOK()
	c.wantClosed()

	// Bob is not traced.
	c = ts.dial()
	c.login("bob", "builder")
	c.send("NOOP").wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()

	var lines []string
	waitFor(t, func() bool { return len(logs.records(t, "session ended")) == 5 })
	for _, rec := range logs.records(t, "trace") {
		lines = append(lines, rec["dir"].(string)+": "+rec["line"].(string))
	}
	trace := strings.Join(lines, "\n")
	for _, secret := range []string{"wonderland", "guess-one", plain, "builder", "secret body"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs.String())
		}
	}
	if strings.Contains(trace, "bob") {
		t.Errorf("bob's session was traced:\n%s", trace)
	}
	for _, want := range []string{
		"S: +OK POP3 server ready <", // greeting, kept until the user was named
		"C: CAPA",
		"S: +OK capability list follows",
		"C: USER alice",
		"C: PASS ***",
		"S: +OK maildrop has 1 messages",
		"C: RETR 1",
		"S: +OK 28 octets",
		"C: QUIT",
		"C: AUTH PLAIN ***",
		"C: AUTH PLAIN\nS: + \nC: ***\nS: +OK maildrop has",
		"C: PASS ***\nS: -ERR [AUTH]",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	if n := strings.Count(trace, "C: QUIT"); n != 4 {
		t.Errorf("%d QUITs traced, want alice's 4:\n%s", n, trace)
	}
}

package pop3server

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession replays arbitrary client input in every session state: before
// login (mode 0), after login (mode 1) and in the middle of a SASL exchange
// (modes 2 and 3: after "AUTH PLAIN" and "AUTH LOGIN", so the input is read
// as SASL responses first). Whatever the input, the server must answer
// without panicking, end the session when the input ends, and never lose a
// message the input did not delete and QUIT.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"CAPA\r\nSTAT\r\nQUIT\r\n",
		"LIST\r\nUIDL 1\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nRSET\r\nQUIT\r\n",
		"DELE 1\r\nDELE 2\r\nQUIT\r\n",
		"RETR 0\r\nRETR -1\r\nLIST 99999999999999999999\r\n",
		"USER ../../etc\r\nPASS x\r\nAPOP a b\r\nSTLS\r\n",
		"\x00\xff\r\n\n\r\r\n" + strings.Repeat("A", 400) + "\r\nNOOP\r\n",
		"AUTH PLAIN AGJvYgBidWlsZGVy\r\nSTAT\r\nDELE 1\r\nQUIT\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH LOGIN Ym9i\r\nYnVpbGRlcg==\r\nLIST\r\n",
		"AUTH SCRAM-SHA-256 biwsbj1ib2Iscj1hYmM=\r\n=\r\nAUTH XOAUTH2 ===\r\n",
		"AGFsaWNlAHdvbmRlcmxhbmQ=\r\nUIDL\r\n",
		"YWxpY2U=\r\nd29uZGVybGFuZA==\r\nRETR 1\r\n",
		"!!!notbase64\r\n" + strings.Repeat("QUFB", 300) + "\r\n",
	}
	for _, s := range seeds {
		for mode := range byte(4) {
			f.Add(mode, []byte(s))
		}
	}
	ts := newTestServer(f, func(c *Config) {
		c.MaxBadCommands = 5
		// An input can leave the session waiting: for the rest of a
		// line, a SASL response, or a TLS record after STLS whose header
		// announced more than followed. Short timeouts end such waits
		// in a second or two instead of at the client's deadline, so
		// that they neither slow the fuzzer down nor look like a hang.
		c.IdleTimeout = 2 * time.Second
		c.AuthTimeout = 2 * time.Second
		c.TLSHandshakeTimeout = time.Second
	})
	f.Fuzz(func(t *testing.T, mode byte, input []byte) {
		ts.t = t
		l := newPipeListener()
		go ts.srv.Serve(l)
		defer l.Close()
		server, client := net.Pipe()
		l.conns <- fakeAddrConn{server, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
		defer client.Close()

		mode %= 4
		user := "alice"
		if mode == 1 {
			user = "bob"
		}
		before := len(ts.store.Messages(user))
		if before < 2 {
			ts.deliver(user, msg1, msg2)
		}
		prefix := [...]string{
			"",
			"USER bob\r\nPASS builder\r\n",
			"AUTH PLAIN\r\n",
			"AUTH LOGIN\r\n",
		}[mode]
		client.SetDeadline(time.Now().Add(10 * time.Second))
		// Read everything the server says while writing, so neither side
		// blocks on the unbuffered pipe.
		out := make(chan []byte)
		go func() {
			var buf bytes.Buffer
			io.Copy(&buf, client)
			out <- buf.Bytes()
		}()
		client.Write([]byte(prefix))
		client.Write(input)
		// "*" cancels a SASL exchange the input left open (RFC 5034
		// §4), which would otherwise take QUIT for a response and wait
		// for the next one until the client gives up; elsewhere it is
		// one more unknown command.
		client.Write([]byte("\r\n*\r\nQUIT\r\n"))
		reply := <-out
		if !bytes.HasPrefix(reply, []byte("+OK")) {
			t.Fatalf("no greeting: %q", reply)
		}
		waitFor(t, func() bool { return !ts.store.Locked(user) })
		if ts.srv.Panics() != 0 {
			t.Fatal("the session panicked")
		}
		if !bytes.Contains(bytes.ToUpper(input), []byte("DELE")) {
			if n := len(ts.store.Messages(user)); n < 2 {
				t.Fatalf("%d messages left without any DELE", n)
			}
		}
	})
}

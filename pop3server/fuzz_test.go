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
// login, after login, and after STLS is refused. Whatever the input, the
// server must answer without panicking, end the session when the input
// ends, and never lose a message the input did not delete and QUIT.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"CAPA\r\nSTAT\r\nQUIT\r\n",
		"LIST\r\nUIDL 1\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nRSET\r\nQUIT\r\n",
		"DELE 1\r\nDELE 2\r\nQUIT\r\n",
		"RETR 0\r\nRETR -1\r\nLIST 99999999999999999999\r\n",
		"USER ../../etc\r\nPASS x\r\nAPOP a b\r\nSTLS\r\n",
		"\x00\xff\r\n\n\r\r\n" + strings.Repeat("A", 400) + "\r\nNOOP\r\n",
	}
	for _, s := range seeds {
		f.Add(byte(0), []byte(s))
		f.Add(byte(1), []byte(s))
	}
	ts := newTestServer(f, func(c *Config) { c.MaxBadCommands = 5 })
	f.Fuzz(func(t *testing.T, mode byte, input []byte) {
		ts.t = t
		l := newPipeListener()
		go ts.srv.Serve(l)
		defer l.Close()
		server, client := net.Pipe()
		l.conns <- fakeAddrConn{server, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
		defer client.Close()

		user := "alice"
		if mode%2 == 1 {
			user = "bob"
		}
		before := len(ts.store.Messages(user))
		if before < 2 {
			ts.deliver(user, msg1, msg2)
		}
		prefix := ""
		if mode%2 == 1 {
			prefix = "USER bob\r\nPASS builder\r\n"
		}
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
		client.Write([]byte("\r\nQUIT\r\n"))
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

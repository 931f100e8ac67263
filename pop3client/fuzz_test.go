package pop3client

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzServerReplies plays a hostile or broken server: after a greeting,
// whatever the input holds is what the client reads, whatever it asks.
// "postoffice fetch" talks to servers it does not control, so every
// command must end — with an answer or an error — without a panic and
// without waiting past its timeout once the server has nothing more to
// say.
func FuzzServerReplies(f *testing.F) {
	for _, s := range []string{
		"+OK\r\nUSER\r\nSASL PLAIN\r\nPIPELINING\r\nUIDL\r\nTOP\r\n.\r\n+OK\r\n+OK\r\n+OK 2 320\r\n" +
			"+OK\r\n1 120\r\n2 200\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n" +
			"+OK\r\nSubject: x\r\n\r\n..dot\r\n.\r\n+OK\r\nSubject: y\r\n.\r\n+OK\r\n+OK bye\r\n",
		"-ERR [IN-USE] locked\r\n-ERR\r\n-ERR [SYS/TEMP] later\r\n",
		"+OK\r\n1 -5\r\n2\r\n3 99999999999999999999999\r\n1 1\r\n.\r\n",
		"+OK 99999999999999999999 -1\r\n+OK x y\r\n",
		"+OK\r\n1 " + strings.Repeat("u", 100) + "\r\n.\r\n+OK\r\n" + strings.Repeat("z", 5000) + "\r\n.\r\n",
		"+ \r\n+ AAAA\r\n*\r\n+OK\n1 2\n.\n",
		"\x00\xff\r\n.\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			// Drain what the client sends, so that its writes never
			// block on the unbuffered pipe.
			go io.Copy(io.Discard, server)
			server.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(server, "+OK ready <1.2@fuzz>\r\n")
			io.WriteString(server, script)
			server.Close()
		}()
		defer func() { client.Close(); <-done }()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := NewClient(ctx, client, "localhost", &Options{Timeout: 2 * time.Second, AllowInsecureAuth: true})
		if err != nil {
			return
		}
		c.Capabilities(ctx)
		c.Login(ctx, "user", "secret")
		c.Stat(ctx)
		c.Messages(ctx)
		c.Uidl(ctx)
		c.ListOne(ctx, 1)
		for _, open := range []func() (*MessageReader, error){
			func() (*MessageReader, error) { return c.Retr(ctx, 1) },
			func() (*MessageReader, error) { return c.Top(ctx, 2, 3) },
		} {
			if m, err := open(); err == nil {
				io.Copy(io.Discard, io.LimitReader(m, 1<<20))
				m.Close()
			}
		}
		c.Dele(ctx, 1)
		c.Quit(ctx)
		c.Close()
		if ctx.Err() != nil {
			t.Fatalf("the client was still waiting after 10s on a server that had closed")
		}
	})
}

package pop3server

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// BenchmarkRetrSizes streams messages of several sizes over loopback: the
// allocations per RETR stay the same whatever the size (the message goes
// through pooled buffers, never into memory whole).
func BenchmarkRetrSizes(b *testing.B) {
	for _, size := range []int{1 << 10, 32 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			var msg strings.Builder
			msg.WriteString("Subject: bench\n\n")
			for msg.Len() < size {
				msg.WriteString("A line of an ordinary message body, about seventy characters long.\n.dot\n")
			}
			ts := newTestServer(b)
			ts.deliver("alice", msg.String())
			c := dialBench(b, ts.addr)
			c.cmd(b, "USER alice")
			c.cmd(b, "PASS wonderland")
			n, _ := pop3.NormalizedSize(strings.NewReader(msg.String()))
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				c.cmd(b, "RETR 1")
				if got, err := io.Copy(io.Discard, pop3.NewDotReader(c.r)); err != nil || got != n {
					b.Fatalf("read %d octets, %v; want %d", got, err, n)
				}
			}
		})
	}
}

// BenchmarkPipeline sends batches of 32 commands (NOOP, STAT, LIST n,
// UIDL n) without waiting and reads the 32 replies: the cost of a
// pipelined command, which the server answers in one write per batch.
func BenchmarkPipeline(b *testing.B) {
	ts := newTestServer(b)
	for range 10 {
		ts.deliver("alice", "Subject: x\n\nhello\n")
	}
	c := dialBench(b, ts.addr)
	c.cmd(b, "USER alice")
	c.cmd(b, "PASS wonderland")
	var batch strings.Builder
	for i := range 8 {
		fmt.Fprintf(&batch, "NOOP\r\nSTAT\r\nLIST %d\r\nUIDL %d\r\n", i+1, i+1)
	}
	out := []byte(batch.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.nc.Write(out); err != nil {
			b.Fatal(err)
		}
		for range 32 {
			c.status(b)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/command")
}

// BenchmarkIdleSessions holds logged-in sessions and reports what each
// costs the server in heap and goroutine stack (the client's connections,
// in the same process, are bare sockets).
func BenchmarkIdleSessions(b *testing.B) {
	b.Run("memstore", func(b *testing.B) { benchmarkIdleSessions(b, false) })
	b.Run("maildir", func(b *testing.B) { benchmarkIdleSessions(b, true) })
}

func benchmarkIdleSessions(b *testing.B, useMaildir bool) {
	const sessions = 500
	ts := newTestServer(b, func(c *Config) {
		c.MaxConnectionsPerIP, c.MaxConnections = 2*sessions, 2*sessions
		if useMaildir {
			md, err := maildir.New(maildir.Config{Location: b.TempDir() + "/{user}"})
			if err != nil {
				b.Fatal(err)
			}
			c.Store = md
		}
	})
	users := make([]string, sessions)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		ts.auth.passwords[users[i]] = "pw"
		if !useMaildir {
			ts.deliver(users[i], "Subject: x\n\nhello\n")
		}
	}
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var conns []*benchClient
		for _, u := range users {
			c := dialBench(b, ts.addr)
			c.cmd(b, "USER "+u)
			c.cmd(b, "PASS pw")
			conns = append(conns, c)
		}
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The client side holds a 64 KiB read buffer per connection.
		heap := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / sessions
		b.ReportMetric(float64(heap-64<<10), "heap-B/session")
		b.ReportMetric(float64((int64(after.StackInuse)-int64(before.StackInuse))/sessions), "stack-B/session")
		for _, c := range conns {
			c.cmd(b, "QUIT")
			c.nc.Close()
		}
	}
}

// A panic while the maildrop is opened (on a goroutine of its own, see
// onFreshStack) is recovered and counted like any other in a session,
// and the server goes on.
func TestPanicInStoreOpen(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver("alice", "Subject: x\n\nhello\n")
	ts.store.SetFaults(memstore.Faults{OnOpen: func(ctx context.Context, acct store.Account) error {
		if acct.Name == "bob" {
			panic("store bug")
		}
		return nil
	}})
	c := ts.dial()
	c.send("USER bob").wantOK()
	c.send("PASS builder")
	c.wantClosed()
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.Panics() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ts.srv.Panics(); n != 1 {
		t.Fatalf("%d panics recovered, want 1", n)
	}
	ts.srv.panics.Store(0) // expected: not a failure of the cleanup check
	c = ts.dial()
	c.login("alice", "wonderland")
	c.send("QUIT").wantOK()
}

// TOP reads a small first piece of the message; a header longer than that
// piece is still read whole, so TOP shows the same header as RETR (here
// with a UTF-8 subject a non-UTF8 client gets as its ASCII surrogate).
func TestTopLongHeader(t *testing.T) {
	ts := newTestServer(t)
	msg := "Subject: caf\u00e9\n" + strings.Repeat("X-Filler: "+strings.Repeat("f", 70)+"\n", 150) + "\nline one\nline two\n"
	if len(msg) < topFirstRead+1000 {
		t.Fatalf("header of %d octets does not exceed the first read", len(msg))
	}
	ts.deliver("alice", msg)
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("RETR 1").wantOK()
	retr := c.readBody()
	c.send("TOP 1 1").wantOK()
	top := c.readBody()
	if len(top) != len(retr)-1 || strings.Join(top, "\n") != strings.Join(retr[:len(retr)-1], "\n") {
		t.Fatalf("TOP 1 1 gave %d lines, RETR %d; TOP must be RETR without the last line", len(top), len(retr))
	}
	if strings.Contains(top[0], "\u00e9") {
		t.Errorf("UTF-8 header line sent to a client not in UTF8 mode: %q", top[0])
	}
}

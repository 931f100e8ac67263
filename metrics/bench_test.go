package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// benchSession is a logged-in POP3 session on a loopback server whose
// maildrop holds one message of size octets, with or without metrics.
func benchSession(b *testing.B, withMetrics bool, size int) (nc net.Conn, r *bufio.Reader, announced int64) {
	passwd := filepath.Join(b.TempDir(), "passwd")
	if err := passwdfile.Add(passwd, "alice", "pw", "PLAIN", ""); err != nil {
		b.Fatal(err)
	}
	users, err := passwdfile.Open(passwd)
	if err != nil {
		b.Fatal(err)
	}
	st := memstore.New()
	var msg strings.Builder
	msg.WriteString("Subject: bench\n\n")
	for msg.Len() < size {
		msg.WriteString("A line of an ordinary message body, about seventy characters long.\n.dot\n")
	}
	if _, err := st.Deliver(context.Background(), store.Account{Name: "alice"}, strings.NewReader(msg.String())); err != nil {
		b.Fatal(err)
	}
	announced, _ = pop3.NormalizedSize(strings.NewReader(msg.String()))
	srv, err := pop3server.New(pop3server.Config{Hostname: "bench", Auth: users, Store: st, AuthFailureDelay: -1})
	if err != nil {
		b.Fatal(err)
	}
	if withMetrics {
		srv.SetObserver(New().POP3)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	nc, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	r = bufio.NewReaderSize(nc, 64<<10)
	status(b, r)
	fmt.Fprintf(nc, "USER alice\r\nPASS pw\r\n")
	status(b, r)
	status(b, r)
	return nc, r, announced
}

func status(b *testing.B, r *bufio.Reader) {
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		b.Fatalf("got %q, %v", line, err)
	}
}

// BenchmarkRetr compares RETR with metrics off (no Observer) and on, for
// a small and a large message: the difference is the cost of counting.
func BenchmarkRetr(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dKiB/metrics=%v", size>>10, on), func(b *testing.B) {
				nc, r, n := benchSession(b, on, size)
				b.SetBytes(n)
				b.ReportAllocs()
				for b.Loop() {
					fmt.Fprintf(nc, "RETR 1\r\n")
					status(b, r)
					if got, err := io.Copy(io.Discard, pop3.NewDotReader(r)); err != nil || got != n {
						b.Fatalf("read %d octets, %v; want %d", got, err, n)
					}
				}
			})
		}
	}
}

// BenchmarkPipeline compares batches of 32 pipelined commands with
// metrics off and on: the per-command hooks.
func BenchmarkPipeline(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			nc, r, _ := benchSession(b, on, 100)
			batch := []byte(strings.Repeat("NOOP\r\nSTAT\r\nLIST 1\r\nUIDL 1\r\n", 8))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := nc.Write(batch); err != nil {
					b.Fatal(err)
				}
				for range 32 {
					status(b, r)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/command")
		})
	}
}

// BenchmarkHooks measures the hooks themselves, free of the network's
// noise: what one command, one message and one write cost with metrics
// on.
func BenchmarkHooks(b *testing.B) {
	p := New().POP3
	b.Run("Command", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Command("RETR", true)
		}
	})
	b.Run("Retrieved", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Retrieved(4096, time.Millisecond, true)
		}
	})
	b.Run("Sent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Sent(65536)
		}
	})
}

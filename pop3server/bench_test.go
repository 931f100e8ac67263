package pop3server

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
)

// benchClient is a minimal client for benchmarks: no assertions beyond
// what keeps the measurement honest.
type benchClient struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialBench(b *testing.B, addr string) *benchClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	c := &benchClient{nc: nc, r: bufio.NewReaderSize(nc, 64*1024)}
	c.status(b)
	return c
}

func (c *benchClient) status(b *testing.B) string {
	line, err := c.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "+OK") {
		b.Fatalf("got %q, %v", line, err)
	}
	return line
}

func (c *benchClient) cmd(b *testing.B, line string) string {
	fmt.Fprintf(c.nc, "%s\r\n", line)
	return c.status(b)
}

// BenchmarkRetr measures streaming a 100 KiB message with LF line ends and
// dot-lines over loopback TCP, read back through the client's DotReader.
func BenchmarkRetr(b *testing.B) {
	var msg strings.Builder
	msg.WriteString("Subject: bench\n\n")
	for msg.Len() < 100*1024 {
		msg.WriteString("A line of an ordinary message body, about seventy characters long.\n.dot\n")
	}
	ts := newTestServer(b)
	ts.deliver("alice", msg.String())
	c := dialBench(b, ts.addr)
	c.cmd(b, "USER alice")
	c.cmd(b, "PASS wonderland")
	size, _ := pop3.NormalizedSize(strings.NewReader(msg.String()))
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c.cmd(b, "RETR 1")
		n, err := io.Copy(io.Discard, pop3.NewDotReader(c.r))
		if err != nil || n != size {
			b.Fatalf("read %d octets, %v; want %d", n, err, size)
		}
	}
}

// BenchmarkSession measures a whole short session (connect, USER, PASS,
// STAT, QUIT) against a user database that does no hashing: the
// protocol's own cost per login.
func BenchmarkSession(b *testing.B) {
	ts := newTestServer(b)
	ts.deliver("alice", "Subject: x\n\nhello\n")
	b.ReportAllocs()
	for b.Loop() {
		c := dialBench(b, ts.addr)
		c.cmd(b, "USER alice")
		c.cmd(b, "PASS wonderland")
		c.cmd(b, "STAT")
		c.cmd(b, "QUIT")
		c.nc.Close()
	}
}

// BenchmarkLogin measures whole logins (connect, AUTH, QUIT) against a
// real passwd-file, per mechanism and password scheme, so that the cost
// of each hash scheme is visible next to the protocol's own.
func BenchmarkLogin(b *testing.B) {
	cases := []struct{ mech, scheme string }{
		{"PLAIN", "PLAIN"},
		{"PLAIN", "SSHA512"},
		{"PLAIN", "SHA512-CRYPT"},
		{"PLAIN", "BLF-CRYPT"},
		{"PLAIN", "ARGON2ID"},
		{"PLAIN", "SCRAM-SHA-256"},
		{"SCRAM-SHA-256", "SCRAM-SHA-256"},
		{"SCRAM-SHA-256", "PLAIN"},
	}
	for _, tc := range cases {
		b.Run(tc.mech+"/"+tc.scheme, func(b *testing.B) {
			passwd := filepath.Join(b.TempDir(), "passwd")
			if err := passwdfile.Add(passwd, "alice", "wonderland", tc.scheme, ""); err != nil {
				b.Fatal(err)
			}
			users, err := passwdfile.Open(passwd)
			if err != nil {
				b.Fatal(err)
			}
			ts := newTestServer(b, func(c *Config) {
				c.Auth = users
				c.SASLMechanisms = []string{sasl.Plain, sasl.SCRAMSHA256}
			})
			for b.Loop() {
				c := dialBench(b, ts.addr)
				if tc.mech == "PLAIN" {
					c.cmd(b, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wonderland")))
				} else {
					c.scram(b, "alice", "wonderland")
				}
				c.cmd(b, "QUIT")
				c.nc.Close()
			}
		})
	}
}

func (c *benchClient) scram(b *testing.B, user, password string) {
	client, _ := scram.SHA256.NewClient(user, password, "")
	conv := client.NewConversation()
	first, _ := conv.Step("")
	challenge := func(line string) string {
		fmt.Fprintf(c.nc, "%s\r\n", line)
		reply, err := c.r.ReadString('\n')
		if err != nil || !strings.HasPrefix(reply, "+ ") {
			b.Fatalf("got %q, %v", reply, err)
		}
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(reply[2:]))
		return string(raw)
	}
	challenge("AUTH SCRAM-SHA-256")
	serverFirst := challenge(base64.StdEncoding.EncodeToString([]byte(first)))
	final, err := conv.Step(serverFirst)
	if err != nil {
		b.Fatal(err)
	}
	challenge(base64.StdEncoding.EncodeToString([]byte(final)))
	c.cmd(b, "")
}

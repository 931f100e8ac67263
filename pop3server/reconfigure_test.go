package pop3server

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/internal/syncbuf"
)

// logBuffer collects a server's JSON log, safe for the sessions'
// goroutines.
type logBuffer struct{ syncbuf.Buffer }

// records returns the log records whose message is msg.
func (b *logBuffer) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func jsonLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A session keeps the limits it started with; sessions started after
// Reconfigure get the new ones.
func TestReconfigureLimits(t *testing.T) {
	var cfg Config
	ts := newTestServer(t, func(c *Config) { cfg = *c })

	old := ts.dial()
	old.login("alice", "wonderland")

	cfg.MaxLineLength = 300
	if err := ts.srv.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	long := "NOOP " + strings.Repeat("x", 270) // 277 octets with CRLF
	if text := old.send(long).wantErr(""); !strings.Contains(text, "limit 255") {
		t.Errorf("session in flight: %q, want the old limit of 255", text)
	}
	fresh := ts.dial()
	fresh.login("bob", "builder")
	if text := fresh.send(long).wantErr(""); !strings.Contains(text, "wrong number of arguments") {
		t.Errorf("new session: %q, want the line read whole under the new limit of 300", text)
	}
	old.send("STAT").wantOK()
	old.send("QUIT").wantOK()
}

// Lowering MaxConnections refuses new connections beyond it and closes
// none of those open.
func TestReconfigureMaxConnections(t *testing.T) {
	var cfg Config
	ts := newTestServer(t, func(c *Config) { cfg = *c })
	a, b := ts.dial(), ts.dial()
	// Logged in, so that the third connection cannot evict one of them.
	a.login("alice", "wonderland")
	b.login("bob", "builder")
	cfg.MaxConnections = 2
	if err := ts.srv.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	third, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(5 * time.Second))
	greeting, _ := bufio.NewReader(third).ReadString('\n')
	if !strings.HasPrefix(greeting, "-ERR [SYS/TEMP]") {
		t.Errorf("third connection over the new limit: %q", greeting)
	}
	a.send("NOOP").wantOK()
	b.send("CAPA").wantOK()
}

// A Reconfigure that New would refuse changes nothing.
func TestReconfigureRejectsBadConfig(t *testing.T) {
	var cfg Config
	ts := newTestServer(t, func(c *Config) { cfg = *c })
	bad := cfg
	bad.SASLMechanisms = []string{"NO-SUCH-MECHANISM"}
	if err := ts.srv.Reconfigure(bad); err == nil {
		t.Fatal("Reconfigure accepted an unknown SASL mechanism")
	}
	ts.dial().send("CAPA").wantOK()
}

// New sessions are served the new certificate; a session that started
// under the old one keeps it.
func TestReconfigureCertificate(t *testing.T) {
	var cfg Config
	ts := newTestServer(t, func(c *Config) { cfg = *c })
	first := ts.dialTLS()
	oldSerial := first.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber

	cert, certPEM, _, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ts.roots.AppendCertsFromPEM(certPEM)
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if err := ts.srv.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	second := ts.dialTLS()
	newSerial := second.nc.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
	if newSerial.Cmp(cert.Leaf.SerialNumber) != 0 || newSerial.Cmp(oldSerial) == 0 {
		t.Errorf("after Reconfigure: serial %v, want %v (old %v)", newSerial, cert.Leaf.SerialNumber, oldSerial)
	}
	first.login("alice", "wonderland")
	first.send("QUIT").wantOK()
}

// The summary line carries the counters of Dovecot's logout line.
func TestSessionSummary(t *testing.T) {
	var logs logBuffer
	ts := newTestServer(t, func(c *Config) { c.Logger = jsonLogger(&logs) })
	ts.deliver("alice", "Subject: one\r\n\r\nbody one\r\n", "Subject: two\r\n\r\nbody\r\ntwo\r\n", "Subject: 3\r\n\r\nx\r\n")
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("TOP 1 0").wantOK()
	c.readBody()
	c.send("RETR 2").wantOK()
	c.readBody()
	c.send("DELE 2").wantOK()
	c.send("DELE 3").wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()

	var rec map[string]any
	waitFor(t, func() bool {
		recs := logs.records(t, "session ended")
		if len(recs) == 1 {
			rec = recs[0]
		}
		return rec != nil
	})
	size := float64(len("Subject: one\r\n\r\nbody one\r\n") + len("Subject: two\r\n\r\nbody\r\ntwo\r\n") + len("Subject: 3\r\n\r\nx\r\n"))
	want := map[string]float64{
		"top": 1, "top_octets": float64(len("Subject: one\r\n\r\n")),
		"retr": 1, "retr_octets": float64(len("Subject: two\r\n\r\nbody\r\ntwo\r\n")),
		"del": 2, "del_octets": float64(len("Subject: two\r\n\r\nbody\r\ntwo\r\n") + len("Subject: 3\r\n\r\nx\r\n")),
		"messages": 3, "size": size,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (record %v)", k, rec[k], v, rec)
		}
	}
	if in, _ := rec["in"].(float64); in < 50 {
		t.Errorf("in = %v octets, want the commands counted", rec["in"])
	}
	if out, _ := rec["out"].(float64); out < size {
		t.Errorf("out = %v octets, want at least the maildrop size %v", rec["out"], size)
	}
	if rec["user"] != "alice" || rec["quit"] != true {
		t.Errorf("record %v: want user alice and quit", rec)
	}
}

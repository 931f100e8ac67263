package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

const testPassword = "bench secret"

// benchServer is postoffice in this process: a passwd-file with users
// user0..user(n-1) and a Maildir of generated messages for each.
type benchServer struct {
	addr, tlsAddr string
	roots         *x509.CertPool
	srv           *pop3server.Server
}

func startServer(t *testing.T, users, messages int) *benchServer {
	t.Helper()
	dir := t.TempDir()
	var passwd bytes.Buffer
	for i := range users {
		fmt.Fprintf(&passwd, "user%d:{PLAIN}%s\n", i, testPassword)
		if _, err := GenerateMaildir(filepath.Join(dir, "mail", fmt.Sprintf("user%d", i)), messages, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	passwdFile := filepath.Join(dir, "passwd")
	if err := os.WriteFile(passwdFile, passwd.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	userDB, err := passwdfile.Open(passwdFile)
	if err != nil {
		t.Fatal(err)
	}
	mail, err := maildir.New(maildir.Config{Location: filepath.Join(dir, "mail", "{user}")})
	if err != nil {
		t.Fatal(err)
	}
	cert, certPEM, _, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &benchServer{roots: x509.NewCertPool()}
	s.roots.AppendCertsFromPEM(certPEM)
	s.srv, err = pop3server.New(pop3server.Config{
		Hostname: "bench.test", Auth: userDB, Store: mail,
		TLS:              &tls.Config{Certificates: []tls.Certificate{cert}},
		AuthFailureDelay: -1, MaxConnectionsPerIP: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	plain := listen(t)
	secure := listen(t)
	s.addr, s.tlsAddr = plain.Addr().String(), secure.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() { s.srv.Serve(plain) })
	wg.Go(func() { s.srv.ServeTLS(secure) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.srv.Shutdown(ctx)
		wg.Wait()
		if n := s.srv.Panics(); n != 0 {
			t.Errorf("%d panics in the server", n)
		}
	})
	return s
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *benchServer) config(scenario string) Config {
	return Config{
		Scenario: scenario, Addr: s.addr, UserFormat: "user%d", Users: 4,
		Password: testPassword, Concurrency: 2, Duration: 300 * time.Millisecond,
		Window: 4, Timeout: 10 * time.Second,
		TLS:       &tls.Config{RootCAs: s.roots, ServerName: "localhost"},
		ServerPID: os.Getpid(),
	}
}

func mustRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("%s: errors %d %q, disturbed %q", cfg.Scenario, res.Errors, res.ErrorSamples, res.Disturbed)
	}
	if res.Ops == 0 {
		t.Fatalf("%s: no operations", cfg.Scenario)
	}
	return res
}

func TestScenarios(t *testing.T) {
	const messages = 12
	s := startServer(t, 4, messages)
	for _, scenario := range []string{ScenarioLogin, ScenarioTLSLogin, ScenarioSTLSLogin, ScenarioRetr, ScenarioTop, ScenarioPipeline} {
		t.Run(scenario, func(t *testing.T) {
			cfg := s.config(scenario)
			cfg.ExpectMessages = messages
			if scenario == ScenarioTLSLogin {
				cfg.Addr = s.tlsAddr
			}
			res := mustRun(t, cfg)
			if res.OpsPerSec <= 0 || res.Latency.Samples == 0 || res.Latency.P50 <= 0 {
				t.Errorf("no rate or latency: %+v", res)
			}
			if res.ServerCPUSeconds < 0 {
				t.Errorf("server CPU %v", res.ServerCPUSeconds)
			}
			switch scenario {
			case ScenarioRetr, ScenarioTop:
				if res.Unverified != 0 || res.Verified == 0 || res.Octets == 0 {
					t.Errorf("verified %d, unverified %d, octets %d", res.Verified, res.Unverified, res.Octets)
				}
			}
		})
	}
}

func TestIdleAndStat(t *testing.T) {
	s := startServer(t, 4, 3)
	cfg := s.config(ScenarioIdle)
	cfg.Concurrency = 4
	cfg.Duration = 100 * time.Millisecond
	res := mustRun(t, cfg)
	if res.Ops != 4 || res.ServerPSS <= 0 || res.PSSPerSession <= 0 {
		t.Errorf("idle: %d sessions, PSS %d (%d a session)", res.Ops, res.ServerPSS, res.PSSPerSession)
	}

	cfg = s.config(ScenarioStat)
	cfg.MaxOps = 3
	cfg.ExpectMessages = 3
	res = mustRun(t, cfg)
	if res.Ops != 3 || res.FirstMs <= 0 || res.RepeatedMedianMs <= 0 {
		t.Errorf("stat: %+v", res)
	}
}

// Every kind of damage a server could do to a message is an error.
func TestCheckerCatchesDamage(t *testing.T) {
	raw := Message(7, 3)
	if !bytes.Contains(raw, []byte("\n.")) {
		t.Fatal("test message has no line starting with a dot")
	}
	wire := toCRLF(raw)
	size, _ := pop3.NormalizedSize(bytes.NewReader(raw))
	if int64(len(wire)) != size {
		t.Fatalf("CRLF form %d octets, NormalizedSize %d", len(wire), size)
	}
	check := func(top bool, data []byte, chunk int) (bool, error) {
		var c checker
		c.reset(top)
		for len(data) > 0 {
			n := min(chunk, len(data))
			c.Write(data[:n])
			data = data[n:]
		}
		return c.done()
	}
	for _, chunk := range []int{1, 7, 1 << 20} {
		if ok, err := check(false, wire, chunk); !ok || err != nil {
			t.Fatalf("intact message (chunks of %d): %v, %v", chunk, ok, err)
		}
	}
	top := topOf(wire, TopLines)
	if ok, err := check(true, top, 5); !ok || err != nil {
		t.Fatalf("intact TOP: %v, %v", ok, err)
	}
	damaged := map[string][]byte{
		"dot not removed":   bytes.Replace(wire, []byte("\r\n."), []byte("\r\n.."), 1),
		"dot lost":          bytes.Replace(wire, []byte("\r\n."), []byte("\r\n"), 1),
		"bare LF":           bytes.Replace(wire, []byte("\r\n"), []byte("\n"), 3),
		"cut short":         wire[:len(wire)-100],
		"padded":            append(bytes.Clone(wire), "extra\r\n"...),
		"no final CRLF":     wire[:len(wire)-2],
		"octet changed":     flip(wire, len(wire)-10),
		"TOP one line less": topOf(wire, TopLines-1),
	}
	for name, data := range damaged {
		top := strings.HasPrefix(name, "TOP")
		if ok, err := check(top, data, 1000); err == nil {
			t.Errorf("%s: not detected (verified %v)", name, ok)
		}
	}
	// A message without checksums is checked for line ends only.
	if ok, err := check(false, []byte("Subject: x\r\n\r\nbody\r\n"), 3); ok || err != nil {
		t.Errorf("foreign message: verified %v, %v", ok, err)
	}
}

func toCRLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

// topOf is what TOP n lines must send.
func topOf(wire []byte, lines int) []byte {
	end := bytes.Index(wire, []byte("\r\n\r\n")) + 4
	out := bytes.Clone(wire[:end])
	rest := wire[end:]
	for range lines {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			break
		}
		out = append(out, rest[:i+2]...)
		rest = rest[i+2:]
	}
	return out
}

func TestMessageDeterministicAndRealistic(t *testing.T) {
	if !bytes.Equal(Message(1, 42), Message(1, 42)) {
		t.Fatal("same seed and number gave different messages")
	}
	if bytes.Equal(Message(1, 42), Message(2, 42)) {
		t.Fatal("different seeds gave the same message")
	}
	var sizes []int
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		sizes = append(sizes, messageSize(rng))
	}
	median, p95 := quantile(sizes, 0.5), quantile(sizes, 0.95)
	if median < 7<<10 || median > 9<<10 || p95 < 85<<10 || p95 > 115<<10 {
		t.Errorf("sizes: median %d, p95 %d; want about 8 KiB and 100 KiB", median, p95)
	}
}

func quantile(v []int, q float64) int {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)))]
}

// A server that does not dot-stuff: the load generator must report
// errors, not figures.
func TestRetrAgainstBrokenServer(t *testing.T) {
	l := listen(t)
	msg := toCRLF(Message(1, 5))
	go serveBroken(l, msg)
	t.Cleanup(func() { l.Close() })
	res, err := Run(t.Context(), Config{
		Scenario: ScenarioRetr, Addr: l.Addr().String(), UserFormat: "user%d", Users: 1,
		Password: "x", Concurrency: 1, Duration: 200 * time.Millisecond, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Errors == 0 || res.Ops != 0 {
		t.Fatalf("broken server not detected: errors %d %q, disturbed %q", res.Errors, res.ErrorSamples, res.Disturbed)
	}
}

// serveBroken answers every session with one message sent without
// byte-stuffing.
func serveBroken(l net.Listener, msg []byte) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(nc)
			fmt.Fprintf(nc, "+OK hi\r\n")
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				switch cmd := strings.ToUpper(strings.Fields(line + " x")[0]); cmd {
				case "CAPA":
					fmt.Fprintf(nc, "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n")
				case "STAT": // wrong totals
					fmt.Fprintf(nc, "+OK 1 %d\r\n", len(msg)+1)
				case "LIST":
					fmt.Fprintf(nc, "+OK\r\n1 %d\r\n.\r\n", len(msg))
				case "UIDL":
					fmt.Fprintf(nc, "+OK\r\n1 a\r\n.\r\n")
				case "RETR":
					fmt.Fprintf(nc, "+OK %d octets\r\n%s.\r\n", len(msg), msg)
				case "QUIT":
					fmt.Fprintf(nc, "+OK\r\n")
					return
				default:
					fmt.Fprintf(nc, "+OK\r\n")
				}
			}
		}()
	}
}

// A server whose pipelined replies are wrong fails the pipeline run.
func TestPipelineAgainstBrokenServer(t *testing.T) {
	l := listen(t)
	go serveBroken(l, toCRLF(Message(1, 5)))
	t.Cleanup(func() { l.Close() })
	res, err := Run(t.Context(), Config{
		Scenario: ScenarioPipeline, Addr: l.Addr().String(), UserFormat: "user%d", Users: 1,
		Password: "x", Concurrency: 1, Window: 8, Duration: 200 * time.Millisecond, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() || res.Errors == 0 || !strings.Contains(strings.Join(res.ErrorSamples, " "), "STAT") {
		t.Fatalf("wrong STAT replies not detected: errors %d %q", res.Errors, res.ErrorSamples)
	}
}

func TestRefusesRemoteServer(t *testing.T) {
	_, err := Run(t.Context(), Config{Scenario: ScenarioLogin, Addr: "192.0.2.1:110", UserFormat: "u"})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback server: %v", err)
	}
}

func TestProcStat(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc smaps_rollup")
	}
	cpu, err := TreeCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("TreeCPU: %v, %v", cpu, err)
	}
	pss, n, err := TreePSS(os.Getpid())
	if err != nil || pss <= 0 || n < 1 {
		t.Fatalf("TreePSS: %d, %d, %v", pss, n, err)
	}
}

// -once logs in to every user exactly once.
func TestLoginOnce(t *testing.T) {
	s := startServer(t, 6, 2)
	cfg := s.config(ScenarioLogin)
	cfg.Users, cfg.Concurrency, cfg.Once, cfg.Duration = 6, 4, true, time.Minute
	start := time.Now()
	res := mustRun(t, cfg)
	if res.Ops != 6 {
		t.Errorf("%d logins, want one for each of 6 users", res.Ops)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the run did not end when every client was done")
	}
}

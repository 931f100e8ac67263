package interop

import (
	"bufio"
	"fmt"
	"github.com/postoffice-mail/postoffice/internal/ready"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/pgtest"
)

// pgCluster is the throwaway PostgreSQL of the multi-node tests, started
// on first use and stopped by TestMain.
var pgCluster = pgtest.New()

// clusterLease is the nodes' maildrop lease: short, so that a killed
// node's locks expire within the test.
const clusterLease = 3 * time.Second

// node is one "postoffice serve" process of a cluster.
type node struct {
	name   string
	pop3   string // plain POP3 address
	lmtp   string
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan error
	once   sync.Once
}

// nodeOptions are the settings a multi-node test varies.
type nodeOptions struct {
	proxyFrom string // pop3.proxy_protocol_from, as a TOML array
	maxConns  int
}

// clusterDatabase creates a database, migrates it and loads users into it
// with the commands an administrator runs, and returns a [postgres]
// table for the nodes.
func clusterDatabase(t *testing.T, bin string) string {
	t.Helper()
	dsn := pgCluster.Database(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	addUsers(t, passwd, dir)
	if err := passwdfile.Add(passwd, "bob", "bob password", "SSHA512", dir); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "admin.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[postgres]\ndsn = %q\n", dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"db", "migrate", "-config", cfg}, {"db", "import-users", "-config", cfg, passwd}, {"db", "status", "-config", cfg}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("postoffice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("postoffice %s: %s", args[1], strings.TrimSpace(string(out)))
	}
	return dsn
}

// startNode starts one node on free loopback ports.
func startNode(t *testing.T, bin, name, dsn string, opt nodeOptions) *node {
	t.Helper()
	if opt.proxyFrom == "" {
		opt.proxyFrom = "[]"
	}
	if opt.maxConns == 0 {
		opt.maxConns = 10
	}
	dir := t.TempDir()
	n := &node{name: name, logs: &syncBuffer{}, exited: make(chan error, 1)}
	n.pop3 = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n.lmtp = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "postoffice.toml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `[server]
hostname = %q
state_dir = %q
shutdown_timeout = "5s"
[log]
level = "debug"
[pop3]
listen = [%q]
listen_tls = []
proxy_protocol_from = %s
[lmtp]
listen = [%q]
proxy_protocol_from = %s
[users]
backend = "postgres"
passwd_file = ""
[store]
backend = "postgres"
[postgres]
dsn = %q
lease = %q
max_conns = %d
acquire_timeout = "1s"
[limits]
auth_failure_delay = "0s"
max_connections_per_ip = 200
[auth]
penalty_base = "0s"
penalty_max = "0s"
`, name, filepath.Join(dir, "state"), n.pop3, opt.proxyFrom, n.lmtp, opt.proxyFrom, dsn, clusterLease.String(), opt.maxConns), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command(bin, "serve", "-config", cfg)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exited <- n.cmd.Wait() }()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, n.logs.String())
		}
	})
	if opt.proxyFrom == "[]" {
		if err := ready.WaitGreeting(n.pop3, n.exited); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, n.logs.String())
		}
	} else {
		// Connections from loopback need a PROXY header: wait for the log.
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(n.logs.String(), "protocol=lmtp") {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start:\n%s", name, n.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return n
}

// stop ends the node with SIGTERM (SIGKILL after 10 s).
func (n *node) stop() {
	n.once.Do(func() {
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
	})
}

// kill ends the node with SIGKILL, as a crash would: nothing is released.
func (n *node) kill() {
	n.once.Do(func() {
		n.cmd.Process.Kill()
		<-n.exited
	})
}

// popConn is a raw POP3 conversation.
type popConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialPOP(t *testing.T, addr string, local string) *popConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &popConn{t: t, nc: nc, r: bufio.NewReader(nc)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return p
}

func (p *popConn) line() string {
	p.nc.SetDeadline(time.Now().Add(20 * time.Second))
	l, err := p.r.ReadString('\n')
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *popConn) cmd(c string) string {
	fmt.Fprintf(p.nc, "%s\r\n", c)
	return p.line()
}

// multi sends a command with a multi-line answer and returns its lines.
func (p *popConn) multi(c string) []string {
	p.t.Helper()
	if first := p.cmd(c); !strings.HasPrefix(first, "+OK") {
		p.t.Fatalf("%s: %q", c, first)
	}
	var lines []string
	for {
		l := p.line()
		if l == "." || strings.HasPrefix(l, "(") {
			return lines
		}
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
}

// login sends USER and PASS and returns the reply to PASS.
func (p *popConn) login(user, password string) string {
	if r := p.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		return r
	}
	return p.cmd("PASS " + password)
}

// lmtpSend delivers one message over LMTP and checks every recipient got
// 250.
func lmtpSend(t *testing.T, addr, subject string, rcpts ...string) {
	t.Helper()
	lmtpSendFrom(t, addr, "", subject, rcpts...)
}

// lmtpSendFrom is lmtpSend from a given local address.
func lmtpSendFrom(t *testing.T, addr, local, subject string, rcpts ...string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("LMTP greeting %q: %v", line, err)
	}
	send := func(line string, want string) {
		fmt.Fprintf(nc, "%s\r\n", line)
		if reply, err := readReply(nc, r); err != nil || !strings.HasPrefix(reply, want) {
			t.Fatalf("LMTP %q: %q, %v", line, reply, err)
		}
	}
	send("LHLO test.example", "250")
	send("MAIL FROM:<sender@example.com>", "250")
	for _, rcpt := range rcpts {
		send("RCPT TO:<"+rcpt+">", "250")
	}
	fmt.Fprintf(nc, "DATA\r\n")
	if reply, _ := readReply(nc, r); !strings.HasPrefix(reply, "354") {
		t.Fatalf("DATA: %q", reply)
	}
	fmt.Fprintf(nc, "From: sender@example.com\r\nSubject: %s\r\n\r\nHello from the cluster test.\r\n..a dot-stuffed line\r\n.\r\n", subject)
	for range rcpts {
		if reply, err := readReply(nc, r); err != nil || !strings.HasPrefix(reply, "250") {
			t.Fatalf("after DATA: %q, %v", reply, err)
		}
	}
	fmt.Fprintf(nc, "QUIT\r\n")
}

// Three nodes on one database: mail delivered by LMTP to one node is
// retrieved through another; a maildrop held on one node is refused on
// the others with [IN-USE]; a node killed with SIGKILL in the middle of a
// session leaves a lease that expires, after which another node serves
// the maildrop with nothing deleted.
func TestClusterThreeNodes(t *testing.T) {
	t.Parallel()
	bin := postofficeBinary(t)
	dsn := clusterDatabase(t, bin)
	// "postoffice user" edits the users table when users.backend is
	// "postgres".
	ucfg := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(ucfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[users]\nbackend = \"postgres\"\n[postgres]\ndsn = %q\n", dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	add := exec.Command(bin, "user", "add", "-config", ucfg, "-scheme", "SSHA512", "dave")
	add.Stdin = strings.NewReader("dave password\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("postoffice user add: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "user", "list", "-config", ucfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "dave") || !strings.Contains(string(out), "SSHA512") {
		t.Errorf("postoffice user list: %v\n%s", err, out)
	}

	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, bin, fmt.Sprintf("node%d", i), dsn, nodeOptions{}))
	}

	lmtpSend(t, nodes[0].lmtp, "cluster one", "alice@example.org", "bob@example.org")

	// Node 1 serves alice the message node 0 took.
	s1 := dialPOP(t, nodes[1].pop3, "")
	if r := s1.login(alice, alicePassword); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login on node1: %q", r)
	}
	if r := s1.cmd("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Fatalf("STAT on node1: %q", r)
	}
	uidl := s1.multi("UIDL")
	msg := strings.Join(s1.multi("RETR 1"), "\n")
	if !strings.Contains(msg, "Subject: cluster one") || !strings.Contains(msg, "\n.a dot-stuffed line") || !strings.Contains(msg, "Delivered-To: alice@example.org") {
		t.Errorf("RETR on node1:\n%s", msg)
	}
	s1.cmd("DELE 1") // marked, never committed: node 1 dies first

	// Held on node 1: refused on nodes 0 and 2.
	for _, n := range []*node{nodes[0], nodes[2]} {
		p := dialPOP(t, n.pop3, "")
		if r := p.login(alice, alicePassword); !strings.HasPrefix(r, "-ERR [IN-USE]") {
			t.Errorf("login on %s while node1 holds the maildrop: %q, want -ERR [IN-USE]", n.name, r)
		}
	}
	// Bob is not affected.
	pb := dialPOP(t, nodes[2].pop3, "")
	if r := pb.login("bob", "bob password"); !strings.HasPrefix(r, "+OK") {
		t.Errorf("bob on node2: %q", r)
	}
	if r := pb.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Errorf("bob QUIT: %q", r)
	}

	// Node 1 crashes in the middle of alice's session.
	nodes[1].kill()
	start := time.Now()
	var s2 *popConn
	for {
		s2 = dialPOP(t, nodes[2].pop3, "")
		r := s2.login(alice, alicePassword)
		if strings.HasPrefix(r, "+OK") {
			break
		}
		if !strings.HasPrefix(r, "-ERR [IN-USE]") {
			t.Fatalf("login on node2 after the crash: %q", r)
		}
		if time.Since(start) > 3*clusterLease {
			t.Fatalf("the dead node's lease did not expire within %v", 3*clusterLease)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waited := time.Since(start)
	t.Logf("node1's lease expired %v after SIGKILL (lease %v)", waited.Round(time.Millisecond), clusterLease)
	if got := s2.multi("UIDL"); strings.Join(got, ",") != strings.Join(uidl, ",") {
		t.Errorf("UIDL on node2 = %q, node1 said %q (the crashed session must delete nothing)", got, uidl)
	}
	if r := s2.cmd("DELE 1"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("DELE: %q", r)
	}
	if r := s2.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT on node2: %q", r)
	}
	s0 := dialPOP(t, nodes[0].pop3, "")
	if r := s0.login(alice, alicePassword); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login on node0: %q", r)
	}
	if r := s0.cmd("STAT"); !strings.HasPrefix(r, "+OK 0 0") {
		t.Errorf("STAT on node0 after node2 deleted: %q", r)
	}
	s0.cmd("QUIT")
	// Bob's copy, through node 0.
	pb = dialPOP(t, nodes[0].pop3, "")
	pb.login("bob", "bob password")
	if msg := strings.Join(pb.multi("RETR 1"), "\n"); !strings.Contains(msg, "Delivered-To: bob@example.org") {
		t.Errorf("bob's copy:\n%s", msg)
	}
	pb.cmd("QUIT")
	pd := dialPOP(t, nodes[0].pop3, "")
	if r := pd.login("dave", "dave password"); !strings.HasPrefix(r, "+OK") {
		t.Errorf("login of the user added with postoffice user: %q", r)
	}
	pd.cmd("QUIT")
}

// A connection storm larger than a node's database pool: sessions that
// cannot get a connection within acquire_timeout are told [SYS/TEMP] (or
// get in), none hangs, and the node serves normally afterwards.
func TestClusterConnectionStorm(t *testing.T) {
	t.Parallel()
	bin := postofficeBinary(t)
	dsn := clusterDatabase(t, bin)
	n := startNode(t, bin, "stormnode", dsn, nodeOptions{maxConns: 1})
	lmtpSend(t, n.lmtp, "storm", "alice@example.org")
	const clients = 40
	var wg sync.WaitGroup
	replies := make(chan string, clients)
	for i := range clients {
		wg.Go(func() {
			nc, err := net.DialTimeout("tcp", n.pop3, 5*time.Second)
			if err != nil {
				replies <- "dial: " + err.Error()
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(nc)
			r.ReadString('\n')
			user, pass := alice, alicePassword
			if i%2 == 1 {
				user, pass = "bob", "bob password"
			}
			fmt.Fprintf(nc, "USER %s\r\nPASS %s\r\n", user, pass)
			r.ReadString('\n')
			reply, _ := r.ReadString('\n')
			fmt.Fprintf(nc, "QUIT\r\n")
			r.ReadString('\n')
			replies <- strings.TrimSpace(reply)
		})
	}
	wg.Wait()
	close(replies)
	counts := map[string]int{}
	for r := range replies {
		switch {
		case strings.HasPrefix(r, "+OK"):
			counts["ok"]++
		case strings.HasPrefix(r, "-ERR [IN-USE]"):
			counts["in-use"]++
		case strings.HasPrefix(r, "-ERR [SYS/TEMP]"):
			counts["sys/temp"]++
		default:
			t.Errorf("unexpected reply in the storm: %q", r)
		}
	}
	t.Logf("storm of %d logins on a pool of 1: %v", clients, counts)
	if counts["ok"] == 0 {
		t.Error("no login succeeded")
	}
	// A session whose lock could not be released during the storm (no
	// connection within acquire_timeout) has it released at the next
	// renewal, a third of the lease later.
	var p *popConn
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		p = dialPOP(t, n.pop3, "")
		r := p.login(alice, alicePassword)
		if strings.HasPrefix(r, "+OK") {
			break
		}
		if time.Since(start) > clusterLease {
			t.Fatalf("login after the storm: %q", r)
		}
	}
	if r := p.cmd("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT after the storm: %q", r)
	}
	p.cmd("QUIT")
}

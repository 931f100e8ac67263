package interop

import (
	"fmt"
	"github.com/postoffice-mail/postoffice/internal/ready"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real HAProxy in front of two nodes, sending PROXY protocol version 2:
// clients connecting from 127.0.0.2 through it are logged (and limited,
// and penalised) as 127.0.0.2, not as HAProxy's 127.0.0.1; both nodes
// serve; a client that connects to a node directly from an address that is
// not in proxy_protocol_from is served without a header and refused with
// a forged one.
func TestHAProxy(t *testing.T) {
	t.Parallel()
	haproxy := need(t, "haproxy")
	bin := postofficeBinary(t)
	dsn := clusterDatabase(t, bin)
	opt := nodeOptions{proxyFrom: `["127.0.0.1"]`}
	nodes := []*node{startNode(t, bin, "px0", dsn, opt), startNode(t, bin, "px1", dsn, opt)}

	front := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	lmtpFront := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `global
	maxconn 100
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend pop3
	bind %s
	default_backend postoffice
backend postoffice
	balance roundrobin
	server px0 %s send-proxy-v2
	server px1 %s send-proxy-v2
frontend lmtp
	bind %s
	default_backend lmtp
backend lmtp
	balance roundrobin
	server px0 %s send-proxy
	server px1 %s send-proxy
`, front, nodes[0].pop3, nodes[1].pop3, lmtpFront, nodes[0].lmtp, nodes[1].lmtp), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", logs.String())
		}
	})
	if err := ready.WaitGreeting(front, exited); err != nil {
		t.Fatalf("haproxy: %v\n%s", err, logs.String())
	}

	// Mail from an MTA at 127.0.0.4, through HAProxy with a version 1
	// header: the node records the MTA's address, not HAProxy's.
	lmtpSendFrom(t, lmtpFront, "127.0.0.4", "through haproxy", "alice@example.org")

	// Four sessions from 127.0.0.2 through HAProxy: two per node.
	for i := range 4 {
		p := dialPOP(t, front, "127.0.0.2")
		if r := p.login(alice, alicePassword); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("login %d through haproxy: %q", i, r)
		}
		if msg := strings.Join(p.multi("RETR 1"), "\n"); !strings.Contains(msg, "Subject: through haproxy") || !strings.Contains(msg, "127.0.0.4") {
			t.Errorf("RETR through haproxy (want the MTA's address 127.0.0.4 in Received):\n%s", msg)
		}
		if r := p.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
			t.Errorf("QUIT: %q", r)
		}
	}
	for _, n := range nodes {
		log := n.logs.String()
		if !strings.Contains(log, `msg="logged in"`) || !regexpLoggedIn(log, "127.0.0.2") {
			t.Errorf("%s's log shows no login from the client's address 127.0.0.2:\n%s", n.name, log)
		}
		if regexpLoggedIn(log, "127.0.0.1") {
			t.Errorf("%s logged a login as HAProxy's address 127.0.0.1", n.name)
		}
	}

	// Directly, from an address not in proxy_protocol_from: served as
	// it is without a header, refused with one.
	p := dialPOP(t, nodes[1].pop3, "127.0.0.3")
	if r := p.cmd("CAPA"); !strings.HasPrefix(r, "+OK") {
		t.Errorf("direct CAPA from 127.0.0.3: %q", r)
	}
	nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", nodes[1].pop3)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "PROXY TCP4 198.51.100.1 127.0.0.1 4000 110\r\nUSER alice\r\n")
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := nc.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if strings.Contains(string(got), "USER") || strings.Count(string(got), "\r\n") > 1 {
		t.Errorf("forged PROXY header: the node answered %q, want the greeting at most and then the connection closed", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(nodes[1].logs.String(), "PROXY header from an address not in proxy_protocol_from") {
		if time.Now().After(deadline) {
			t.Fatalf("px1 did not log the forged header")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(nodes[1].logs.String(), "198.51.100.1") {
		t.Error("the forged address reached the log as a client address")
	}
}

// regexpLoggedIn reports whether log has a "logged in" line for remote.
func regexpLoggedIn(log, remote string) bool {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, `msg="logged in"`) && strings.Contains(line, "remote="+remote+" ") {
			return true
		}
	}
	return false
}

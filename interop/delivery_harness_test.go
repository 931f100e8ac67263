package interop

import (
	"bufio"
	"errors"
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

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// deliveryServer is "postoffice serve" with an LMTP listener as well as
// POP3, for the delivery tests.
type deliveryServer struct {
	*server
	lmtp string // host:port of the LMTP listener
	cmd  *exec.Cmd
	// exited receives the process's exit once.
	exited chan error
}

// startDeliveryBinary runs the binary for the site with plain POP3 and
// LMTP on free loopback ports, plus extra configuration (whole tables).
// The server is stopped with SIGTERM when the test ends, unless the test
// killed it.
func startDeliveryBinary(t *testing.T, s *site, extra string) *deliveryServer {
	t.Helper()
	bin := postofficeBinary(t)
	for attempt := 1; ; attempt++ {
		srv, err := tryStartDeliveryBinary(t, bin, s, extra)
		if err == nil {
			return srv
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

func tryStartDeliveryBinary(t *testing.T, bin string, s *site, extra string) (*deliveryServer, error) {
	pop3Port, lmtpPort := freePort(t), freePort(t)
	config := filepath.Join(s.dir, "postoffice-delivery.toml")
	err := os.WriteFile(config, fmt.Appendf(nil, `# Written by the interop delivery tests.
[server]
hostname = "mx.example.org"
state_dir = %q
shutdown_timeout = "10s"

[log]
level = "debug"

[pop3]
listen = ["127.0.0.1:%d"]
listen_tls = []

[lmtp]
listen = ["127.0.0.1:%d"]

[users]
passwd_file = %q

[maildir]
location = %q

[limits]
auth_failure_delay = "0s"
%s`, filepath.Join(s.dir, "state"), pop3Port, lmtpPort, s.passwd, filepath.Join(s.mailRoot, "{user}", "Maildir"), extra), 0o600)
	if err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "-config", config)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	srv := &deliveryServer{
		server: &server{plain: fmt.Sprintf("127.0.0.1:%d", pop3Port), caFile: s.certFile, logs: logs},
		lmtp:   fmt.Sprintf("127.0.0.1:%d", lmtpPort),
		cmd:    cmd, exited: exited,
	}
	if err := ready.WaitGreeting(srv.plain, exited); err != nil {
		cmd.Process.Kill()
		<-exited
		if strings.Contains(logs.String(), "address already in use") {
			return nil, fmt.Errorf("%w: %s", errPortTaken, logs.String())
		}
		return nil, fmt.Errorf("postoffice serve did not start: %v\nlog:\n%s", err, logs.String())
	}
	showLogsOnFailure(t, logs)
	t.Cleanup(func() {
		if srv.cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("postoffice serve after SIGTERM: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("postoffice serve: no exit within 30s of SIGTERM; killed")
		}
	})
	return srv, nil
}

// kill ends the server with SIGKILL, as a crash would.
func (d *deliveryServer) kill(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not die after SIGKILL")
	}
}

// maildropContents reads a user's maildrop through the Maildir store, as
// the POP3 server would, and returns each message's content.
func maildropContents(t *testing.T, s *site, user string) ([]store.MessageInfo, []string) {
	t.Helper()
	st, err := maildir.New(maildir.Config{Location: filepath.Join(s.mailRoot, "{user}", "Maildir")})
	if err != nil {
		t.Fatal(err)
	}
	md, err := st.Open(t.Context(), store.Account{Name: user})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var contents []string
	for i := range md.Messages() {
		r, err := md.Open(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		br := bufio.NewReader(r)
		if _, err := br.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		r.Close()
		contents = append(contents, b.String())
	}
	return md.Messages(), contents
}

// splitTrace separates the trace fields at the top of a retrieved message
// (Return-Path, Delivered-To and Received, with their continuation lines,
// as postoffice and an MTA prepend them) from the rest, which must be the
// message as the sender sent it.
func splitTrace(msg string) (trace []string, rest string) {
	for {
		line, after, ok := strings.Cut(msg, "\n")
		if !ok {
			return trace, msg
		}
		switch {
		case strings.HasPrefix(line, "Return-Path:"), strings.HasPrefix(line, "Delivered-To:"), strings.HasPrefix(line, "Received:"):
			trace = append(trace, line)
		case len(trace) > 0 && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			trace[len(trace)-1] += "\n" + line
		default:
			return trace, msg
		}
		msg = after
	}
}

// dialLMTP opens an LMTP connection and reads the greeting.
func dialLMTP(addr string) (net.Conn, *bufio.Reader, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(nc)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		nc.Close()
		return nil, nil, fmt.Errorf("greeting %q: %v", line, err)
	}
	return nc, r, nil
}

// readReply reads one (possibly multi-line) LMTP reply and returns its
// last line.
func readReply(nc net.Conn, r *bufio.Reader) (string, error) {
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if len(line) < 4 {
			return "", fmt.Errorf("short reply %q", line)
		}
		if line[3] != '-' {
			return line, nil
		}
	}
}

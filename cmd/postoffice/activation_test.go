package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
)

// activationSite is a configuration whose listeners cannot be bound
// (192.0.2.0/24 is TEST-NET-1, on no interface): the server can only
// serve on the sockets it is given.
func activationSite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := passwdfile.Add(filepath.Join(dir, "passwd"), "alice", "pw", "PLAIN", dir); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "postoffice.toml")
	doc := fmt.Sprintf(`[pop3]
listen = ["192.0.2.1:110"]
listen_tls = []
[lmtp]
listen = ["192.0.2.1:24"]
[users]
passwd_file = "passwd"
[maildir]
location = %q
`, dir+"/mail/{user}")
	if err := os.WriteFile(config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return config
}

// notifySocket listens where the server sends its sd_notify datagrams.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{path: path, conn: conn}
}

// want waits for the next notification and checks that it starts with
// prefix.
func (n *notifySocket) want(t *testing.T, prefix string, stderr fmt.Stringer) string {
	t.Helper()
	n.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("no %s from the server: %v\nlog:\n%s", prefix, err, stderr)
	}
	if got := string(buf[:k]); !strings.HasPrefix(got, prefix) {
		t.Fatalf("notification %q, want %s", got, prefix)
	}
	return string(buf[:k])
}

// greets checks that a socket answers with the protocol's greeting.
func greets(t *testing.T, addr, prefix string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		t.Fatalf("%s greeted %q, %v; want %s", addr, line, err, prefix)
	}
	if prefix == "+OK" {
		fmt.Fprintf(nc, "USER alice\r\nPASS pw\r\nSTAT\r\nQUIT\r\n")
		r := bufio.NewReader(nc)
		for _, want := range []string{"+OK", "+OK", "+OK 0 0", "+OK"} {
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, want) {
				t.Fatalf("session on %s: %q, %v; want %s", addr, line, err, want)
			}
		}
	}
}

// runActivated starts cmd, waits for READY=1, checks both sockets, then
// reloads and stops the server the way systemd does.
// With onDemand, the server starts only at the first connection, as
// systemd-socket-activate does it.
func runActivated(t *testing.T, cmd *exec.Cmd, notify *notifySocket, pop3Addr, lmtpAddr string, onDemand bool) {
	t.Helper()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if onDemand {
		// Wait for the sockets to be open; the first connection
		// starts the server.
		for i := 0; ; i++ {
			nc, err := net.Dial("tcp", lmtpAddr)
			if err == nil {
				nc.Close()
				break
			}
			if i == 250 {
				t.Fatalf("sockets never opened: %v\n%s", err, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	notify.want(t, "READY=1", &stderr)
	greets(t, pop3Addr, "+OK")
	greets(t, lmtpAddr, "220 ")

	cmd.Process.Signal(syscall.SIGHUP)
	notify.want(t, "RELOADING=1\nMONOTONIC_USEC=", &stderr)
	notify.want(t, "STATUS=configuration reloaded at ", &stderr)
	notify.want(t, "READY=1", &stderr)
	greets(t, pop3Addr, "+OK")

	cmd.Process.Signal(syscall.SIGTERM)
	notify.want(t, "STOPPING=1", &stderr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{`from=systemd`, `msg="configuration reloaded"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "192.0.2.1") && !strings.Contains(log, "instead of pop3.listen") {
		t.Errorf("configured addresses used:\n%s", log)
	}
}

// TestSocketActivation passes listening sockets the way systemd does —
// descriptors 3 and up, LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set
// by a shell to its own process id before it execs the server — and
// checks that the server serves on them and reports to NOTIFY_SOCKET.
// Then the same under systemd's own systemd-socket-activate, and a
// socket of a name the server does not know.
func TestSocketActivation(t *testing.T) {
	bin := buildBinary(t)
	t.Run("LISTEN_FDS", func(t *testing.T) {
		config := activationSite(t)
		notify := newNotifySocket(t)
		var files []*os.File
		var addrs []string
		for range 2 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f, err := l.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			l.Close() // f holds the socket
			defer f.Close()
			files = append(files, f)
			addrs = append(addrs, l.Addr().String())
		}
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "serve", "-config", config)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=2", "LISTEN_FDNAMES=pop3:lmtp", "NOTIFY_SOCKET="+notify.path)
		cmd.ExtraFiles = files
		runActivated(t, cmd, notify, addrs[0], addrs[1], false)
	})

	// systemd-socket-activate is in Debian's systemd package. This is
	// an interop test: skipped where the program is missing, except
	// under POSTOFFICE_INTEROP=1, where that is a failure.
	t.Run("systemd-socket-activate", func(t *testing.T) {
		activate, err := exec.LookPath("systemd-socket-activate")
		if err != nil {
			if os.Getenv("POSTOFFICE_INTEROP") == "1" {
				t.Fatal("systemd-socket-activate is not installed (Debian package systemd)")
			}
			t.Skip("systemd-socket-activate is not installed")
		}
		config := activationSite(t)
		notify := newNotifySocket(t)
		pop3Addr, lmtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		// --fdname names the sockets in order, as FileDescriptorName=
		// does in the socket units.
		cmd := exec.Command(activate, "-l", pop3Addr, "-l", lmtpAddr, "--fdname=pop3:lmtp",
			"-E", "NOTIFY_SOCKET="+notify.path, bin, "serve", "-config", config)
		runActivated(t, cmd, notify, pop3Addr, lmtpAddr, true)
	})

	t.Run("unknown name", func(t *testing.T) {
		config := activationSite(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, _ := l.(*net.TCPListener).File()
		l.Close()
		defer f.Close()
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "serve", "-config", config)
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=imap")
		cmd.ExtraFiles = []*os.File{f}
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != exitConfig || !strings.Contains(string(out), "imap") {
			t.Errorf("exit %d (%v):\n%s", code, err, out)
		}
	})
}

package systemd

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// listenNotify opens a datagram socket for NOTIFY_SOCKET and returns a
// function that reads the next message.
func listenNotify(t *testing.T) (path string, next func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, func() string {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotify(t *testing.T) {
	path, next := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("Ready sent %q", got)
	}
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	got := next()
	var usec int64
	if _, err := fmt.Sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%d", &usec); err != nil || usec <= 0 {
		t.Errorf("Reloading sent %q", got)
	}
	Stopping()
	if got := next(); got != "STOPPING=1" {
		t.Errorf("Stopping sent %q", got)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready(); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Ready(); err == nil {
		t.Error("Ready to a socket nobody listens on succeeded")
	}
}

func TestNoListeners(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	ls, err := Listeners()
	if err != nil || ls != nil {
		t.Errorf("Listeners() = %v, %v; want none", ls, err)
	}
	// Meant for another process: ignored, and the variables cleared.
	t.Setenv("LISTEN_FDS", "2")
	t.Setenv("LISTEN_PID", "1")
	ls, err = Listeners()
	if err != nil || ls != nil || os.Getenv("LISTEN_FDS") != "" {
		t.Errorf("Listeners() for pid 1 = %v, %v", ls, err)
	}
}

// TestListenersHelper runs in the child process of TestListeners, with
// the sockets at descriptors 3 and up.
func TestListenersHelper(t *testing.T) {
	if os.Getenv("SYSTEMD_TEST_HELPER") != "1" {
		t.Skip("helper process of TestListeners")
	}
	ls, err := Listeners()
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	if os.Getenv("LISTEN_FDS") != "" {
		fmt.Println("error: LISTEN_FDS left in the environment")
	}
	var names []string
	for name, group := range ls {
		for _, l := range group {
			c, err := l.Accept()
			if err != nil {
				fmt.Println("error:", err)
				return
			}
			c.Write([]byte(name))
			c.Close()
			names = append(names, name)
		}
	}
	slices.Sort(names)
	fmt.Println("names:", strings.Join(names, ","))
}

// The child receives the sockets as systemd passes them: descriptors 3
// and up, LISTEN_PID set to its own process id by the shell that execs
// it (as systemd-socket-activate does).
func TestListeners(t *testing.T) {
	var files []*os.File
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
		addrs = append(addrs, l.Addr().String())
	}
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "-test.run=^TestListenersHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "SYSTEMD_TEST_HELPER=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=pop3:lmtp")
	cmd.ExtraFiles = files
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Connect to every socket before reading any answer: the child
	// accepts them in its map's (random) order.
	var conns []net.Conn
	for _, addr := range addrs {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 16)
		n, _ := c.Read(buf)
		c.Close()
		if want := []string{"pop3", "lmtp"}[i]; string(buf[:n]) != want {
			t.Errorf("socket %d answered %q, want %q", i, buf[:n], want)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("helper did not finish")
	}
	if !strings.Contains(out.String(), "names: lmtp,pop3") {
		t.Errorf("helper output:\n%s", out.String())
	}
}

func TestListenersBadEnvironment(t *testing.T) {
	pid := fmt.Sprint(os.Getpid())
	for _, env := range [][2]string{{"x", ""}, {"-1", ""}, {"2", "a"}} {
		t.Setenv("LISTEN_PID", pid)
		t.Setenv("LISTEN_FDS", env[0])
		t.Setenv("LISTEN_FDNAMES", env[1])
		if _, err := Listeners(); err == nil {
			t.Errorf("LISTEN_FDS=%q LISTEN_FDNAMES=%q: no error", env[0], env[1])
		}
	}
}

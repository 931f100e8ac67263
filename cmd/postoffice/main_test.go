package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
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

func runCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestUserCommands(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	if _, stderr, code := runCmd(t, "s3cret\n", "user", "add", "-passwd-file", passwd, "-scheme", "SHA512-CRYPT", "alice"); code != exitOK {
		t.Fatalf("add: exit %d: %s", code, stderr)
	}
	if _, _, code := runCmd(t, "x\n", "user", "add", "-passwd-file", passwd, "alice"); code == exitOK {
		t.Fatal("adding a duplicate user succeeded")
	}
	if _, stderr, code := runCmd(t, "pw\n", "user", "add", "-passwd-file", passwd, "../evil"); code != exitUsage {
		t.Fatalf("path-like name: exit %d (%s), want %d", code, stderr, exitUsage)
	}
	if _, _, code := runCmd(t, "\n", "user", "add", "-passwd-file", passwd, "bob"); code != exitUsage {
		t.Fatalf("empty password: exit %d", code)
	}
	if _, stderr, code := runCmd(t, "b0b\n", "user", "add", "-passwd-file", passwd, "bob"); code != exitOK {
		t.Fatalf("add bob: %s", stderr)
	}
	if stdout, _, _ := runCmd(t, "", "user", "list", "-passwd-file", passwd); !strings.Contains(stdout, "SHA512-CRYPT") {
		t.Fatalf("-scheme not honoured:\n%s", stdout)
	}
	if _, stderr, code := runCmd(t, "n3w\n", "user", "passwd", "-passwd-file", passwd, "alice"); code != exitOK {
		t.Fatalf("passwd: %s", stderr)
	}
	if _, _, code := runCmd(t, "x\n", "user", "passwd", "-passwd-file", passwd, "nobody"); code != exitNoUser {
		t.Fatalf("passwd of unknown user: exit %d, want %d", code, exitNoUser)
	}
	users, err := passwdfile.Open(passwd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Authenticate(t.Context(), "alice", "n3w"); err != nil {
		t.Errorf("new password rejected: %v", err)
	}
	stdout, _, code := runCmd(t, "", "user", "list", "-passwd-file", passwd)
	if code != exitOK || !strings.Contains(stdout, "alice") || !strings.Contains(stdout, "ARGON2ID") || !strings.Contains(stdout, "bob") {
		t.Fatalf("list: exit %d:\n%s", code, stdout)
	}
	if _, stderr, code := runCmd(t, "", "user", "del", "-passwd-file", passwd, "bob"); code != exitOK {
		t.Fatalf("del: %s", stderr)
	}
	if _, _, code := runCmd(t, "", "user", "del", "-passwd-file", passwd, "bob"); code != exitNoUser {
		t.Fatalf("deleting twice: exit %d", code)
	}
	if stdout, _, _ := runCmd(t, "", "user", "list", "-passwd-file", passwd); strings.Contains(stdout, "bob") {
		t.Fatalf("bob still listed:\n%s", stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"user"}, {"user", "zap"}, {"serve", "-nope"}, {"user", "list", "-passwd-file", "x", "extra"}} {
		if _, _, code := runCmd(t, "", args...); code != exitUsage {
			t.Errorf("postoffice %q: exit %d, want %d", args, code, exitUsage)
		}
	}
	_, stderr, code := runCmd(t, "", "serve", "-config", "/nonexistent/postoffice.toml")
	if code != exitConfig || !strings.Contains(stderr, "/nonexistent/postoffice.toml") {
		t.Errorf("missing config: exit %d, %q", code, stderr)
	}
}

// buildBinary compiles the command once for the tests that run it as a
// separate process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "postoffice")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestQuickstartThenServe runs the README's first command as a process:
// the demo user can fetch the welcome message over plain POP3 and TLS;
// SIGTERM stops the server cleanly.
func TestQuickstartThenServe(t *testing.T) {
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "demo")
	port, tlsPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "quickstart", "-dir", dir, "-port", fmt.Sprint(port), "-tls-port", fmt.Sprint(tlsPort))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait for the banner, and take the password from it.
	var password string
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "password:" {
			password = f[1]
		}
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	deadline.Stop()
	if password == "" {
		t.Fatalf("no password in the banner; stderr:\n%s", stderr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()

	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	fetchWelcome(t, nc, password)

	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	fetchWelcome(t, tc, password)

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop after SIGTERM")
	}
	for _, want := range []string{"session ended", "shutting down", "stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

func fetchWelcome(t *testing.T, nc net.Conn, password string) {
	t.Helper()
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(nc)
	expect := func(prefix string) string {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, prefix) {
			t.Fatalf("got %q, %v; want %s", line, err, prefix)
		}
		return line
	}
	expect("+OK")
	fmt.Fprintf(nc, "USER demo\r\nPASS %s\r\nRETR 1\r\n", password)
	expect("+OK")
	expect("+OK maildrop has 1 messages")
	expect("+OK")
	var body strings.Builder
	for {
		line := expect("")
		if line == ".\r\n" {
			break
		}
		body.WriteString(line)
	}
	if !strings.Contains(body.String(), "Subject: Welcome to postoffice\r\n") || !strings.Contains(body.String(), "\r\n..\r\n") {
		t.Errorf("welcome message:\n%s", body.String())
	}
	fmt.Fprintf(nc, "QUIT\r\n")
	expect("+OK")
}

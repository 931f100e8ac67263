package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// deliverSite is a configuration with users alice and bob and maildrops
// under a temporary directory.
type deliverSite struct {
	dir, config, mail string
}

func newDeliverSite(t *testing.T, extra string) *deliverSite {
	t.Helper()
	dir := t.TempDir()
	s := &deliverSite{dir: dir, config: filepath.Join(dir, "postoffice.toml"), mail: filepath.Join(dir, "mail")}
	for _, u := range []string{"alice", "bob"} {
		if err := passwdfile.Add(filepath.Join(dir, "passwd"), u, "pw", "PLAIN", dir); err != nil {
			t.Fatal(err)
		}
	}
	doc := fmt.Sprintf(`[server]
hostname = "mx.example.org"
[pop3]
listen = ["127.0.0.1:1"]
listen_tls = []
[users]
passwd_file = "passwd"
[maildir]
location = %q
%s`, s.mail+"/{user}/Maildir", extra)
	if err := os.WriteFile(s.config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *deliverSite) messages(t *testing.T, user string) []string {
	t.Helper()
	st, err := maildir.New(maildir.Config{Location: s.mail + "/{user}/Maildir"})
	if err != nil {
		t.Fatal(err)
	}
	md, err := st.Open(t.Context(), store.Account{Name: user})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var out []string
	for i := range md.Messages() {
		r, _ := md.Open(t.Context(), i)
		var b strings.Builder
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		r.Close()
		out = append(out, b.String())
	}
	return out
}

func TestDeliverCommand(t *testing.T) {
	s := newDeliverSite(t, "[quota]\nmessages = 2\n")
	deliver := func(stdin string, args ...string) (string, int) {
		t.Helper()
		_, stderr, code := runCmd(t, stdin, append([]string{"deliver", "-c", s.config}, args...)...)
		return stderr, code
	}
	if stderr, code := deliver("From bounce@example.net Thu Nov 26 10:00:00 2026\nSubject: one\n\nhi\n", "-d", "alice"); code != exitOK {
		t.Fatalf("deliver: exit %d: %s", code, stderr)
	}
	got := s.messages(t, "alice")
	if len(got) != 1 || !strings.HasPrefix(got[0], "Return-Path: <bounce@example.net>\nDelivered-To: alice\nReceived: by mx.example.org (postoffice) id ") ||
		!strings.HasSuffix(got[0], "\nSubject: one\n\nhi\n") {
		t.Fatalf("alice has %q", got)
	}
	// -a with an extension finds the user as LMTP does; -f wins over the
	// From line; -r names Delivered-To.
	if stderr, code := deliver("Subject: two\n\n", "-a", "bob+x@example.org", "-f", "s@example.net"); code != exitOK {
		t.Fatalf("deliver -a: exit %d: %s", code, stderr)
	}
	if stderr, code := deliver("Subject: three\n\n", "-d", "bob", "-a", "bob@example.org", "-r", "final@example.org"); code != exitOK {
		t.Fatalf("deliver -r: exit %d: %s", code, stderr)
	}
	got = s.messages(t, "bob")
	if len(got) != 2 || !strings.Contains(got[0], "Return-Path: <s@example.net>\nDelivered-To: bob+x@example.org\n") ||
		!strings.Contains(got[1], "Delivered-To: final@example.org\n") {
		t.Fatalf("bob has %q", got)
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"unknown user", "x\n", []string{"-d", "carol"}, exitNoUser, "550 5.1.1"},
		{"unknown address", "x\n", []string{"-a", "carol@example.org"}, exitNoUser, "550 5.1.1"},
		{"nul", "Subject: x\n\na\x00b\n", []string{"-d", "alice"}, exitDataErr, "554 5.6.0"},
		{"long line", strings.Repeat("y", 2000) + "\n", []string{"-d", "alice"}, exitDataErr, "554 5.6.0"},
		{"bad sender", "x\n", []string{"-d", "alice", "-f", "a\rb"}, exitDataErr, "501 5.1.7"},
		{"loop", "Delivered-To: alice\n\nx\n", []string{"-d", "alice"}, exitDataErr, "554 5.4.6"},
		{"over quota", "x\n", []string{"-d", "bob"}, exitCantCreate, "552 5.2.2"},
		{"no recipient", "x\n", nil, exitTempFail, "no recipient"},
		{"bad flag", "x\n", []string{"-zz"}, exitTempFail, "flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := deliver(tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
	// A broken configuration must not bounce mail: temporary.
	if _, stderr, code := runCmd(t, "x\n", "deliver", "-c", filepath.Join(s.dir, "missing.toml"), "-d", "alice"); code != exitTempFail {
		t.Errorf("missing configuration: exit %d (%s), want %d", code, stderr, exitTempFail)
	}
	// So must an unreadable user database.
	os.Rename(filepath.Join(s.dir, "passwd"), filepath.Join(s.dir, "passwd.gone"))
	if stderr, code := deliver("x\n", "-d", "alice"); code != exitTempFail {
		t.Errorf("missing passwd-file: exit %d (%s), want %d", code, stderr, exitTempFail)
	}
	if got := s.messages(t, "alice"); len(got) != 1 {
		t.Errorf("failed deliveries left %d messages for alice, want 1", len(got))
	}
}

// serve with an [lmtp] listener: mail delivered over LMTP is in the
// maildrop POP3 serves.
func TestServeWithLMTP(t *testing.T) {
	port := freePort(t)
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	s := newDeliverSite(t, fmt.Sprintf("[lmtp]\nlisten = [\"127.0.0.1:%d\"]\nsocket = %q\n", port, sock))
	cfg, err := config.Load(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.POP3.Listen = []string{"127.0.0.1:0"}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	for _, network := range []struct{ net, addr string }{{"tcp", fmt.Sprintf("127.0.0.1:%d", port)}, {"unix", sock}} {
		var nc net.Conn
		for i := 0; ; i++ {
			nc, err = net.Dial(network.net, network.addr)
			if err == nil || i == 200 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(nc)
		fmt.Fprintf(nc, "LHLO test\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		var replies []string
		for len(replies) < 5 { // greeting, LHLO, MAIL, RCPT, DATA
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (%q)", err, replies)
			}
			if len(line) > 3 && line[3] == ' ' {
				replies = append(replies, line)
			}
		}
		fmt.Fprintf(nc, "Subject: via %s\r\n\r\nbody\r\n.\r\nQUIT\r\n", network.net)
		line, _ := r.ReadString('\n')
		if !strings.HasPrefix(line, "250 ") {
			t.Fatalf("after DATA: %q (earlier %q)", line, replies)
		}
		nc.Close()
	}
	if got := s.messages(t, "alice"); len(got) != 2 || !strings.Contains(got[1], "Subject: via unix") {
		t.Errorf("alice has %q", got)
	}
}

package fetch

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig("fetch.toml", "/home/a", []byte(`
state_dir = "state"

[[account]]
server = "pop.example.com"
user = "alice"
password_command = "pass show mail"
maildir = "~/Maildir"

[[account]]
name = "work"
server = "mail.example.org"
tls = "starttls"
user = "bob"
password = "pw"
mbox = "/var/mail/bob"
keep = true
delete_after_days = 7
timeout = "2m"
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Accounts[0], cfg.Accounts[1]
	if cfg.StateDir != "/home/a/state" || a.Name != "alice@pop.example.com" || a.Port != 995 || a.TLS != "implicit" || a.Mechanism != "auto" {
		t.Errorf("defaults: %+v %+v", cfg, a)
	}
	if b.Port != 110 || b.Timeout.Duration != 2*time.Minute || !*b.Pipelining || b.DeleteAfterDays != 7 {
		t.Errorf("second: %+v", b)
	}
}

// Every problem is reported with file:line and the setting.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\nport = 99999\n", "fetch.toml:6: account[0].port: 99999 is not a port number"},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\nmechanism = \"cram-md5\"\n", `fetch.toml:6: account[0].mechanism: "cram-md5" is not one of`},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\nmbox = \"x\"\n", "fetch.toml:5: account[0].maildir: set exactly one destination"},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\nmaildir = \"m\"\n", "account[0].password: missing"},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\nkep = true\n", "fetch.toml:6:1: account.kep: unknown setting"},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\ntimeout = \"soon\"\n", "fetch.toml:6"},
		{"[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\n[[account]]\nserver = \"s\"\nuser = \"u\"\npassword = \"p\"\nmaildir = \"m\"\n", `fetch.toml:6: account[1].name: account "u@s" is already defined at line 1`},
		{"", "no [[account]] defined"},
	} {
		_, err := ParseConfig("fetch.toml", "/", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

func TestStateJournal(t *testing.T) {
	dir := t.TempDir()
	s, err := openState(dir, "acct", false)
	if err != nil {
		t.Fatal(err)
	}
	s.beginRun(time.Unix(100, 0))
	s.delivered("a", time.Unix(200, 0))
	s.begin("b", "0 300")
	s.sync()
	s.close()
	// A crash in the middle of a line.
	f, _ := os.OpenFile(filepath.Join(dir, "acct.state"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("S c 4")
	f.Close()

	s, err = openState(dir, "acct", false)
	if err != nil {
		t.Fatal(err)
	}
	if !s.unclean || s.seen["a"] != time.Unix(200, 0) || s.pending["b"] != "0 300" || len(s.seen) != 1 {
		t.Fatalf("replayed: unclean %v seen %v pending %v", s.unclean, s.seen, s.pending)
	}
	// The torn line is gone; appending goes on after the good ones.
	s.delivered("d", time.Unix(500, 0))
	s.endRun()
	if _, err := openState(dir, "acct", false); err != errLocked {
		t.Fatalf("second open: %v, want errLocked", err)
	}
	if err := s.compact(func(uid string) bool { return uid == "d" }); err != nil {
		t.Fatal(err)
	}
	s.close()
	data, _ := os.ReadFile(filepath.Join(dir, "acct.state"))
	if string(data) != stateHeader+"\nS d 500\nP b 0 300\n" {
		t.Fatalf("compacted: %q", data)
	}
	os.WriteFile(filepath.Join(dir, "bad.state"), []byte(stateHeader+"\nQ junk\n"), 0o600)
	if _, err := openState(dir, "bad", false); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("corrupt state: %v", err)
	}
}

func TestLFReader(t *testing.T) {
	in := "a\r\nb\rc\r\n\r\nd\r"
	want := "a\nb\rc\n\nd\r"
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
		got, err := io.ReadAll(newLFReader(r))
		if err != nil || string(got) != want {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
	}
}

func TestMboxrd(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	renderMboxrd(w, strings.NewReader("From: a\n\nFrom here\n>From there\n>>From x\nno newline"), 0)
	w.Flush()
	want := "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nFrom: a\n\n>From here\n>>From there\n>>>From x\nno newline\n\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
}

// An interrupted run left a complete message in new/ and a partial one
// in tmp/, neither recorded: the next run records the first without
// fetching it again, removes the second and fetches that message.
func TestMaildirRecovery(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[0], testMessages[1])
	cfg, a := ts.account(t)
	d, err := newMaildirDest(a.Maildir)
	if err != nil {
		t.Fatal(err)
	}
	tag1, tag2 := messageTag("alice", "1"), messageTag("alice", "2")
	os.WriteFile(filepath.Join(a.Maildir, "new", "100.F"+tag1+".host,S=20,W=23"), []byte(testMessages[0]), 0o600)
	os.WriteFile(filepath.Join(a.Maildir, "tmp", "100.F"+tag2+".host"), []byte("Subject: d"), 0o600)
	_ = d
	s, _ := openState(cfg.StateDir, "alice", false)
	s.beginRun(time.Now())
	s.close()

	r := fetchOnce(t, cfg, a)
	wantOK(t, r, 1)
	if r.Recovered != 1 {
		t.Errorf("recovered %d", r.Recovered)
	}
	got := maildirMessages(t, a.Maildir)
	if strings.Join(got, "|") != strings.Join(sorted(testMessages[:2]), "|") {
		t.Fatalf("maildir %q", got)
	}
	dirEmpty(t, filepath.Join(a.Maildir, "tmp"))
	if ts.onServer() != 0 {
		t.Error("recovered message not deleted")
	}
}

// mbox recovery: a complete unrecorded append is recognised; a partial
// one at the end of the file is cut off and the message fetched again.
func TestMboxRecovery(t *testing.T) {
	for _, partial := range []bool{false, true} {
		ts := newServer(t)
		ts.deliver(testMessages[2], testMessages[0])
		cfg, a := ts.account(t)
		a.Maildir, a.Mbox = "", filepath.Join(t.TempDir(), "mbox")
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		renderMboxrd(w, strings.NewReader(testMessages[2]), 1000)
		w.Flush()
		data := b.Bytes()
		if partial {
			data = data[:len(data)/2]
		}
		os.WriteFile(a.Mbox, data, 0o600)
		s, _ := openState(cfg.StateDir, "alice", false)
		s.beginRun(time.Now())
		s.begin("1", "0 1000")
		s.close()

		r := fetchOnce(t, cfg, a)
		wantFetched := 1
		if partial {
			wantFetched = 2
		}
		wantOK(t, r, wantFetched)
		got, _ := os.ReadFile(a.Mbox)
		if n := strings.Count(string(got), "From MAILER-DAEMON"); n != 2 {
			t.Fatalf("partial=%v: %d messages in the mbox:\n%s", partial, n, got)
		}
		if !partial && !bytes.HasPrefix(got, b.Bytes()) {
			t.Errorf("the recovered message was changed")
		}
	}
}

var _ = context.Background

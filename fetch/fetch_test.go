package fetch

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3server"
)

// Messages with what trips up POP3 clients: dot-stuffed lines, a "."
// alone, "From " lines (for mbox), a long line, 8-bit text.
var testMessages = []string{
	"Subject: one\n\nhello\n",
	"Subject: dots\n\n.leading dot\n.\n..two dots\n",
	"Subject: from\n\nFrom the start of a line\n>From quoted\nnot From\n",
	"Subject: long\n\n" + strings.Repeat("x", 100000) + "\n",
	"Subject: =?utf-8?q?caf=C3=A9?=\n\ncafé\n",
}

func sorted(msgs []string) []string {
	out := append([]string(nil), msgs...)
	sort.Strings(out)
	return out
}

func TestFetchDeletes(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages...)
	cfg, a := ts.account(t)
	r := fetchOnce(t, cfg, a)
	wantOK(t, r, len(testMessages))
	if r.Deleted != len(testMessages) || r.Code != ExitFetched {
		t.Errorf("result %+v", r)
	}
	if got := maildirMessages(t, a.Maildir); strings.Join(got, "|") != strings.Join(sorted(testMessages), "|") {
		t.Fatalf("maildir holds\n%q\nwant\n%q", got, sorted(testMessages))
	}
	dirEmpty(t, filepath.Join(a.Maildir, "tmp"))
	if n := ts.onServer(); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	// The ids are forgotten once gone from the server.
	if seen := readState(t, cfg, "alice"); len(seen) != 0 {
		t.Errorf("state keeps %v", seen)
	}
	r = fetchOnce(t, cfg, a)
	wantOK(t, r, 0)
	if r.Code != ExitNoMail {
		t.Errorf("code %d, want %d", r.Code, ExitNoMail)
	}
}

// Maildir file names carry both sizes, as Dovecot reads them.
func TestMaildirNames(t *testing.T) {
	ts := newServer(t)
	ts.deliver("Subject: s\n\nbody\n")
	cfg, a := ts.account(t)
	wantOK(t, fetchOnce(t, cfg, a), 1)
	names, _ := readNames(filepath.Join(a.Maildir, "new"))
	if len(names) != 1 {
		t.Fatalf("new/ holds %v", names)
	}
	if !strings.HasSuffix(names[0], ",S=17,W=20") || nameTag(names[0]) != messageTag("alice", "1") {
		t.Errorf("name %q", names[0])
	}
}

func TestFetchKeepsAndFetchesOnlyNew(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[:3]...)
	cfg, a := ts.account(t)
	a.Keep = true
	wantOK(t, fetchOnce(t, cfg, a), 3)
	wantOK(t, fetchOnce(t, cfg, a), 0)
	ts.deliver(testMessages[3])
	r := fetchOnce(t, cfg, a)
	wantOK(t, r, 1)
	if r.Deleted != 0 || r.Left != 4 || ts.onServer() != 4 {
		t.Errorf("result %+v, %d on server", r, ts.onServer())
	}
	if got := maildirMessages(t, a.Maildir); len(got) != 4 {
		t.Errorf("%d messages in the maildir, want 4", len(got))
	}
}

func TestDeleteAfterDays(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	ts := newServer(t)
	ts.deliver(testMessages[:2]...)
	cfg, a := ts.account(t)
	a.Keep, a.DeleteAfterDays = true, 3
	wantOK(t, fetchOnce(t, cfg, a), 2)
	ts.deliver(testMessages[2])
	now = func() time.Time { return time.Now().Add(2 * 24 * time.Hour) }
	r := fetchOnce(t, cfg, a)
	wantOK(t, r, 1)
	if r.Deleted != 0 {
		t.Fatalf("deleted %d after 2 days", r.Deleted)
	}
	now = func() time.Time { return time.Now().Add(4 * 24 * time.Hour) }
	r = fetchOnce(t, cfg, a)
	wantOK(t, r, 0)
	if r.Deleted != 2 || ts.onServer() != 1 {
		t.Fatalf("after 4 days: deleted %d, %d on the server; want 2 and 1", r.Deleted, ts.onServer())
	}
}

// Over STLS, and with pipelining off, with the same results.
func TestFetchSTLSWithoutPipelining(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages...)
	cfg, a := ts.account(t)
	off := false
	a.TLS, a.Port, a.Pipelining = "starttls", port(ts.plain), &off
	wantOK(t, fetchOnce(t, cfg, a), len(testMessages))
	if got := maildirMessages(t, a.Maildir); len(got) != len(testMessages) {
		t.Fatalf("%d messages", len(got))
	}
}

func TestFetchMbox(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[1], testMessages[2])
	cfg, a := ts.account(t)
	a.Maildir, a.Mbox = "", filepath.Join(t.TempDir(), "mbox")
	// An existing mbox is appended to.
	os.WriteFile(a.Mbox, []byte("From someone Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n"), 0o600)
	wantOK(t, fetchOnce(t, cfg, a), 2)
	got, _ := os.ReadFile(a.Mbox)
	parts := strings.SplitAfterN(string(got), "\n\n", 2)
	rest := string(got)[len("From someone Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n"):]
	_ = parts
	// mboxrd: ">*From " gains a '>'; each message ends with a blank line.
	want := []string{
		"Subject: dots\n\n.leading dot\n.\n..two dots\n\n",
		"Subject: from\n\n>From the start of a line\n>>From quoted\nnot From\n\n",
	}
	msgs := strings.Split(rest, "From MAILER-DAEMON ")
	if len(msgs) != 3 || msgs[0] != "" {
		t.Fatalf("mbox:\n%s", got)
	}
	for i, m := range msgs[1:] {
		_, body, _ := strings.Cut(m, "\n")
		if body != want[i] {
			t.Errorf("message %d: %q, want %q", i, body, want[i])
		}
	}
}

func TestFetchMDA(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[:2]...)
	cfg, a := ts.account(t)
	out := t.TempDir()
	a.Maildir, a.MDA = "", []string{"/bin/sh", "-c", `cat > "` + out + `/$POSTOFFICE_FETCH_UID"`}
	wantOK(t, fetchOnce(t, cfg, a), 2)
	for i, uid := range []string{"1", "2"} {
		b, err := os.ReadFile(filepath.Join(out, uid))
		if err != nil || string(b) != testMessages[i] {
			t.Errorf("MDA got %q, %v", b, err)
		}
	}
	// No spool files left behind.
	entries, _ := os.ReadDir(cfg.StateDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".spool") {
			t.Errorf("spool left: %s", e.Name())
		}
	}
}

// Every message reaches the MDA whole and alone, whatever came before
// it: a large one (spooled on disk) before small ones (spooled in
// memory, in a file that held a longer message), and an MDA that stops
// reading early leaves nothing for the next one.
func TestFetchMDASpools(t *testing.T) {
	ts := newServer(t)
	big := "Subject: big\n\n" + strings.Repeat("0123456789 big message line\n", (memSpoolMax+1<<20)/28)
	msgs := []string{"Subject: one\n\nfirst\n", big, "Subject: two\n\nsecond\n",
		"Subject: three\n\n" + strings.Repeat("third\n", 5000), "Subject: four\n\nfourth\n"}
	ts.deliver(msgs...)
	cfg, a := ts.account(t)
	out := t.TempDir()
	// Message 2's MDA reads only its first octets, then exits 0.
	a.Maildir, a.MDA = "", []string{"/bin/sh", "-c",
		`if [ "$POSTOFFICE_FETCH_UID" = 4 ]; then head -c 10 > "` + out + `/$POSTOFFICE_FETCH_UID"; else cat > "` + out + `/$POSTOFFICE_FETCH_UID"; fi`}
	wantOK(t, fetchOnce(t, cfg, a), len(msgs))
	for i, m := range msgs {
		uid := strconv.Itoa(i + 1)
		want := m
		if uid == "4" {
			want = m[:10]
		}
		b, err := os.ReadFile(filepath.Join(out, uid))
		if err != nil || string(b) != want {
			t.Errorf("message %s: MDA got %d octets (%v), want %d", uid, len(b), err, len(want))
		}
	}
	entries, _ := os.ReadDir(cfg.StateDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".spool") || strings.HasPrefix(e.Name(), ".mda-output") {
			t.Errorf("spool left: %s", e.Name())
		}
	}
}

// An MDA's output is kept for the error, its end when it is long, and
// the next MDA's output does not mix with it.
func TestFetchMDAOutput(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[:2]...)
	cfg, a := ts.account(t)
	a.Maildir, a.MDA = "", []string{"/bin/sh", "-c",
		`cat >/dev/null; if [ "$POSTOFFICE_FETCH_UID" = 1 ]; then seq 1 1000; exit 0; fi; seq 1 300 >&2; echo "the end" >&2; exit 75`}
	r := fetchOnce(t, cfg, a)
	if r.Err == nil || r.Code != ExitTempFail {
		t.Fatalf("result %+v", r)
	}
	msg := r.Err.Error()
	_, output, _ := strings.Cut(msg, "(temporary failure): ")
	if !strings.Contains(msg, "message 2 (uid 2)") || !strings.HasPrefix(output, "...") ||
		!strings.HasSuffix(output, "300\nthe end") || strings.Contains(output, "1000") {
		t.Errorf("error %q: want the end of message 2's MDA output only", msg)
	}
}

// An MDA that fails keeps the message on the server and unrecorded.
func TestFetchMDAFailure(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[:2]...)
	cfg, a := ts.account(t)
	a.Maildir, a.MDA = "", []string{"/bin/sh", "-c", `cat >/dev/null; echo "disk quota exceeded" >&2; exit 75`}
	r := fetchOnce(t, cfg, a)
	if r.Err == nil || r.Code != ExitTempFail || !strings.Contains(r.Err.Error(), "disk quota exceeded") ||
		!strings.Contains(r.Err.Error(), "account alice: message 1 (uid 1)") {
		t.Fatalf("result %+v", r)
	}
	if ts.onServer() != 2 || len(readState(t, cfg, "alice")) != 0 {
		t.Errorf("after a failed MDA: %d on server, state %v", ts.onServer(), readState(t, cfg, "alice"))
	}
}

func TestDryRun(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[:3]...)
	cfg, a := ts.account(t)
	r := fetchOnce(t, cfg, a, func(o *Options) { o.DryRun = true })
	if r.Err != nil || r.Fetched != 3 || r.Deleted != 3 || !r.DryRun {
		t.Fatalf("dry run %+v", r)
	}
	if ts.onServer() != 3 {
		t.Error("dry run deleted messages")
	}
	if _, err := os.Stat(a.Maildir); !os.IsNotExist(err) {
		t.Error("dry run created the maildir")
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Error("dry run created the state directory")
	}
}

func TestWrongPassword(t *testing.T) {
	ts := newServer(t)
	cfg, a := ts.account(t)
	a.Password = "guess"
	r := fetchOnce(t, cfg, a)
	if r.Code != ExitAuth || !strings.Contains(r.Err.Error(), "account alice") {
		t.Fatalf("result %+v", r)
	}
}

func TestLoginDelay(t *testing.T) {
	ts := newServer(t, func(c *pop3server.Config) { c.LoginDelay = time.Hour })
	ts.deliver(testMessages[0])
	cfg, a := ts.account(t)
	a.Keep = true
	r := fetchOnce(t, cfg, a)
	wantOK(t, r, 1)
	if r.LoginDelay != time.Hour {
		t.Errorf("LOGIN-DELAY %v", r.LoginDelay)
	}
	r = fetchOnce(t, cfg, a)
	if r.Code != ExitTempFail {
		t.Fatalf("second login: %+v", r)
	}
	start := time.Now()
	if next := nextPoll(start, 5*time.Minute, Result{LoginDelay: time.Hour}); next.Sub(start) != time.Hour {
		t.Errorf("next poll after %v", next.Sub(start))
	}
	if next := nextPoll(start, 5*time.Minute, r); next.Sub(start) < 15*time.Minute {
		t.Errorf("after a LOGIN-DELAY refusal, next poll after %v", next.Sub(start))
	}
}

func TestAccountLocked(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[0])
	cfg, a := ts.account(t)
	s, err := openState(cfg.StateDir, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	r := fetchOnce(t, cfg, a)
	if r.Code != ExitTempFail || !errors.Is(r.Err, errLocked) {
		t.Fatalf("result %+v", r)
	}
	if ts.onServer() != 1 {
		t.Error("message deleted by a run that did not hold the account")
	}
}

// Bad servers: each serves a good message and then a bad one. The good
// one must be delivered and recorded; of the bad one nothing may reach
// the destination; the error names the account and the message; the
// state file stays valid.
func TestBadServers(t *testing.T) {
	good := fakeMessage{uid: "good", size: 20, wire: "Subject: g\r\n\r\nbody\r\n.\r\n"}
	cases := []struct {
		name  string
		bad   fakeMessage
		pause time.Duration
		code  int
		text  string
	}{
		{"lies about size (more)", fakeMessage{uid: "big", size: 10, wire: "Subject: b\r\n\r\nfar more than ten octets\r\n.\r\n"}, 0, ExitProtocol, "announced 10 octets and sent more"},
		{"lies about size (less)", fakeMessage{uid: "small", size: 500, wire: "Subject: b\r\n\r\nshort\r\n.\r\n"}, 0, ExitProtocol, "announced 500 octets and sent 21"},
		{"no terminating line", fakeMessage{uid: "open", size: 21, wire: "Subject: b\r\n\r\nshort\r\n", drop: true}, 0, ExitTempFail, "connection closed inside a multi-line response"},
		{"invalid ending", fakeMessage{uid: "badend", size: 21, wire: "Subject: b\r\n\r\nshort\r\n.", drop: true}, 0, ExitTempFail, "connection closed inside a multi-line response"},
		{"drops mid-message", fakeMessage{uid: "cut", size: 2000, wire: "Subject: b\r\n\r\n" + strings.Repeat("y", 500), drop: true}, 0, ExitTempFail, "connection closed"},
		{"slow", fakeMessage{uid: "slow", size: 21, wire: "Subject: b\r\n\r\nshort\r\n.\r\n"}, 1500 * time.Millisecond, ExitTempFail, "did not answer in time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.bad.pause = tc.pause
			fs := startFake(t, nil, good, tc.bad)
			cfg, a := fs.account(t)
			a.Timeout = Duration{time.Second}
			r := fetchOnce(t, cfg, a)
			if r.Err == nil {
				t.Fatal("no error")
			}
			msg := r.Err.Error()
			if !strings.Contains(msg, "account fake: message 2 (uid "+tc.bad.uid+")") || !strings.Contains(msg, tc.text) {
				t.Errorf("error %q should name the account, message 2 (uid %s) and say %q", msg, tc.bad.uid, tc.text)
			}
			if r.Code != tc.code {
				t.Errorf("code %d, want %d", r.Code, tc.code)
			}
			got := maildirMessages(t, a.Maildir)
			if len(got) != 1 || got[0] != "Subject: g\n\nbody\n" {
				t.Errorf("maildir holds %q, want only the good message", got)
			}
			for _, m := range got {
				if strings.Contains(m, "Subject: b") {
					t.Errorf("part of the bad message reached the maildir: %q", m)
				}
			}
			dirEmpty(t, filepath.Join(a.Maildir, "tmp"))
			seen := readState(t, cfg, "fake")
			if seen[tc.bad.uid] || !seen["good"] {
				t.Errorf("state %v", seen)
			}
		})
	}
}

// A server slow from the start: a timeout naming message 1.
func TestSlowFromTheStart(t *testing.T) {
	fs := startFake(t, nil, fakeMessage{uid: "a", size: 21, wire: "Subject: b\r\n\r\nshort\r\n.\r\n", pause: 1500 * time.Millisecond})
	cfg, a := fs.account(t)
	a.Timeout = Duration{time.Second}
	r := fetchOnce(t, cfg, a)
	if r.Code != ExitTempFail || r.Err == nil || !strings.Contains(r.Err.Error(), "message 1 (uid a)") {
		t.Fatalf("result %+v", r)
	}
}

// A certificate nobody vouches for: nothing is sent, exit 69.
func TestBadCertificate(t *testing.T) {
	cert, _, _, err := certsSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	fs := startFake(t, &tls.Config{Certificates: []tls.Certificate{cert}}, fakeMessage{uid: "a", size: 1, wire: "x\r\n.\r\n"})
	cfg, a := fs.account(t)
	a.TLS = "implicit"
	r := fetchOnce(t, cfg, a)
	if r.Code != ExitUnavailable || !strings.Contains(r.Err.Error(), "certificate") || !strings.Contains(r.Err.Error(), "account fake") {
		t.Fatalf("result %+v", r)
	}
}

var _ = bytes.MinRead

// A server that leaves the CRLF it adds to an unfinished last line out of
// the announced size (Dovecot 2.3) is tolerated; one more octet is not.
func TestUncountedFinalCRLF(t *testing.T) {
	fs := startFake(t, nil,
		fakeMessage{uid: "a", size: 18, wire: "Subject: g\r\n\r\nbody\r\n.\r\n"},
		fakeMessage{uid: "b", size: 17, wire: "Subject: g\r\n\r\nbody\r\n.\r\n"})
	cfg, a := fs.account(t)
	r := fetchOnce(t, cfg, a)
	if r.Fetched != 1 || r.Code != ExitProtocol || !strings.Contains(r.Err.Error(), "message 2 (uid b)") {
		t.Fatalf("result %+v", r)
	}
}

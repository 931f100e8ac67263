package pop3server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store/maildir"
)

// Another program (an MUA, Dovecot's LDA, a cleanup job) may move, flag
// or delete files while a POP3 session has the maildrop open; the session
// must carry on, and unique ids must follow the moved files.
func TestMaildirChangedDuringSession(t *testing.T) {
	root := t.TempDir()
	md, err := maildir.New(maildir.Config{Location: root + "/{user}"})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *Config) { c.Store = md })
	for _, sub := range []string{"new", "cur", "tmp"} {
		os.MkdirAll(filepath.Join(root, "alice", sub), 0o700)
	}
	files := []string{"1700000001.M1P1.host", "1700000002.M2P2.host", "1700000003.M3P3.host"}
	for i, name := range files {
		body := "Subject: " + strings.Repeat("x", i+1) + "\n\nbody\n"
		if err := os.WriteFile(filepath.Join(root, "alice", "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("UIDL").wantOK()
	uidsBefore := c.readBody()

	// Another program flags message 1 (moves it to cur/), deletes message
	// 2, and delivers a new one.
	dir := filepath.Join(root, "alice")
	must(t, os.Rename(filepath.Join(dir, "new", files[0]), filepath.Join(dir, "cur", files[0]+":2,S")))
	must(t, os.Remove(filepath.Join(dir, "new", files[1])))
	must(t, os.WriteFile(filepath.Join(dir, "new", "1700000004.M4P4.host"), []byte("Subject: late\n\nx\n"), 0o600))

	c.send("RETR 1").wantOK()
	c.wantLines("Subject: x", "", "body")
	c.send("RETR 2").wantErr("")
	c.send("RETR 3").wantOK()
	c.readBody()
	c.send("STAT").wantOK()
	c.send("DELE 3").wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()

	c = ts.dial()
	c.login("alice", "wonderland")
	c.send("UIDL").wantOK()
	after := c.readBody()
	// Message 1 kept its id though its file moved; 2 and 3 are gone; the
	// late delivery got a new id never seen before.
	if len(after) != 2 || strings.Fields(after[0])[1] != strings.Fields(uidsBefore[0])[1] {
		t.Fatalf("UIDL before %q, after %q", uidsBefore, after)
	}
	late := strings.Fields(after[1])[1]
	for _, line := range uidsBefore {
		if strings.Fields(line)[1] == late {
			t.Fatalf("unique id %s reused", late)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

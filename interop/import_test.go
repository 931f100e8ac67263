package interop

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/mbox"
)

// uidlMessages are the test messages as an old server's mbox spool holds
// them: each with the X-UIDL header that server showed as its unique id
// (ids of the shapes servers use), plus one whose text has "From " lines
// that the mbox quotes. The X-UIDL header stays part of the message.
func uidlMessages() (msgs []message, ids []string) {
	ids = []string{"UID1-1700000000", "00000002507c1b2a", "GmailId18c2f1e8b5a9d3f4", "1a2b3c4d.e5f6", "AAAA+bb/=~x", "x!y#z", "qpopper:7"}
	base := append(append([]message{}, testMessages...),
		message{"fromlines", []byte(header("fromlines") + "From the start of a line.\n>From quoted once.\n>>From quoted twice.\n")})
	for i, m := range base {
		field := "X-UIDL: " + ids[i] + "\n"
		if bytes.Contains(m.raw, []byte("\r\n")) {
			field = "X-UIDL: " + ids[i] + "\r\n"
		}
		msgs = append(msgs, message{m.name, append([]byte(field), m.raw...)})
	}
	return msgs, ids
}

// writeMbox writes msgs into an mboxrd file as a delivery agent would,
// one day apart.
func writeMbox(t *testing.T, path string, msgs []message) {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for i, m := range msgs {
		from := mbox.FormatFromLine("sender@example.org", time.Date(2024, 3, 1+i, 10, 0, 0, 0, time.UTC))
		if err := mbox.WriteMboxrd(w, from, bytes.NewReader(m.raw)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// postoffice runs the binary and returns its output, failing the test on
// an exit status other than 0.
func postoffice(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("postoffice %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func wantOutput(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// wantUIDL logs in as alice and compares the UIDL listing, line for line,
// with the ids in order.
func wantUIDL(t *testing.T, addr string, ids []string) {
	t.Helper()
	p := dialPOP(t, addr, "")
	if r := p.login(alice, alicePassword); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %q", r)
	}
	var want []string
	for i, id := range ids {
		want = append(want, fmt.Sprintf("%d %s", i+1, id))
	}
	if got := p.multi("UIDL"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("UIDL at %s:\n%s\nwant the X-UIDL values in order:\n%s", addr, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p.cmd("QUIT")
}

// wantFileHolds checks that a client's state file names every id: what
// it will compare the next listing with.
func wantFileHolds(t *testing.T, client, path string, ids []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s state: %v", client, err)
	}
	for _, id := range ids {
		if !bytes.Contains(b, []byte(id)) {
			t.Errorf("%s state %s lacks %q:\n%s", client, path, id, b)
		}
	}
}

// TestImportMboxUIDL is a switch from a server that kept X-UIDL headers
// in an mbox spool. "postoffice import -uidl-header" imports the spool
// (the dry run first); the UIDL listing is the X-UIDL values in order;
// mpop and fetchmail, leaving mail on the server, download everything
// once under those ids; a second import and a second run of each client
// fetch nothing. Then the imported Maildir (its ids are explicit now) is
// imported into PostgreSQL, a node serving from there lists the same ids,
// and the same clients, pointed at it, download nothing.
func TestImportMboxUIDL(t *testing.T) {
	mpop := need(t, "mpop")
	fetchmail := need(t, "fetchmail")
	t.Parallel()
	bin := postofficeBinary(t)
	s := newSite(t)
	msgs, ids := uidlMessages()
	spool := filepath.Join(s.dir, "spool")
	writeMbox(t, filepath.Join(spool, alice), msgs)
	location := filepath.Join(s.mailRoot, "{user}", "Maildir")
	cfg := filepath.Join(s.dir, "import.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[users]\npasswd_file = %q\n[maildir]\nlocation = %q\n",
		s.passwd, location), 0o600); err != nil {
		t.Fatal(err)
	}
	imp := []string{"import", "-config", cfg, "-mbox", spool + "/{user}", "-uidl-header", "-q"}

	out := postoffice(t, bin, append(imp, "-check", "-all")...)
	t.Logf("postoffice import -check:\n%s", out)
	wantOutput(t, "dry run", out,
		fmt.Sprintf("alice: %d messages from %s/alice (mboxrd): %d ids kept; 0 already in maildir", len(msgs), spool, len(msgs)),
		"carol: no mbox file: nothing to import")
	out = postoffice(t, bin, append(imp, alice)...)
	t.Logf("postoffice import:\n%s", out)
	wantOutput(t, "import", out, fmt.Sprintf("%d imported, 0 already there", len(msgs)))

	srv := startBinary(t, s, options{})
	wantUIDL(t, srv.plain, ids)
	mp := newMpop(t, mpop, srv, "plain")
	mp.wantDownloads(mp.run("--keep=on"), msgs)
	fm := newFetchmail(t, fetchmail, srv, "plain")
	fm.wantDownloads(fm.run(fetchmailGotMail, "keep"), msgs)
	wantFileHolds(t, "mpop", filepath.Join(mp.home, "uidls"), ids)
	wantFileHolds(t, "fetchmail", filepath.Join(fm.home, "fetchids"), ids)

	wantOutput(t, "second import", postoffice(t, bin, append(imp, alice)...), fmt.Sprintf("0 imported, %d already there", len(msgs)))
	mp.wantDownloads(mp.run("--keep=on"), nil)
	fm.wantDownloads(fm.run(fetchmailNoMail, "keep"), nil)
	wantUIDL(t, srv.plain, ids)

	// The same maildrop, imported into another store.
	dsn := clusterDatabase(t, bin)
	pgCfg := filepath.Join(s.dir, "import-pg.toml")
	if err := os.WriteFile(pgCfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[users]\npasswd_file = %q\n[maildir]\nlocation = %q\n[store]\nbackend = \"postgres\"\n[postgres]\ndsn = %q\n",
		s.passwd, location, dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	toPG := []string{"import", "-config", pgCfg, "-maildir", location, "-q", alice}
	out = postoffice(t, bin, append(toPG[:len(toPG)-1], "-check", alice)...)
	wantOutput(t, "dry run into PostgreSQL", out, fmt.Sprintf("alice: %d messages from maildir: %d ids kept; 0 already in postgres", len(msgs), len(msgs)))
	wantOutput(t, "import into PostgreSQL", postoffice(t, bin, toPG...), fmt.Sprintf("%d imported, 0 already there", len(msgs)))
	wantOutput(t, "second import into PostgreSQL", postoffice(t, bin, toPG...), fmt.Sprintf("0 imported, %d already there", len(msgs)))

	n := startNode(t, bin, "imported", dsn, nodeOptions{})
	wantUIDL(t, n.pop3, ids)
	moved := &server{plain: n.pop3, logs: n.logs}
	mp.srv, fm.srv = moved, moved
	mp.wantDownloads(mp.run("--keep=on"), nil)
	fm.wantDownloads(fm.run(fetchmailNoMail, "keep"), nil)
}

// TestImportFromDovecotMbox is the switch from a real server that served
// an mbox spool: Dovecot serves alice's inbox file, and mpop and fetchmail
// download everything and leave it there. The file, as Dovecot left it
// (with the X-IMAPbase, X-UID and Status headers it adds), is imported
// with "postoffice import", and postoffice, serving the result to the same
// clients with the same state files, lists what Dovecot listed, line for
// line, and they download nothing. Two ways Dovecot made the ids:
//
//   - xuidl: pop3_reuse_xuidl = yes showed each message's X-UIDL header;
//     imported with -uidl-header;
//   - xuid: the messages have no X-UIDL, and Dovecot's default
//     pop3_uidl_format (%08Xu%08Xv) made the ids from the uid and
//     uidvalidity it keeps in the file; imported with
//     -dovecot-uidl-format.
func TestImportFromDovecotMbox(t *testing.T) {
	mpop, fetchmail := need(t, "mpop"), need(t, "fetchmail")
	t.Parallel()
	bin := postofficeBinary(t)
	for _, c := range []struct {
		name    string
		dovecot []string
		uidl    bool
		flags   []string
	}{
		{"xuidl", []string{"pop3_reuse_xuidl = yes"}, true, []string{"-uidl-header"}},
		{"xuid", nil, false, []string{"-dovecot-uidl-format", "%08Xu%08Xv"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := startDovecot(t, append([]string{"mail_location = mbox:%h/mail:INBOX=%h/inbox", "mbox_write_locks = fcntl"}, c.dovecot...)...)
			home := filepath.Dir(d.maildir)
			msgs, ids := uidlMessages()
			if !c.uidl {
				msgs = append([]message{}, testMessages...)
			}
			writeMbox(t, filepath.Join(home, "inbox"), msgs)
			os.MkdirAll(filepath.Join(home, "mail"), 0o700)
			d.chown(t)
			old := &server{plain: d.plain, tls: d.tls, caFile: d.caFile, logs: &syncBuffer{}}
			// Counted, not compared: Dovecot shows an mbox message as the
			// file holds it, with the mboxrd quoting of its "From " lines.
			mp := newMpop(t, mpop, old, "plain")
			if got := mp.run("--keep=on"); len(got) != len(msgs) {
				t.Fatalf("mpop downloaded %d messages from Dovecot, want %d", len(got), len(msgs))
			}
			fm := newFetchmail(t, fetchmail, old, "plain")
			if got := fm.run(fetchmailGotMail, "keep"); len(got) != len(msgs) {
				t.Fatalf("fetchmail downloaded %d messages from Dovecot, want %d", len(got), len(msgs))
			}
			before := uidlListing(t, old)
			if c.uidl {
				var want []string
				for i, id := range ids {
					want = append(want, fmt.Sprintf("%d %s", i+1, id))
				}
				if strings.Join(before, "\n") != strings.Join(want, "\n") {
					t.Fatalf("Dovecot's UIDL listing:\n%s\nwant the X-UIDL values:\n%s", strings.Join(before, "\n"), strings.Join(want, "\n"))
				}
			} else if len(before) != len(msgs) {
				t.Fatalf("Dovecot's UIDL listing:\n%s", strings.Join(before, "\n"))
			}

			s := newSite(t)
			cfg := filepath.Join(s.dir, "import.toml")
			if err := os.WriteFile(cfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[users]\npasswd_file = %q\n[maildir]\nlocation = %q\n",
				s.passwd, filepath.Join(s.mailRoot, "{user}", "Maildir")), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"import", "-config", cfg, "-mbox", filepath.Join(filepath.Dir(home), "{user}", "inbox"), "-q"}, c.flags...)
			out := postoffice(t, bin, append(args, alice)...)
			t.Logf("postoffice import of the file Dovecot served:\n%s", out)
			wantOutput(t, "import", out, fmt.Sprintf("%d ids kept; %d imported", len(msgs), len(msgs)))

			srv := startBinary(t, s, options{})
			mp.srv, fm.srv = srv, srv
			if after := uidlListing(t, srv); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Fatalf("UIDL listings differ\nDovecot:\n%s\npostoffice:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
			mp.wantDownloads(mp.run("--keep=on"), nil)
			fm.wantDownloads(fm.run(fetchmailNoMail, "keep"), nil)
		})
	}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// importMbox is alice's spool: X-UIDL ids, one duplicate, one invalid,
// one message without; a quoted "From " line.
const importMbox = "From a@example.org Mon Mar  4 10:00:00 2024\nX-UIDL: id-1\nSubject: one\n\n>From quoted\n\n" +
	"From a@example.org Tue Mar  5 10:00:00 2024\nX-UIDL: id-1\nSubject: two\n\nx\n\n" +
	"From a@example.org Wed Mar  6 10:00:00 2024\nX-UIDL: not valid\nSubject: three\n\nx\n\n" +
	"From a@example.org Thu Mar  7 10:00:00 2024\nSubject: four\n\nx\n\n"

func runImportCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut strings.Builder
	err := runImport(args, nil, &out, &errOut)
	code := exitOK
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if err != nil {
		code = exitFailure
	}
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String() + errOut.String(), code
}

func TestImportCommand(t *testing.T) {
	s := newDeliverSite(t, "")
	spool := filepath.Join(s.dir, "spool")
	os.Mkdir(spool, 0o700)
	if err := os.WriteFile(filepath.Join(spool, "alice"), []byte(importMbox), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-config", s.config, "-mbox", spool + "/{user}", "-uidl-header", "-timezone", "UTC", "-q"}

	out, code := runImportCmd(t, append(base, "-check", "-all")...)
	for _, want := range []string{
		"alice: 4 messages from " + spool + "/alice (mboxrd): 1 ids kept, 1 new (no id in the source), 1 renamed, 1 not kept; 0 already in maildir",
		`renamed: message 2: X-UIDL is also message 1's: "id-1" imported as "id-1-2"`,
		`not kept: message 3: X-UIDL holds octet 0x20 at position 4`,
		"dry run, nothing changed: 1 maildrops, 4 messages",
		"1 users have no mbox file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if code != exitOK {
		t.Errorf("check exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(s.mail, "alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dry run made alice's maildrop: %v", err)
	}

	out, code = runImportCmd(t, append(base, "-all")...)
	if code != exitOK || !strings.Contains(out, "alice: 4 messages") || !strings.Contains(out, "4 imported, 0 already there") ||
		!strings.Contains(out, "1 of 2 maildrops imported into maildir: 4 messages") {
		t.Errorf("import: exit %d\n%s", code, out)
	}
	st, _ := maildir.New(maildir.Config{Location: s.mail + "/{user}/Maildir"})
	md, err := st.Open(t.Context(), store.Account{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range md.Messages() {
		ids = append(ids, m.UID)
	}
	md.Close()
	if len(ids) != 4 || ids[0] != "id-1" || ids[1] != "id-1-2" {
		t.Errorf("ids %q", ids)
	}
	if got := s.messages(t, "alice"); len(got) != 4 || got[0] != "X-UIDL: id-1\nSubject: one\n\nFrom quoted\n" {
		t.Errorf("messages %q", got)
	}

	out, code = runImportCmd(t, append(base, "alice")...)
	if code != exitOK || !strings.Contains(out, "0 imported, 4 already there") {
		t.Errorf("second import: exit %d\n%s", code, out)
	}
	out, _ = runImportCmd(t, append(base, "-check", "alice")...)
	if !strings.Contains(out, "4 already in maildir") {
		t.Errorf("check after the import:\n%s", out)
	}
}

func TestImportCommandFailures(t *testing.T) {
	s := newDeliverSite(t, "")
	spool := filepath.Join(s.dir, "spool")
	os.Mkdir(spool, 0o700)
	os.WriteFile(filepath.Join(spool, "bob"), []byte("Subject: not an mbox\n\nx\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-mbox", spool + "/{user}", "bob"}, exitDataErr, "not an mbox file"},
		{[]string{"-mbox", spool + "/{user}", "alice"}, exitNoInput, "no mbox file"},
		{[]string{"-mbox", spool + "/{user}", "-check", "alice"}, exitNoInput, "no mbox file"},
		{[]string{"-mbox", spool + "/{user}"}, exitUsage, "give -mbox or -maildir, and -all or user names"},
		{[]string{"-mbox", "x", "-maildir", "y", "alice"}, exitUsage, "give -mbox or -maildir"},
		{[]string{"-mbox", "x", "-format", "mbox", "alice"}, exitUsage, "unknown mbox format"},
		{[]string{"-maildir", "/x/{user}", "-format", "mboxo", "alice"}, exitUsage, "-format is for -mbox"},
		{[]string{"-maildir", "/x/{user}", "-uidl-header", "alice"}, exitUsage, "give -import-uidl dovecot"},
		{[]string{"-mbox", "x", "-to", "nowhere", "alice"}, exitUsage, `-to "nowhere"`},
		{[]string{"-mbox", "x", "-import-uidl", "dovecot", "alice"}, exitUsage, "-import-uidl is for -maildir"},
		{[]string{"-mbox", "x", "-dovecot-uidl-format", "%m", "alice"}, exitUsage, "only %u and %v can be made"},
		{[]string{"-mbox", "x", "-dovecot-uidl-format", "%q", "alice"}, exitUsage, "-dovecot-uidl-format:"},
		{[]string{"-maildir", s.mail + "/{user}/Maildir", "alice"}, exitUsage, "is [maildir] location itself"},
		{[]string{"-mbox", "x", "../etc", "alice"}, exitUsage, "invalid user name"},
	} {
		t.Run(fmt.Sprint(c.args), func(t *testing.T) {
			out, code := runImportCmd(t, append([]string{"-config", s.config, "-q"}, c.args...)...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s", code, c.code, c.want, out)
			}
		})
	}
}

// The dry run for Dovecot Maildirs served in place: what the first login
// will keep of Dovecot's ids, without touching the Maildir.
func TestImportCheckInPlace(t *testing.T) {
	s := newDeliverSite(t, "import_uidl = \"dovecot\"\n") // in [maildir]
	dir := filepath.Join(s.mail, "alice", "Maildir")
	for name, body := range map[string]string{
		"cur/1700000010.M1P1.mx:2,S": "Subject: a\n\n",
		"new/1700000030.M1P1.mx":     "Subject: c\n\n",
		"new/1700000040.M1P1.mx":     "Subject: d\n\n",
		"dovecot-uidlist":            "3 V1690000000 N12\n7 :1700000010.M1P1.mx\n11 :1700000030.M1P1.mx\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
	}
	args := []string{"-config", s.config, "-maildir", s.mail + "/{user}/Maildir", "-check", "alice", "bob"}
	out, code := runImportCmd(t, args...)
	for _, want := range []string{
		"alice: 3 messages from " + dir + " (dovecot ids from dovecot-uidlist, pop3_uidl_format %08Xu%08Xv): 2 ids kept, 1 new (no id in the source); served in place",
		"bob: 0 messages from " + filepath.Join(s.mail, "bob", "Maildir") + " (no Maildir)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("the dry run changed the Maildir: %v", entries)
	}
	if out, code := runImportCmd(t, "-config", s.config, "-maildir", s.mail+"/{user}/Maildir", "alice"); code != exitUsage || !strings.Contains(out, "served in place") {
		t.Errorf("an import of the served Maildirs into themselves: exit %d\n%s", code, out)
	}
}

// Without -q and without a terminal, the progress is plain lines: one as
// each maildrop starts, then the report.
func TestImportProgressLines(t *testing.T) {
	s := newDeliverSite(t, "")
	spool := filepath.Join(s.dir, "spool")
	os.Mkdir(spool, 0o700)
	os.WriteFile(filepath.Join(spool, "bob"), []byte(importMbox), 0o600)
	out, code := runImportCmd(t, "-config", s.config, "-mbox", spool+"/{user}", "bob")
	if code != exitOK || !strings.Contains(out, "bob: 4 messages (122 B) to import\nbob: 4 messages from") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

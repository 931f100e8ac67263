package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3client"
)

// Switching from Dovecot without a single re-download (issue 7): Dovecot
// (Debian's dovecot-pop3d) serves a Maildir, mpop and fetchmail download
// everything from it and leave it on the server, then postoffice, told
// to take over Dovecot's ids ([maildir] import_uidl = "dovecot"), serves
// the same Maildir to the same clients with the same state files. They
// must download nothing, and UIDL must list what Dovecot listed, line for
// line; a message delivered after the switch is downloaded once, by
// both.
func TestDovecotUIDLTakeover(t *testing.T) {
	mpop, fetchmail := need(t, "mpop"), need(t, "fetchmail")
	t.Parallel()
	for _, c := range []struct {
		name string
		// dovecot are Dovecot's settings; format is what postoffice is
		// told Dovecot's pop3_uidl_format was.
		dovecot []string
		format  string
		launch  launcher
		// saved: Dovecot keeps the UIDLs it listed (pop3_save_uidl);
		// they win over the format, so postoffice is deliberately told
		// another one.
		saved bool
		// xuidl: Dovecot shows X-UIDL headers (pop3_reuse_xuidl), which
		// half the messages have.
		xuidl bool
	}{
		{name: "default", dovecot: []string{"pop3_uidl_format = %08Xu%08Xv"}, format: "%08Xu%08Xv", launch: startBinary},
		{name: "v.u", dovecot: []string{"pop3_uidl_format = %v.%u"}, format: "%v.%u", launch: startInProcess},
		{name: "saved", dovecot: []string{"pop3_uidl_format = %u", "pop3_save_uidl = yes"}, format: "%08Xu%08Xv",
			launch: startInProcess, saved: true},
		{name: "xuidl", dovecot: []string{"pop3_reuse_xuidl = yes"}, format: "%08Xu%08Xv", launch: startBinary, xuidl: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := startDovecot(t, c.dovecot...)
			msgs := testMessages
			if c.xuidl {
				msgs = withXUIDL(testMessages)
			}
			d.deliver(t, msgs)
			old := &server{plain: d.plain, tls: d.tls, caFile: d.caFile, logs: &syncBuffer{}}

			mp := newMpop(t, mpop, old, "plain")
			mp.wantDownloads(mp.run("--keep=on"), msgs)
			fm := newFetchmail(t, fetchmail, old, "plain")
			fm.wantDownloads(fm.run(fetchmailGotMail, "keep"), msgs)
			before := uidlListing(t, old)
			if len(before) != len(msgs) {
				t.Fatalf("Dovecot lists %d messages, want %d:\n%s", len(before), len(msgs), strings.Join(before, "\n"))
			}
			if c.xuidl != strings.Contains(strings.Join(before, "\n"), " xuidl-") {
				t.Fatalf("Dovecot's listing shows X-UIDL headers: %v, want %v:\n%s", !c.xuidl, c.xuidl, strings.Join(before, "\n"))
			}
			uidlist, err := os.ReadFile(filepath.Join(d.maildir, "dovecot-uidlist"))
			if err != nil {
				t.Fatal(err)
			}
			if c.saved != strings.Contains(string(uidlist), " P") {
				t.Fatalf("dovecot-uidlist with saved UIDLs: %v, want %v:\n%s", !c.saved, c.saved, uidlist)
			}

			// postoffice on the same Maildir, as the same user.
			site := newSite(t)
			site.mailRoot = filepath.Dir(filepath.Dir(d.maildir))
			srv := c.launch(t, site, options{importUIDL: "dovecot", dovecotUIDLFormat: c.format, dovecotReuseXUIDL: c.xuidl})
			mp.srv, fm.srv = srv, srv
			if after := uidlListing(t, srv); !slices.Equal(after, before) {
				t.Fatalf("UIDL listings differ\nDovecot:\n%s\npostoffice:\n%s\nlog:\n%s",
					strings.Join(before, "\n"), strings.Join(after, "\n"), srv.logs)
			}
			if !strings.Contains(srv.logs.String(), fmt.Sprintf("%d ids kept", len(msgs))) {
				t.Errorf("the takeover was not logged:\n%s", srv.logs)
			}
			mp.wantDownloads(mp.run("--keep=on"), nil)
			fm.wantDownloads(fm.run(fetchmailNoMail, "keep"), nil)

			// New mail after the switch: downloaded once.
			fresh := message{"after-the-switch", []byte(header("after-the-switch") + "Delivered to postoffice.\n")}
			name := fmt.Sprintf("%d.M1P%d.switched", time.Now().Unix(), os.Getpid())
			if err := os.WriteFile(filepath.Join(d.maildir, "new", name), fresh.raw, 0o600); err != nil {
				t.Fatal(err)
			}
			mp.wantDownloads(mp.run("--keep=on"), []message{fresh})
			fm.wantDownloads(fm.run(fetchmailGotMail, "keep"), []message{fresh})

			// Frozen: without Dovecot's files, the ids stay.
			os.Remove(filepath.Join(d.maildir, "dovecot-uidlist"))
			if after := uidlListing(t, srv); !slices.Equal(after[:len(before)], before) || len(after) != len(before)+1 {
				t.Errorf("after removing dovecot-uidlist:\n%s\nwant first:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
			}
		})
	}
}

// A Maildir Courier's POP3 server kept, with its courierpop3dsizelist
// (version 3) built here by the format Courier documents and writes:
// postoffice told import_uidl = "courier" lists the ids Courier listed
// (UID<n>-<uidvalidity>, in Courier's order: by the time the file name
// starts with, then by name), and keeps them once the file is gone.
func TestCourierUIDLTakeover(t *testing.T) {
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		t.Parallel()
		site := newSite(t)
		dir := site.maildir(alice)
		// Courier keeps messages in cur/ (it moves new ones there at
		// login); one has been seen (flags), and the list holds the name
		// it had when written.
		names := []string{"1700000300.M3P7.courier,S=%d", "1700000100.M1P7.courier,S=%d", "1700000200.M2P7.courier,S=%d"}
		list := "/3 9 1690000000\n"
		var want []string
		for i, n := range names {
			name := fmt.Sprintf(n, len(testMessages[i].raw))
			file := name
			if i == 1 {
				file += ":2,S"
			}
			if err := os.WriteFile(filepath.Join(dir, "cur", file), testMessages[i].raw, 0o600); err != nil {
				t.Fatal(err)
			}
			list += fmt.Sprintf("%s %d %d:1690000000:0\n", file, testMessages[i].size(), 5+i)
		}
		// Courier's order is by arrival: names[1], names[2], names[0].
		want = []string{"1 UID6-1690000000", "2 UID7-1690000000", "3 UID5-1690000000"}
		if err := os.WriteFile(filepath.Join(dir, "courierpop3dsizelist"), []byte(list), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := launch(t, site, options{importUIDL: "courier"})
		if got := uidlListing(t, srv); !slices.Equal(got, want) {
			t.Fatalf("UIDL listing:\n%s\nwant:\n%s\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), srv.logs)
		}
		os.Remove(filepath.Join(dir, "courierpop3dsizelist"))
		if got := uidlListing(t, srv); !slices.Equal(got, want) {
			t.Errorf("after removing courierpop3dsizelist:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// withXUIDL gives every other message an X-UIDL header, in the line ends
// the message has.
func withXUIDL(msgs []message) []message {
	out := make([]message, len(msgs))
	for i, m := range msgs {
		out[i] = m
		if i%2 == 0 {
			eol := "\n"
			if strings.Contains(string(m.raw), "\r\n") {
				eol = "\r\n"
			}
			out[i].raw = append([]byte(fmt.Sprintf("X-UIDL: xuidl-%s-%d%s", m.name, i, eol)), m.raw...)
		}
	}
	return out
}

// uidlListing logs in as alice and returns the UIDL listing, one "<n>
// <id>" line per message, and quits without changing anything.
func uidlListing(t *testing.T, srv *server) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := pop3client.Dial(ctx, srv.plain, &pop3client.Options{Security: pop3client.SecurityNone, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, alice, alicePassword); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Uidl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range msgs {
		lines = append(lines, fmt.Sprintf("%d %s", m.Number, m.UID))
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	return lines
}

// pop3_uidl_format %m is the MD5 of the header that only Dovecot's mbox
// storage computes: on a Maildir, Dovecot cannot list UIDL at all (it
// closes the connection), so no client ever saw such an id, and the
// takeover keeps %m ids only where Dovecot saved them (P). This pins that
// fact about the peer the takeover's report relies on.
func TestDovecotMD5FormatOnMaildir(t *testing.T) {
	d := startDovecot(t, "pop3_uidl_format = %m")
	d.deliver(t, testMessages[:2])
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := pop3client.Dial(ctx, d.plain, &pop3client.Options{Security: pop3client.SecurityNone, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, dovecotUser, dovecotPassword); err != nil {
		t.Fatal(err)
	}
	if msgs, err := c.Uidl(ctx); err == nil {
		t.Errorf("Dovecot listed UIDL with %%m on a Maildir: %+v; the takeover could keep such ids", msgs)
	}
}

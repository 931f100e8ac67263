package maildir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/syncbuf"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer = syncbuf.Buffer

// dovecotMaildir writes a maildrop as Dovecot leaves it: four messages,
// one in new/, and a dovecot-uidlist that knows three of them (the fourth
// arrived after Dovecot last looked).
func dovecotMaildir(t *testing.T, dir, uidlist string) {
	t.Helper()
	at := time.Unix(1_700_000_000, 0)
	put(t, dir, "cur/1700000010.M1P1.mx,S=10,W=11:2,S", "Subject: a\n\n", at)
	put(t, dir, "cur/1700000020.M1P1.mx,S=10,W=11:2,", "Subject: b\n\n", at)
	put(t, dir, "new/1700000030.M1P1.mx,S=10,W=11", "Subject: c\n\n", at)
	put(t, dir, "new/1700000005.M9P9.mx,S=10,W=11", "Subject: d\n\n", at) // oldest, but unlisted
	if uidlist != "" {
		put(t, dir, legacy.DovecotUIDList, uidlist, at)
	}
}

const testUIDList = "3 V1690000000 N12 G00112233445566778899aabbccddeeff\n" +
	"7 :1700000010.M1P1.mx,S=10,W=11\n" +
	"9 W11 :1700000020.M1P1.mx,S=10,W=11:2,\n" +
	"11 W11 :1700000030.M1P1.mx,S=10,W=11\n"

func TestTakeOverDovecot(t *testing.T) {
	for _, c := range []struct {
		format string
		want   []string
	}{
		{"", []string{"0000000764bb5a80", "0000000964bb5a80", "0000000b64bb5a80"}},
		{"%v.%u", []string{"1690000000.7", "1690000000.9", "1690000000.11"}},
		{"%u", []string{"7", "9", "11"}},
		{"%f", []string{"1700000010.M1P1.mx,S=10,W=11", "1700000020.M1P1.mx,S=10,W=11", "1700000030.M1P1.mx,S=10,W=11"}},
	} {
		logs := &syncBuffer{}
		s, base := newTestStore(t, Config{
			Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: c.format},
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		})
		dir := filepath.Join(base, "alice/Maildir")
		dovecotMaildir(t, dir, testUIDList)

		check, err := s.CheckTakeover(t.Context(), alice)
		if err != nil || check.Indexed || check.Messages != 4 || check.Report == nil || check.Report.Kept != 3 || len(check.Report.Unlisted) != 1 {
			t.Fatalf("CheckTakeover = %+v, %v", check, err)
		}
		got := uidsOf(t, s, alice)
		// Dovecot's messages in its order, then the one it never listed.
		if !slices.Equal(got[:3], c.want) || len(got) != 4 || !store.ValidUniqueID(got[3]) || slices.Contains(c.want, got[3]) {
			t.Fatalf("format %q: ids %q, want %q and a new one", c.format, got, c.want)
		}
		if !strings.Contains(logs.String(), "3 ids kept") {
			t.Errorf("no takeover summary logged:\n%s", logs)
		}
		// Frozen: Dovecot's files go, new mail comes, the ids stay.
		os.Remove(filepath.Join(dir, legacy.DovecotUIDList))
		if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: e\n\n")); err != nil {
			t.Fatal(err)
		}
		s2, err := New(Config{Location: base + "/{user}/Maildir", SnapshotCacheMessages: -1})
		if err != nil {
			t.Fatal(err)
		}
		again := uidsOf(t, s2, alice)
		if !slices.Equal(again[:4], got) || len(again) != 5 || slices.Contains(got, again[4]) {
			t.Errorf("after removing dovecot-uidlist: %q, want %q and a new one", again, got)
		}
		if check, err := s.CheckTakeover(t.Context(), alice); err != nil || !check.Indexed || check.Report != nil {
			t.Errorf("CheckTakeover after the takeover = %+v, %v", check, err)
		}
	}
}

// The first delivery can come before the first login: it takes the ids
// over just the same.
func TestTakeOverOnDelivery(t *testing.T) {
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%u"}})
	dovecotMaildir(t, filepath.Join(base, "alice/Maildir"), testUIDList)
	if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: e\n\n")); err != nil {
		t.Fatal(err)
	}
	if got := uidsOf(t, s, alice); !slices.Equal(got[:3], []string{"7", "9", "11"}) || len(got) != 5 {
		t.Errorf("ids %q", got)
	}
}

// Dovecot's POP3 order (O) decides the message order, and duplicates are
// renamed and logged.
func TestTakeOverOrderAndDuplicates(t *testing.T) {
	logs := &syncBuffer{}
	s, base := newTestStore(t, Config{
		Legacy: legacy.Config{Source: legacy.Dovecot},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	dovecotMaildir(t, filepath.Join(base, "alice/Maildir"), "3 V1690000000 N12\n"+
		"7 O2 Pold-2 :1700000010.M1P1.mx,S=10,W=11\n"+
		"9 O1 Pold-1 :1700000020.M1P1.mx,S=10,W=11\n"+
		"11 Pold-1 :1700000030.M1P1.mx,S=10,W=11\n")
	got := uidsOf(t, s, alice)
	if !slices.Equal(got[:3], []string{"old-1", "old-2", "old-1-2"}) {
		t.Errorf("ids %q", got)
	}
	if !strings.Contains(logs.String(), "was=old-1 now=old-1-2") {
		t.Errorf("renaming not logged:\n%s", logs)
	}
}

// A damaged uidlist costs the damaged records their ids, is logged with
// the line, and the rest is kept.
func TestTakeOverDamagedUIDList(t *testing.T) {
	logs := &syncBuffer{}
	s, base := newTestStore(t, Config{
		Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%u"},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	dovecotMaildir(t, filepath.Join(base, "alice/Maildir"), "3 V1690000000 N12\n"+
		"7 :1700000010.M1P1.mx,S=10,W=11\n"+
		"garbage\n"+
		"11 W11 :1700000030.M1P1.mx,S=1")
	got := uidsOf(t, s, alice)
	if got[0] != "7" || slices.Contains(got, "11") || len(got) != 4 {
		t.Errorf("ids %q", got)
	}
	for _, want := range []string{"line 3: no uid", "line 4: no line end"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// An unreadable uidlist fails the login rather than giving new ids.
func TestTakeOverUnreadable(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root reads any file")
	}
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Dovecot}})
	dir := filepath.Join(base, "alice/Maildir")
	dovecotMaildir(t, dir, testUIDList)
	os.Chmod(filepath.Join(dir, legacy.DovecotUIDList), 0)
	if md, err := s.Open(t.Context(), alice); err == nil {
		md.Close()
		t.Fatal("Open succeeded without reading dovecot-uidlist")
	}
	if _, err := os.Stat(filepath.Join(dir, indexFile)); err == nil {
		t.Error("an index was written")
	}
}

// Courier's size list, and file-name ids.
func TestTakeOverCourier(t *testing.T) {
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Courier}})
	dir := filepath.Join(base, "alice/Maildir")
	dovecotMaildir(t, dir, "")
	put(t, dir, legacy.CourierPOP3SizeList, "/3 4 1650000000\n"+
		"1700000010.M1P1.mx,S=10,W=11:2,S 12 1:1650000000:0\n"+
		"1700000020.M1P1.mx,S=10,W=11 12 2:1650000000:0\n"+
		"1700000030.M1P1.mx,S=10,W=11 12 3:1650000000:0\n", time.Time{})
	if got := uidsOf(t, s, alice); !slices.Equal(got[:3], []string{"UID1-1650000000", "UID2-1650000000", "UID3-1650000000"}) || len(got) != 4 {
		t.Errorf("courier ids %q", got)
	}

	s, base = newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.FileName}})
	dovecotMaildir(t, filepath.Join(base, "alice/Maildir"), "")
	want := []string{"1700000005.M9P9.mx,S=10,W=11", "1700000010.M1P1.mx,S=10,W=11", "1700000020.M1P1.mx,S=10,W=11", "1700000030.M1P1.mx,S=10,W=11"}
	if got := uidsOf(t, s, alice); !slices.Equal(got, want) {
		t.Errorf("file name ids %q, want %q", got, want)
	}
}

func TestLegacyConfigValidated(t *testing.T) {
	if _, err := New(Config{Location: "/tmp/{user}", Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%q"}}); err == nil {
		t.Error("a bad pop3_uidl_format was accepted")
	}
}

// Dovecot with CONTROL= in its mail_location keeps dovecot-uidlist there;
// the same location given to this store finds it, for the store's
// template and for an account's own mail location.
func TestTakeOverControlDir(t *testing.T) {
	base := t.TempDir()
	for _, c := range []struct {
		name     string
		location string
		acct     store.Account
	}{
		{"template", "maildir:" + base + "/t/%u/Maildir:LAYOUT=fs:CONTROL=" + base + "/t/control/%u", alice},
		{"account", base + "/nothing/{user}", store.Account{Name: "alice", Home: base + "/a",
			Mail: "maildir:~/Maildir:CONTROL=~/dovecot-control"}},
	} {
		s, err := New(Config{Location: c.location, Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%u"}})
		if err != nil {
			t.Fatal(err)
		}
		dir, err := s.maildropDir(c.acct)
		if err != nil {
			t.Fatal(err)
		}
		control, err := s.dovecotControlDir(c.acct)
		if err != nil || control == "" || control == dir {
			t.Fatalf("%s: control directory %q, %v", c.name, control, err)
		}
		dovecotMaildir(t, dir, "")
		put(t, control, legacy.DovecotUIDList, testUIDList, time.Time{})
		if check, err := s.CheckTakeover(t.Context(), c.acct); err != nil || check.Report == nil || check.Report.Kept != 3 {
			t.Fatalf("%s: CheckTakeover = %+v, %v", c.name, check, err)
		}
		if got := uidsOf(t, s, c.acct); !slices.Equal(got[:3], []string{"7", "9", "11"}) {
			t.Errorf("%s: ids %q", c.name, got)
		}
	}
}

func TestLocationOption(t *testing.T) {
	for _, c := range []struct{ tmpl, want string }{
		{"maildir:~/Maildir:CONTROL=/var/c/%u", "/var/c/%u"},
		{"maildir:~/Maildir:INDEX=/i:CONTROL=/c:LAYOUT=fs", "/c"},
		{"~/Maildir:CONTROL=/c", "/c"},
		{"maildir:~/Maildir", ""},
		{"/srv/{user}", ""},
		{"maildir:~/Maildir:CONTROLX=/c", ""},
	} {
		if got := locationOption(c.tmpl, "CONTROL"); got != c.want {
			t.Errorf("locationOption(%q) = %q, want %q", c.tmpl, got, c.want)
		}
	}
}

func TestFirstHeader(t *testing.T) {
	for _, c := range []struct {
		msg, want string
		ok        bool
	}{
		{"X-UIDL: abc\nSubject: x\n\nbody\n", "abc", true},
		{"Subject: x\r\nx-uidl:   spaced  \r\n\r\n", "spaced", true},
		{"Subject: x\nX-UIDL: first\nX-UIDL: second\n\n", "first", true},
		{"X-UIDL: fol\n ded\nNext: y\n\n", "fol ded", true},
		{"X-UIDL:\n\n", "", true},
		{"Subject: x\n\nX-UIDL: in the body\n", "", false},
		{"X-UIDLS: other\n\n", "", false},
		{"", "", false},
		{"X-UIDL: no line end", "no line end", true},
	} {
		got, ok, err := firstHeader(strings.NewReader(c.msg), "X-UIDL")
		if err != nil || got != c.want || ok != c.ok {
			t.Errorf("firstHeader(%q) = %q, %v, %v; want %q, %v", c.msg, got, ok, err, c.want, c.ok)
		}
	}
}

// Dovecot with pop3_reuse_xuidl showed a message's X-UIDL header as its
// id (unless it had saved one).
func TestTakeOverReuseXUIDL(t *testing.T) {
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%u", DovecotReuseXUIDL: true}})
	dir := filepath.Join(base, "alice/Maildir")
	dovecotMaildir(t, dir, testUIDList)
	put(t, dir, "cur/1700000010.M1P1.mx,S=10,W=11:2,S", "X-UIDL: from-the-header\nSubject: a\n\n", time.Time{})
	if got := uidsOf(t, s, alice); !slices.Equal(got[:3], []string{"from-the-header", "9", "11"}) {
		t.Errorf("ids %q", got)
	}
}

// A FIFO where a listed message should be neither blocks the takeover
// (reading X-UIDL headers) nor becomes a message.
func TestTakeOverReuseXUIDLFIFO(t *testing.T) {
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Dovecot, DovecotFormat: "%u", DovecotReuseXUIDL: true}})
	dir := filepath.Join(base, "alice/Maildir")
	dovecotMaildir(t, dir, testUIDList)
	fifo := filepath.Join(dir, "cur/1700000010.M1P1.mx,S=10,W=11:2,S")
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	opened := make(chan error, 1)
	go func() {
		md, err := s.Open(context.Background(), alice)
		if err == nil {
			md.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
		if got := uidsOf(t, s, alice); !slices.Equal(got[:2], []string{"9", "11"}) || len(got) != 3 {
			t.Errorf("ids %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the takeover blocked on a FIFO")
	}
}

// A FIFO named dovecot-uidlist fails the first login at once instead of
// blocking it (and the index lock with it).
func TestTakeOverUIDListFIFO(t *testing.T) {
	s, base := newTestStore(t, Config{Legacy: legacy.Config{Source: legacy.Dovecot}})
	dir := filepath.Join(base, "alice/Maildir")
	dovecotMaildir(t, dir, "")
	if err := syscall.Mkfifo(filepath.Join(dir, legacy.DovecotUIDList), 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	opened := make(chan error, 1)
	go func() {
		md, err := s.Open(context.Background(), alice)
		if err == nil {
			md.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Open = %v, want a refusal", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the takeover blocked on a FIFO")
	}
}

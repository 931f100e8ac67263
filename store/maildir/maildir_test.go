package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/storetest"
)

// harness adds to a Store what the conformance suite needs to play
// another program.
type harness struct{ *Store }

var _ storetest.ExternalRemover = harness{}

// RemoveBehind deletes a message's file directly, as another mail program
// would, without the session lock.
func (h harness) RemoveBehind(ctx context.Context, acct store.Account, uid string) error {
	dir, err := h.maildropDir(acct)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	ix, err := loadIndex(root)
	if err != nil || ix == nil {
		return fmt.Errorf("no index: %v", err)
	}
	for base, e := range ix.entries {
		if ix.idOf(e) != uid {
			continue
		}
		files, err := h.scan(root, dir)
		if err != nil {
			return err
		}
		if f, ok := files[base]; ok {
			return root.Remove(f.path())
		}
	}
	return fmt.Errorf("uid %q: %w", uid, store.ErrNoSuchMessage)
}

// newTestStore returns a store whose maildrops are under a temporary
// directory: <tmp>/<user>/Maildir.
func newTestStore(t testing.TB, cfg Config) (*Store, string) {
	t.Helper()
	base := t.TempDir()
	if cfg.Location == "" {
		cfg.Location = base + "/{user}/Maildir"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, base
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, store.Deliverer) {
		s, _ := newTestStore(t, Config{})
		h := harness{s}
		return h, h
	})
}

var alice = store.Account{Name: "alice"}

// put writes a message file as another program would, at a path relative
// to the maildir, with the given modification time.
func put(t *testing.T, dir, path, content string, mtime time.Time) {
	t.Helper()
	full := filepath.Join(dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(full, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func open(t *testing.T, s *Store, acct store.Account) *maildrop {
	t.Helper()
	md, err := s.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { md.Close() })
	return md.(*maildrop)
}

func read(t *testing.T, md *maildrop, i int) string {
	t.Helper()
	r, err := md.Open(t.Context(), i)
	if err != nil {
		t.Fatalf("Open(%d): %v", i, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Files that procmail, Postfix and Dovecot wrote: with and without sizes in
// the name, in new/ and in cur/ with flags, next to things that are not
// messages.
func TestForeignFiles(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	old := time.Unix(1600000000, 0)
	put(t, dir, "cur/1500000000.M1P1.dovecot,S=5,W=7:2,S", "a\nb\n\n", time.Time{}) // W= is trusted, not recomputed
	put(t, dir, "new/1500000001.12345_0.procmail", "x\ny\n", time.Time{})
	put(t, dir, "new/postfix-style-no-time", "z\n", old)
	put(t, dir, "new/.hidden", "not a message\n", time.Time{})
	put(t, dir, "cur/subdir/file", "not a message\n", time.Time{})
	put(t, dir, "tmp/1500000002.half", "in progress\n", time.Time{})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "new", "1500000003.link")); err != nil {
		t.Fatal(err)
	}

	md := open(t, s, alice)
	msgs := md.Messages()
	if len(msgs) != 3 {
		t.Fatalf("snapshot has %d messages, want 3: %+v", len(msgs), msgs)
	}
	want := []struct {
		size     int64
		received int64
		content  string
	}{
		{7, 1500000000, "a\nb\n\n"},
		{6, 1500000001, "x\ny\n"},
		{3, 1600000000, "z\n"},
	}
	for i, w := range want {
		if msgs[i].Size != w.size || msgs[i].Received.Unix() != w.received {
			t.Errorf("message %d: size %d received %d, want %d %d", i, msgs[i].Size, msgs[i].Received.Unix(), w.size, w.received)
		}
		if got := read(t, md, i); got != w.content {
			t.Errorf("message %d: content %q, want %q", i, got, w.content)
		}
		if want := fmt.Sprintf("%08X%08X", i+1, md.uidValidity); msgs[i].UID != want {
			t.Errorf("message %d: UID %q, want %q (Dovecot's %%08Xu%%08Xv)", i, msgs[i].UID, want)
		}
	}
}

// Sizes are computed once and kept: the second login reads no bodies, so
// a changed body (which no Maildir program does) keeps its first size.
func TestSizesComputedOnce(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1500000001.1.procmail", "x\ny\n", time.Time{})
	md := open(t, s, alice)
	if got := md.Messages()[0].Size; got != 6 {
		t.Fatalf("size %d, want 6", got)
	}
	md.Close()

	put(t, dir, "new/1500000001.1.procmail", "a much longer body\n", time.Time{})
	md = open(t, s, alice)
	if got := md.Messages()[0].Size; got != 6 {
		t.Errorf("size %d after the body changed, want the indexed 6", got)
	}
}

// Another program moves a message to cur/ and flags it during a session:
// the session still reads it, deletes it, and its id does not change.
func TestMovedDuringSession(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1500000001.a.host,S=2", "1\n", time.Time{})
	put(t, dir, "new/1500000002.b.host,S=2", "2\n", time.Time{})
	put(t, dir, "new/1500000003.c.host,S=2", "3\n", time.Time{})
	md := open(t, s, alice)
	uids := []string{md.Messages()[0].UID, md.Messages()[1].UID, md.Messages()[2].UID}

	mv := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	mv("new/1500000001.a.host,S=2", "cur/1500000001.a.host,S=2:2,S")
	mv("new/1500000002.b.host,S=2", "cur/1500000002.b.host,S=2:2,")
	mv("cur/1500000002.b.host,S=2:2,", "cur/1500000002.b.host,S=2:2,FS")
	if got := read(t, md, 0); got != "1\n" {
		t.Errorf("moved message: %q", got)
	}
	// And a new one arrives, and one goes.
	put(t, dir, "new/1500000004.d.host", "4\n", time.Time{})
	if err := os.Remove(filepath.Join(dir, "new/1500000003.c.host,S=2")); err != nil {
		t.Fatal(err)
	}
	if _, err := md.Open(t.Context(), 2); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("Open of a removed message: %v", err)
	}
	if err := md.Commit(t.Context(), []int{1, 2}, []int{0}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()

	if _, err := os.Stat(filepath.Join(dir, "cur/1500000002.b.host,S=2:2,FS")); !os.IsNotExist(err) {
		t.Errorf("deleted, moved message still there: %v", err)
	}
	md = open(t, s, alice)
	msgs := md.Messages()
	if len(msgs) != 2 || msgs[0].UID != uids[0] || msgs[0].FirstRetrieved.IsZero() {
		t.Fatalf("after the session: %+v, want %q retrieved first", msgs, uids[0])
	}
	for _, u := range uids {
		if msgs[1].UID == u {
			t.Errorf("new message reused UID %q", u)
		}
	}
}

// Deliver writes what Dovecot would: a file in new/ with both sizes in its
// name, nothing left in tmp/.
func TestDeliverFileName(t *testing.T) {
	s, base := newTestStore(t, Config{Hostname: "mx/1:a,b"})
	dir := filepath.Join(base, "alice", "Maildir")
	info, err := s.Deliver(t.Context(), alice, strings.NewReader("a\nb\r\nc"))
	if err != nil {
		t.Fatal(err)
	}
	// 7 octets with CRLF line ends, plus the CRLF RETR adds to the
	// unfinished last line.
	// The unique id is assigned at delivery (it used to be left to the
	// next Open); the next session must show the same one.
	if info.Size != 9 || info.UID == "" || info.Received.IsZero() {
		t.Errorf("Deliver returned %+v", info)
	}
	names := listDir(t, filepath.Join(dir, "new"))
	if len(names) != 1 {
		t.Fatalf("new/ holds %q", names)
	}
	fn := parseName(names[0])
	if fn.size != 6 || fn.vsize != 9 || fn.received != info.Received.Unix() || fn.hasInfo {
		t.Errorf("delivered name %q parses as %+v", names[0], fn)
	}
	if !strings.HasSuffix(fn.base, `.mx\0571\072a\054b,S=6,W=9`) {
		t.Errorf("delivered name %q: host not escaped as Dovecot does", names[0])
	}
	if tmp := listDir(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %q after delivery", tmp)
	}
	if md := open(t, s, alice); len(md.Messages()) != 1 || md.Messages()[0].UID != info.UID {
		t.Errorf("next session shows %+v, want the UID %q Deliver returned", md.Messages(), info.UID)
	}
}

type brokenReader struct{}

func (brokenReader) Read(p []byte) (int, error) { return 0, errors.New("broken pipe") }

func TestDeliverFailureLeavesNothing(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	if _, err := s.Deliver(t.Context(), alice, io.MultiReader(strings.NewReader("partial"), brokenReader{})); err == nil {
		t.Fatal("Deliver succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Deliver(ctx, alice, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with a canceled context: %v", err)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if names := listDir(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s/ holds %q after failed deliveries", sub, names)
		}
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A deletion that fails is reported with a count, and the message stays
// listed with its id.
func TestCommitReportsFailedDeletions(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1500000001.a.host", "1\n", time.Time{})
	put(t, dir, "new/1500000002.b.host", "2\n", time.Time{})
	md := open(t, s, alice)
	uid := md.Messages()[0].UID
	// A non-empty directory where the file was cannot be unlinked.
	victim := filepath.Join(dir, "new/1500000001.a.host")
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	put(t, dir, "new/1500000001.a.host/blocker", "", time.Time{})
	err := md.Commit(t.Context(), []int{0, 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 deletions failed") {
		t.Fatalf("Commit: %v, want a count of failed deletions", err)
	}
	md.Close()
	os.RemoveAll(victim)
	put(t, dir, "new/1500000001.a.host", "1\n", time.Time{})
	md = open(t, s, alice)
	if msgs := md.Messages(); len(msgs) != 1 || msgs[0].UID != uid {
		t.Errorf("after a failed deletion: %+v, want only %q", msgs, uid)
	}
}

// A damaged index is an error, not a silent renumbering of every message.
func TestCorruptIndex(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, indexFile, "postoffice-maildir-index 1\nuidvalidity 5\nnextuid x\n", time.Time{})
	if md, err := s.Open(t.Context(), alice); err == nil {
		md.Close()
		t.Fatal("Open with a corrupt index succeeded")
	}
	// The failed Open released the lock.
	os.Remove(filepath.Join(dir, indexFile))
	open(t, s, alice)
}

// Deliberately old tmp/ files are cleaned up at login (the Maildir
// specification's 36 hours); recent ones, perhaps a delivery in progress,
// are not.
func TestCleanTmp(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "tmp/old", "x", time.Now().Add(-37*time.Hour))
	put(t, dir, "tmp/recent", "x", time.Now().Add(-time.Hour))
	open(t, s, alice)
	if names := listDir(t, filepath.Join(dir, "tmp")); len(names) != 1 || names[0] != "recent" {
		t.Errorf("tmp/ holds %q, want [recent]", names)
	}
}

// On a full disk (or quota) a login still gets the messages that have
// their unique ids; the ones the index cannot take yet are left for a
// later session, where they get the next ids, and no id changes.
func TestOpenWithoutSpaceForIndex(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		serve bool
	}{
		{"disk full", syscall.ENOSPC, true},
		{"quota", syscall.EDQUOT, true},
		{"other error", syscall.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, base := newTestStore(t, Config{})
			dir := filepath.Join(base, "alice", "Maildir")
			put(t, dir, "new/1500000001.a.host", "1\n", time.Time{})
			md := open(t, s, alice)
			first := md.Messages()[0].UID
			md.Close()

			put(t, dir, "new/1500000002.b.host", "2\n", time.Time{})
			s.faultHook = func(step string) error {
				if step == "write-index" {
					return fmt.Errorf("write index: %w", tc.err)
				}
				return nil
			}
			got, err := s.Open(t.Context(), alice)
			if !tc.serve {
				if err == nil {
					got.Close()
					t.Fatal("Open succeeded though the index could not be written")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			msgs := got.Messages()
			if len(msgs) != 1 || msgs[0].UID != first {
				t.Errorf("without space: %+v, want only the indexed message %q", msgs, first)
			}
			got.Close()

			s.faultHook = nil
			md = open(t, s, alice)
			msgs = md.Messages()
			want := fmt.Sprintf("%08X%08X", 2, md.uidValidity)
			if len(msgs) != 2 || msgs[0].UID != first || msgs[1].UID != want {
				t.Errorf("with space again: %+v, want %q and %q", msgs, first, want)
			}
		})
	}
	// A maildrop without an index yet has no ids to serve.
	s, base := newTestStore(t, Config{})
	put(t, filepath.Join(base, "alice", "Maildir"), "new/1500000001.a.host", "1\n", time.Time{})
	s.faultHook = func(string) error { return syscall.ENOSPC }
	if md, err := s.Open(t.Context(), alice); err == nil {
		md.Close()
		t.Error("Open without an index and without space succeeded")
	}
}

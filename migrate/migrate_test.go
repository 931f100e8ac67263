package migrate

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/pgtest"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

var cluster = pgtest.New()

func TestMain(m *testing.M) { os.Exit(cluster.Run(m)) }

func newPostgres(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{DSN: cluster.Database(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// maildirRoots remembers where each test Maildir store keeps its maildrops.
var maildirRoots sync.Map

func newMaildir(t *testing.T) *maildir.Store {
	t.Helper()
	root := t.TempDir()
	s, err := maildir.New(maildir.Config{Location: filepath.Join(root, "{user}", "Maildir")})
	if err != nil {
		t.Fatal(err)
	}
	maildirRoots.Store(s, root)
	return s
}

// snapshot is what a POP3 client sees of a maildrop: ids, sizes, times
// and contents, in order.
type snapshot struct {
	infos    []store.MessageInfo
	contents []string
}

func look(t *testing.T, st store.Store, acct store.Account) snapshot {
	t.Helper()
	md, err := st.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	snap := snapshot{infos: slices.Clone(md.Messages())}
	for i := range snap.infos {
		r, err := md.Open(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		snap.contents = append(snap.contents, string(b))
	}
	return snap
}

func sameSnapshot(t *testing.T, got, want snapshot) {
	t.Helper()
	if len(got.infos) != len(want.infos) {
		t.Fatalf("%d messages, want %d", len(got.infos), len(want.infos))
	}
	for i := range want.infos {
		g, w := got.infos[i], want.infos[i]
		if g.UID != w.UID || g.Size != w.Size || g.Received.Unix() != w.Received.Unix() || g.FirstRetrieved.Unix() != w.FirstRetrieved.Unix() {
			t.Errorf("message %d: %+v, want %+v", i, g, w)
		}
		if got.contents[i] != want.contents[i] {
			t.Errorf("message %d: content differs", i)
		}
	}
}

// cancelAfter is a Progress that cancels the run after n messages: an
// interrupted migration.
type cancelAfter struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Start(string, int, int64) {}
func (c *cancelAfter) Advance(int64) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
}
func (c *cancelAfter) Done(int, int, error) {}

// Maildir to PostgreSQL and back: unique ids, order, sizes, times,
// contents and flags survive both ways; an interrupted run resumes without
// duplicates; the next delivery gets an id never used before.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	md, pg, back := newMaildir(t), newPostgres(t), newMaildir(t)
	acct := store.Account{Name: "alice"}
	for i := range 12 {
		body := fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)
		if i == 5 {
			body = strings.Repeat("a long line of a large message\n", 30000) // several chunks
		}
		if _, err := md.Deliver(t.Context(), acct, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	// A session retrieves message 1 and deletes message 2: a gap in the
	// numbers and a first-retrieval time to keep.
	sess, err := md.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Commit(t.Context(), []int{2}, []int{1}); err != nil {
		t.Fatal(err)
	}
	sess.Close()
	// A mail client flagged message 3 as seen and replied.
	flagFirstNew(t, mustDir(t, md), "RS")
	want := look(t, md, acct)

	// Interrupted after 4 messages, then resumed.
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := Run(ctx, Maildir(md), Postgres(pg), []store.Account{acct}, &cancelAfter{n: 4, cancel: cancel}); err == nil {
		t.Fatal("interrupted run reported no error")
	}
	res, err := Run(t.Context(), Maildir(md), Postgres(pg), []store.Account{acct}, nil)
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("resumed run: %+v, %v", res, err)
	}
	if res.Skipped != 4 || res.Copied != len(want.infos)-4 {
		t.Errorf("resumed run copied %d and skipped %d, want %d and 4", res.Copied, res.Skipped, len(want.infos)-4)
	}
	sameSnapshot(t, look(t, pg, acct), want)
	if u, _ := pg.Usage(t.Context(), acct); u.Messages != int64(len(want.infos)) {
		t.Errorf("Usage = %+v", u)
	}
	// A third run copies nothing.
	if res, _ := Run(t.Context(), Maildir(md), Postgres(pg), []store.Account{acct}, nil); res.Copied != 0 {
		t.Errorf("third run copied %d", res.Copied)
	}

	// And back into a fresh Maildir.
	res, err = Run(t.Context(), Postgres(pg), Maildir(back), []store.Account{acct}, nil)
	if err != nil || len(res.Failed) > 0 || res.Copied != len(want.infos) {
		t.Fatalf("back to Maildir: %+v, %v", res, err)
	}
	sameSnapshot(t, look(t, back, acct), want)
	if got := flagsOf(t, mustDir(t, back)); !slices.Contains(got, "2,RS") {
		t.Errorf("flags after the round trip: %q, want one 2,RS", got)
	}

	// New mail after a migration continues the numbering: no id of the
	// source (not even the deleted message's) is handed out again.
	seen := map[string]bool{}
	for _, m := range want.infos {
		seen[m.UID] = true
	}
	for _, st := range []store.Deliverer{pg, back} {
		info, err := st.Deliver(t.Context(), acct, strings.NewReader("Subject: new\n\nx\n"))
		if err != nil {
			t.Fatal(err)
		}
		if seen[info.UID] || info.UID <= want.infos[len(want.infos)-1].UID {
			t.Errorf("new delivery got UID %q, not after the migrated ones", info.UID)
		}
	}
}

// A destination holding other mail is not merged into.
func TestDestinationNotEmpty(t *testing.T) {
	t.Parallel()
	md, pg := newMaildir(t), newPostgres(t)
	acct := store.Account{Name: "bob"}
	md.Deliver(t.Context(), acct, strings.NewReader("Subject: a\n\nx\n"))
	time.Sleep(1100 * time.Millisecond) // another uid validity
	pg.Deliver(t.Context(), acct, strings.NewReader("Subject: b\n\ny\n"))
	res, err := Run(t.Context(), Maildir(md), Postgres(pg), []store.Account{acct}, nil)
	if err != nil || res.Failed["bob"] == nil {
		t.Errorf("Run into a non-empty maildrop: %+v, %v; want bob failed", res, err)
	}
}

// mustDir is the account's maildir path in a test store.
func mustDir(t *testing.T, s *maildir.Store) string {
	t.Helper()
	root, _ := maildirRoots.Load(s)
	return filepath.Join(root.(string), "alice", "Maildir")
}

// flagFirstNew moves the first file of new/ to cur/ with flags, as a mail
// client would.
func flagFirstNew(t *testing.T, dir, flags string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "new", "*"))
	slices.Sort(names)
	if len(names) == 0 {
		t.Fatal("no message in new/")
	}
	if err := os.Rename(names[0], filepath.Join(dir, "cur", filepath.Base(names[0])+":2,"+flags)); err != nil {
		t.Fatal(err)
	}
}

func flagsOf(t *testing.T, dir string) []string {
	names, _ := filepath.Glob(filepath.Join(dir, "cur", "*"))
	var out []string
	for _, n := range names {
		if _, info, ok := strings.Cut(filepath.Base(n), ":"); ok {
			out = append(out, info)
		}
	}
	return out
}

// A unique id of another form than the generated one (a maildrop
// imported into PostgreSQL from another server, say) is carried into
// Maildir as it is: the index keeps it as an explicit id, and the round
// trip back to PostgreSQL keeps it too.
func TestForeignIDToMaildir(t *testing.T) {
	t.Parallel()
	pg, back, again := newPostgres(t), newMaildir(t), newPostgres(t)
	acct := store.Account{Name: "carol"}
	for i := range 3 {
		pg.Deliver(t.Context(), acct, strings.NewReader(fmt.Sprintf("Subject: %d\n\nx\n", i)))
	}
	if _, err := pg.Pool().Exec(t.Context(), "UPDATE messages SET unique_id = 'dovecot-imported-1' WHERE uid = 2"); err != nil {
		t.Fatal(err)
	}
	want := look(t, pg, acct)
	if want.infos[1].UID != "dovecot-imported-1" {
		t.Fatalf("fixture: %+v", want.infos)
	}
	res, err := Run(t.Context(), Postgres(pg), Maildir(back), []store.Account{acct}, nil)
	if err != nil || len(res.Failed) != 0 || res.Copied != 3 {
		t.Fatalf("Run = %+v, %v; want 3 messages copied", res, err)
	}
	sameSnapshot(t, look(t, back, acct), want)
	res, err = Run(t.Context(), Maildir(back), Postgres(again), []store.Account{acct}, nil)
	if err != nil || len(res.Failed) != 0 || res.Copied != 3 {
		t.Fatalf("Run back = %+v, %v; want 3 messages copied", res, err)
	}
	sameSnapshot(t, look(t, again, acct), want)
}

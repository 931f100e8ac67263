package maildir

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// waitSettled waits until the maildir's current stamps are old enough to
// be cached (the file system here has fine timestamps).
func waitSettled() { time.Sleep(cacheSettleFine + 50*time.Millisecond) }

// cachedOpen opens alice's maildrop until its snapshot is in the cache,
// and returns the directory.
func cachedOpen(t *testing.T, s *Store, base string) string {
	t.Helper()
	dir := filepath.Join(base, "alice", "Maildir")
	for range 3 {
		open(t, s, alice).Close()
		if s.snapshots.byDir[dir] != nil {
			return dir
		}
		waitSettled()
	}
	t.Fatal("snapshot never cached")
	return ""
}

func uids(md *maildrop) []string {
	var out []string
	for _, m := range md.Messages() {
		out = append(out, m.UID)
	}
	return out
}

func TestSnapshotCacheHit(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1600000001.a.host", "Subject: a\n\none\n", time.Time{})
	put(t, dir, "cur/1600000002.b.host:2,S", "Subject: b\n\ntwo\n", time.Time{})
	cachedOpen(t, s, base)
	md := open(t, s, alice)
	if !md.sharedFiles {
		t.Fatal("a settled maildrop was read again instead of coming from the cache")
	}
	if got := read(t, md, 1); got != "Subject: b\n\ntwo\n" {
		t.Errorf("message 2 from a cached snapshot: %q", got)
	}
	if len(md.Messages()) != 2 {
		t.Errorf("%d messages", len(md.Messages()))
	}
}

// Whatever another program does to a maildrop whose snapshot is cached is
// seen at the very next login, without waiting for anything to settle.
func TestSnapshotCacheSeesChanges(t *testing.T) {
	changes := []struct {
		name   string
		change func(t *testing.T, s *Store, dir string)
		want   int // messages after the change
	}{
		{"delivered to new/ by another program", func(t *testing.T, s *Store, dir string) {
			put(t, dir, "new/1600000009.z.host", "Subject: z\n\nlate\n", time.Time{})
		}, 3},
		{"moved to cur/ with flags", func(t *testing.T, s *Store, dir string) {
			must(t, os.Rename(filepath.Join(dir, "new/1600000001.a.host"), filepath.Join(dir, "cur/1600000001.a.host:2,S")))
		}, 2},
		{"flag changed", func(t *testing.T, s *Store, dir string) {
			must(t, os.Rename(filepath.Join(dir, "cur/1600000002.b.host:2,S"), filepath.Join(dir, "cur/1600000002.b.host:2,RS")))
		}, 2},
		{"deleted by another program", func(t *testing.T, s *Store, dir string) {
			must(t, os.Remove(filepath.Join(dir, "cur/1600000002.b.host:2,S")))
		}, 1},
		{"delivered by this store", func(t *testing.T, s *Store, dir string) {
			if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: d\n\nd\n")); err != nil {
				t.Fatal(err)
			}
		}, 3},
		{"a message deleted by a session", func(t *testing.T, s *Store, dir string) {
			md := open(t, s, alice)
			must(t, md.Commit(t.Context(), []int{0}, nil))
			md.Close()
		}, 1},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			s, base := newTestStore(t, Config{})
			dir := filepath.Join(base, "alice", "Maildir")
			put(t, dir, "new/1600000001.a.host", "Subject: a\n\none\n", time.Time{})
			put(t, dir, "cur/1600000002.b.host:2,S", "Subject: b\n\ntwo\n", time.Time{})
			cachedOpen(t, s, base)
			md := open(t, s, alice)
			before := uids(md)
			if !md.sharedFiles {
				t.Fatal("snapshot not from the cache")
			}
			md.Close()
			c.change(t, s, dir)
			md = open(t, s, alice)
			if len(md.Messages()) != c.want {
				t.Fatalf("%d messages after the change, want %d", len(md.Messages()), c.want)
			}
			for i := range md.Messages() {
				read(t, md, i) // every message is where the snapshot says
			}
			// Messages that stayed keep their unique ids.
			for _, uid := range uids(md)[:min(c.want, 2)] {
				if c.want < 3 && !slices.Contains(before, uid) {
					t.Errorf("unique id %s is new; before: %q", uid, before)
				}
			}
		})
	}
}

// A session that finds a message moved copies its file list rather than
// change the cached one.
func TestSnapshotCacheNotModifiedBySession(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1600000001.a.host", "Subject: a\n\none\n", time.Time{})
	cachedOpen(t, s, base)
	cached := s.snapshots.byDir[dir]
	md := open(t, s, alice)
	must(t, os.Rename(filepath.Join(dir, "new/1600000001.a.host"), filepath.Join(dir, "cur/1600000001.a.host:2,S")))
	read(t, md, 0)
	if cached.files[0].cur {
		t.Error("the session's relocation changed the cached snapshot")
	}
	if !md.files[0].cur {
		t.Error("the session did not follow the moved file")
	}
}

// A snapshot is cached only when its stamps are older than the settling
// time, which is long for a file system whose times are whole seconds.
func TestSettled(t *testing.T) {
	now := time.Unix(1700000100, 500_000_000)
	at := func(ago time.Duration) fileStamp {
		ns := now.Add(-ago).UnixNano()
		return fileStamp{mtime: ns, ctime: ns}
	}
	key := func(s fileStamp) snapKey { return snapKey{index: at(time.Hour), newDir: s, curDir: at(time.Hour)} }
	for _, c := range []struct {
		stamp fileStamp
		want  bool
	}{
		{at(0), false},
		{at(50 * time.Millisecond), false},
		{at(200 * time.Millisecond), true},
		{fileStamp{mtime: at(time.Hour).mtime, ctime: at(10 * time.Millisecond).ctime}, false},
		{fileStamp{mtime: 1700000099e9, ctime: 1700000099e9}, false}, // whole seconds, 1.5 s ago
		{fileStamp{mtime: 1700000097e9, ctime: 1700000097e9}, true},  // whole seconds, 3.5 s ago
	} {
		if got := key(c.stamp).settled(now); got != c.want {
			t.Errorf("stamp %+v: settled = %v, want %v", c.stamp, got, c.want)
		}
	}
}

// The cache holds at most its limit of messages, dropping the least
// recently used maildrops.
func TestSnapshotCacheLimit(t *testing.T) {
	var c snapshotCache
	c.limit = 10
	snap := func(n int) *cachedSnapshot { return &cachedSnapshot{infos: make([]store.MessageInfo, n)} }
	c.put("a", snap(4))
	time.Sleep(time.Millisecond)
	c.put("b", snap(4))
	c.put("c", snap(4)) // evicts a
	if c.byDir["a"] != nil || c.byDir["b"] == nil || c.byDir["c"] == nil || c.messages != 8 {
		t.Errorf("after eviction: %v, %d messages", keys(c.byDir), c.messages)
	}
	c.put("big", snap(11)) // over the limit alone: not cached
	if c.byDir["big"] != nil {
		t.Error("a snapshot larger than the cache was cached")
	}
}

func keys(m map[string]*cachedSnapshot) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A session whose index was removed behind its back writes one from its
// snapshot at QUIT, with the same unique ids (for a cached snapshot too).
func TestCommitAfterIndexRemoved(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := cachedOpenWith(t, s, base)
	md := open(t, s, alice)
	if !md.sharedFiles {
		t.Fatal("snapshot not from the cache")
	}
	before := uids(md)
	must(t, os.Remove(filepath.Join(dir, indexFile)))
	must(t, md.Commit(t.Context(), []int{0}, nil))
	md.Close()
	md = open(t, s, alice)
	if got := uids(md); len(got) != 1 || got[0] != before[1] {
		t.Errorf("after the commit: %q, want [%s]", got, before[1])
	}
}

func cachedOpenWith(t *testing.T, s *Store, base string) string {
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1600000001.a.host", "Subject: a\n\none\n", time.Time{})
	put(t, dir, "cur/1600000002.b.host:2,S", "Subject: b\n\ntwo\n", time.Time{})
	return cachedOpen(t, s, base)
}

// An index written a moment ago (by the first login) need not settle: the
// next logins compare its content, and find the snapshot in the cache.
func TestSnapshotCacheFreshIndex(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	put(t, dir, "new/1600000001.a.host", "Subject: a\n\none\n", time.Time{})
	put(t, dir, "cur/1600000002.b.host:2,S", "Subject: b\n\ntwo\n", time.Time{})
	waitSettled()
	open(t, s, alice).Close() // writes the index
	open(t, s, alice).Close() // reads it and the listing; caches
	md := open(t, s, alice)
	if !md.sharedFiles {
		t.Fatal("a fresh index with settled directories was not taken from the cache")
	}
	md.Close()

	// The index changed in place, same size, different content: the
	// cached snapshot must not be used.
	ixPath := filepath.Join(dir, indexFile)
	data, err := os.ReadFile(ixPath)
	must(t, err)
	changed := strings.Replace(string(data), " 19 ", " 18 ", 1) // a size, same length
	if changed == string(data) {
		t.Fatalf("no size field to change in %q", data)
	}
	must(t, os.WriteFile(ixPath, []byte(changed), 0o600))
	md = open(t, s, alice)
	if got := md.Messages()[0].Size; got != 18 {
		t.Errorf("changed index: size %d from the cache, want 18 from the file", got)
	}
}

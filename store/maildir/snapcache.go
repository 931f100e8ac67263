package maildir

import (
	"errors"
	"hash/maphash"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// The snapshot cache. A login normally reads the index and lists new/ and
// cur/, which on a large maildrop is most of the cost of a STAT. The Store
// keeps the last snapshot of recently opened maildrops in memory, with
// the identity of the index file and of the two directories it was taken
// from (inode, size, modification and change time). When a later Open
// finds all three unchanged, the files and the index are what they were,
// and the snapshot is reused without reading either: three stat calls
// instead of a read and two directory listings.
//
// Every way a maildrop changes shows in those stamps: a delivery appends
// to the index (size, times) or rewrites it (a new inode), and renames into
// new/ (the directory's times); another program delivering, moving a
// message from new/ to cur/, changing its flags or deleting it changes a
// directory's times; Commit rewrites the index. The change time (ctime)
// catches programs that set a directory's modification time back (rsync
// does).
//
// What the stamps cannot show is a change within one tick of the file
// system's clock after they were read: a directory modified twice in the
// same tick keeps its time. So the stamps of new/ and cur/ are trusted
// only when they are older than a settling time by the file system's own
// clock — the time of the session lock file just written (lease.taken),
// not this host's clock, which may differ from an NFS server's. Any change
// after that carries a later time. (A file system clock that steps
// backwards defeats this, as it defeats every mtime-based cache,
// Dovecot's included.) The index, which is often just written (by the
// first login, by a delivery, by a QUIT), does not have to wait: while its
// stamp is not settled, a login reads it and compares its content (a
// 64-bit hash) with the cached one — a read and a hash instead of parsing
// it and listing the directories.

// The settling time is well above the granularity of the file system's
// timestamps. Linux file systems with nanosecond fields (ext4, XFS,
// Btrfs, tmpfs, NFS from a Linux server) take them from the kernel's
// coarse clock, which ticks at least every 10 ms; a file system whose
// times are whole seconds (HFS+, FAT's 2 s, some NFS servers) shows no
// sub-second part in any of them and gets the longer wait.
const (
	cacheSettleFine   = 100 * time.Millisecond
	cacheSettleCoarse = 2100 * time.Millisecond
)

// DefaultSnapshotCache is the default Config.SnapshotCacheMessages.
const DefaultSnapshotCache = 250_000

// fileStamp identifies one version of a file or directory.
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // Unix nanoseconds
}

// snapKey is what a snapshot was taken from.
type snapKey struct {
	index, newDir, curDir fileStamp
}

// stampOf returns the identity of a file; ok is false where the system
// does not report a change time.
func stampOf(info os.FileInfo) (fileStamp, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, false
	}
	ctime, ok := changeTime(st)
	if !ok {
		return fileStamp{}, false
	}
	return fileStamp{dev: uint64(st.Dev), ino: uint64(st.Ino), size: info.Size(),
		mtime: info.ModTime().UnixNano(), ctime: ctime}, true
}

// settled reports whether every stamp is older than the settling time
// before now (the file system's time).
func (k snapKey) settled(now time.Time) bool {
	return settled(now, k.index, k.newDir, k.curDir)
}

// dirsSettled is settled for new/ and cur/ alone.
func (k snapKey) dirsSettled(now time.Time) bool {
	return settled(now, k.newDir, k.curDir)
}

func settled(now time.Time, stamps ...fileStamp) bool {
	settle := cacheSettleFine
	for _, s := range stamps {
		if s.mtime%1e9 == 0 || s.ctime%1e9 == 0 {
			settle = cacheSettleCoarse // whole seconds: a coarse clock
		}
	}
	limit := now.Add(-settle).UnixNano()
	for _, s := range stamps {
		if s.mtime > limit || s.ctime > limit {
			return false
		}
	}
	return true
}

// indexSeed keys the hashes of index contents (in this process only).
var indexSeed = maphash.MakeSeed()

// indexSum is the hash of an index file's content.
func indexSum(data []byte) uint64 { return maphash.Bytes(indexSeed, data) }

// stamps reads the identities of the index, new/ and cur/. It creates
// new/, cur/ and tmp/ if one of the first two is missing (a maildrop used
// for the first time, or one whose directories another program removed).
// ok is false when there is no usable key: no index yet, a directory just
// created, or a system without change times.
func (s *Store) stamps(root *os.Root) (key snapKey, ok bool, err error) {
	ok = true
	for _, d := range []struct {
		name  string
		stamp *fileStamp
	}{{dirNew, &key.newDir}, {dirCur, &key.curDir}} {
		info, err := root.Stat(d.name)
		if errors.Is(err, fs.ErrNotExist) {
			if err := makeSubdirs(root); err != nil {
				return key, false, err
			}
			ok = false
			continue
		}
		if err != nil {
			return key, false, err
		}
		var good bool
		*d.stamp, good = stampOf(info)
		ok = ok && good
	}
	info, err := root.Lstat(indexFile)
	if errors.Is(err, fs.ErrNotExist) {
		return key, false, nil
	}
	if err != nil {
		return key, false, err
	}
	var good bool
	key.index, good = stampOf(info)
	return key, ok && good, nil
}

// makeSubdirs creates whichever of new/, cur/ and tmp/ is missing.
func makeSubdirs(root *os.Root) error {
	for _, sub := range []string{dirNew, dirCur, dirTmp} {
		if err := root.Mkdir(sub, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// snapshotCache holds the snapshots of recently opened maildrops, up to a
// total number of messages.
type snapshotCache struct {
	mu       sync.Mutex
	limit    int // messages; 0 disables the cache
	byDir    map[string]*cachedSnapshot
	messages int
}

// cachedSnapshot is a snapshot shared by the sessions that use it: none
// of its parts is ever modified (a session that must change its file list
// copies it first, see maildrop.relocate).
type cachedSnapshot struct {
	key snapKey
	// sum is the hash of the index content the snapshot was made from.
	sum                  uint64
	uids                 []uint64
	uidValidity, nextUID uint64
	infos                []store.MessageInfo
	files                []msgFile
	used                 time.Time
}

// get returns the snapshot of dir if the maildrop is as it was when it
// was taken: new/ and cur/ with the same settled stamps (now is the file
// system's time), and the index with the same settled stamp or, if its
// stamp is not settled or differs, the same content (readIndex reads it
// then; a mismatch drops the entry).
func (c *snapshotCache) get(dir string, key snapKey, now time.Time, readIndex func() ([]byte, error)) *cachedSnapshot {
	c.mu.Lock()
	e := c.byDir[dir]
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	if e.key.newDir != key.newDir || e.key.curDir != key.curDir || !key.dirsSettled(now) ||
		e.key.index.size != key.index.size {
		c.drop(dir)
		return nil
	}
	if e.key.index != key.index || !settled(now, key.index) {
		data, err := readIndex()
		if err != nil || int64(len(data)) != e.key.index.size || indexSum(data) != e.sum {
			c.drop(dir)
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDir[dir] != e {
		return nil // replaced meanwhile
	}
	e.used = time.Now()
	if e.key.index != key.index {
		// The same content under new stamps (rewritten as it was): the
		// new stamps will do once they settle.
		updated := *e
		updated.key.index = key.index
		c.byDir[dir] = &updated
		e = &updated
	}
	return e
}

// put remembers the snapshot of dir, evicting the least recently used
// ones beyond the limit.
func (c *snapshotCache) put(dir string, e *cachedSnapshot) {
	if len(e.infos) > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byDir == nil {
		c.byDir = make(map[string]*cachedSnapshot)
	}
	c.dropLocked(dir)
	for c.messages+len(e.infos) > c.limit {
		oldest := ""
		var at time.Time
		for d, x := range c.byDir {
			if oldest == "" || x.used.Before(at) {
				oldest, at = d, x.used
			}
		}
		c.dropLocked(oldest)
	}
	e.used = time.Now()
	c.byDir[dir] = e
	c.messages += len(e.infos)
}

// drop forgets the snapshot of dir.
func (c *snapshotCache) drop(dir string) {
	c.mu.Lock()
	c.dropLocked(dir)
	c.mu.Unlock()
}

func (c *snapshotCache) dropLocked(dir string) {
	if e := c.byDir[dir]; e != nil {
		c.messages -= len(e.infos)
		delete(c.byDir, dir)
	}
}

// tmpCleaner remembers when each maildrop's tmp/ was last cleaned: the
// Maildir rule is 36 hours, so once an hour is plenty, and a login need
// not list tmp/ every time.
type tmpCleaner struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// tmpCleanInterval is how often a maildrop's tmp/ is looked at.
const tmpCleanInterval = time.Hour

// due reports whether dir's tmp/ should be cleaned now, and if so notes
// that it is being done.
func (t *tmpCleaner) due(dir string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[dir]; ok && now.Sub(last) < tmpCleanInterval && now.After(last) {
		return false
	}
	if t.last == nil || len(t.last) >= 100_000 {
		t.last = make(map[string]time.Time) // bounded: start over
	}
	t.last[dir] = now
	return true
}

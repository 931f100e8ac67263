package maildir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postoffice-mail/postoffice/pop3"
)

// msgFile is where a message's file is, as last seen.
type msgFile struct {
	base string // the message's identity (see fileName)
	name string // the full file name, with flags
	cur  bool   // in cur/ rather than new/
}

// path is the file's name relative to the maildir root.
func (f msgFile) path() string {
	if f.cur {
		return dirCur + "/" + f.name
	}
	return dirNew + "/" + f.name
}

// scan lists the messages in new/ and cur/ by base name.
//
// It reads new/ before cur/: a message that another program moves from
// new/ to cur/ meanwhile is then seen at least once (twice at worst, and
// the cur/ name wins), never missed.
func (s *Store) scan(root *os.Root, dir string) (map[string]msgFile, error) {
	files := make(map[string]msgFile)
	for _, cur := range []bool{false, true} {
		if err := s.scanDir(root, dir, cur, files); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// scanConfirmed is scan for a caller that takes a message missing from
// the listing for deleted: when one of the bases expected is missing, it
// lists once more and takes the second listing's names. readdir(3) may
// skip a file that another program renames while the directory is read
// (POSIX leaves that open, and ext4's hashed directories do it when the
// new name sorts before the position reached); taking it for deleted
// would drop its index record, and with it its unique id, or answer a
// RETR with "removed by another program".
func (s *Store) scanConfirmed(root *os.Root, dir string, expected iter.Seq[string]) (map[string]msgFile, error) {
	files, err := s.scan(root, dir)
	if err != nil {
		return nil, err
	}
	for base := range expected {
		if _, ok := files[base]; !ok {
			again, err := s.scan(root, dir)
			if err != nil {
				return nil, err
			}
			maps.Copy(files, again)
			break
		}
	}
	return files, nil
}

// scanDir adds the messages of new/ or cur/ to files.
func (s *Store) scanDir(root *os.Root, dir string, cur bool, files map[string]msgFile) error {
	sub := dirNew
	if cur {
		sub = dirCur
	}
	d, err := root.Open(sub)
	if err != nil {
		return fmt.Errorf("scan maildir: %w", err)
	}
	// Names only: no sort, and no stat per entry even on file systems
	// whose directory entries do not carry the file type. Whether an
	// entry is a regular file is checked once, when it is new (describe);
	// known messages were regular files when they were indexed, and
	// openFile checks again.
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("scan maildir %s: %w", sub, err)
	}
	for _, name := range names {
		// Dot-files are not messages (maildir convention).
		if strings.HasPrefix(name, ".") {
			continue
		}
		base, _, _ := strings.Cut(name, ":")
		if !validBase(base) {
			s.logger.Warn("ignoring maildir file with an unusable name", "maildir", dir, "file", sub+"/"+name)
			continue
		}
		if old, dup := files[base]; dup && old.cur == cur {
			s.logger.Warn("two maildir files with one base name; using one", "maildir", dir,
				"file", sub+"/"+name, "other", old.path())
		}
		files[base] = msgFile{base: base, name: name, cur: cur}
	}
	return nil
}

// freshMessage is a file that the index does not know yet.
type freshMessage struct {
	file     msgFile
	received int64
	vsize    int64
}

// describeWorkers bounds the files describeAll reads at once: enough to
// keep both the disk and every core busy on a first login to a large
// maildrop.
var describeWorkers = max(4, 2*runtime.GOMAXPROCS(0))

// describeAll describes the files the index does not know yet (see
// describe), several at a time. It returns the messages, and the base
// names of the files that turned out not to be messages or are gone.
func (s *Store) describeAll(ctx context.Context, root *os.Root, dir string, unknown []msgFile) ([]freshMessage, []string, error) {
	if len(unknown) == 0 {
		return nil, nil, nil
	}
	var dirs [2]*dirFile // new/, cur/
	for i, sub := range []string{dirNew, dirCur} {
		d, err := openDir(root, sub)
		if err != nil {
			dirs[0].close()
			return nil, nil, fmt.Errorf("scan maildir: %w", err)
		}
		dirs[i] = d
	}
	defer dirs[0].close()
	defer dirs[1].close()
	results := make([]freshMessage, len(unknown))
	ok := make([]bool, len(unknown))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(unknown), describeWorkers) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(unknown) {
					return
				}
				d := dirs[0]
				if unknown[i].cur {
					d = dirs[1]
				}
				results[i], ok[i] = s.describe(root, d.fd, dir, unknown[i])
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	fresh := results[:0]
	var skipped []string
	for i, m := range results {
		if ok[i] {
			fresh = append(fresh, m)
		} else {
			skipped = append(skipped, unknown[i].base)
		}
	}
	return fresh, skipped, nil
}

// describe checks that a file the index does not know yet is a message
// and learns its arrival time and CRLF size: from its name if it says
// (Dovecot and this package write ",W="; almost every deliverer starts the
// name with the time), else from the file. ok is false if it is not a
// message (not a regular file: a directory, a FIFO that would block a
// reader, a symbolic link that might point anywhere) or has gone since the
// scan. dirfd is f's directory, new/ or cur/.
func (s *Store) describe(root *os.Root, dirfd int, dir string, f msgFile) (fresh freshMessage, ok bool) {
	fn := parseName(f.name)
	fresh = freshMessage{file: f, received: fn.received, vsize: fn.vsize}
	if fn.size >= 0 && fn.vsize >= 0 && fn.vsize < fn.size {
		fresh.vsize = -1 // CRLF can only add octets: W= is wrong
	}
	if fresh.vsize >= 0 && fresh.received > 0 {
		// The name says everything: only check what the file is.
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, f.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				s.logger.Error("cannot stat new message; skipping it", "maildir", dir, "file", f.path(), "err", err)
			}
			return fresh, false
		}
		return fresh, st.Mode&unix.S_IFMT == unix.S_IFREG
	}
	// Once per message: the size goes into the index.
	fd, st, err := openAt(dirfd, f.name)
	switch {
	case errors.Is(err, errNotMessage), errors.Is(err, fs.ErrNotExist):
		return fresh, false
	case err != nil:
		s.logger.Error("cannot read new message; skipping it", "maildir", dir, "file", f.path(), "err", err)
		return fresh, false
	}
	defer unix.Close(fd)
	if fresh.received <= 0 {
		if fresh.received = modTime(&st); fresh.received == 0 {
			if info, err := root.Lstat(f.path()); err == nil {
				fresh.received = info.ModTime().Unix()
			}
		}
	}
	if fresh.vsize < 0 {
		if fresh.vsize, err = pop3.NormalizedSize(&messageFile{fd: fd, left: st.Size}); err != nil {
			s.logger.Error("cannot read new message; skipping it", "maildir", dir, "file", f.path(), "err", err)
			return fresh, false
		}
	}
	return fresh, true
}

// cleanTmp removes the files in tmp/ of deliveries that will never
// finish (abandonedTmp): those of other programs after 36 hours, as the
// Maildir specification asks readers to do, and this host's whose writer
// is gone (a crash) at once. It also removes leftovers in the maildir
// root (leftover).
func (s *Store) cleanTmp(root *os.Root, dir string) {
	now := time.Now()
	s.removeAbandoned(root, dir, dirTmp, func(name string, modified time.Time) bool {
		return s.abandonedTmp(name, modified, now)
	}, "removed abandoned delivery from tmp/")
	s.removeAbandoned(root, dir, ".", func(name string, modified time.Time) bool {
		return leftover(name) && now.Sub(modified) >= leftoverAge
	}, "removed a temporary file left by a crash")
}

// removeAbandoned removes the regular files in sub, a directory of the
// maildir, that abandoned picks by name and modification time, and logs
// each with msg.
func (s *Store) removeAbandoned(root *os.Root, dir, sub string, abandoned func(name string, modified time.Time) bool, msg string) {
	d, err := root.Open(sub)
	if err != nil {
		return
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil || !abandoned(e.Name(), info.ModTime()) {
			continue
		}
		if err := root.Remove(path.Join(sub, e.Name())); err == nil {
			s.logger.Info(msg, "maildir", dir, "file", e.Name())
		}
	}
}

// leftoverAge is the age past which a temporary index file in the
// maildir root is a crash's leftover: writing and renaming one takes well
// under a second, under the index lock.
const leftoverAge = 10 * time.Minute

// leftover reports whether name, in the maildir root, is a temporary file
// of an index rewrite, which only a crash (or a failed removal) leaves
// behind and nothing else would remove, or a file of the session lock's
// earlier design (a takeover's temporary file, and a guard file whose
// flock serialised takeovers), which nothing uses now.
func leftover(name string) bool {
	return strings.HasPrefix(name, indexFile+".tmp-") || strings.HasPrefix(name, lockFile+".tmp-") || name == lockFile+".guard"
}

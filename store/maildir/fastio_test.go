package maildir

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/internal/rawio"
	"github.com/postoffice-mail/postoffice/store"
	"golang.org/x/sys/unix"
)

// A message file replaced, after the snapshot, by something that is no
// message (a FIFO that would block a reader, a symbolic link that could
// point anywhere, a directory) is reported gone, at once.
func TestMessageReplacedByNonMessage(t *testing.T) {
	for name, replace := range map[string]func(path string) error{
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"symlink":   func(p string) error { return os.Symlink("/etc/passwd", p) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	} {
		t.Run(name, func(t *testing.T) {
			s, base := newTestStore(t, Config{})
			dir := filepath.Join(base, "alice", "Maildir")
			put(t, dir, "cur/1600000001.a.host:2,S", "Subject: a\n\none\n", time.Time{})
			md := open(t, s, alice)
			path := filepath.Join(dir, "cur/1600000001.a.host:2,S")
			must(t, os.Remove(path))
			must(t, replace(path))
			done := make(chan error, 1)
			go func() {
				r, err := md.Open(t.Context(), 0)
				if err == nil {
					r.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, store.ErrNoSuchMessage) {
					t.Fatalf("Open: %v, want ErrNoSuchMessage", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Open blocked")
			}
		})
	}
}

// A message file is read to the size it had when opened, in reads of any
// size, and Close makes further reads fail.
func TestMessageFileReads(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	body := "Subject: x\n\n" + string(make([]byte, 100000))
	put(t, dir, "new/1600000001.a.host", body, time.Time{})
	md := open(t, s, alice)
	if got := read(t, md, 0); got != body {
		t.Fatalf("read %d octets, want %d", len(got), len(body))
	}
	r, err := md.Open(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); err == nil {
		t.Error("read after Close succeeded")
	}
}

// Every way a message file is opened and read gives the same octets: the
// raw calls on cached data, the blocking calls they fall back to when the
// data or the name is not cached (the file's pages dropped from the page
// cache), and the blocking calls alone, as on a kernel without openat2's
// RESOLVE_CACHED or preadv2's RWF_NOWAIT.
func TestMessageFileCachedAndUncached(t *testing.T) {
	dir := t.TempDir()
	body := make([]byte, 300<<10)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	path := filepath.Join(dir, "1600000001.a.host")
	must(t, os.WriteFile(path, body, 0o600))
	d, err := os.Open(dir)
	must(t, err)
	defer d.Close()
	readAll := func(t *testing.T, evict bool) {
		t.Helper()
		if evict {
			// Written back first: dirty pages cannot be dropped.
			f, err := os.Open(path)
			must(t, err)
			must(t, f.Sync())
			must(t, unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
			// The fallback is what this case is about: the raw read
			// must find the pages gone (a tmpfs cannot drop them).
			_, err = rawio.ReadCached(int(f.Fd()), make([]byte, 4096), 0)
			var fsStat unix.Statfs_t
			must(t, unix.Fstatfs(int(f.Fd()), &fsStat))
			if err != unix.EAGAIN && fsStat.Type != unix.TMPFS_MAGIC && rawio.Cached() {
				t.Fatalf("read of evicted pages with RWF_NOWAIT: %v, want EAGAIN", err)
			}
			f.Close()
		}
		fd, st, err := openAt(int(d.Fd()), filepath.Base(path))
		must(t, err)
		m := &messageFile{fd: fd, left: st.Size}
		defer m.Close()
		got, err := io.ReadAll(io.LimitReader(m, 1<<30))
		must(t, err)
		if !bytes.Equal(got, body) {
			t.Fatalf("read %d octets, not the file's %d", len(got), len(body))
		}
	}
	for _, tc := range []struct {
		name      string
		raw       bool
		evict     bool
		wantFlags bool // the raw calls still on afterwards
	}{
		{"cached", true, false, true},
		{"uncached", true, true, true},
		{"blocking calls only", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.raw {
				t.Cleanup(rawio.DisableCached())
			}
			readAll(t, tc.evict)
			readAll(t, false)
			if tc.wantFlags && !rawio.Cached() {
				t.Errorf("raw calls switched off (openat2 or preadv2) on a kernel that has them")
			}
		})
	}
}

// The raw open gives openat's answers: no such file, and a symbolic link
// refused.
func TestOpenCachedAnswers(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "link")))
	d, err := os.Open(dir)
	must(t, err)
	defer d.Close()
	if _, _, err := openAt(int(d.Fd()), "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want not exist", err)
	}
	if _, _, err := openAt(int(d.Fd()), "link"); !errors.Is(err, errNotMessage) {
		t.Errorf("symbolic link: %v, want errNotMessage", err)
	}
	if _, _, err := openAt(int(d.Fd()), "../"+filepath.Base(dir)); err == nil {
		t.Error("a name leaving the directory was opened")
	}
}

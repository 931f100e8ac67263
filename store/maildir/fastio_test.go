package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
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

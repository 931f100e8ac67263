package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/postoffice-mail/postoffice/internal/rawio"
	"golang.org/x/sys/unix"
)

// Message files are opened relative to an open new/ or cur/ directory
// with openat(2), O_NOFOLLOW and O_NONBLOCK, and read with plain read(2)
// on the descriptor: no *os.File, whose set-up (a non-blocking mode
// switch and a poller registration attempt that regular files fail) costs
// more than the read of a typical message. The names come from directory
// listings and never hold '/', so they cannot leave the directory, and the
// directories themselves were opened through the maildir's os.Root.
//
// O_NOFOLLOW refuses a symbolic link where a message should be; O_NONBLOCK
// keeps a FIFO put there from blocking the open. Whatever is not a regular
// file is not a message.
//
// The common case, a message whose name and data are in the kernel's
// caches, is served by internal/rawio's raw system calls, which cannot
// wait for the disk (the package says why that matters): when one would
// have to wait, the ordinary blocking call follows, so a cold disk stalls
// only its own goroutine.

// errNotMessage means a directory entry is not a regular file.
var errNotMessage = errors.New("not a regular file")

const openFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK

// openAt opens the message file name in the directory dirfd and returns
// its descriptor and status.
func openAt(dirfd int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := rawio.OpenCached(dirfd, name, openFlags)
	if err == unix.EAGAIN {
		fd, err = ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, openFlags, 0) })
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return -1, st, errNotMessage
		}
		return -1, st, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if err := rawio.Fstat(fd, &st); err != nil {
		rawio.Close(fd)
		return -1, st, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		rawio.Close(fd)
		return -1, st, errNotMessage
	}
	return fd, st, nil
}

func ignoringEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// messageFile reads one message file by its descriptor. It stops at the
// size the file had when opened, without the extra read(2) that would
// only report the end (message files are not written to once delivered).
type messageFile struct {
	fd   int
	left int64 // octets still to read
	off  int64 // where the next read starts (preadv2 takes an offset)
}

// Read implements io.Reader.
func (m *messageFile) Read(p []byte) (int, error) {
	if m.fd < 0 {
		return 0, os.ErrClosed
	}
	if m.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > m.left {
		p = p[:m.left]
	}
	n, err := rawio.ReadCached(m.fd, p, m.off)
	if err == unix.EAGAIN {
		n, err = ignoringEINTR(func() (int, error) { return unix.Pread(m.fd, p, m.off) })
	}
	if err != nil {
		return 0, fmt.Errorf("read message: %w", err)
	}
	if n == 0 && len(p) > 0 {
		m.left = 0 // shorter than it was: it ends here
		return 0, io.EOF
	}
	m.left -= int64(n)
	m.off += int64(n)
	return n, nil
}

// Close implements io.Closer.
func (m *messageFile) Close() error {
	if m.fd < 0 {
		return os.ErrClosed
	}
	err := rawio.Close(m.fd)
	m.fd = -1
	return err
}

// dirFile is an open new/ or cur/ directory of a maildir, whose
// descriptor openAt uses.
type dirFile struct {
	f  *os.File
	fd int
}

// openDir opens new/ or cur/ through the maildir's root.
func openDir(root *os.Root, sub string) (*dirFile, error) {
	f, err := root.Open(sub)
	if err != nil {
		return nil, err
	}
	// Fd keeps the descriptor valid while f is open, which the dirFile
	// holder ensures.
	return &dirFile{f: f, fd: int(f.Fd())}, nil
}

func (d *dirFile) close() {
	if d != nil {
		d.f.Close()
	}
}

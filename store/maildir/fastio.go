package maildir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"unsafe"

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
// caches, is served by raw system calls that cannot wait for the disk:
// openat2(2) with RESOLVE_CACHED and preadv2(2) with RWF_NOWAIT, which
// fail with EAGAIN instead. Raw calls keep the goroutine's thread and
// processor: Go's runtime otherwise prepares every call for blocking and
// hands the processor to another thread when one lasts more than 20 µs,
// as a 100 KiB copy can (internal/rawio explains the cost, and
// docs/performance.md has the measurement). When the raw call would have
// to wait, the ordinary blocking call follows, so a cold disk stalls only
// its own goroutine. Kernels without these calls (before 5.12), and
// sandboxes that refuse them, get the ordinary calls only.

// errNotMessage means a directory entry is not a regular file.
var errNotMessage = errors.New("not a regular file")

const openFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK

// openAt opens the message file name in the directory dirfd and returns
// its descriptor and status.
func openAt(dirfd int, name string) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openCached(dirfd, name)
	if err == unix.EAGAIN {
		fd, err = ignoringEINTR(func() (int, error) { return unix.Openat(dirfd, name, openFlags, 0) })
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return -1, st, errNotMessage
		}
		return -1, st, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if err := fstat(fd, &st); err != nil {
		closeRaw(fd)
		return -1, st, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		closeRaw(fd)
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
	err := closeRaw(m.fd)
	m.fd = -1
	return err
}

// cachedOpens is cleared for good when the kernel shows that it does not
// offer openat2(2) with RESOLVE_CACHED (before Linux 5.12, or a seccomp
// filter that refuses the call).
var cachedOpens atomic.Bool

func init() { cachedOpens.Store(true) }

// resolveCached is RESOLVE_CACHED (Linux 5.12), missing from x/sys/unix.
const resolveCached = 0x20

var cachedHow = unix.OpenHow{Flags: openFlags, Resolve: resolveCached | unix.RESOLVE_BENEATH}

// openCached opens name in dirfd if that needs nothing but the kernel's
// caches. EAGAIN means the blocking openat(2) must be made; ENOENT and
// ELOOP are the final answers they are from openat(2).
func openCached(dirfd int, name string) (int, error) {
	if !cachedOpens.Load() {
		return -1, unix.EAGAIN
	}
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(&cachedHow)), unsafe.Sizeof(cachedHow), 0, 0)
		switch {
		case e == 0:
			return int(fd), nil
		case e == unix.EINTR:
			continue
		case e == unix.ENOENT || e == unix.ELOOP:
			return -1, e
		case e == unix.ENOSYS || e == unix.EINVAL || e == unix.EPERM:
			cachedOpens.Store(false)
		}
		return -1, unix.EAGAIN // whatever else: openat(2) gives its answer
	}
}

// fstat is fstat(2) as a raw call: it reads the inode that the open has
// just brought into memory.
func fstat(fd int, st *unix.Stat_t) error {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

// closeRaw is close(2) as a raw call: closing a file that was only read
// does no I/O.
func closeRaw(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
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

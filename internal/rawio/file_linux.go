package rawio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	nowaitReads.Store(true)
	cachedOpens.Store(true)
}

// ReadCached reads from fd at off what the page cache holds, without
// waiting for the disk: syscall.EAGAIN means nothing at off is cached
// and the caller must make the ordinary, blocking read. When only the
// start of p is cached, that start is read.
func ReadCached(fd int, p []byte, off int64) (int, error) {
	if len(p) == 0 || !nowaitReads.Load() {
		return 0, syscall.EAGAIN
	}
	for {
		n, e := preadNowait(fd, p, off)
		switch {
		case e == 0:
			return n, nil
		case e == syscall.EINTR:
			continue
		case unsupported(e):
			nowaitReads.Store(false)
			return 0, syscall.EAGAIN
		}
		return 0, e
	}
}

// resolveCached is RESOLVE_CACHED (Linux 5.12), missing from x/sys/unix.
const resolveCached = 0x20

// OpenCached opens name in the directory dirfd with flags if that needs
// nothing but the kernel's caches, and never outside dirfd:
// syscall.EAGAIN means the caller must make the ordinary, blocking
// openat(2). ENOENT and ELOOP are final answers, as from openat(2).
func OpenCached(dirfd int, name string, flags int) (int, error) {
	if !cachedOpens.Load() {
		return -1, syscall.EAGAIN
	}
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveCached | unix.RESOLVE_BENEATH}
	for {
		fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		switch {
		case e == 0:
			return int(fd), nil
		case e == syscall.EINTR:
			continue
		case e == syscall.ENOENT || e == syscall.ELOOP:
			return -1, e
		case unsupported(e):
			cachedOpens.Store(false)
		}
		return -1, syscall.EAGAIN // whatever else: openat(2) gives its answer
	}
}

// Fstat is fstat(2) as a raw call, for a file just opened: the inode is
// in memory.
func Fstat(fd int, st *unix.Stat_t) error {
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		}
		return e
	}
}

// Close is close(2) as a raw call, for a file that was only read: its
// closing does no I/O.
func Close(fd int) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}

//go:build !linux

package rawio

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Elsewhere there is no RWF_NOWAIT or RESOLVE_CACHED: the callers make
// the ordinary calls, as on an old Linux kernel.

// ReadCached answers EAGAIN: the caller makes the ordinary read.
func ReadCached(fd int, p []byte, off int64) (int, error) { return 0, syscall.EAGAIN }

// OpenCached answers EAGAIN: the caller makes the ordinary openat(2).
func OpenCached(dirfd int, name string, flags int) (int, error) { return -1, syscall.EAGAIN }

// Fstat is fstat(2).
func Fstat(fd int, st *unix.Stat_t) error { return unix.Fstat(fd, st) }

// Close is close(2).
func Close(fd int) error { return syscall.Close(fd) }

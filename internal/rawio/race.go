//go:build race

package rawio

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// The ordinary calls, which the race detector sees (see the package doc).

func read(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

func write(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func preadNowait(fd int, p []byte, off int64) (int, syscall.Errno) {
	n, err := unix.Preadv2(fd, [][]byte{p}, off, unix.RWF_NOWAIT)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	var e syscall.Errno
	if err != nil && !errors.As(err, &e) {
		return syscall.EIO
	}
	return e
}

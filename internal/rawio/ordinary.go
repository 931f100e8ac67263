//go:build race || !linux

package rawio

import (
	"errors"
	"syscall"
)

// The ordinary calls: the race detector sees them (see the package doc),
// and elsewhere than on Linux, where the raw calls were measured and
// tested, these are what the runtime makes.

func read(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

func write(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	var e syscall.Errno
	if err != nil && !errors.As(err, &e) {
		return syscall.EIO
	}
	return e
}

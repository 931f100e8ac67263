//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package maildir

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock(2) of f without waiting; it is released
// when f is closed.
func tryLock(f *os.File) (bool, error) {
	// Through SyscallConn rather than Fd, which would switch the
	// descriptor to blocking mode first.
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	if cerr := rc.Control(func(fd uintptr) {
		err = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); cerr != nil {
		return false, cerr
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

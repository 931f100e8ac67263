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
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

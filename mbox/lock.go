package mbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Lock takes a POSIX (fcntl) lock on the whole file, shared to read or
// exclusive to write: the lock Postfix's local(8), procmail, mutt and
// Dovecot take on an mbox, so that none of them writes it meanwhile. It
// waits for another holder up to wait, or until ctx ends.
func Lock(ctx context.Context, f *os.File, write bool, wait time.Duration) error {
	kind := int16(syscall.F_RDLCK)
	if write {
		kind = syscall.F_WRLCK
	}
	deadline := time.Now().Add(wait)
	for {
		lk := syscall.Flock_t{Type: kind, Whence: io.SeekStart}
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("locked by another program for over %v", wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Unlock releases Lock's lock (closing the file does as well).
func Unlock(f *os.File) error {
	lk := syscall.Flock_t{Type: syscall.F_UNLCK, Whence: io.SeekStart}
	return syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
}

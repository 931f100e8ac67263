//go:build race

package rawio

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// preadNowait, as the detector sees it.
func preadNowait(fd int, p []byte, off int64) (int, syscall.Errno) {
	n, err := unix.Preadv2(fd, [][]byte{p}, off, unix.RWF_NOWAIT)
	return max(n, 0), errno(err)
}

package rawio

import (
	"sync/atomic"
	"syscall"
)

// nowait is cleared for good when the kernel shows that it does not
// offer preadv2(2) or RWF_NOWAIT (before Linux 4.14, or a seccomp
// filter that refuses the call).
var nowait atomic.Bool

func init() { nowait.Store(true) }

// ReadCached reads from fd at off what the page cache holds, without
// waiting for the disk: syscall.EAGAIN means nothing at off is cached
// and the caller must make the ordinary, blocking read. When only the
// start of p is cached, that start is read.
func ReadCached(fd int, p []byte, off int64) (int, error) {
	if len(p) == 0 || !nowait.Load() {
		return 0, syscall.EAGAIN
	}
	for {
		n, e := preadNowait(fd, p, off)
		switch e {
		case 0:
			return n, nil
		case syscall.EINTR:
			continue
		case syscall.ENOSYS, syscall.EINVAL, syscall.EOPNOTSUPP, syscall.EPERM:
			nowait.Store(false)
			return 0, syscall.EAGAIN
		}
		return 0, e
	}
}

// DisableCached makes ReadCached always answer EAGAIN, as on a kernel
// without RWF_NOWAIT (for tests of the fallback), and returns a function
// that undoes it.
func DisableCached() (restore func()) {
	was := nowait.Swap(false)
	return func() { nowait.Store(was) }
}

// CachedReads reports whether ReadCached still tries the page cache.
func CachedReads() bool { return nowait.Load() }

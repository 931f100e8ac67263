package rawio

import (
	"sync/atomic"
	"syscall"
)

// The attempts still worth making: each is switched off for good when
// the kernel shows that it does not offer the call or the flag (an old
// kernel, or a seccomp filter that refuses the call).
var (
	nowaitReads atomic.Bool // preadv2(2) with RWF_NOWAIT, Linux 4.14
	cachedOpens atomic.Bool // openat2(2) with RESOLVE_CACHED, Linux 5.12
)

// unsupported reports whether errno says that a call or a flag is not
// offered at all, rather than that this one attempt failed.
func unsupported(errno syscall.Errno) bool {
	switch errno {
	case syscall.ENOSYS, syscall.EINVAL, syscall.EOPNOTSUPP, syscall.EPERM:
		return true
	}
	return false
}

// DisableCached makes ReadCached and OpenCached always answer EAGAIN, as
// on a kernel without RWF_NOWAIT and RESOLVE_CACHED (for tests of the
// fallback), and returns a function that undoes it.
func DisableCached() (restore func()) {
	reads, opens := nowaitReads.Swap(false), cachedOpens.Swap(false)
	return func() { nowaitReads.Store(reads); cachedOpens.Store(opens) }
}

// Cached reports whether ReadCached and OpenCached still try the caches.
func Cached() bool { return nowaitReads.Load() && cachedOpens.Load() }

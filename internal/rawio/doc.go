// Package rawio makes the system calls of the I/O hot paths (socket reads
// and writes; opens, reads and closes of cached message files) as raw
// calls, without the runtime's preparations for a call that may block.
//
// Go's runtime treats every system call as one that may block: the
// thread announces it (entersyscall), and when the call lasts longer than
// one tick of the runtime's monitor (20 µs) while other goroutines wait,
// the processor is handed to another thread, which must be woken, and the
// monitor keeps polling at its fastest rate. A read or write on a
// non-blocking socket cannot block: it copies what fits and returns
// EAGAIN otherwise. Neither can preadv2(2) with RWF_NOWAIT, which reads
// only what is in the page cache, nor openat2(2) with RESOLVE_CACHED,
// which resolves a name only from the dentry cache. But a 64 KiB copy does last longer than
// 20 µs. With RETR of whole maildrops over loopback, those hand-offs and
// wake-ups cost about a tenth of the server's CPU time and more of the
// client's (docs/performance.md). As raw calls, the reads and writes
// keep their thread and processor; a socket's EAGAIN still parks the
// goroutine in the network poller, with the connection's deadlines,
// exactly as net.Conn does, and a file open or read that would wait is
// made again as an ordinary, blocking call by the caller. Kernels without
// these calls or flags, and sandboxes that refuse them, get EAGAIN from
// the first attempt on, so the callers make the ordinary calls only.
//
// Wrap applies to *net.TCPConn, whose descriptor is non-blocking; TLS
// runs on top of the wrapped connection, and anything else (a
// PROXY-protocol wrapper) is used as it is.
//
// Under the race detector the ordinary calls are made instead: they tell
// the detector that data passed through the kernel (a happens-before
// edge), which raw calls cannot.
package rawio

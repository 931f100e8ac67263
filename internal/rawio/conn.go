package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose Read and Write are raw system calls.
type Conn struct {
	net.Conn
	rc            syscall.RawConn
	reads, writes call
}

// call is one direction's system call as the RawConn runs it. Its
// function is bound once, in Wrap, and finds its buffer and leaves its
// result here: a closure made per call would cost an allocation for
// every read and every write. mu lets one Read (or Write) at a time use
// the fields.
type call struct {
	mu    sync.Mutex
	buf   []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// run makes the call on p through rc.Read or, if write, rc.Write, which
// call c.fn until it returns true, waiting in the poller in between. The
// error is the RawConn's (a deadline, a closed connection) or the system
// call's.
func (c *call) run(rc syscall.RawConn, write bool, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf, c.n, c.errno = p, 0, 0
	var err error
	if write {
		err = rc.Write(c.fn)
	} else {
		err = rc.Read(c.fn)
	}
	c.buf = nil
	if err == nil && c.errno != 0 {
		err = c.errno
	}
	return c.n, err
}

// Wrap returns c with raw reads and writes if it is a TCP connection,
// and c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{Conn: c, rc: rc}
	w.reads.fn, w.writes.fn = w.reads.readOnce, w.writes.writeAll
	return w
}

// Read implements io.Reader: one read(2), waiting in the poller (with
// the read deadline) while there is nothing to read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.reads.run(c.rc, false, p)
	if err != nil {
		return 0, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is Read's function for the RawConn: false asks it to wait
// until the socket is readable.
func (c *call) readOnce(fd uintptr) bool {
	for {
		n, e := read(fd, c.buf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.n, c.errno = n, e
		return true
	}
}

// Write implements io.Writer: write(2) until all of p is sent, waiting
// in the poller (with the write deadline) while the socket buffer is
// full.
func (c *Conn) Write(p []byte) (int, error) {
	written, err := c.writes.run(c.rc, true, p)
	if err != nil {
		return written, c.opError("write", err)
	}
	return written, nil
}

// writeAll is Write's function for the RawConn: false asks it to wait
// until the socket is writable again.
func (c *call) writeAll(fd uintptr) bool {
	for c.n < len(c.buf) {
		n, e := write(fd, c.buf[c.n:])
		switch e {
		case 0:
			c.n += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.errno = e
			return true
		}
	}
	return true
}

// opError wraps err as net.Conn's methods do (a *net.OpError naming the
// operation), so that callers' errors.Is checks (os.ErrDeadlineExceeded,
// net.ErrClosed, syscall errors) and Timeout work the same.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		e := *oe // "raw-read" from the RawConn: name the call made
		e.Op = op
		return &e
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

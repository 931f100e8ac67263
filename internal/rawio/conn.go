package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a TCP connection whose Read and Write are raw system calls.
//
// The functions given to the RawConn are bound once, in Wrap, and find
// their buffer and leave their result in the Conn: a closure made per
// call would cost an allocation for every read and every write.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex // one Read at a time uses the fields below
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex // one Write at a time uses the fields below
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
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
	w.readFn, w.writeFn = w.readOnce, w.writeAll
	return w
}

// Read implements io.Reader: one read(2), waiting in the poller (with
// the read deadline) while there is nothing to read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	if err != nil {
		return 0, c.opError("read", err)
	}
	if errno != 0 {
		return 0, c.opError("read", errno)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is Read's function for the RawConn: false asks it to wait
// until the socket is readable.
func (c *Conn) readOnce(fd uintptr) bool {
	for {
		n, e := read(fd, c.rbuf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = n, e
		return true
	}
}

// Write implements io.Writer: write(2) until all of p is sent, waiting
// in the poller (with the write deadline) while the socket buffer is
// full.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	written, errno := c.wn, c.werrno
	c.wbuf = nil
	c.wmu.Unlock()
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return written, c.opError("write", err)
	}
	return written, nil
}

// writeAll is Write's function for the RawConn: false asks it to wait
// until the socket is writable again.
func (c *Conn) writeAll(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, e := write(fd, c.wbuf[c.wn:])
		switch e {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
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

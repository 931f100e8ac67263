package pop3server

import (
	"io"
	"sync"
)

// replyWriter buffers a connection's replies like a bufio.Writer, but
// holds its buffer only while there is something to send: the buffer
// comes from a pool at the first write and goes back when the read loop,
// having flushed, waits for the client's next command. An idle session
// therefore holds no write buffer, and a busy one streams messages in
// large writes.
type replyWriter struct {
	dst io.Writer
	buf []byte // nil while idle
	err error
}

// replyBufferSize is the size of the pooled write buffers: large enough
// that RETR sends most messages in one or two writes.
const replyBufferSize = 64 * 1024

var replyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, replyBufferSize); return &b }}

func newReplyWriter(dst io.Writer) *replyWriter { return &replyWriter{dst: dst} }

// grab takes a buffer from the pool if the writer has none.
func (w *replyWriter) grab() {
	if w.buf == nil {
		w.buf = (*replyBuffers.Get().(*[]byte))[:0]
	}
}

// release returns the buffer to the pool if it holds nothing unsent.
func (w *replyWriter) release() {
	if w.buf != nil && len(w.buf) == 0 {
		b := w.buf
		replyBuffers.Put(&b)
		w.buf = nil
	}
}

// Reset discards anything unsent and writes to dst from now on.
func (w *replyWriter) Reset(dst io.Writer) {
	if w.buf != nil {
		w.buf = w.buf[:0]
		w.release()
	}
	w.dst, w.err = dst, nil
}

// Flush sends what is buffered.
func (w *replyWriter) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.dst.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

// Write implements io.Writer. Like bufio.Writer, a write larger than the
// buffer into an empty buffer goes straight through.
func (w *replyWriter) Write(p []byte) (int, error) {
	if w.err == nil && len(p) > 0 && w.buf != nil && len(w.buf)+len(p) <= cap(w.buf) &&
		&w.buf[:len(w.buf)+1][len(w.buf)] == &p[0] {
		// p was appended to AvailableBuffer: it is in place already.
		w.buf = w.buf[:len(w.buf)+len(p)]
		return len(p), nil
	}
	written := 0
	for len(p) > 0 {
		if w.err != nil {
			return written, w.err
		}
		w.grab()
		if len(w.buf) == 0 && len(p) >= cap(w.buf) {
			n, err := w.dst.Write(p)
			written += n
			if err != nil {
				w.err = err
			}
			return written, err
		}
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		written += n
		p = p[n:]
		if len(p) > 0 {
			w.Flush()
		}
	}
	return written, w.err
}

// WriteString is Write for a string, without converting it.
func (w *replyWriter) WriteString(s string) (int, error) {
	written := 0
	for len(s) > 0 {
		if w.err != nil {
			return written, w.err
		}
		w.grab()
		n := copy(w.buf[len(w.buf):cap(w.buf)], s)
		w.buf = w.buf[:len(w.buf)+n]
		written += n
		s = s[n:]
		if len(s) > 0 {
			w.Flush()
		}
	}
	return written, w.err
}

// WriteByte writes one octet.
func (w *replyWriter) WriteByte(c byte) error {
	if w.err != nil {
		return w.err
	}
	w.grab()
	if len(w.buf) == cap(w.buf) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	w.buf = append(w.buf, c)
	return nil
}

// AvailableBuffer returns an empty slice with the free space of the
// buffer, to append to and pass to Write (as bufio.Writer's).
func (w *replyWriter) AvailableBuffer() []byte {
	w.grab()
	return w.buf[len(w.buf):][:0]
}

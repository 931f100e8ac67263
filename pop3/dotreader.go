package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrUnexpectedEOF is returned by DotReader when the connection ends
// before the terminating "." line.
var ErrUnexpectedEOF = errors.New("connection closed inside a multi-line response")

// lineDotIndex returns the index of the first LF in b that is followed
// by a dot (a line that starts with one), or -1. It looks for the dots,
// not the line ends: most lines have no dot, and base64 has none at all,
// so a vectorised search skips many lines at a time.
func lineDotIndex(b []byte) int {
	for i := 1; i < len(b); {
		j := bytes.IndexByte(b[i:], '.')
		if j < 0 {
			return -1
		}
		i += j
		if b[i-1] == '\n' {
			return i - 1
		}
		i++
	}
	return -1
}

// DotReader reads the body of a multi-line response: it removes the
// byte-stuffing dot from lines that start with one and returns io.EOF at
// the terminating "." line. Line endings are passed through unchanged
// (CRLF as sent). It streams: the whole body is never held in memory.
type DotReader struct {
	r           *bufio.Reader
	atLineStart bool
	eof         bool
}

// NewDotReader returns a DotReader reading from r, positioned just after
// the status line.
func NewDotReader(r *bufio.Reader) *DotReader {
	return &DotReader{r: r, atLineStart: true}
}

// Read implements io.Reader.
func (d *DotReader) Read(p []byte) (int, error) {
	if d.eof {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		if d.atLineStart {
			// Look at the start of the line: ".\r\n" ends the body,
			// "." followed by anything else is a stuffed dot.
			b, err := d.r.Peek(1)
			if err != nil {
				return n, d.eofErr(err)
			}
			if b[0] == '.' {
				// Peek two octets first: a lax server's ".\n" ends the
				// body, and waiting for a third octet there would block
				// until the server sends something it never will.
				b, err = d.r.Peek(2)
				if err == nil && b[1] == '\r' {
					b, err = d.r.Peek(3)
				}
				if len(b) >= 3 && b[1] == '\r' && b[2] == '\n' {
					d.r.Discard(3)
					d.eof = true
					if n == 0 {
						return 0, io.EOF
					}
					return n, nil
				}
				if len(b) >= 2 && b[1] == '\n' { // ".\n" from a lax server
					d.r.Discard(2)
					d.eof = true
					if n == 0 {
						return 0, io.EOF
					}
					return n, nil
				}
				if err != nil && len(b) < 2 {
					return n, d.eofErr(err)
				}
				d.r.Discard(1)
			}
			d.atLineStart = false
		}
		// Copy up to the end of the line or of p, whichever is first.
		buffered := d.r.Buffered()
		if buffered == 0 {
			if _, err := d.r.Peek(1); err != nil {
				return n, d.eofErr(err)
			}
			buffered = d.r.Buffered()
		}
		chunk, _ := d.r.Peek(min(buffered, len(p)-n))
		// Lines that do not start with a dot pass as they are: copy up
		// to the next one that does, or to the end of the chunk.
		if i := lineDotIndex(chunk); i >= 0 {
			chunk = chunk[:i+1]
			d.atLineStart = true
		} else if chunk[len(chunk)-1] == '\n' {
			d.atLineStart = true // what starts the next line is not here yet
		}
		copy(p[n:], chunk)
		d.r.Discard(len(chunk))
		n += len(chunk)
		if d.atLineStart && d.r.Buffered() == 0 {
			break // do not block for more when a line is complete
		}
	}
	return n, nil
}

func (d *DotReader) eofErr(err error) error {
	if err == io.EOF {
		return ErrUnexpectedEOF
	}
	return err
}

package pop3

import (
	"bytes"
	"io"
	"sync"
)

// sizeBuffers recycle NormalizedSize's read buffer: a store computes sizes
// for every message it meets for the first time.
var lf = []byte{'\n'}

var sizeBuffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// NormalizedSize returns the number of octets that the message read from r
// occupies on the wire before dot-stuffing, after DotWriter's line-ending
// normalisation: every LF not preceded by CR becomes CRLF, a last line
// without a line end gets one, everything else is sent as is. It is the
// size POP3 announces in STAT, LIST and the RETR reply (RFC 1939 §5),
// which must equal what RETR then sends before the terminating ".".
func NormalizedSize(r io.Reader) (int64, error) {
	bp := sizeBuffers.Get().(*[]byte)
	defer sizeBuffers.Put(bp)
	buf := *bp
	var (
		size   int64
		lastCR bool
		last   byte
	)
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		size += int64(n)
		if n > 0 {
			last = chunk[n-1]
		}
		if n > 0 && bytes.IndexByte(chunk, '\r') < 0 {
			// No CR at all, as in a file an MTA stored with LF line
			// ends: every LF becomes CRLF, save one that completes a CR
			// at the end of the previous chunk. Two vectorised passes
			// instead of a call per line.
			size += int64(bytes.Count(chunk, lf))
			if lastCR && chunk[0] == '\n' {
				size--
			}
			lastCR = false
			chunk = nil
		}
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				lastCR = chunk[len(chunk)-1] == '\r'
				break
			}
			if (i == 0 && !lastCR) || (i > 0 && chunk[i-1] != '\r') {
				size++ // this LF will be sent as CRLF
			}
			lastCR = false
			chunk = chunk[i+1:]
		}
		if err == io.EOF {
			// DotWriter.Close completes an unfinished last line.
			switch {
			case size == 0 || last == '\n':
			case last == '\r':
				size++
			default:
				size += 2
			}
			return size, nil
		}
		if err != nil {
			return size, err
		}
	}
}

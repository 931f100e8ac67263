package pop3

import (
	"bufio"
	"errors"
)

// ErrLineTooLong is returned by ReadLine for a line over its limit. The
// rest of the line has been consumed, so the caller can answer -ERR and
// read the next command.
var ErrLineTooLong = errors.New("line too long")

// ReadLine reads one line of at most max octets including its line ending
// and returns it without the ending. It accepts CRLF and a bare LF (some
// clients send one). Unlike textproto.Reader.ReadLine it never holds more
// than max octets of a line, so a client cannot make the server keep an
// unbounded line. The returned slice is valid until the next read from r.
//
// A line that fits in r's buffer costs no allocation; a longer one (an
// AUTH response carrying an OAuth token) is gathered into a new slice.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil && len(line) <= max {
		return trimEOL(line), nil
	}
	var long []byte
	for errors.Is(err, bufio.ErrBufferFull) && len(long)+len(line) <= max {
		long = append(long, line...)
		line, err = r.ReadSlice('\n')
	}
	if err == nil && len(long)+len(line) <= max {
		return trimEOL(append(long, line...)), nil
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if len(long)+len(line) > max {
			return nil, ErrLineTooLong
		}
		return nil, err // EOF or a read error inside a line
	}
	// Too long: discard through the end of the line.
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = r.ReadSlice('\n')
	}
	if err != nil {
		return nil, err
	}
	return nil, ErrLineTooLong
}

func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

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
// clients send one). Unlike textproto.Reader.ReadLine it never grows a
// buffer past max, so a client cannot make the server hold an unbounded
// line. The returned slice is valid until the next read from r.
//
// r's buffer must hold at least max octets.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil && len(line) <= max {
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return line, nil
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if len(line) > max {
			return nil, ErrLineTooLong
		}
		return nil, err
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

package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

var fromPrefix = []byte("From ")

// quotedFrom reports how many '>' start the line at the front of br when
// they are followed by "From " (0 when the line is not of that form).
func quotedFrom(br *bufio.Reader) int {
	n := 0
	for {
		b, _ := br.Peek(n + len(fromPrefix))
		if len(b) <= n {
			return 0
		}
		if b[n] != '>' {
			if n > 0 && bytes.HasPrefix(b[n:], fromPrefix) {
				return n
			}
			return 0
		}
		n++
	}
}

// WriteMboxrd writes one message in the mboxrd format: fromLine (see
// FormatFromLine), the message with every line that starts with zero or
// more '>' and "From " given one more '>', a line end after the last line
// if it has none, and the blank line that ends the message. body should
// have LF line ends, as mbox files do.
func WriteMboxrd(w *bufio.Writer, fromLine string, body io.Reader) error {
	w.WriteString(fromLine)
	br := bufio.NewReaderSize(body, 64<<10)
	atStart := true
	var last byte = '\n'
	for {
		if atStart {
			if b, _ := br.Peek(1); len(b) == 1 && (b[0] == 'F' || b[0] == '>') {
				if b[0] == 'F' {
					if p, _ := br.Peek(len(fromPrefix)); bytes.Equal(p, fromPrefix) {
						w.WriteByte('>')
					}
				} else if quotedFrom(br) > 0 {
					w.WriteByte('>')
				}
			}
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			w.Write(chunk)
			last = chunk[len(chunk)-1]
			atStart = last == '\n'
		}
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	if last != '\n' {
		w.WriteByte('\n')
	}
	_, err := w.WriteString("\n")
	return err
}

// unquoter undoes the "From " quoting of mboxrd (one '>' off every
// ">...>From " line) or mboxo (one '>' off ">From " lines).
type unquoter struct {
	br      *bufio.Reader
	rd      bool // mboxrd rather than mboxo
	atStart bool
	pending []byte
	err     error
}

func newUnquoter(r io.Reader, rd bool) *unquoter {
	return &unquoter{br: bufio.NewReaderSize(r, 32<<10), rd: rd, atStart: true}
}

func (u *unquoter) Read(p []byte) (int, error) {
	if len(u.pending) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		if u.atStart {
			if b, _ := u.br.Peek(1); len(b) == 1 && b[0] == '>' {
				if n := quotedFrom(u.br); n == 1 || n > 1 && u.rd {
					u.br.Discard(1)
				}
			}
		}
		line, err := u.br.ReadSlice('\n')
		switch {
		case err == nil:
			u.atStart = true
		case errors.Is(err, bufio.ErrBufferFull):
			u.atStart = false
		default:
			u.err = err
		}
		u.pending = line
		if len(line) == 0 {
			return 0, u.err
		}
	}
	n := copy(p, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}

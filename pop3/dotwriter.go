package pop3

import (
	"bytes"
	"errors"
	"io"
)

// DotWriter writes the body of a multi-line response (RFC 1939 §3): it
// doubles a dot at the start of a line ("byte-stuffing"), sends every bare
// LF as CRLF, and Close ends the response with ".\r\n" (after a CRLF if the
// body did not end with one). It scans whole chunks for line ends and
// writes the spans between them in one call each, so a message costs no
// allocation and few calls regardless of its line count.
//
// The octets it writes before stuffing, up to the terminating ".\r\n", are
// exactly NormalizedSize of the input: the size the server announced.
type DotWriter struct {
	w           io.Writer
	atLineStart bool // the next octet begins a line
	lastCR      bool // the last octet written was CR
	err         error
}

var (
	crlf       = []byte("\r\n")
	dot        = []byte(".")
	terminator = []byte(".\r\n")
)

// NewDotWriter returns a DotWriter writing to w. A *bufio.Writer is the
// expected w: DotWriter writes small pieces.
func NewDotWriter(w io.Writer) *DotWriter {
	return &DotWriter{w: w, atLineStart: true}
}

// appendWriter is a buffered writer that lets its caller append to its
// free buffer space and hand that back to Write (bufio.Writer, and the
// POP3 server's reply buffer): a message is then transformed straight
// into the buffer, not written line by line.
type appendWriter interface {
	io.Writer
	AvailableBuffer() []byte
	Flush() error
}

// minAppendSpace is the free space below which the buffer is flushed
// before the next piece is appended.
const minAppendSpace = 256

// Write stuffs and normalises p. It always consumes all of p unless the
// underlying writer fails.
func (d *DotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if aw, ok := d.w.(appendWriter); ok {
		return d.writeAppend(aw, p)
	}
	n := len(p)
	for len(p) > 0 {
		if d.atLineStart && p[0] == '.' {
			d.write(dot)
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.write(p)
			d.atLineStart = false
			d.lastCR = p[len(p)-1] == '\r'
			break
		}
		switch {
		case i > 0 && p[i-1] == '\r', i == 0 && d.lastCR:
			d.write(p[:i+1])
		default: // a bare LF
			d.write(p[:i])
			d.write(crlf)
		}
		d.atLineStart, d.lastCR = true, false
		p = p[i+1:]
	}
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

// writeAppend is Write for an appendWriter: the same transformation,
// appended piece by piece to the writer's free space, which is handed to
// Write only when it runs short.
func (d *DotWriter) writeAppend(aw appendWriter, p []byte) (int, error) {
	n := len(p)
	out := aw.AvailableBuffer()
	// commit hands what was appended to the writer and, when its
	// buffer is nearly full, flushes it.
	commit := func() {
		if len(out) > 0 && d.err == nil {
			_, d.err = aw.Write(out)
		}
		out = aw.AvailableBuffer()
		if cap(out) < minAppendSpace && d.err == nil {
			d.err = aw.Flush()
			out = aw.AvailableBuffer()
		}
	}
	for len(p) > 0 && d.err == nil {
		if cap(out)-len(out) < minAppendSpace {
			commit()
			if cap(out) < minAppendSpace {
				// A writer with a tiny buffer: take the plain path.
				return d.writePlain(p, n)
			}
		}
		if d.atLineStart && p[0] == '.' {
			out = append(out, '.')
		}
		i := bytes.IndexByte(p, '\n')
		var span []byte
		bareLF := false
		switch {
		case i < 0:
			span = p
		case i > 0 && p[i-1] == '\r', i == 0 && d.lastCR:
			span = p[:i+1]
		default:
			span, bareLF = p[:i], true
		}
		// Append what fits; the rest of a long line comes round again
		// (it is not at a line start, so no dot is added).
		room := cap(out) - len(out) - 2
		if len(span) > room {
			out = append(out, span[:room]...)
			d.atLineStart, d.lastCR = false, span[room-1] == '\r'
			p = p[room:]
			continue
		}
		out = append(out, span...)
		if bareLF {
			out = append(out, '\r', '\n')
		}
		if i < 0 {
			d.atLineStart, d.lastCR = false, p[len(p)-1] == '\r'
			break
		}
		d.atLineStart, d.lastCR = true, false
		if bareLF {
			p = p[i+1:]
		} else {
			p = p[len(span):]
		}
	}
	if len(out) > 0 && d.err == nil {
		_, d.err = aw.Write(out)
	}
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

// writePlain finishes a Write through the line-by-line path.
func (d *DotWriter) writePlain(p []byte, n int) (int, error) {
	w := d.w
	d.w = plainWriter{w}
	_, err := d.Write(p)
	d.w = w
	if err != nil {
		return 0, err
	}
	return n, nil
}

// plainWriter hides a writer's AvailableBuffer.
type plainWriter struct{ io.Writer }

func (d *DotWriter) write(p []byte) {
	if d.err == nil && len(p) > 0 {
		_, d.err = d.w.Write(p)
	}
}

// Close writes the terminating line. It does not close the underlying
// writer.
func (d *DotWriter) Close() error {
	if !d.atLineStart {
		if d.lastCR {
			d.write(crlf[1:])
		} else {
			d.write(crlf)
		}
	}
	d.write(terminator)
	d.atLineStart, d.lastCR = true, false
	return d.err
}

// TopWriter passes a message through up to and including the blank line
// that ends its header, then at most n lines of its body: the RFC 1939 §7
// TOP command. Once the limit is reached, Write returns ErrTopDone so that
// the copy stops reading the message; callers treat it as success. A
// huge n sends the whole message (fetchmail downloads with TOP n 99999999).
type TopWriter struct {
	w         io.Writer
	bodyLines int  // lines of body still allowed
	inBody    bool // the blank line after the header has been passed
	line      lineStart
	done      bool
}

// lineStart tracks what the current line holds so far, across writes, to
// recognise the blank line ("\r\n" or "\n") that ends the header.
type lineStart int

const (
	lineEmpty  lineStart = iota // nothing yet
	lineOnlyCR                  // just "\r"
	lineText                    // anything else
)

// ErrTopDone is returned by TopWriter.Write when the line limit is reached.
var ErrTopDone = errors.New("top line limit reached")

// NewTopWriter returns a TopWriter that forwards to w (usually a
// DotWriter).
func NewTopWriter(w io.Writer, bodyLines int) *TopWriter {
	return &TopWriter{w: w, bodyLines: bodyLines}
}

// Write forwards p up to the limit.
func (t *TopWriter) Write(p []byte) (int, error) {
	if t.done || t.inBody && t.bodyLines <= 0 {
		t.done = true
		return 0, ErrTopDone
	}
	end := 0
	for end < len(p) {
		i := bytes.IndexByte(p[end:], '\n')
		if i < 0 {
			t.line = t.after(p[end:])
			end = len(p)
			break
		}
		blank := t.after(p[end:end+i]) != lineText
		end += i + 1
		t.line = lineEmpty
		if t.inBody {
			t.bodyLines--
		} else if blank {
			t.inBody = true
		}
		if t.inBody && t.bodyLines <= 0 {
			t.done = true
			break
		}
	}
	if _, err := t.w.Write(p[:end]); err != nil {
		return 0, err
	}
	if t.done {
		return end, ErrTopDone
	}
	return end, nil
}

// after returns the line state after the octets b (which hold no LF).
func (t *TopWriter) after(b []byte) lineStart {
	switch {
	case len(b) == 0:
		return t.line
	case t.line == lineEmpty && len(b) == 1 && b[0] == '\r':
		return lineOnlyCR
	default:
		return lineText
	}
}

package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
)

// maxLineOctets is the longest line RFC 5321 §4.5.3.1.6 allows, without
// its CRLF.
const maxLineOctets = 998

// memorySpool is how much of a message is kept in memory; the rest goes
// to an unlinked temporary file.
const memorySpool = 1 << 20

// maxLoopFields bounds how many Delivered-To fields are remembered for
// loop detection.
const maxLoopFields = 100

// Message is a message read, checked and normalised by ReadMessage, ready
// to be delivered to any number of recipients. Close releases its spool.
type Message struct {
	// Size is the number of octets of the normalised message (every line
	// ending in one LF), without the fields Deliver adds.
	Size int64
	// Lines is the number of lines (of LFs).
	Lines int64

	mem         []byte
	file        *os.File
	fileWriter  *bufio.Writer
	deliveredTo map[string]bool
}

// Close releases the spool. A Message must not be used after Close.
func (m *Message) Close() error {
	if m.mem != nil {
		putBuffer(m.mem)
		m.mem = nil
	}
	if m.file != nil {
		err := m.file.Close()
		m.file = nil
		return err
	}
	return nil
}

// buffers recycles memory spools and read buffers: allocating (and
// clearing) a fresh 100 KiB buffer per message costs more than reading it.
var buffers sync.Pool

func getBuffer(size int) []byte {
	if b, ok := buffers.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, max(size, 64*1024))
}

func putBuffer(b []byte) {
	if cap(b) <= memorySpool {
		buffers.Put(&b)
	}
}

// POP3Size is the size of the message as POP3 announces it: every line
// end counted as CRLF.
func (m *Message) POP3Size() int64 { return m.Size + m.Lines }

// reader returns a new reader of the whole normalised message.
func (m *Message) reader() io.Reader {
	if m.file != nil {
		return io.NewSectionReader(m.file, 0, m.Size)
	}
	return bytes.NewReader(m.mem)
}

// hasDeliveredTo reports whether the message carries a Delivered-To
// field with addr (compared without regard to case).
func (m *Message) hasDeliveredTo(addr string) bool {
	return m.deliveredTo[strings.ToLower(addr)]
}

// ReadMessage reads a whole message from r and normalises it: every line
// end — CRLF, a bare LF or a bare CR — becomes one LF, and a last line
// without one gets it. It refuses (with an *Error) a message over maxSize
// octets (ErrTooLarge), one with a NUL octet (ErrNUL) or a line over 998
// octets before its line end (ErrLongLine); a read error is returned as a
// temporary *Error wrapping it. In every case r has been read up to the
// point of failure only: the caller drains what is left (go-smtp does).
// spoolDir is where a message over 1 MiB is spooled ("" means
// os.TempDir()); the file is unlinked at once, so nothing stays behind.
func ReadMessage(r io.Reader, maxSize int64, spoolDir string) (*Message, error) {
	m := &Message{mem: getBuffer(64 * 1024)}
	n := &normaliser{m: m, maxSize: maxSize, spoolDir: spoolDir, inHeader: true}
	buf := getBuffer(32 * 1024)[:32*1024]
	defer putBuffer(buf)
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if werr := n.write(buf[:k]); werr != nil {
				m.Close()
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			m.Close()
			var e *Error
			if errors.As(err, &e) {
				return nil, e
			}
			return nil, ErrTemporary.with("Error reading the message, please try again", err)
		}
	}
	if err := n.finish(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// normaliser is ReadMessage's state between reads.
type normaliser struct {
	m        *Message
	maxSize  int64
	spoolDir string

	afterCR  bool // the last octet was a CR, already written as LF
	lineLen  int  // octets of the current line so far
	inHeader bool // still in the header section
	field    []byte
	line     []byte // the current header line, while in the header
}

// write normalises one chunk.
func (n *normaliser) write(p []byte) error {
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n\x00")
		if i < 0 {
			i = len(p)
		}
		if i > 0 {
			n.afterCR = false
			n.lineLen += i
			if n.lineLen > maxLineOctets {
				return ErrLongLine
			}
			if n.inHeader {
				n.line = append(n.line, p[:i]...)
			}
			if err := n.out(p[:i]); err != nil {
				return err
			}
			p = p[i:]
			continue
		}
		switch p[0] {
		case 0:
			return ErrNUL
		case '\n':
			if !n.afterCR {
				if err := n.endLine(); err != nil {
					return err
				}
			}
			n.afterCR = false
		case '\r':
			if err := n.endLine(); err != nil {
				return err
			}
			n.afterCR = true
		}
		p = p[1:]
	}
	return nil
}

var newline = []byte{'\n'}

// endLine ends the current line with one LF.
func (n *normaliser) endLine() error {
	if n.inHeader {
		n.headerLine()
	}
	n.lineLen = 0
	n.m.Lines++
	return n.out(newline)
}

// finish completes an unfinished last line and flushes the spool.
func (n *normaliser) finish() error {
	if n.lineLen > 0 {
		if err := n.endLine(); err != nil {
			return err
		}
	}
	if n.inHeader {
		n.endField()
	}
	if n.m.fileWriter != nil {
		if err := n.m.fileWriter.Flush(); err != nil {
			return classify(err)
		}
	}
	return nil
}

// headerLine takes a complete header line: a continuation (starting with
// white space) extends the current field, an empty line ends the header.
func (n *normaliser) headerLine() {
	line := n.line
	n.line = n.line[:0]
	switch {
	case len(line) == 0:
		n.endField()
		n.inHeader = false
	case line[0] == ' ' || line[0] == '\t':
		n.field = append(n.field, line...)
	default:
		n.endField()
		n.field = append(n.field[:0], line...)
	}
}

// endField records a complete Delivered-To field for loop detection.
func (n *normaliser) endField() {
	name, value, ok := bytes.Cut(n.field, []byte{':'})
	n.field = n.field[:0]
	if !ok || !strings.EqualFold(string(bytes.TrimRight(name, " \t")), "Delivered-To") {
		return
	}
	if n.m.deliveredTo == nil {
		n.m.deliveredTo = make(map[string]bool)
	}
	if len(n.m.deliveredTo) < maxLoopFields {
		addr := strings.Trim(strings.TrimSpace(string(value)), "<>")
		n.m.deliveredTo[strings.ToLower(addr)] = true
	}
}

// out appends normalised octets to the spool, moving it to a file once
// it outgrows memory.
func (n *normaliser) out(p []byte) error {
	m := n.m
	if m.Size+int64(len(p)) > n.maxSize {
		return ErrTooLarge
	}
	m.Size += int64(len(p))
	if m.file == nil {
		if len(m.mem)+len(p) <= memorySpool {
			m.mem = append(m.mem, p...)
			return nil
		}
		dir := n.spoolDir
		if dir == "" {
			dir = os.TempDir()
		}
		f, err := os.CreateTemp(dir, "postoffice-spool-")
		if err != nil {
			return classify(err)
		}
		// Unlinked at once: the spool disappears with the process,
		// whatever happens to it.
		os.Remove(f.Name())
		m.file = f
		m.fileWriter = bufio.NewWriterSize(f, 64*1024)
		if _, err := m.fileWriter.Write(m.mem); err != nil {
			return classify(err)
		}
		putBuffer(m.mem)
		m.mem = nil
	}
	if _, err := m.fileWriter.Write(p); err != nil {
		return classify(err)
	}
	return nil
}

// SkipMboxFromLine drops the mbox "From sender date" line some MTAs and
// procmail put before the message on a pipe, and returns the sender it
// names ("" if there was none, or it was "MAILER-DAEMON").
func SkipMboxFromLine(r *bufio.Reader) (string, error) {
	peek, err := r.Peek(5)
	if err != nil || string(peek) != "From " {
		if err == io.EOF || err == bufio.ErrBufferFull {
			err = nil
		}
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[1] == "MAILER-DAEMON" {
		return "", nil
	}
	return fields[1], nil
}

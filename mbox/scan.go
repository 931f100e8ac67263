package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format is an mbox variant (see the package documentation).
type Format int

const (
	// Auto detects the variant: mboxcl2 when every message has a
	// Content-Length that ends it exactly at the next "From " line,
	// mboxrd otherwise.
	Auto Format = iota
	Mboxrd
	Mboxo
	Mboxcl2
)

var formatNames = []string{"auto", "mboxrd", "mboxo", "mboxcl2"}

func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return "Format(" + strconv.Itoa(int(f)) + ")"
	}
	return formatNames[f]
}

// ParseFormat reads a variant's name as String writes it.
func ParseFormat(s string) (Format, error) {
	for i, name := range formatNames {
		if s == name {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mbox format %q (auto, mboxrd, mboxo or mboxcl2)", s)
}

// ErrNotMbox is returned by Scan for a file with data but no "From "
// line to start a message.
var ErrNotMbox = errors.New(`not an mbox file: no line starts with "From "`)

// Message is where one message is in the file, and what its "From " line
// and header tell.
type Message struct {
	// Offset is where its "From " line starts; Start and End delimit its
	// content (the "From " line and the blank line that separates it
	// from the next message are not part of it).
	Offset, Start, End int64
	// From is its "From " line.
	From FromLine
	// UIDL holds the values of its X-UIDL header fields, in order
	// (unfolded, surrounding white space removed; cut at 1,024 octets).
	UIDL []string
	// DateHeader is its Date header field's value, if any.
	DateHeader string
	// XUID is its X-UID header field's value and XIMAPBase its
	// X-IMAPbase's: the IMAP uid and (in a file's first message) the
	// uidvalidity and next uid that Dovecot and other IMAP servers keep
	// in an mbox, from which their POP3 servers made unique ids.
	XUID, XIMAPBase string
	// XIMAP is the value of an X-IMAP header field: the mark of the
	// pseudo-message ("DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL
	// DATA") that UW-IMAP and Pine keep first in a file; it holds the
	// uidvalidity and is no mail.
	XIMAP string
	// ContentLength is its Content-Length header field's value, or -1.
	ContentLength int64
}

// Problem is something Scan had to decide about the file: what it found
// and what it did.
type Problem struct {
	// Message is the message it concerns (1-based), or 0 for data that
	// belongs to no message.
	Message int
	// Offset is where in the file it is.
	Offset int64
	// Text says what was found and what was done.
	Text string
}

func (p Problem) String() string {
	if p.Message == 0 {
		return fmt.Sprintf("offset %d: %s", p.Offset, p.Text)
	}
	return fmt.Sprintf("message %d (offset %d): %s", p.Message, p.Offset, p.Text)
}

// Index is a scanned mbox file.
type Index struct {
	// Format is the variant read (the one detected, for Auto).
	Format Format
	// Messages are the messages in file order.
	Messages []Message
	// Problems lists, in file order, what had to be guessed or skipped.
	Problems []Problem
	// Size is the size of the file scanned.
	Size int64
}

// Content returns message i's content as it was before it was written
// into the file: the quoting of its "From " lines undone (mboxrd, mboxo).
func (ix *Index) Content(r io.ReaderAt, i int) io.Reader {
	m := ix.Messages[i]
	sr := io.NewSectionReader(r, m.Start, m.End-m.Start)
	switch ix.Format {
	case Mboxrd, Mboxo:
		return newUnquoter(sr, ix.Format == Mboxrd)
	}
	return sr
}

// Options are Scan's settings.
type Options struct {
	// Format is the variant to read; Auto detects it.
	Format Format
	// Location is the time zone of "From " line dates that name none
	// (time.Local when nil).
	Location *time.Location
}

// maxHead bounds how much of one line Scan looks at: enough for any
// header field it reads and any "From " line.
const maxHead = 1024

// Scan indexes the mbox file r of the given size. It reads the file once
// (twice for Auto when the first guess, mboxcl2, does not hold), keeping
// only positions and a few header values, so files of any size can be
// scanned. Damage is not an error: it is reported in Index.Problems, and
// every octet of every message is kept in some message.
func Scan(r io.ReaderAt, size int64, opts Options) (*Index, error) {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	switch opts.Format {
	case Mboxrd, Mboxo:
		return scanSeparated(r, size, opts.Format, loc)
	case Mboxcl2:
		ix, _, err := scanLengths(r, size, loc, false)
		return ix, err
	case Auto:
		ix, ok, err := scanLengths(r, size, loc, true)
		if err != nil || ok {
			return ix, err
		}
		return scanSeparated(r, size, Mboxrd, loc)
	}
	return nil, fmt.Errorf("mbox: unknown format %d", opts.Format)
}

// line is one line of the file.
type line struct {
	off  int64  // where it starts
	n    int64  // its length, line end included
	head []byte // its first maxHead octets (valid until the next read)
	lf   bool   // whether it ends with LF (the last line may not)
}

func (l *line) blank() bool {
	return l.lf && (l.n == 1 || l.n == 2 && l.head[0] == '\r')
}

func (l *line) end() int64 { return l.off + l.n }

// lineReader reads a file line by line, knowing each line's offset.
type lineReader struct {
	r    io.ReaderAt
	size int64
	br   *bufio.Reader
	off  int64
	head []byte
	err  error
}

func newLineReader(r io.ReaderAt, size int64) *lineReader {
	lr := &lineReader{r: r, size: size, br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)}
	return lr
}

// seek moves to off, within the buffer when it can.
func (lr *lineReader) seek(off int64) {
	if d := off - lr.off; d >= 0 && d <= int64(lr.br.Buffered()) {
		lr.br.Discard(int(d))
	} else {
		lr.br.Reset(io.NewSectionReader(lr.r, off, lr.size-off))
	}
	lr.off = off
}

// next reads one line; ok is false at the end of the file or on a read
// error (in lr.err). A line that fits the buffer is not copied, except
// one that starts with "From ", whose head must outlive the look ahead of
// nextIsHeader.
func (lr *lineReader) next(l *line) (ok bool) {
	l.off, l.n, l.lf = lr.off, 0, false
	lr.head = lr.head[:0]
	chunk, err := lr.br.ReadSlice('\n')
	if err == nil && !bytes.HasPrefix(chunk, fromPrefix) {
		l.n, l.lf, l.head = int64(len(chunk)), true, chunk[:min(len(chunk), maxHead)]
		lr.off += l.n
		return true
	}
	for {
		if room := maxHead - len(lr.head); room > 0 {
			lr.head = append(lr.head, chunk[:min(room, len(chunk))]...)
		}
		l.n += int64(len(chunk))
		if err == nil {
			l.lf = true
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = lr.br.ReadSlice('\n')
			continue
		}
		if err != io.EOF {
			lr.err = err
		}
		break
	}
	lr.off += l.n
	l.head = lr.head
	return l.n > 0
}

// nextIsHeader reports whether the line after the one just read looks
// like the start of a header field ("Name:"): what tells a "From " line
// that starts a message from one in a message's text.
func (lr *lineReader) nextIsHeader() bool {
	b, _ := lr.br.Peek(256)
	for i, c := range b {
		switch {
		case c == ':':
			return i > 0
		case c < 0x21 || c > 0x7E:
			return false
		}
	}
	return false
}

// scanner holds what both variants' scans share.
type scanner struct {
	lr     *lineReader
	loc    *time.Location
	ix     *Index
	strict bool // trying mboxcl2 for Auto: stop at the first message it does not fit
	// next is the "From " line that ended the last message, parsed
	// already, and where it is.
	next    FromLine
	nextOff int64
}

func (s *scanner) problem(msg int, off int64, format string, args ...any) {
	s.ix.Problems = append(s.ix.Problems, Problem{Message: msg, Offset: off, Text: fmt.Sprintf(format, args...)})
}

// isSeparator decides whether a "From " line (not the file's first
// message) starts a message. In mboxrd and mboxo every such line does,
// the writer having quoted the others; but files written by careless
// programs hold unquoted ones in message text, so a line counts only
// when it follows a blank line and has a date or is followed by a header,
// or has both when no blank line precedes it.
func (s *scanner) isSeparator(fl FromLine, afterBlank bool) bool {
	if afterBlank {
		return !fl.Date.IsZero() || s.lr.nextIsHeader()
	}
	return !fl.Date.IsZero() && s.lr.nextIsHeader()
}

// skipLeading reads up to the first "From " line, reporting any data
// before it; ok is false for a file with none.
func (s *scanner) skipLeading(l *line) (ok bool, err error) {
	var junk int64
	for s.lr.next(l) {
		if bytes.HasPrefix(l.head, fromPrefix) {
			if junk > 0 {
				s.problem(0, 0, "%d octets before the first \"From \" line belong to no message: skipped", l.off)
			}
			return true, nil
		}
		if !l.blank() {
			junk = l.end()
		}
	}
	if s.lr.err != nil {
		return false, s.lr.err
	}
	if junk > 0 {
		return false, ErrNotMbox
	}
	return false, nil
}

// header reads a message's header from the line after its "From " line,
// recording the fields an import needs. It stops after the blank line
// that ends the header (ended; bodyStart is where the body starts and l
// holds the body's first line, if more), or at a line that starts the
// next message (then in l, with more true), or at the end of the file.
func (s *scanner) header(m *Message, l *line, atSeparator func(*line) bool) (ended bool, blankLen, bodyStart int64, more bool) {
	var field string // the field whose continuation lines are wanted
	var value []byte
	flush := func() {
		if field == "" {
			return
		}
		v := strings.TrimSpace(string(value))
		switch field {
		case "x-uidl":
			m.UIDL = append(m.UIDL, v)
		case "date":
			if m.DateHeader == "" {
				m.DateHeader = v
			}
		case "x-uid":
			if m.XUID == "" {
				m.XUID = v
			}
		case "x-imapbase":
			if m.XIMAPBase == "" {
				m.XIMAPBase = v
			}
		case "x-imap":
			if m.XIMAP == "" {
				m.XIMAP = v
			}
		case "content-length":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && m.ContentLength < 0 {
				m.ContentLength = n
			}
		}
		field, value = "", value[:0]
	}
	defer flush()
	for s.lr.next(l) {
		if atSeparator(l) {
			return false, 0, 0, true
		}
		if l.blank() {
			blankLen, bodyStart = l.n, l.end()
			return true, blankLen, bodyStart, s.lr.next(l)
		}
		h := bytes.TrimRight(l.head, "\r\n")
		if len(h) > 0 && (h[0] == ' ' || h[0] == '\t') {
			if field != "" && len(value) < maxHead {
				value = append(value, h...)
			}
			continue
		}
		flush()
		if name, v, ok := bytes.Cut(h, []byte(":")); ok {
			for _, f := range wantedFields {
				if bytes.EqualFold(name, []byte(f)) {
					field, value = f, append(value[:0], v...)
					break
				}
			}
		}
	}
	return false, 0, s.lr.off, false
}

// wantedFields are the header fields Scan records, in lower case.
var wantedFields = []string{"x-uidl", "date", "content-length", "x-uid", "x-imapbase", "x-imap"}

// errNotLengths stops the scan that tries mboxcl2 for Auto.
var errNotLengths = errors.New("not mboxcl2")

// scanFile reads the messages of the file, each from its "From " line to
// the next message's.
func scanFile(r io.ReaderAt, size int64, format Format, loc *time.Location, strict bool) (*Index, error) {
	s := &scanner{lr: newLineReader(r, size), loc: loc, ix: &Index{Format: format, Size: size}, strict: strict}
	var l line
	more, err := s.skipLeading(&l)
	if err != nil {
		return nil, err
	}
	for more {
		more, err = s.message(&l)
		if err != nil {
			return nil, err
		}
	}
	return s.ix, nil
}

func scanSeparated(r io.ReaderAt, size int64, format Format, loc *time.Location) (*Index, error) {
	return scanFile(r, size, format, loc, false)
}

// scanLengths reads mboxcl2; strict (for Auto) gives up, with ok false,
// at the first message whose Content-Length is missing or wrong.
func scanLengths(r io.ReaderAt, size int64, loc *time.Location, strict bool) (ix *Index, ok bool, err error) {
	ix, err = scanFile(r, size, Mboxcl2, loc, strict)
	if errors.Is(err, errNotLengths) {
		return nil, false, nil
	}
	return ix, err == nil, err
}

// message reads one message, from its "From " line (in l) to the start of
// the next one (left in l, more true) or the end of the file.
func (s *scanner) message(l *line) (more bool, err error) {
	num := len(s.ix.Messages) + 1
	fl := s.next
	if s.nextOff != l.off || l.off == 0 {
		fl, _ = ParseFromLine(l.head, s.loc)
	}
	m := Message{Offset: l.off, Start: l.end(), From: fl, ContentLength: -1}
	if fl.Date.IsZero() {
		s.problem(num, m.Offset, "its \"From \" line has no date: %q", clip(l.head))
	}
	var prevBlank int64 // the length of the blank line just read, if it was one
	atSeparator := func(l *line) bool {
		if !bytes.HasPrefix(l.head, fromPrefix) {
			return false
		}
		fl, _ := ParseFromLine(l.head, s.loc)
		if s.isSeparator(fl, prevBlank > 0) {
			if prevBlank == 0 && !s.strict {
				s.problem(num+1, l.off, "no blank line before its \"From \" line")
			}
			s.next, s.nextOff = fl, l.off
			return true
		}
		if s.ix.Format != Mboxcl2 {
			s.problem(num, l.off, "a \"From \" line in its text is not quoted (%s): kept as text", why(fl, prevBlank > 0))
		}
		return false
	}
	ended, blankLen, bodyStart, more := s.header(&m, l, atSeparator)
	if s.lr.err != nil {
		return false, s.lr.err
	}
	if !ended {
		if s.strict {
			return false, errNotLengths
		}
		s.problem(num, m.Offset, "ends inside its header (a truncated file?): kept as it is")
	}
	if ended && s.ix.Format == Mboxcl2 {
		if m.ContentLength >= 0 {
			if next, ok := s.boundary(bodyStart + m.ContentLength); ok {
				m.End = bodyStart + m.ContentLength
				s.add(m)
				if next < 0 {
					return false, nil
				}
				s.lr.seek(next)
				return s.lr.next(l), s.lr.err
			}
		}
		if s.strict {
			return false, errNotLengths
		}
		switch {
		case m.ContentLength < 0:
			s.problem(num, m.Offset, "no Content-Length header: it ends where the next \"From \" line starts")
		case bodyStart+m.ContentLength > s.ix.Size:
			s.problem(num, m.Offset, "Content-Length %d goes past the end of the file (a truncated file?): it ends where the next \"From \" line or the file ends", m.ContentLength)
		default:
			s.problem(num, m.Offset, "Content-Length %d is wrong (no \"From \" line or end of file there): it ends where the next \"From \" line starts", m.ContentLength)
		}
	}
	if ended {
		prevBlank = blankLen
		for more && !atSeparator(l) {
			prevBlank = 0
			if l.blank() {
				prevBlank = l.n
			}
			more = s.lr.next(l)
		}
		if s.lr.err != nil {
			return false, s.lr.err
		}
	}
	if more {
		m.End = l.off - prevBlank
	} else {
		m.End = s.ix.Size
		if m.End > m.Start && !s.lastLF() {
			s.problem(num, m.Offset, "the file ends without a line end (a truncated file?): kept as it is")
		} else {
			m.End -= prevBlank
		}
	}
	s.add(m)
	return more, nil
}

// boundary reports whether a message may end at end: at the end of the
// file (next -1), or with a "From " line at next after at most one blank
// line; blank lines alone up to the end of the file count as its end.
func (s *scanner) boundary(end int64) (next int64, ok bool) {
	if end > s.ix.Size {
		return 0, false
	}
	var buf [256]byte
	b := buf[:min(int64(len(buf)), s.ix.Size-end)]
	if _, err := s.lr.r.ReadAt(b, end); err != nil && err != io.EOF {
		return 0, false
	}
	skip := 0
	switch {
	case bytes.HasPrefix(b, []byte("\n")):
		skip = 1
	case bytes.HasPrefix(b, []byte("\r\n")):
		skip = 2
	}
	if bytes.HasPrefix(b, fromPrefix) {
		return end, true
	}
	if bytes.HasPrefix(b[skip:], fromPrefix) {
		return end + int64(skip), true
	}
	if end+int64(len(b)) == s.ix.Size && len(bytes.Trim(b, "\r\n")) == 0 {
		return -1, true
	}
	return 0, false
}

// add appends a message, or reports an empty one.
func (s *scanner) add(m Message) {
	if m.End <= m.Start {
		s.problem(len(s.ix.Messages)+1, m.Offset, "empty: skipped")
		return
	}
	s.ix.Messages = append(s.ix.Messages, m)
}

// lastLF reports whether the file ends with a line end.
func (s *scanner) lastLF() bool {
	var b [1]byte
	_, err := s.lr.r.ReadAt(b[:], s.ix.Size-1)
	return err == nil && b[0] == '\n'
}

func why(fl FromLine, afterBlank bool) string {
	switch {
	case !afterBlank && fl.Date.IsZero():
		return "no blank line before it, no date"
	case !afterBlank:
		return "no blank line before it, no header after it"
	}
	return "no date, no header after it"
}

func clip(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

package interop

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// message is one test message as it lies in the Maildir.
type message struct {
	name string // label in failure messages; also in its Subject
	raw  []byte // the file's content
}

// testMessages are delivered for every test, in this order: each one
// exercises a different part of the data path.
var testMessages = []message{
	{"plain", []byte(header("plain") + "Hello Alice,\n\nthis is a plain message.\n")},
	{"dots", []byte(header("dots") +
		// Lines a careless server would end the reply at, or a careless
		// client would leave stuffed (RFC 1939 §3 byte-stuffing).
		".leading dot\n..two dots\n.\n...\n. a dot and a space\nlast line\n")},
	{"crlf", []byte(strings.ReplaceAll(header("crlf")+"Stored with CRLF line ends\nalready.\n.\n", "\n", "\r\n"))},
	{"8bit", eightBit()},
	{"large", large()},
	{"nofinal", []byte(header("nofinal") + "The last line has no line end.")},
}

func header(name string) string {
	return "Return-Path: <sender@example.org>\n" +
		"From: Sender <sender@example.org>\n" +
		"To: Alice <alice@example.org>\n" +
		"Subject: " + name + "\n" +
		"Message-ID: <" + name + "@interop.test>\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\n" +
		"MIME-Version: 1.0\n" +
		"\n"
}

// eightBit has UTF-8 and Latin-1 text and every octet from 0x80 to 0xFF,
// plus the control characters a message may carry (not NUL, and no bare
// CR, whose meaning differs between stores).
func eightBit() []byte {
	var b bytes.Buffer
	b.WriteString(strings.Replace(header("8bit"), "MIME-Version: 1.0\n",
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: 8bit\n", 1))
	b.WriteString("UTF-8: Grüße aus Köln, 日本語, emoji 📬\n")
	b.WriteString("Latin-1: caf\xe9, na\xefve, \xa9 \xb5\n")
	for c := 0x80; c <= 0xff; c++ {
		b.WriteByte(byte(c))
		if c%32 == 31 {
			b.WriteByte('\n')
		}
	}
	b.WriteString("controls:\t")
	for c := byte(1); c < 0x20; c++ {
		if c != '\n' && c != '\r' {
			b.WriteByte(c)
		}
	}
	b.WriteString("\x7f\nend\n")
	return b.Bytes()
}

// large is a message of about 1 MiB: more than any single read or write
// buffer, with dot-stuffed lines spread through it.
func large() []byte {
	var b bytes.Buffer
	b.WriteString(header("large"))
	for i := 0; b.Len() < 1<<20; i++ {
		if i%997 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "%07d The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij\n", i)
	}
	b.WriteString(strings.Repeat("long line ", 150) + "\n") // 1,500 octets, below poplib's 2,048
	return b.Bytes()
}

// wire is the message as a client receives it from RETR after removing
// the byte-stuffing and the terminating ".": every LF as CRLF. A message
// that ends without a line end gets one: the server must end the last
// line before the terminator, and the client cannot tell that CRLF from
// the message's own.
func (m message) wire() []byte {
	w := crlf(m.raw)
	if !bytes.HasSuffix(w, []byte("\r\n")) {
		w = append(w, "\r\n"...)
	}
	return w
}

// size is what LIST must announce: exactly the octets RETR sends before
// stuffing and the terminating "." (RFC 1939 §5), the CRLF that ends an
// unfinished last line included.
func (m message) size() int {
	return len(m.wire())
}

// top is what TOP n lines sends: the header, the blank line, and the
// first n lines of the body, with CRLF line ends.
func (m message) top(n int) []byte {
	w := m.wire()
	end := bytes.Index(w, []byte("\r\n\r\n")) + 4
	for ; n > 0 && end < len(w); n-- {
		end += bytes.Index(w[end:], []byte("\r\n")) + 2
	}
	return w[:end]
}

// crlf turns every LF not preceded by CR into CRLF.
func crlf(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// toLF turns every CRLF into LF.
func toLF(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// deliverAll writes the test messages into the user's Maildir as an MTA
// would: a file in tmp/ renamed into new/, named time.unique.host with no
// size fields, LF line ends as given. Their modification times increase,
// so the store's oldest-first order is the order of testMessages.
func (s *site) deliverAll(user string) {
	s.t.Helper()
	s.deliver(user, testMessages...)
}

func (s *site) deliver(user string, msgs ...message) {
	s.t.Helper()
	dir := s.maildir(user)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, m := range msgs {
		received := base.Add(time.Duration(i) * time.Second)
		name := fmt.Sprintf("%d.M%dP%d.interop-test", received.Unix(), i+1, os.Getpid())
		tmp := filepath.Join(dir, "tmp", name)
		if err := os.WriteFile(tmp, m.raw, 0o600); err != nil {
			s.t.Fatal(err)
		}
		if err := os.Chtimes(tmp, received, received); err != nil {
			s.t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
			s.t.Fatal(err)
		}
	}
}

// maildropContents returns the content of every message file in the
// user's Maildir (new/ and cur/), whatever the store renamed them to.
func (s *site) maildropContents(user string) [][]byte {
	s.t.Helper()
	var out [][]byte
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.maildir(user), sub))
		if err != nil {
			s.t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(s.maildir(user), sub, e.Name()))
			if err != nil {
				s.t.Fatal(err)
			}
			out = append(out, data)
		}
	}
	return out
}

// wantMaildrop checks that exactly msgs are left in the user's Maildir,
// unchanged.
func (s *site) wantMaildrop(user string, msgs ...message) {
	s.t.Helper()
	raws := make([][]byte, len(msgs))
	for i, m := range msgs {
		raws[i] = m.raw
	}
	if diff := compareSets(raws, s.maildropContents(user)); diff != "" {
		s.t.Errorf("maildrop of %s: %s", user, diff)
	}
}

// wires returns the expected downloads of msgs.
func wires(msgs []message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.wire()
	}
	return out
}

// compareSets compares two collections of messages regardless of order
// (clients name the files they write as they like). It returns "" if they
// match, or a description of every difference: which expected messages
// are missing, which received ones were not expected, and for each pair
// that look like the same message where the bytes first differ.
func compareSets(want, got [][]byte) string {
	unmatched := slices.Clone(got)
	var missing [][]byte
	for _, w := range want {
		i := slices.IndexFunc(unmatched, func(g []byte) bool { return bytes.Equal(g, w) })
		if i < 0 {
			missing = append(missing, w)
			continue
		}
		unmatched = slices.Delete(unmatched, i, i+1)
	}
	if len(missing) == 0 && len(unmatched) == 0 {
		return ""
	}
	var report strings.Builder
	fmt.Fprintf(&report, "want %d messages, got %d; %d missing, %d unexpected", len(want), len(got), len(missing), len(unmatched))
	for _, w := range missing {
		id := messageID(w)
		fmt.Fprintf(&report, "\n  missing %s (%d octets)", id, len(w))
		for _, g := range unmatched {
			if messageID(g) == id {
				fmt.Fprintf(&report, "; received with %d octets: %s", len(g), firstDifference(w, g))
			}
		}
	}
	for _, g := range unmatched {
		fmt.Fprintf(&report, "\n  unexpected %s (%d octets): %q", messageID(g), len(g), clip(g, 200))
	}
	return report.String()
}

// messageID finds the Message-ID of a message, to pair up a received
// message with the expected one it may be a damaged copy of.
func messageID(b []byte) string {
	i := bytes.Index(b, []byte("Message-ID: <"))
	if i < 0 {
		return "(no Message-ID)"
	}
	rest := b[i+len("Message-ID: "):]
	if j := bytes.IndexByte(rest, '>'); j >= 0 {
		return string(rest[:j+1])
	}
	return "(bad Message-ID)"
}

// firstDifference describes where two byte strings first differ.
func firstDifference(want, got []byte) string {
	n := min(len(want), len(got))
	i := 0
	for i < n && want[i] == got[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Sprintf("first difference at octet %d: want %q, got %q", i, clip(want[from:], 100), clip(got[from:], 100))
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// wantSame fails unless got equals want byte for byte.
func wantSame(t *testing.T, what string, want, got []byte) {
	t.Helper()
	if !bytes.Equal(want, got) {
		t.Errorf("%s: %d octets, want %d; %s", what, len(got), len(want), firstDifference(want, got))
	}
}

// stripAddedHeader removes the first header field of a message, which
// must be a Received: field: fetchmail and mpop prepend exactly one when
// they store a message (documented in their manuals). Continuation lines
// of the field (starting with space or tab) go with it.
func stripAddedHeader(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte("Received: ")) {
		return nil, fmt.Errorf("message does not start with the client's Received: field: %q", clip(b, 100))
	}
	rest := b
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, fmt.Errorf("unterminated header: %q", clip(b, 200))
		}
		rest = rest[i+1:]
		if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			return rest, nil
		}
	}
}

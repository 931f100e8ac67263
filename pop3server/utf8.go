package pop3server

import (
	"bytes"
	"encoding/base64"
	"io"
	"unicode/utf8"

	"github.com/postoffice-mail/postoffice/pop3"
)

// RFC 6856: the UTF8 and LANG commands, and what a client that did not
// send UTF8 receives for a message with UTF-8 in its header.

func (c *conn) handleUTF8(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 0); err != nil {
		return err
	}
	c.utf8 = true
	return c.ok("UTF8 enabled")
}

// languages are the LANG tags the server speaks (RFC 6856 §3).
var languages = []struct{ tag, name string }{{"en", "English"}}

func (c *conn) handleLang(cmd pop3.Command) error {
	if err := wantArgs(cmd, 0, 1); err != nil {
		return err
	}
	if len(cmd.Args) == 0 {
		c.ok("language listing follows")
		for _, l := range languages {
			c.writeLine(l.tag + " " + l.name)
		}
		c.writeLine(".")
		return nil
	}
	// "*" asks for the administrator's choice; a basic language range
	// like "en-GB" matches "en" (RFC 4647 lookup, one step).
	tag := cmd.Args[0]
	for _, l := range languages {
		if tag == "*" || equalFoldPrefix(tag, l.tag) {
			return c.ok(l.tag + " language is now " + l.name)
		}
	}
	return pop3.Err("language not supported")
}

func equalFoldPrefix(rangeTag, tag string) bool {
	if len(rangeTag) < len(tag) || !bytes.EqualFold([]byte(rangeTag[:len(tag)]), []byte(tag)) {
		return false
	}
	return len(rangeTag) == len(tag) || rangeTag[len(tag)] == '-'
}

// readHeader reads from body into buf until the end of the message header
// (the first empty line), the end of buf, or EOF, and returns what it
// read and whether that holds the complete header.
func readHeader(body io.Reader, buf []byte, first int) (n int, complete bool, err error) {
	// The first read asks for first octets (TOP needs little more than
	// the header), later ones for the rest of buf.
	limit := len(buf)
	if first > 0 && first < limit {
		limit = first
	}
	for n < len(buf) {
		m, err := body.Read(buf[n:limit])
		n += m
		if headerEnd(buf[:n]) >= 0 {
			return n, true, nil
		}
		if err == io.EOF {
			return n, true, nil // the whole message is header
		}
		if err != nil {
			return n, false, err
		}
		if n == limit {
			limit = len(buf)
		}
	}
	return n, false, nil
}

// headerEnd returns the offset just past the blank line ending the header,
// or -1.
func headerEnd(b []byte) int {
	if len(b) > 0 && b[0] == '\n' {
		return 1
	}
	if len(b) > 1 && b[0] == '\r' && b[1] == '\n' {
		return 2
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// hasUTF8 reports whether b holds non-ASCII text that is valid UTF-8
// (RFC 6532 internationalised headers). Raw 8-bit bytes that are not
// UTF-8 are legacy mail, passed through as ever.
func hasUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] >= 0x80 {
			return utf8.Valid(b)
		}
	}
	return false
}

// downgradeHeader builds the surrogate header RFC 6856 §2.1 allows for a
// client not in UTF-8 mode (RFC 6855 §7 describes the idea): every
// whitespace-separated word with non-ASCII characters becomes an RFC 2047
// encoded word, so the client sees ASCII it can display, and addresses
// in angle brackets keep their place. Line ends become CRLF.
func downgradeHeader(header []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter(header, []byte("\n")) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			continue
		}
		start := 0
		for i := 0; i <= len(line); i++ {
			if i < len(line) && line[i] != ' ' && line[i] != '\t' {
				continue
			}
			word := line[start:i]
			if hasUTF8(word) {
				writeEncodedWord(&out, word)
			} else {
				out.Write(word)
			}
			if i < len(line) {
				out.WriteByte(line[i])
			}
			start = i + 1
		}
		out.WriteString("\r\n")
	}
	out.WriteString("\r\n")
	return out.Bytes()
}

// writeEncodedWord writes word as "=?UTF-8?B?...?=" pieces of at most 75
// characters (RFC 2047 §2), split between characters, folded.
func writeEncodedWord(out *bytes.Buffer, word []byte) {
	const maxChunk = 45 // 45 octets → 60 base64 characters + 12 of framing
	for first := true; len(word) > 0; first = false {
		n := min(len(word), maxChunk)
		for n < len(word) && !utf8.RuneStart(word[n]) {
			n--
		}
		if !first {
			out.WriteString("\r\n ")
		}
		out.WriteString("=?UTF-8?B?")
		out.WriteString(base64.StdEncoding.EncodeToString(word[:n]))
		out.WriteString("?=")
		word = word[n:]
	}
}

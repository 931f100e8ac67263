package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Benchmark messages carry their own proof of correct transfer: an
// X-Bench-Check header with the length and CRC-32C of the body as RETR
// must send it (CRLF line ends, dot-stuffing removed) and of its first
// TopLines lines, as TOP n TopLines must send them. The checker below
// recomputes both from what a server sent, so a lost or doubled dot, a
// bare LF, a cut or a padded message is an error, whatever server sent it.

// TopLines is the body line count whose checksum every benchmark message
// carries, and the default line count of the top scenario.
const TopLines = 10

// checkHeader is the name of the header with the checksums.
const checkHeader = "X-Bench-Check"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sizes of generated messages: log-normal with a median of 8 KiB and a
// 95th percentile of 100 KiB (about what mailboxes hold: mostly short
// text, some attachments), clamped to [minSize, maxSize].
const (
	medianSize = 8 << 10
	p95Size    = 100 << 10
	minSize    = 600
	maxSize    = 4 << 20
)

// messageSize draws the size of one message.
func messageSize(rng *rand.Rand) int {
	mu := math.Log(medianSize)
	sigma := (math.Log(p95Size) - mu) / 1.6449 // z of the 95th percentile
	size := math.Exp(mu + sigma*rng.NormFloat64())
	return int(min(max(size, minSize), maxSize))
}

var words = []string{
	"the", "mail", "server", "message", "of", "and", "a", "to", "in", "is",
	"report", "meeting", "tomorrow", "please", "find", "attached", "quarterly",
	"figures", "regards", "thanks", "for", "your", "reply", "we", "will",
	"discuss", "budget", "project", "deadline", "Monday", "invoice", "number",
}

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// Message builds benchmark message number i of a maildrop generated with
// seed: headers, a text body with some lines that start with "." (a few
// are just "."), and for larger sizes a base64 block like an attachment.
// Lines end in LF, as an MTA stores them. The same seed and i always give
// the same octets.
func Message(seed uint64, i int) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	target := messageSize(rng)
	var body bytes.Buffer
	body.Grow(target + 128)
	line := make([]byte, 0, 128)
	textTarget := target
	if target > 16<<10 {
		textTarget = 2<<10 + rng.IntN(4<<10) // the rest is an "attachment"
	}
	for body.Len() < textTarget {
		line = line[:0]
		switch r := rng.IntN(100); {
		case r < 4:
			// Lines that need byte-stuffing: ".", "..", ".text".
			line = append(line, '.')
			if r == 1 {
				line = append(line, '.')
			} else if r >= 2 {
				line = append(line, words[rng.IntN(len(words))]...)
			}
		case r < 10:
			// A blank line between paragraphs.
		default:
			width := 30 + rng.IntN(48)
			for len(line) < width {
				if len(line) > 0 {
					line = append(line, ' ')
				}
				line = append(line, words[rng.IntN(len(words))]...)
			}
		}
		body.Write(line)
		body.WriteByte('\n')
	}
	if body.Len() < target {
		body.WriteString("\n--attachment\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
		for body.Len() < target {
			line = line[:0]
			for range 76 {
				line = append(line, base64Chars[rng.IntN(64)])
			}
			body.Write(line)
			body.WriteByte('\n')
		}
		body.WriteString("--attachment--\n")
	}
	sum := bodyChecksum(body.Bytes())
	var msg bytes.Buffer
	msg.Grow(body.Len() + 512)
	fmt.Fprintf(&msg, "From: Sender %d <sender%d@example.org>\n", i%97, i%97)
	fmt.Fprintf(&msg, "To: <user@example.org>\n")
	fmt.Fprintf(&msg, "Subject: benchmark message %d\n", i)
	fmt.Fprintf(&msg, "Date: Mon, 06 Jan 2025 10:%02d:%02d +0000\n", i/60%60, i%60)
	fmt.Fprintf(&msg, "Message-ID: <%d.%d@bench.example.org>\n", seed, i)
	fmt.Fprintf(&msg, "%s: %s\n", checkHeader, sum)
	msg.WriteString("\n")
	msg.Write(body.Bytes())
	return msg.Bytes()
}

// checksum is the content of an X-Bench-Check header.
type checksum struct {
	length int64  // body octets with CRLF line ends
	crc    uint32 // CRC-32C of those octets
	top    uint32 // CRC-32C of the first TopLines lines (CRLF)
}

func (c checksum) String() string {
	return fmt.Sprintf("v1 len=%d crc=%08x top%d=%08x", c.length, c.crc, TopLines, c.top)
}

// bodyChecksum computes the checksum of an LF body as a server must send
// it, with CRLF line ends.
func bodyChecksum(body []byte) checksum {
	var c checksum
	lines := 0
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			i = len(body) // no final LF: the server adds CRLF
		}
		c.crc = crc32.Update(c.crc, castagnoli, body[:i])
		c.crc = crc32.Update(c.crc, castagnoli, crlf)
		c.length += int64(i) + 2
		lines++
		if lines == TopLines {
			c.top = c.crc
		}
		body = body[min(i+1, len(body)):]
	}
	if lines < TopLines {
		c.top = c.crc
	}
	return c
}

var crlf = []byte("\r\n")

// parseChecksum reads the value of an X-Bench-Check header
// ("v1 len=<n> crc=<hex> top10=<hex>", as checksum.String writes it).
func parseChecksum(v string) (checksum, bool) {
	f := strings.Fields(v)
	if len(f) != 4 || f[0] != "v1" {
		return checksum{}, false
	}
	field := func(s, prefix string, base int) (uint64, bool) {
		rest, ok := strings.CutPrefix(s, prefix)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(rest, base, 64)
		return n, err == nil
	}
	length, ok1 := field(f[1], "len=", 10)
	crc, ok2 := field(f[2], "crc=", 16)
	top, ok3 := field(f[3], "top"+strconv.Itoa(TopLines)+"=", 16)
	if !ok1 || !ok2 || !ok3 || length > 1<<62 || crc > 0xFFFFFFFF || top > 0xFFFFFFFF {
		return checksum{}, false
	}
	return checksum{length: int64(length), crc: uint32(crc), top: uint32(top)}, true
}

// maxCheckedHeader bounds the header the checker holds to find the
// X-Bench-Check line.
const maxCheckedHeader = 64 << 10

// checker verifies one message as it streams past (io.Writer): CRLF
// line ends everywhere, and for a benchmark message the body's length and
// checksum (whole for RETR, the first TopLines lines for TOP).
type checker struct {
	top    bool // TOP TopLines rather than RETR
	header []byte
	inBody bool
	sum    checksum // the header's checksums, once the header is read
	summed bool     // the header had them: the body's CRC checks every octet
	prev   byte     // the last octet seen
	n      int64
	body   int64
	crc    uint32
	err    error
}

func (c *checker) reset(top bool) {
	*c = checker{top: top, header: c.header[:0]}
}

// Write implements io.Writer; it never fails, errors are kept for done.
func (c *checker) Write(p []byte) (int, error) {
	n := len(p)
	if c.err != nil {
		return n, nil
	}
	if c.summed {
		// The body of a benchmark message: its CRC catches a bare LF or
		// any other change, no need to look at each line end.
		if len(p) > 0 {
			c.prev = p[len(p)-1]
		}
		c.n += int64(len(p))
		c.crc = crc32.Update(c.crc, castagnoli, p)
		c.body += int64(len(p))
		return n, nil
	}
	// Every LF must follow a CR.
	for i := bytes.IndexByte(p, '\n'); i >= 0; {
		prev := c.prev
		if i > 0 {
			prev = p[i-1]
		}
		if prev != '\r' {
			c.err = fmt.Errorf("bare LF at octet %d", c.n+int64(i))
			return n, nil
		}
		j := bytes.IndexByte(p[i+1:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	if len(p) > 0 {
		c.prev = p[len(p)-1]
	}
	c.n += int64(len(p))
	if !c.inBody {
		c.header = append(c.header, p...)
		end := bytes.Index(c.header, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.header) > maxCheckedHeader {
				c.err = errors.New("no end of header found")
			}
			return n, nil
		}
		c.inBody = true
		rest := c.header[end+4:]
		c.header = c.header[:end+2]
		c.crc = crc32.Update(0, castagnoli, rest)
		c.body = int64(len(rest))
		var err error
		if c.sum, c.summed, err = findChecksum(c.header); err != nil {
			c.err = err
		}
		return n, nil
	}
	c.crc = crc32.Update(c.crc, castagnoli, p)
	c.body += int64(len(p))
	return n, nil
}

// done checks the end of the message and reports whether it was a
// benchmark message (one with checksums); a message without them is
// checked only for line ends and a header.
func (c *checker) done() (verified bool, err error) {
	if c.err != nil {
		return false, c.err
	}
	if c.n > 0 && c.prev != '\n' {
		return false, errors.New("message does not end with CRLF")
	}
	if !c.inBody {
		// A message that is all header is fine; it is not one of ours.
		return false, nil
	}
	if !c.summed {
		return false, nil
	}
	sum := c.sum
	want, wantCRC := sum.length, sum.crc
	if c.top {
		want, wantCRC = -1, sum.top
	}
	if want >= 0 && c.body != want {
		return false, fmt.Errorf("body of %d octets, want %d", c.body, want)
	}
	if c.crc != wantCRC {
		return false, fmt.Errorf("body checksum %08x, want %08x (dot-stuffing or line ends damaged)", c.crc, wantCRC)
	}
	return true, nil
}

// findChecksum looks for the X-Bench-Check field in a CRLF header.
func findChecksum(header []byte) (checksum, bool, error) {
	for len(header) > 0 {
		i := bytes.Index(header, crlf)
		if i < 0 {
			i = len(header)
		}
		line := header[:i]
		header = header[min(i+2, len(header)):]
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(name, []byte(checkHeader)) {
			continue
		}
		sum, ok := parseChecksum(string(bytes.TrimSpace(value)))
		if !ok {
			return sum, false, fmt.Errorf("unreadable %s header %q", checkHeader, value)
		}
		return sum, true, nil
	}
	return checksum{}, false, nil
}

// FileName is the Maildir file name of message i: delivery time, a
// unique part and a host, without ",S=" or ",W=" sizes (as procmail and
// many MDAs write it), so a server must read each file once to learn its
// size.
func FileName(i int) string {
	return strconv.Itoa(1700000000+i/10) + ".M" + strconv.Itoa(i%10*100000+i%997) +
		"P4242Q" + strconv.Itoa(i+1) + ".bench"
}

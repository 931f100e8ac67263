package delivery

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/postoffice-mail/postoffice/pop3"
)

func readAll(t *testing.T, m *Message) string {
	t.Helper()
	b, err := io.ReadAll(m.reader())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadMessageNormalises(t *testing.T) {
	long := strings.Repeat("x", maxLineOctets)
	for _, tc := range []struct{ name, in, want string }{
		{"crlf", "a: b\r\n\r\nbody\r\n", "a: b\n\nbody\n"},
		{"bare lf", "a: b\n\nbody\n", "a: b\n\nbody\n"},
		{"bare cr", "a: b\r\rbody\r", "a: b\n\nbody\n"},
		{"cr cr lf", "x\r\r\ny\r\n", "x\n\ny\n"},
		{"mixed", "a\r\nb\nc\rd", "a\nb\nc\nd\n"},
		{"no final newline", "Subject: x\n\nend", "Subject: x\n\nend\n"},
		{"empty", "", ""},
		{"dots kept", ".\r\n..\r\n", ".\n..\n"},
		{"8bit", "Subject: \xc3\xa9\r\n\r\n\xff\r\n", "Subject: \xc3\xa9\n\n\xff\n"},
		{"longest line", long + "\r\n", long + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One octet per read: state must carry across reads (a CRLF
			// split between two reads is one line end).
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				m, err := ReadMessage(r, 1<<20, "")
				if err != nil {
					t.Fatalf("ReadMessage: %v", err)
				}
				if got := readAll(t, m); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				if m.Size != int64(len(tc.want)) {
					t.Errorf("Size %d, want %d", m.Size, len(tc.want))
				}
				pop3Size, _ := pop3.NormalizedSize(strings.NewReader(tc.want))
				if m.POP3Size() != pop3Size {
					t.Errorf("POP3Size %d, want %d", m.POP3Size(), pop3Size)
				}
				m.Close()
			}
		})
	}
}

func TestReadMessageRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int64
		want     *Error
	}{
		{"nul", "Subject: x\r\n\r\na\x00b\r\n", 1 << 20, ErrNUL},
		{"long line", strings.Repeat("y", maxLineOctets+1) + "\r\n", 1 << 20, ErrLongLine},
		{"long last line", "a\n" + strings.Repeat("y", maxLineOctets+1), 1 << 20, ErrLongLine},
		{"too large", strings.Repeat("line\r\n", 100), 100, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ReadMessage(strings.NewReader(tc.in), tc.max, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadMessage = %v, %v; want %v", m, err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Temporary() {
				t.Errorf("error %v is not a permanent *Error", err)
			}
		})
	}
	// A sender that goes away mid-message: temporary, so the MTA retries.
	_, err := ReadMessage(io.MultiReader(strings.NewReader("Subject: x\r\n"), iotest.ErrReader(io.ErrUnexpectedEOF)), 1<<20, "")
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() {
		t.Errorf("ReadMessage of a broken stream = %v, want a temporary *Error", err)
	}
}

// A message over the memory spool goes to an unlinked file in the spool
// directory and reads back whole.
func TestReadMessageSpoolsToFile(t *testing.T) {
	dir := t.TempDir()
	in := strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz\r\n", 3*memorySpool/40)
	m, err := ReadMessage(strings.NewReader(in), 1<<30, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.file == nil {
		t.Fatal("a 3 MiB message stayed in memory")
	}
	if got := readAll(t, m); got != strings.ReplaceAll(in, "\r\n", "\n") {
		t.Errorf("spooled message differs (%d octets, want %d)", len(got), len(in))
	}
	if names := mustList(t, dir); len(names) != 0 {
		t.Errorf("spool directory holds %q; the spool file must be unlinked", names)
	}
}

func TestDeliveredToFields(t *testing.T) {
	m, err := ReadMessage(strings.NewReader("Received: x\r\nDelivered-To: <Alice@Example.org>\r\ndelivered-to:\r\n bob@example.org\r\n\r\nDelivered-To: carol@example.org\r\n"), 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"alice@example.org": true, "ALICE@example.org": true, "bob@example.org": true, "carol@example.org": false} {
		if got := m.hasDeliveredTo(addr); got != want {
			t.Errorf("hasDeliveredTo(%q) = %v, want %v (fields in the body do not count)", addr, got, want)
		}
	}
}

func TestSkipMboxFromLine(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("From bounce@example.org Thu Nov 26 10:00:00 2026\nSubject: x\n\nbody\n"))
	sender, err := SkipMboxFromLine(r)
	rest, _ := io.ReadAll(r)
	if err != nil || sender != "bounce@example.org" || string(rest) != "Subject: x\n\nbody\n" {
		t.Errorf("SkipMboxFromLine = %q, %v; rest %q", sender, err, rest)
	}
	r = bufio.NewReader(strings.NewReader("Subject: y\n"))
	if sender, err := SkipMboxFromLine(r); sender != "" || err != nil {
		t.Errorf("without a From line: %q, %v", sender, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "Subject: y\n" {
		t.Errorf("without a From line the message changed: %q", rest)
	}
}

// FuzzReadMessage: whatever comes in, what is stored has only LF line
// ends, no NUL, no line over the limit, ends with a line end, announces
// the size POP3 will send, and reading it again changes nothing.
func FuzzReadMessage(f *testing.F) {
	for _, seed := range []string{"", "a\r\nb\n", "x\r\ry\r", "\r\n.\r\n", "Delivered-To: a@b\n\n", "a\x00b", strings.Repeat("z", 1000)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadMessage(strings.NewReader(string(data)), 1<<20, "")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Temporary() {
				t.Fatalf("ReadMessage: %v, want a permanent *Error", err)
			}
			return
		}
		out := readAll(t, m)
		if strings.ContainsAny(out, "\r\x00") || (out != "" && !strings.HasSuffix(out, "\n")) {
			t.Fatalf("stored %q", out)
		}
		for line := range strings.SplitSeq(out, "\n") {
			if len(line) > maxLineOctets {
				t.Fatalf("line of %d octets stored", len(line))
			}
		}
		size, _ := pop3.NormalizedSize(strings.NewReader(out))
		if m.POP3Size() != size {
			t.Fatalf("POP3Size %d, NormalizedSize %d", m.POP3Size(), size)
		}
		again, err := ReadMessage(strings.NewReader(out), 1<<20, "")
		if err != nil || readAll(t, again) != out {
			t.Fatalf("normalising twice changed %q: %v", out, err)
		}
	})
}

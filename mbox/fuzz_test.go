package mbox

import (
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzScan: any input, in every format, gives messages in file order
// that do not overlap and lie within the file, each readable, or an
// error — never a panic.
func FuzzScan(f *testing.F) {
	f.Add(from1 + "Subject: a\n\n>From here\n\n" + from2 + "X-UIDL: x\n\nbody\n")
	f.Add(from1 + "Content-Length: 5\n\nhello\n" + from2 + "Content-Length: 99\n\nx")
	f.Add("junk\n\n" + from3 + "Subject: a\r\n\r\nFrom me\r\n")
	f.Add(from1 + "\n\n" + from2)
	f.Fuzz(func(t *testing.T, in string) {
		for _, format := range []Format{Auto, Mboxrd, Mboxo, Mboxcl2} {
			ix, err := Scan(strings.NewReader(in), int64(len(in)), Options{Format: format, Location: time.UTC})
			if err != nil {
				if err != ErrNotMbox {
					t.Fatalf("%v: %v", format, err)
				}
				continue
			}
			var last int64
			for i, m := range ix.Messages {
				if m.Offset < last || m.Start <= m.Offset || m.End <= m.Start || m.End > int64(len(in)) {
					t.Fatalf("%v: message %d at %d, %d-%d (previous ended at %d)", format, i+1, m.Offset, m.Start, m.End, last)
				}
				last = m.End
				b, err := io.ReadAll(ix.Content(strings.NewReader(in), i))
				if err != nil || int64(len(b)) > m.End-m.Start {
					t.Fatalf("%v: message %d: %d octets, %v", format, i+1, len(b), err)
				}
			}
		}
	})
}

// FuzzRoundTrip: messages written with WriteMboxrd are read back from
// the mboxrd file as they were (a line end added to one that had none).
func FuzzRoundTrip(f *testing.F) {
	f.Add("Subject: a\n\nFrom x\n>From y\n", "b", ">>>From z\n\n\n")
	f.Add("x\r\n\r\ny", "From ", "\n")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		var msgs []string
		for _, m := range []string{a, b, c} {
			if m != "" {
				msgs = append(msgs, m)
			}
		}
		in := writeAll(t, msgs)
		got := contents(t, scanString(t, in, Mboxrd), in)
		if len(got) != len(msgs) {
			t.Fatalf("%d messages read back, %d written:\n%q", len(got), len(msgs), in)
		}
		for i, m := range msgs {
			if !strings.HasSuffix(m, "\n") {
				m += "\n"
			}
			if got[i] != m {
				t.Fatalf("message %d read back as %q, written %q", i+1, got[i], m)
			}
		}
	})
}

// FuzzParseFromLine: any line parses without a panic; a date, when found,
// comes from the line's last weekday-and-month run.
func FuzzParseFromLine(f *testing.F) {
	f.Add("From alice@example.org Mon Jan  2 15:04:05 2006\n")
	f.Add("From x Mon Jan 2 15:04:05 -0700 2006 remote from y\r\n")
	f.Add("From Mon Jan Mon Jan 2 15:04 2006")
	f.Fuzz(func(t *testing.T, line string) {
		fl, ok := ParseFromLine([]byte(line), time.UTC)
		if ok != strings.HasPrefix(line, "From ") {
			t.Fatalf("ok %v for %q", ok, line)
		}
		if strings.ContainsAny(fl.Sender, "\r\n") {
			t.Fatalf("sender %q holds a line end", fl.Sender)
		}
	})
}

package mbox

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func scanString(t testing.TB, s string, f Format) *Index {
	t.Helper()
	ix, err := Scan(strings.NewReader(s), int64(len(s)), Options{Format: f, Location: time.UTC})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return ix
}

func contents(t testing.TB, ix *Index, s string) []string {
	t.Helper()
	var out []string
	for i := range ix.Messages {
		b, err := io.ReadAll(ix.Content(strings.NewReader(s), i))
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		out = append(out, string(b))
	}
	return out
}

const (
	from1 = "From alice@example.org Mon Jan  2 15:04:05 2006\n"
	from2 = "From MAILER-DAEMON Tue Feb 14 09:00:00 2023\n"
	from3 = "From bob Wed Mar  1 00:00:00 2023\n"
)

func TestScan(t *testing.T) {
	for _, c := range []struct {
		name       string
		in         string
		format     Format
		wantFormat Format
		want       []string
		problems   []string // substrings, one a problem, in order
	}{
		{
			name:       "two messages, mboxrd quoting undone",
			in:         from1 + "Subject: a\n\n>From here\n>>From there\n\n" + from2 + "Subject: b\n\nbody\n\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nFrom here\n>From there\n", "Subject: b\n\nbody\n"},
		},
		{
			name:       "mboxo takes a '>' off >From only",
			in:         from1 + "Subject: a\n\n>From here\n>>From there\n\n",
			format:     Mboxo,
			wantFormat: Mboxo,
			want:       []string{"Subject: a\n\nFrom here\n>>From there\n"},
		},
		{
			name:       "mboxcl2 detected: unquoted From line in the body",
			in:         from1 + "Content-Length: 28\n\nhello\n\nFrom the desk of Bob\n\n" + from2 + "Content-Length: 5\n\nbye\n\n\n",
			wantFormat: Mboxcl2,
			want:       []string{"Content-Length: 28\n\nhello\n\nFrom the desk of Bob\n", "Content-Length: 5\n\nbye\n\n"},
		},
		{
			name:       "mboxcl2 keeps >From as it is",
			in:         from1 + "Content-Length: 11\n\n>From here\n",
			wantFormat: Mboxcl2,
			want:       []string{"Content-Length: 11\n\n>From here\n"},
		},
		{
			name:       "wrong Content-Length falls back to the From lines",
			in:         from1 + "Content-Length: 3\n\nhello there\n\n" + from2 + "Content-Length: 4\n\nbye\n",
			format:     Mboxcl2,
			wantFormat: Mboxcl2,
			want:       []string{"Content-Length: 3\n\nhello there\n", "Content-Length: 4\n\nbye\n"},
			problems:   []string{"message 1 (offset 0): Content-Length 3 is wrong"},
		},
		{
			name:       "Content-Length past the end of the file",
			in:         from1 + "Content-Length: 300\n\ncut short\n",
			format:     Mboxcl2,
			wantFormat: Mboxcl2,
			want:       []string{"Content-Length: 300\n\ncut short\n"},
			problems:   []string{"goes past the end of the file"},
		},
		{
			name:       "auto: one wrong length means mboxrd",
			in:         from1 + "Content-Length: 3\n\nhello\n\n" + from2 + "Subject: b\n\nx\n",
			wantFormat: Mboxrd,
			want:       []string{"Content-Length: 3\n\nhello\n", "Subject: b\n\nx\n"},
		},
		{
			name:       "CRLF mbox",
			in:         strings.ReplaceAll(from1+"Subject: a\n\n>From x\n\n"+from2+"Subject: b\n\nbody\n\n", "\n", "\r\n"),
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\r\n\r\nFrom x\r\n", "Subject: b\r\n\r\nbody\r\n"},
		},
		{
			name:       "missing final newline",
			in:         from1 + "Subject: a\n\nlast line",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nlast line"},
			problems:   []string{"message 1 (offset 0): the file ends without a line end"},
		},
		{
			name:       "truncated inside the header",
			in:         from1 + "Subject: a\n\nbody\n\n" + from2 + "Subject: b\nX-Cut: ",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nbody\n", "Subject: b\nX-Cut: "},
			problems:   []string{"message 2 (offset 66): ends inside its header", "message 2 (offset 66): the file ends without a line end"},
		},
		{
			name:       "unquoted From line in the text, no blank line before it",
			in:         from1 + "Subject: a\n\nsee below\nFrom the desk of Bob\n\n" + from2 + "Subject: b\n\nx\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nsee below\nFrom the desk of Bob\n", "Subject: b\n\nx\n"},
			problems:   []string{`message 1 (offset 70): a "From " line in its text is not quoted (no blank line before it, no date)`},
		},
		{
			name:       "unquoted From line after a blank line, with no date and text after it",
			in:         from1 + "Subject: a\n\nhi\n\nFrom me to you\nbye\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nhi\n\nFrom me to you\nbye\n"},
			problems:   []string{"not quoted (no date, no header after it)"},
		},
		{
			name:       "From line without a date but a header after it starts a message",
			in:         from1 + "Subject: a\n\nhi\n\nFrom broken\nSubject: b\n\nx\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nhi\n", "Subject: b\n\nx\n"},
			problems:   []string{`message 2 (offset 64): its "From " line has no date: "From broken"`},
		},
		{
			name:       "no blank line before a dated From line followed by a header",
			in:         from1 + "Subject: a\n\nhi\n" + from2 + "Subject: b\n\nx\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nhi\n", "Subject: b\n\nx\n"},
			problems:   []string{`message 2 (offset 63): no blank line before its "From " line`},
		},
		{
			name:       "data before the first From line",
			in:         "garbage\n\n" + from1 + "Subject: a\n\nhi\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n\nhi\n"},
			problems:   []string{`offset 0: 9 octets before the first "From " line belong to no message: skipped`},
		},
		{
			name:       "empty message",
			in:         from1 + "\n" + from2 + "Subject: b\n\nx\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: b\n\nx\n"},
			problems:   []string{"message 1 (offset 0): empty: skipped"},
		},
		{
			name:       "empty file",
			in:         "",
			wantFormat: Mboxcl2,
		},
		{
			name:       "message with a header only",
			in:         from1 + "Subject: a\n\n" + from2 + "Subject: b\n\n\n",
			wantFormat: Mboxrd,
			want:       []string{"Subject: a\n", "Subject: b\n\n"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ix := scanString(t, c.in, c.format)
			if ix.Format != c.wantFormat {
				t.Errorf("format %v, want %v", ix.Format, c.wantFormat)
			}
			got := contents(t, ix, c.in)
			if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
				t.Errorf("messages:\n%q\nwant\n%q", got, c.want)
			}
			var problems []string
			for _, p := range ix.Problems {
				problems = append(problems, p.String())
			}
			if len(problems) != len(c.problems) {
				t.Fatalf("problems:\n%s\nwant %d", strings.Join(problems, "\n"), len(c.problems))
			}
			for i, want := range c.problems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d = %q, want it to say %q", i, problems[i], want)
				}
			}
		})
	}
}

func TestScanNotMbox(t *testing.T) {
	s := "Subject: not an mbox\n\nhello\n"
	if _, err := Scan(strings.NewReader(s), int64(len(s)), Options{}); err != ErrNotMbox {
		t.Errorf("Scan = %v, want ErrNotMbox", err)
	}
}

// The header fields an import needs, folded or not, in any case.
func TestScanHeaderFields(t *testing.T) {
	in := from1 + "x-uidl: abc\nDate: Mon, 2 Jan 2006 10:00:00 +0000\nX-UIDL: two\n\tparts\nContent-Length: 3\n\nhi\n\n" +
		from2 + "Subject: none\nX-IMAPbase: 1690000000 0000000009\nX-UID: 7\n\nx\n"
	ix := scanString(t, in, Mboxrd)
	m := ix.Messages[0]
	if strings.Join(m.UIDL, "|") != "abc|two\tparts" || m.DateHeader != "Mon, 2 Jan 2006 10:00:00 +0000" || m.ContentLength != 3 {
		t.Errorf("fields: UIDL %q, Date %q, Content-Length %d", m.UIDL, m.DateHeader, m.ContentLength)
	}
	if want := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC); !m.From.Date.Equal(want) || m.From.Sender != "alice@example.org" {
		t.Errorf("From line: %+v", m.From)
	}
	if m := ix.Messages[1]; m.UIDL != nil || m.ContentLength != -1 || m.XUID != "7" || m.XIMAPBase != "1690000000 0000000009" || m.XIMAP != "" {
		t.Errorf("message 2: UIDL %q, Content-Length %d", m.UIDL, m.ContentLength)
	}
}

func TestParseFromLine(t *testing.T) {
	est := time.FixedZone("", -5*3600)
	for _, c := range []struct {
		line   string
		sender string
		date   time.Time
	}{
		{"From alice@example.org Mon Jan  2 15:04:05 2006\n", "alice@example.org", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"From alice Mon Jan 2 15:04:05 2006\r\n", "alice", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"From alice Mon Jan 2 15:04:05 2006 -0500", "alice", time.Date(2006, 1, 2, 15, 4, 5, 0, est)},
		{"From alice Mon Jan 2 15:04:05 -0500 2006", "alice", time.Date(2006, 1, 2, 15, 4, 5, 0, est)},
		{"From alice Mon Jan 2 15:04 2006", "alice", time.Date(2006, 1, 2, 15, 4, 0, 0, time.UTC)},
		{"From alice Mon Jan 2 15:04:05 2006 remote from mars", "alice", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)},
		{`From "a b"@example.org Mon Jan 2 15:04:05 2006`, `"a b"@example.org`, time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"From  Mon Jan 2 15:04:05 2006", "", time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)},
		{"From broken date here", "broken date here", time.Time{}},
		{"From alice Mon Jan 32 15:04:05 2006", "alice Mon Jan 32 15:04:05 2006", time.Time{}},
	} {
		fl, ok := ParseFromLine([]byte(c.line), time.UTC)
		if !ok || fl.Sender != c.sender || !fl.Date.Equal(c.date) {
			t.Errorf("ParseFromLine(%q) = %+v, %v; want sender %q, date %v", c.line, fl, ok, c.sender, c.date)
		}
	}
	if _, ok := ParseFromLine([]byte(">From x Mon Jan 2 15:04:05 2006"), time.UTC); ok {
		t.Error("a quoted line parsed as a From line")
	}
}

func TestWriteMboxrd(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Subject: a\n\nFrom x\n>From y\n>>From z\n>Fro\n", "Subject: a\n\n>From x\n>>From y\n>>>From z\n>Fro\n\n"},
		{"no final newline", "no final newline\n\n"},
		{"From at the start\n", ">From at the start\n\n"},
		{">" + strings.Repeat(">", 100) + "From deep\n", ">>" + strings.Repeat(">", 100) + "From deep\n\n"},
	} {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := WriteMboxrd(w, "From x Mon Jan  2 15:04:05 2006\n", strings.NewReader(c.in)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if got := strings.TrimPrefix(out.String(), "From x Mon Jan  2 15:04:05 2006\n"); got != c.want {
			t.Errorf("WriteMboxrd(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := FormatFromLine("", time.Date(2023, 2, 4, 5, 6, 7, 0, time.UTC)); got != "From MAILER-DAEMON Sat Feb  4 05:06:07 2023\n" {
		t.Errorf("FormatFromLine = %q", got)
	}
}

// A message written with WriteMboxrd is read back as it was (with a line
// end added when it had none).
func TestRoundTrip(t *testing.T) {
	msgs := []string{
		"Subject: one\n\nFrom the start\n>From quoted\n\n",
		"Subject: two\r\n\r\nCRLF\r\n",
		"Subject: three\n\n\n\nFrom x Mon Jan  2 15:04:05 2006\nSubject: not a header\n",
		"no header at all",
	}
	in := writeAll(t, msgs)
	got := contents(t, scanString(t, in, Mboxrd), in)
	msgs[3] += "\n"
	if strings.Join(got, "|") != strings.Join(msgs, "|") {
		t.Errorf("read back\n%q\nwant\n%q", got, msgs)
	}
}

func writeAll(t testing.TB, msgs []string) string {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	for i, m := range msgs {
		if err := WriteMboxrd(w, FormatFromLine("", time.Unix(int64(i)*86400, 0)), strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	return out.String()
}

func TestParseFormat(t *testing.T) {
	for _, f := range []Format{Auto, Mboxrd, Mboxo, Mboxcl2} {
		if g, err := ParseFormat(f.String()); err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), g, err)
		}
	}
	if _, err := ParseFormat("maildir"); err == nil {
		t.Error("ParseFormat(maildir) succeeded")
	}
}

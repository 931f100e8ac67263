package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func dotWrite(t testing.TB, in string, chunk int) string {
	var out bytes.Buffer
	d := NewDotWriter(&out)
	for p := []byte(in); len(p) > 0; {
		n := min(chunk, len(p))
		if _, err := d.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestDotWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\n.b\n..c\n", "a\r\n..b\r\n...c\r\n.\r\n"},
		{"x\r\n.\r\ny", "x\r\n..\r\ny\r\n.\r\n"},
		{"bare\rcr\n", "bare\rcr\r\n.\r\n"},
		{"ends in cr\r", "ends in cr\r\n.\r\n"},
		{"\n\n", "\r\n\r\n.\r\n"},
		{"a.b\n", "a.b\r\n.\r\n"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 2, 3, 7, 1 << 20} {
			if got := dotWrite(t, tt.in, chunk); got != tt.want {
				t.Errorf("DotWriter(%q) in chunks of %d = %q, want %q", tt.in, chunk, got, tt.want)
			}
		}
	}
}

// unstuffedSize is what the wire carried before stuffing and without the
// terminator the writer adds: the octets the announced size counts.
func unstuffedSize(t testing.TB, wire string) int64 {
	body, err := io.ReadAll(NewDotReader(bufio.NewReader(strings.NewReader(wire))))
	if err != nil {
		t.Fatalf("reading back %q: %v", wire, err)
	}
	return int64(len(body))
}

// FuzzDotWriter pins design invariant 3: the size announced (NormalizedSize)
// equals what RETR sends before dot-stuffing, and the DotReader gives back
// exactly the normalised message.
func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", "a\n.b\r\n", ".\r\n.\n", "x\r", "\r\r\n\n", "..\n."} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, in string, chunk int) {
		chunk = 1 + abs(chunk)%64
		wire := dotWrite(t, in, chunk)
		if !strings.HasSuffix(wire, "\r\n.\r\n") && wire != ".\r\n" {
			t.Fatalf("no terminator: %q", wire)
		}
		size, err := NormalizedSize(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := unstuffedSize(t, wire); got != size {
			t.Fatalf("NormalizedSize = %d, wire carried %d (%q → %q)", size, got, in, wire)
		}
		// No line on the wire may be a lone "." before the terminator.
		if i := strings.Index(wire, "\r\n.\r\n"); i >= 0 && i != len(wire)-5 {
			t.Fatalf("premature terminator in %q", wire)
		}
		if strings.HasPrefix(wire, ".\r\n") && wire != ".\r\n" {
			t.Fatalf("premature terminator in %q", wire)
		}
	})
}

func TestNormalizedSizeReaders(t *testing.T) {
	in := strings.Repeat("line\n\r\nx\r", 10000)
	want, _ := NormalizedSize(strings.NewReader(in))
	for name, r := range map[string]io.Reader{
		"onebyte": iotest.OneByteReader(strings.NewReader(in)),
		"half":    iotest.HalfReader(strings.NewReader(in)),
	} {
		got, err := NormalizedSize(r)
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", name, got, err, want)
		}
	}
	if _, err := NormalizedSize(iotest.ErrReader(io.ErrUnexpectedEOF)); err == nil {
		t.Error("read error not reported")
	}
}

func TestTopWriter(t *testing.T) {
	msg := "Subject: hi\r\nFrom: a\r\n\r\nline1\r\n.line2\r\nline3\r\n"
	tests := []struct {
		lines int
		want  string
	}{
		{0, "Subject: hi\r\nFrom: a\r\n\r\n.\r\n"},
		{1, "Subject: hi\r\nFrom: a\r\n\r\nline1\r\n.\r\n"},
		{2, "Subject: hi\r\nFrom: a\r\n\r\nline1\r\n..line2\r\n.\r\n"},
		{99999999, "Subject: hi\r\nFrom: a\r\n\r\nline1\r\n..line2\r\nline3\r\n.\r\n"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 5, 1000} {
			var out bytes.Buffer
			dw := NewDotWriter(&out)
			tw := NewTopWriter(dw, tt.lines)
			var err error
			for p := []byte(msg); len(p) > 0 && err == nil; {
				n := min(chunk, len(p))
				_, err = tw.Write(p[:n])
				p = p[n:]
			}
			if err != nil && !errors.Is(err, ErrTopDone) {
				t.Fatal(err)
			}
			dw.Close()
			if out.String() != tt.want {
				t.Errorf("TOP %d (chunks of %d) = %q, want %q", tt.lines, chunk, out.String(), tt.want)
			}
		}
	}
}

func TestTopWriterHeaderOnlyMessage(t *testing.T) {
	var out bytes.Buffer
	dw := NewDotWriter(&out)
	NewTopWriter(dw, 5).Write([]byte("Subject: no body\n"))
	dw.Close()
	if want := "Subject: no body\r\n.\r\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestDotReader(t *testing.T) {
	wire := "a\r\n..b\r\n.c\r\n\r\n.\r\n+OK next"
	br := bufio.NewReader(strings.NewReader(wire))
	got, err := io.ReadAll(iotest.OneByteReader(NewDotReader(br)))
	if err != nil {
		t.Fatal(err)
	}
	if want := "a\r\n.b\r\nc\r\n\r\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "+OK next" {
		t.Errorf("reader consumed past the terminator: rest %q", rest)
	}
	_, err = io.ReadAll(NewDotReader(bufio.NewReader(strings.NewReader("a\r\nb"))))
	if !errors.Is(err, ErrUnexpectedEOF) {
		t.Errorf("truncated body: err = %v", err)
	}
}

func BenchmarkDotWriter(b *testing.B) {
	var msg bytes.Buffer
	for msg.Len() < 100*1024 {
		msg.WriteString("This is a fairly ordinary line of an e-mail message body, 72 chars.\n")
		msg.WriteString(".a line starting with a dot\n")
	}
	w := bufio.NewWriterSize(io.Discard, 16*1024)
	b.SetBytes(int64(msg.Len()))
	b.ReportAllocs()
	for b.Loop() {
		d := NewDotWriter(w)
		d.Write(msg.Bytes())
		d.Close()
	}
}

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

// referenceUnstuff reads a multi-line body the obvious way, line by line:
// the lines before the terminator with one leading dot removed, and what
// follows the terminator; ok is false without a terminator.
func referenceUnstuff(wire string) (body, rest string, ok bool) {
	var b strings.Builder
	for wire != "" {
		i := strings.IndexByte(wire, '\n')
		if i < 0 {
			return "", "", false
		}
		line := wire[:i+1]
		wire = wire[i+1:]
		if line == ".\r\n" || line == ".\n" {
			return b.String(), wire, true
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
	return "", "", false
}

// FuzzDotReader: DotReader gives what the line-by-line reference gives,
// leaves what follows the terminator unread, and fails without one,
// whatever the reads and buffer sizes.
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n..b\r\n.c\r\n\r\n.\r\n+OK next", "a\r\nb", "x\n.\n", "..\r\n.\r\n",
		strings.Repeat("line\r\n..dot\r\n", 500) + ".\r\nafter"} {
		f.Add(s, 0, false)
		f.Add(s, 3, true)
	}
	f.Fuzz(func(t *testing.T, wire string, size int, oneByte bool) {
		size = []int{16, 64, 4096}[abs(size)%3]
		wantBody, wantRest, ok := referenceUnstuff(wire)
		br := bufio.NewReaderSize(strings.NewReader(wire), size)
		var r io.Reader = NewDotReader(br)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := io.ReadAll(r)
		if !ok {
			if err == nil {
				t.Fatalf("no terminator in %q, but read %q without error", wire, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", wire, err)
		}
		if string(got) != wantBody {
			t.Fatalf("%q: body %q, want %q", wire, got, wantBody)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != wantRest {
			t.Fatalf("%q: left %q after the terminator, want %q", wire, rest, wantRest)
		}
	})
}

func TestDotReaderTruncated(t *testing.T) {
	_, err := io.ReadAll(NewDotReader(bufio.NewReader(bytes.NewReader([]byte("a\r\n.b\r\n")))))
	if !errors.Is(err, ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
}

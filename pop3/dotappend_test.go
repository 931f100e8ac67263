package pop3

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// dotWriteBuffered is dotWrite through a bufio.Writer of the given size:
// DotWriter's append path.
func dotWriteBuffered(t testing.TB, in string, chunk, size int) string {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, size)
	d := NewDotWriter(bw)
	for p := []byte(in); len(p) > 0; {
		n := min(chunk, len(p))
		if got, err := d.Write(p[:n]); err != nil || got != n {
			t.Fatalf("Write = %d, %v; want %d", got, err, n)
		}
		p = p[n:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	return out.String()
}

// The append path (into a buffered writer's free space) sends exactly
// what the line-by-line path sends, whatever the buffer size and however
// the message is cut into writes.
func FuzzDotWriterAppend(f *testing.F) {
	for _, s := range []string{"", "a\n.b\r\n", ".\r\n.\n", "x\r", "\r\r\n\n", "..\n.",
		strings.Repeat("x", 1000) + "\n." + strings.Repeat("y", 700) + "\r\n"} {
		f.Add(s, 3, 0)
		f.Add(s, 1000, 1)
	}
	f.Fuzz(func(t *testing.T, in string, chunk, size int) {
		chunk = 1 + abs(chunk)%2048
		size = []int{16, 300, 512, 4096, 65536}[abs(size)%5]
		want := dotWrite(t, in, chunk)
		if got := dotWriteBuffered(t, in, chunk, size); got != want {
			t.Fatalf("buffer %d, chunks of %d: %q\nwant %q", size, chunk, got, want)
		}
	})
}

func TestDotWriterAppendLongLines(t *testing.T) {
	in := strings.Repeat("."+strings.Repeat("z", 5000)+"\r\n"+strings.Repeat("w", 3000)+"\n", 20)
	for _, size := range []int{300, 4096, 65536} {
		for _, chunk := range []int{1, 7, 4096, 1 << 20} {
			if got, want := dotWriteBuffered(t, in, chunk, size), dotWrite(t, in, chunk); got != want {
				t.Fatalf("buffer %d, chunks of %d differ", size, chunk)
			}
		}
	}
}

package pop3

import (
	"io"
	"strings"
	"testing"
)

// referenceSize is NormalizedSize written the obvious way, octet by octet.
func referenceSize(in string) int64 {
	var size int64
	for i := 0; i < len(in); i++ {
		size++
		if in[i] == '\n' && (i == 0 || in[i-1] != '\r') {
			size++
		}
	}
	switch {
	case in == "" || in[len(in)-1] == '\n':
	case in[len(in)-1] == '\r':
		size++
	default:
		size += 2
	}
	return size
}

// chunkReader returns its input in pieces of a fixed size, so that CR and
// LF fall on either side of a read boundary.
type chunkReader struct {
	s     string
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.s)
	r.s = r.s[n:]
	return n, nil
}

// FuzzNormalizedSizeChunks: the size does not depend on how the message
// arrives in reads (the LF-only fast path and a CR that ends one read
// before the LF that starts the next).
func FuzzNormalizedSizeChunks(f *testing.F) {
	for _, s := range []string{"", "a\r\nb\n", "a\r", "\r\n\n\r", "x\ny\nz", strings.Repeat("ab\n", 20000)} {
		f.Add(s, 1)
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, in string, chunk int) {
		chunk = 1 + abs(chunk)%70000
		got, err := NormalizedSize(&chunkReader{in, chunk})
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceSize(in); got != want {
			t.Fatalf("NormalizedSize(%q in chunks of %d) = %d, want %d", clipTest(in), chunk, got, want)
		}
	})
}

func clipTest(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

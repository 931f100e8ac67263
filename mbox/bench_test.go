package mbox

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// benchMbox is an mboxrd file of n messages of about 4 KiB, each with an
// X-UIDL header and a quoted "From " line.
func benchMbox(n int) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	body := "X-UIDL: 0123456789abcdef\nSubject: benchmark\nDate: Mon, 2 Jan 2006 15:04:05 +0000\n\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, 0123456789.\n", 70) + "From here on.\n"
	for i := range n {
		WriteMboxrd(w, FormatFromLine("", time.Unix(int64(i), 0)), strings.NewReader(body))
	}
	w.Flush()
	return b.Bytes()
}

// BenchmarkScan indexes a file of 10,000 messages (about 40 MB): the
// pass an import makes before it copies anything.
func BenchmarkScan(b *testing.B) {
	data := benchMbox(10000)
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ix, err := Scan(r, int64(len(data)), Options{Location: time.UTC})
		if err != nil || len(ix.Messages) != 10000 {
			b.Fatal(len(ix.Messages), err)
		}
	}
}

// BenchmarkContent reads every message back with its quoting undone: the
// copy's read side.
func BenchmarkContent(b *testing.B) {
	data := benchMbox(1000)
	r := bytes.NewReader(data)
	ix, err := Scan(r, int64(len(data)), Options{Format: Mboxrd, Location: time.UTC})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for i := range ix.Messages {
			io.Copy(io.Discard, ix.Content(r, i))
		}
	}
}

package pop3

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The hot paths of the wire format, with -benchmem in mind: parsing a
// command, reading a line, stuffing and unstuffing a message, sizing it.
// The per-size benchmarks show that allocations do not grow with the
// message.

func BenchmarkParseCommand(b *testing.B) {
	for _, line := range []string{"STAT", "RETR 42", "top 7 10", "UIDL 12345"} {
		b.Run(strings.Fields(line)[0], func(b *testing.B) {
			in := []byte(line)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseCommand(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadLine(b *testing.B) {
	// A pipelined burst: many short commands in one buffer.
	burst := strings.Repeat("RETR 1234\r\nLIST 5\r\nNOOP\r\nUIDL 99\r\n", 64)
	src := strings.NewReader(burst)
	r := bufio.NewReaderSize(src, 4096)
	b.SetBytes(int64(len(burst)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(burst)
		r.Reset(src)
		for {
			if _, err := ReadLine(r, 255); err != nil {
				if err == io.EOF {
					break
				}
				b.Fatal(err)
			}
		}
	}
}

// benchMessage is n octets of an ordinary message with LF line ends and
// a line starting with a dot now and then.
func benchMessage(n int) []byte {
	var msg bytes.Buffer
	msg.WriteString("Subject: bench\n\n")
	for i := 0; msg.Len() < n; i++ {
		if i%20 == 0 {
			msg.WriteString(".a line that must be stuffed\n")
		} else {
			msg.WriteString("An ordinary line of an e-mail message body, some seventy octets.\n")
		}
	}
	return msg.Bytes()[:n]
}

var benchSizes = []int{1 << 10, 32 << 10, 1 << 20}

func BenchmarkDotWriterSizes(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			msg := benchMessage(n)
			w := bufio.NewWriterSize(io.Discard, 64<<10)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				d := NewDotWriter(w)
				d.Write(msg)
				d.Close()
			}
		})
	}
}

func BenchmarkDotReader(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			var wire bytes.Buffer
			d := NewDotWriter(&wire)
			d.Write(benchMessage(n))
			d.Close()
			src := bytes.NewReader(wire.Bytes())
			r := bufio.NewReaderSize(src, 64<<10)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(wire.Len()))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(wire.Bytes())
				r.Reset(src)
				if _, err := io.CopyBuffer(io.Discard, NewDotReader(r), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNormalizedSize(b *testing.B) {
	for _, n := range benchSizes {
		for _, crlf := range []bool{false, true} {
			name := fmt.Sprintf("%dKiB/LF", n>>10)
			msg := benchMessage(n)
			if crlf {
				name = fmt.Sprintf("%dKiB/CRLF", n>>10)
				msg = bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
			}
			b.Run(name, func(b *testing.B) {
				src := bytes.NewReader(msg)
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					src.Reset(msg)
					if _, err := NormalizedSize(src); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

package delivery

import (
	"strings"
	"testing"
)

// BenchmarkReadMessage measures reading and normalising a 100 KiB
// message with CRLF line ends, as LMTP delivers it.
func BenchmarkReadMessage(b *testing.B) {
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	msg := "Subject: bench\r\n\r\n" + strings.Repeat(line, 100*1024/len(line))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := ReadMessage(strings.NewReader(msg), 1<<30, "")
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

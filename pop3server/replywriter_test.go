package pop3server

import (
	"bytes"
	"strings"
	"testing"
)

// The reply buffer behaves like a bufio.Writer: what goes in comes out
// in order, through Write, WriteString, WriteByte, AvailableBuffer and
// writes larger than the buffer; and it holds no buffer once flushed and
// released.
func TestReplyWriter(t *testing.T) {
	var out bytes.Buffer
	w := newReplyWriter(&out)
	var want strings.Builder
	w.WriteString("+OK hello\r\n")
	want.WriteString("+OK hello\r\n")
	w.WriteByte('x')
	want.WriteByte('x')
	b := append(w.AvailableBuffer(), "appended"...)
	w.Write(b)
	want.WriteString("appended")
	big := strings.Repeat("0123456789", replyBufferSize/5) // twice the buffer
	w.WriteString(big)
	want.WriteString(big)
	w.Write([]byte(big))
	want.WriteString(big)
	for i := range 3000 {
		b := append(w.AvailableBuffer(), byte('a'+i%26))
		w.Write(b)
		want.WriteByte(byte('a' + i%26))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("wrote %d octets, want %d (or different content)", out.Len(), want.Len())
	}
	w.release()
	if w.buf != nil {
		t.Error("an empty writer kept its buffer after release")
	}
	w.WriteString("more")
	w.release() // not empty: kept
	if w.buf == nil {
		t.Error("release dropped unsent data")
	}
	w.Flush()
	if !strings.HasSuffix(out.String(), "more") {
		t.Error("data after a release lost")
	}
}

//go:build !race

package rawio

import (
	"io"
	"testing"
)

// The race detector's build makes the ordinary calls instead (see the
// package doc), which allocate; this test is for the build that serves.
// A read and a write allocate nothing: they run once per command and per
// reply buffer on every connection.
func TestNoAllocations(t *testing.T) {
	c, s := pair(t)
	msg, buf := []byte("+OK 1 octets\r\n"), make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per write and read, want 0", allocs)
	}
}

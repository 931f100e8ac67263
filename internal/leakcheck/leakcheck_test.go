package leakcheck

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestWaitFDs shows that a descriptor opened after the baseline is found
// and named, and that closing it clears the report.
func TestWaitFDs(t *testing.T) {
	before, err := openFDs()
	if err != nil {
		t.Fatal(err)
	}
	if leaked := waitFDs(before, 0); len(leaked) != 0 {
		t.Fatalf("nothing opened, yet reported: %v", leaked)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leaked := waitFDs(before, 100*time.Millisecond)
	joined := strings.Join(leaked, " ")
	if len(leaked) != 2 || !strings.Contains(joined, os.DevNull) || !strings.Contains(joined, "socket:") {
		t.Errorf("open file and listener: reported %v", leaked)
	}
	f.Close()
	l.Close()
	if leaked := waitFDs(before, time.Second); len(leaked) != 0 {
		t.Errorf("after closing them: reported %v", leaked)
	}
}

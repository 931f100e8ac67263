package mbox

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Locks are between processes (fcntl locks of one process do not
// exclude each other), so another process holds the write lock: flock(1)
// cannot take fcntl locks, so this test binary runs itself as the holder.
func TestLock(t *testing.T) {
	if os.Getenv("MBOX_LOCK_HOLDER") != "" {
		f, err := os.OpenFile(os.Getenv("MBOX_LOCK_HOLDER"), os.O_RDWR, 0)
		if err != nil {
			os.Exit(1)
		}
		if err := Lock(context.Background(), f, true, time.Second); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Second)
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "mbox")
	os.WriteFile(path, []byte("From x Mon Jan  2 15:04:05 2006\n\nx\n"), 0o600)
	holder := exec.Command(os.Args[0], "-test.run", "^TestLock$")
	holder.Env = append(os.Environ(), "MBOX_LOCK_HOLDER="+path)
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("holder: %q, %v", buf, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Lock(t.Context(), f, false, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "locked by another program") {
		t.Errorf("Lock while another process writes: %v", err)
	}
	// Taken once the holder is gone (it exits after a second).
	if err := Lock(t.Context(), f, false, 10*time.Second); err != nil {
		t.Errorf("Lock after the holder left: %v", err)
	}
	Unlock(f)
}

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestDiskFull fills a small file system with LMTP deliveries: once it is
// full the server answers 452 4.3.1 (the MTA keeps the mail and retries),
// every message acknowledged before is there exactly once and whole, no
// half-written file is left in tmp/ or new/, and the maildrop still opens.
// It mounts a 512 KiB tmpfs over the site's mail directory, so it needs
// root and a system that allows the mount; elsewhere it is skipped.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	site := newSite(t)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", site.mailRoot).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", site.mailRoot).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", site.mailRoot, err, out)
		}
	})
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(site.maildir(alice), sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	srv := startDeliveryBinary(t, site, "")
	nc, r, err := dialLMTP(srv.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "LHLO diskfull\r\n")
	readReply(nc, r)

	states := map[[2]string]int{}
	set := func(id, user string, state int) { states[[2]string{id, user}] = state }
	var acked atomic.Int64
	full := ""
	for i := 0; i < 200 && full == ""; i++ {
		id := fmt.Sprintf("full-%d", i)
		fmt.Fprintf(nc, "MAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		for range 3 {
			if _, err := readReply(nc, r); err != nil {
				t.Fatal(err)
			}
		}
		// About 40 KiB each: crashMessage's body, repeated.
		body := strings.Repeat(crashMessage(id), 4)
		fmt.Fprintf(nc, "%s.\r\n", body)
		line, err := readReply(nc, r)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(line, "250 "):
			set(id, alice, stateAcked)
			acked.Add(1)
		case strings.HasPrefix(line, "452 4.3.1"):
			full = line
		default:
			t.Fatalf("message %d: reply %q, want 250 or 452 4.3.1", i, line)
		}
	}
	if full == "" || acked.Load() == 0 {
		t.Fatalf("after %d acknowledged deliveries the disk never filled (or nothing fit)", acked.Load())
	}
	t.Logf("%d deliveries acknowledged, then: %s", acked.Load(), strings.TrimSpace(full))

	_, contents := maildropContents(t, site, alice)
	seen := map[string]bool{}
	for _, c := range contents {
		_, rest := splitTrace(c)
		id, _, _ := strings.Cut(strings.TrimPrefix(rest, "X-Test-ID: "), "\n")
		if seen[id] || states[[2]string{id, alice}] != stateAcked {
			t.Errorf("message %q stored twice or without acknowledgement", id)
		}
		seen[id] = true
		if want := strings.ReplaceAll(strings.Repeat(crashMessage(id), 4), "\r\n", "\n"); rest != want {
			t.Errorf("message %q damaged", id)
		}
	}
	if int64(len(seen)) != acked.Load() {
		t.Errorf("%d messages stored, %d acknowledged", len(seen), acked.Load())
	}
	for _, sub := range []string{"tmp", "new"} {
		entries, _ := os.ReadDir(filepath.Join(site.maildir(alice), sub))
		if want := map[string]int{"tmp": 0, "new": len(seen)}[sub]; len(entries) != want {
			t.Errorf("%s/ holds %d files, want %d", sub, len(entries), want)
		}
	}
}

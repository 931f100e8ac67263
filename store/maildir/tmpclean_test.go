package maildir

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A crashed delivery's tmp/ file (this host, its process gone) is removed
// at the next login instead of after 36 hours; a file of a live process,
// of another host, of a form this store does not write, or one touched
// within the grace, stays.
func TestCleanTmpAfterCrash(t *testing.T) {
	s, base := newTestStore(t, Config{Hostname: "mx.example.org"})
	dir := filepath.Join(base, "alice", "Maildir")
	// A process that has exited: its pid is free (and will not be
	// reused by the time the store looks, barring a wrap-around).
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := done.Process.Pid
	old := time.Now().Add(-2 * tmpGrace)
	files := []struct {
		name    string
		mtime   time.Time
		removed bool
	}{
		{fmt.Sprintf("1700000000.M1P%dQ3.mx.example.org", dead), old, true},
		{fmt.Sprintf("1700000000.M2P%dI4.mx.example.org", dead), old, true}, // an import
		{fmt.Sprintf("1700000000.M3P%dQ5.mx.example.org", dead), time.Now(), false},
		{fmt.Sprintf("1700000000.M4P%dQ6.mx.example.org", myPid), old, false},
		{fmt.Sprintf("1700000000.M5P%dQ7.other.example.org", dead), old, false},
		{fmt.Sprintf("1700000000.P%dQ8M9.mx.example.org", dead), old, false}, // not this store's form
		{"1700000000.12345_1.mx.example.org", old, false},
	}
	for _, f := range files {
		put(t, dir, "tmp/"+f.name, "half a message", f.mtime)
	}
	open(t, s, alice)
	left := listDir(t, filepath.Join(dir, "tmp"))
	for _, f := range files {
		if kept := slices.Contains(left, f.name); kept == f.removed {
			t.Errorf("%s: kept %t, want %t", f.name, kept, !f.removed)
		}
	}
}

func TestTmpWriter(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		host string
		ok   bool
	}{
		{"1700000000.M123P456Q7.mx.example.org", 456, "mx.example.org", true},
		{"1700000000.M123P456I7.host", 456, "host", true},
		{"1700000000.M123P456Q7", 0, "", false},
		{"1700000000.M123PQ7.host", 0, "", false},
		{"1700000000.M123P0Q7.host", 0, "", false},
		{"1700000000.M123P-1Q7.host", 0, "", false},
		{"1700000000.P456Q7M123.host", 0, "", false},
		{"garbage", 0, "", false},
	} {
		pid, host, ok := tmpWriter(tc.name)
		if pid != tc.pid || host != tc.host || ok != tc.ok {
			t.Errorf("tmpWriter(%q) = %d, %q, %t; want %d, %q, %t", tc.name, pid, host, ok, tc.pid, tc.host, tc.ok)
		}
	}
}

// The temporary files of index rewrites that a crash left in the maildir
// root, and the files of the session lock's earlier design, are removed
// once they are clearly abandoned; one being written now is left alone,
// and so is everything else.
func TestCleanLeftovers(t *testing.T) {
	s, base := newTestStore(t, Config{})
	dir := filepath.Join(base, "alice", "Maildir")
	old := time.Now().Add(-leftoverAge - time.Minute)
	put(t, dir, "new/1600000001.a.host", "Subject: x\n\nbody\n", time.Time{})
	for _, f := range []struct {
		name string
		mod  time.Time
	}{
		{indexFile + ".tmp-0123abcd", old},
		{lockFile + ".tmp-4567ef01", old},
		{lockFile + ".guard", old},
		{indexFile + ".tmp-89abcdef", time.Now()}, // being written
		{"notes.txt", old},                        // not ours
	} {
		put(t, dir, f.name, "x", f.mod)
	}
	md := open(t, s, alice)
	md.Close()
	var left []string
	for _, name := range listDir(t, dir) {
		if strings.Contains(name, ".tmp-") || name == "notes.txt" || name == lockFile+".guard" {
			left = append(left, name)
		}
	}
	want := []string{"notes.txt", indexFile + ".tmp-89abcdef"}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("maildir root holds %q, want %q", left, want)
	}
}

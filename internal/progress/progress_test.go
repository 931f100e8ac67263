package progress

import (
	"strings"
	"testing"
)

func TestSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {999, "999 B"}, {1000, "1.0 KB"}, {1500, "1.5 KB"},
		{3_200_000, "3.2 MB"}, {2_500_000_000, "2.50 GB"},
	} {
		if got := Size(c.n); got != c.want {
			t.Errorf("Size(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

// A bar ends drawn at 100% and Finish erases it; an empty unit draws
// nothing.
func TestBar(t *testing.T) {
	var out strings.Builder
	b := NewBar(&out)
	b.Start("empty", 0, 0)
	b.Finish()
	if out.Len() != 0 {
		t.Errorf("empty unit drew %q", out.String())
	}
	b.Start("alice", 2, 2000)
	b.Advance(1, 1000)
	b.Advance(1, 1000)
	if s := out.String(); !strings.Contains(s, "alice [########################] 2/2 messages  2.0 KB/2.0 KB") {
		t.Errorf("bar at the end: %q", s)
	}
	b.Finish()
	if !strings.HasSuffix(out.String(), "\r\033[K") {
		t.Errorf("Finish did not erase the bar: %q", out.String())
	}
}

// Plain lines: one at the start, then one per tenth for a unit of 100
// messages or more, none at the end (the caller's summary says it).
func TestLines(t *testing.T) {
	var out strings.Builder
	l := NewLines(&out, "import")
	l.Start("bob", 100, 100_000)
	for range 100 {
		l.Advance(1, 1000)
	}
	l.Finish()
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if got[0] != "bob: 100 messages (100.0 KB) to import" {
		t.Errorf("first line %q", got[0])
	}
	if len(got) != 10 || got[9] != "bob: 90/100 messages, 90.0 KB/100.0 KB" {
		t.Errorf("lines:\n%s", out.String())
	}
}

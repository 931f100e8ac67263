package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// buildMaildir fills a maildir with n small messages, named the way
// Dovecot names them (with ",W=") if withSizes, else the way procmail
// does (sizes must be read from the files). Most are in cur/ with flags.
func buildMaildir(b *testing.B, dir string, n int, withSizes bool) {
	b.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte("From: a@example.org\nSubject: benchmark\n\nhello\n")
	for i := range n {
		name := fmt.Sprintf("%d.M%dP1Q%d.bench", 1600000000+i/10, i%10, i)
		if withSizes {
			name += fmt.Sprintf(",S=%d,W=%d", len(body), len(body)+4)
		}
		sub := "new"
		if i%5 != 0 {
			sub, name = "cur", name+":2,S"
		}
		if err := os.WriteFile(filepath.Join(dir, sub, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures a login (Open, which lists new/ and cur/ and
// loads the index, then Close) on large maildrops whose index is warm:
// this is what STAT costs, and it must not read message bodies.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{20_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			s, base := newTestStore(b, Config{Hostname: "bench"})
			buildMaildir(b, filepath.Join(base, "alice", "Maildir"), n, true)
			md, err := s.Open(b.Context(), alice) // builds the index
			if err != nil {
				b.Fatal(err)
			}
			md.Close()
			b.ResetTimer()
			for b.Loop() {
				md, err := s.Open(b.Context(), alice)
				if err != nil {
					b.Fatal(err)
				}
				if len(md.Messages()) != n {
					b.Fatalf("%d messages, want %d", len(md.Messages()), n)
				}
				md.Close()
			}
		})
	}
}

// BenchmarkFirstOpen measures the one-time cost of indexing a maildrop
// that another program delivered without sizes in the names.
func BenchmarkFirstOpen20k(b *testing.B) {
	const n = 20_000
	s, base := newTestStore(b, Config{Hostname: "bench"})
	dir := filepath.Join(base, "alice", "Maildir")
	buildMaildir(b, dir, n, false)
	for b.Loop() {
		b.StopTimer()
		os.Remove(filepath.Join(dir, indexFile))
		b.StartTimer()
		md, err := s.Open(b.Context(), alice)
		if err != nil {
			b.Fatal(err)
		}
		md.Close()
	}
}

package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
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
// this is what STAT costs, and it must not read message bodies. The
// snapshot cache is off: this is the first login after a restart, or one
// after the maildrop changed (BenchmarkOpenCached is the usual case).
func BenchmarkOpen(b *testing.B) {
	benchmarkOpen(b, -1)
}

// BenchmarkOpenCached measures a login to an unchanged maildrop whose
// snapshot is in the cache: three stats, the lock, no reading.
func BenchmarkOpenCached(b *testing.B) {
	benchmarkOpen(b, 0)
}

func benchmarkOpen(b *testing.B, cache int) {
	for _, n := range []int{20_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			s, base := newTestStore(b, Config{Hostname: "bench", SnapshotCacheMessages: cache})
			buildMaildir(b, filepath.Join(base, "alice", "Maildir"), n, true)
			md, err := s.Open(b.Context(), alice) // builds the index
			if err != nil {
				b.Fatal(err)
			}
			md.Close()
			if cache >= 0 {
				time.Sleep(cacheSettleFine + 50*time.Millisecond)
				md, _ := s.Open(b.Context(), alice) // cached now
				md.Close()
			}
			b.ReportAllocs()
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
func BenchmarkFirstOpen20k(b *testing.B) { benchmarkFirstOpen(b, 20_000) }

// BenchmarkFirstOpen100k is the same with 100,000 messages.
func BenchmarkFirstOpen100k(b *testing.B) { benchmarkFirstOpen(b, 100_000) }

func benchmarkFirstOpen(b *testing.B, n int) {
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

// BenchmarkParseIndex measures reading a 100,000-record index: the part
// of an uncached login that grows with the maildrop besides the listing.
func BenchmarkParseIndex(b *testing.B) { benchmarkParseIndex(b, false) }

// BenchmarkParseIndexExplicit is BenchmarkParseIndex for a maildrop whose
// every id was taken over from Dovecot (explicit ids, checked for
// uniqueness at every parse).
func BenchmarkParseIndexExplicit(b *testing.B) { benchmarkParseIndex(b, true) }

func benchmarkParseIndex(b *testing.B, explicit bool) {
	ix := newIndex(1700000000)
	for i := range 100_000 {
		base := fmt.Sprintf("%d.M%dP1Q%d.bench,S=4711,W=4800", 1600000000+i/10, i%10, i)
		ix.entries[base] = &entry{uid: uint64(i + 1), vsize: 4800, received: int64(1600000000 + i/10), base: base}
		if explicit {
			ix.entries[base].id = fmt.Sprintf("%08x%08x", i+1, 1690000000)
		}
	}
	ix.nextUID = 100_001
	data := string(ix.marshal())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseIndex(data); err != nil {
			b.Fatal(err)
		}
	}
}

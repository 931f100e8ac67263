package postgres

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
)

// BenchmarkRetr reads every message of a maildrop of 100 KiB messages,
// as RETR does, with the chunks stored compressed (PostgreSQL's default)
// and uncompressed (STORAGE EXTERNAL).
func BenchmarkRetr(b *testing.B) {
	for _, storage := range []string{"EXTENDED", "EXTERNAL"} {
		b.Run(storage, func(b *testing.B) {
			s, err := Open(b.Context(), Config{DSN: cluster.Database(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(b.Context()); err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(b.Context(), "ALTER TABLE message_chunks ALTER data SET STORAGE "+storage); err != nil {
				b.Fatal(err)
			}
			acct := store.Account{Name: "bench"}
			var body strings.Builder
			for i := 0; body.Len() < 100*1024; i++ {
				fmt.Fprintf(&body, "Line %d of a benchmark message with some text that compresses like mail.\n", i)
			}
			for range 50 {
				if _, err := s.Deliver(b.Context(), acct, strings.NewReader(body.String())); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 32*1024)
			b.SetBytes(int64(50 * body.Len()))
			b.ResetTimer()
			for b.Loop() {
				md, err := s.Open(b.Context(), acct)
				if err != nil {
					b.Fatal(err)
				}
				for i := range md.Messages() {
					r, err := md.Open(b.Context(), i)
					if err != nil {
						b.Fatal(err)
					}
					io.CopyBuffer(io.Discard, r, buf)
					r.Close()
				}
				md.Close()
			}
		})
	}
}

package pop3client_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/pop3client"
	"github.com/postoffice-mail/postoffice/store"
)

// BenchmarkRetrAll downloads 1,000 4 KB messages from the in-process
// server over loopback TCP, with one RETR at a time and with 16 in
// flight: what pipelining saves when each command costs a round trip.
func BenchmarkRetrAll(b *testing.B) {
	plainAddr, _, _, st, stop := exampleServerWithStore()
	defer stop()
	msg := "Subject: bench\n\n" + strings.Repeat("a line of text of a benchmark message\n", 105)
	for i := 0; i < 1000; i++ {
		st.Deliver(context.Background(), store.Account{Name: "alice"}, strings.NewReader(msg))
	}
	for _, window := range []int{1, 16} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				c, err := pop3client.Dial(ctx, plainAddr, &pop3client.Options{Security: pop3client.SecurityNone})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Login(ctx, "alice", "wonderland"); err != nil {
					b.Fatal(err)
				}
				c.Capabilities(ctx)
				msgs, err := c.Messages(ctx)
				if err != nil {
					b.Fatal(err)
				}
				p := c.Pipeline()
				resps := make([]*pop3client.Response, len(msgs))
				sent := 0
				for i := range msgs {
					for sent < len(msgs) && sent < i+window {
						resps[sent] = p.Retr(ctx, msgs[sent].Number)
						sent++
					}
					body, err := resps[i].Message(ctx)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, body)
				}
				c.Quit(ctx)
			}
		})
	}
}

// Command rawretr measures a POP3 server's raw RETR throughput: it logs
// in, lists, and retrieves every message with pipelined RETR commands,
// throwing the bytes away. It is the floor bench/fetch.sh compares the
// mail fetchers with: no client can download faster than this.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/postoffice-mail/postoffice/pop3client"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:110", "server `host:port` (plain POP3)")
	user := flag.String("user", "", "user name")
	pass := flag.String("pass", "", "password")
	window := flag.Int("window", 16, "RETR commands in flight")
	flag.Parse()
	ctx := context.Background()
	start := time.Now()
	c, err := pop3client.Dial(ctx, *addr, &pop3client.Options{Security: pop3client.SecurityNone})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, *user, *pass); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Capabilities(ctx); err != nil {
		log.Fatal(err)
	}
	msgs, err := c.Messages(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := c.Pipeline()
	resps := make([]*pop3client.Response, len(msgs))
	sent := 0
	var total int64
	for i := range msgs {
		for sent < len(msgs) && sent < i+*window {
			resps[sent] = p.Retr(ctx, msgs[sent].Number)
			sent++
		}
		body, err := resps[i].Message(ctx)
		if err != nil {
			log.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			log.Fatal(err)
		}
		total += n
	}
	if err := c.Quit(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages, %d octets in %.3fs\n", len(msgs), total, time.Since(start).Seconds())
}

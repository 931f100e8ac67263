package lmtp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/delivery"
	"github.com/postoffice-mail/postoffice/store"
)

func TestGreetingAndCapabilities(t *testing.T) {
	e := newEnv(t, options{maxMessageSize: 1 << 20})
	c := e.dial()
	c.cmd("HELO x").want("500 5.5.1") // LMTP: LHLO only (RFC 2033 §4.1)
	lines := c.lhlo()
	var caps []string
	for _, l := range lines[1:] {
		caps = append(caps, l[4:])
	}
	for _, want := range []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1048576"} {
		if !slices.Contains(caps, want) {
			t.Errorf("LHLO reply %q lacks %s", lines, want)
		}
	}
	c.cmd("QUIT").want("221 ")
}

// RFC 2033 §4.2: after DATA, one reply per recipient, in RCPT order, each
// sent when that copy is durable; one recipient may fail while another
// succeeds. Unknown users are refused at RCPT.
func TestPerRecipientReplies(t *testing.T) {
	e := newEnv(t, options{})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("RCPT TO:<nobody@example.org>").want("550 5.1.1")
	c.cmd("RCPT TO:<broken@example.org>").want("250 ")
	c.cmd("RCPT TO:<bob+tag@example.org>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ") // twice: delivered once, answered twice
	c.cmd("DATA").want("354 ")
	c.send("Subject: per recipient\r\n\r\nhello\r\n.\r\n")
	c.want("250 2.0.0 <alice@example.org>")
	c.want("451 4.3.0 <broken@example.org>")
	c.want("250 2.0.0 <bob+tag@example.org>")
	c.want("250 2.0.0 <alice@example.org>")
	c.cmd("QUIT").want("221 ")

	for _, user := range []string{"alice", "bob"} {
		msgs := e.messages(user)
		if len(msgs) != 1 || body(msgs[0]) != "Subject: per recipient\n\nhello\n" {
			t.Errorf("%s has %q", user, msgs)
		}
		e.tmpEmpty(user)
	}
	if msgs := e.messages("bob"); !strings.Contains(msgs[0], "Delivered-To: bob+tag@example.org\n") ||
		!strings.Contains(msgs[0], "Return-Path: <sender@example.net>\n") ||
		!strings.Contains(msgs[0], "Received: from client.example.net (127.0.0.1)\n\tby mx.example.org (postoffice) with LMTP id ") {
		t.Errorf("trace fields missing: %q", msgs[0])
	}
}

// SMTP smuggling: only <CRLF>.<CRLF> ends DATA. A bare LF before or after
// the dot does not, so a second message hidden in the first stays inside
// it.
func TestSmuggling(t *testing.T) {
	e := newEnv(t, options{})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("DATA").want("354 ")
	c.send("Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" +
		"Subject: smuggled\r\n\r\nx\r\n.\nmore\n.\r\nstill\r\n\r.\r\nend\r\n.\r\n")
	c.want("250 ")
	c.cmd("NOOP").want("250 ") // nothing else was taken as a command
	c.cmd("QUIT").want("221 ")
	msgs := e.messages("alice")
	if len(msgs) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(msgs))
	}
	// Stored with LF line ends: every CR, LF and CRLF is one line end.
	want := "Subject: one\n\nfirst\n.\nMAIL FROM:<evil@example.net>\nRCPT TO:<bob@example.org>\nDATA\n" +
		"Subject: smuggled\n\nx\n\nmore\n.\nstill\n\n.\nend\n"
	if got := body(msgs[0]); got != want {
		t.Errorf("stored\n%q\nwant\n%q", got, want)
	}
	if msgs := e.messages("bob"); len(msgs) != 0 {
		t.Errorf("smuggled message delivered to bob: %q", msgs)
	}
}

// Every command of a transaction in one write: replies in order.
func TestPipelining(t *testing.T) {
	e := newEnv(t, options{})
	c := e.dial()
	c.send("LHLO client\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<x@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	c.want("250 ")
	c.want("250 ")
	c.want("250 ")
	c.want("550 5.1.1")
	c.want("250 ")
	c.want("354 ")
	c.send("Subject: piped\r\n\r\n..dot\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: second\r\n\r\n.\r\nQUIT\r\n")
	c.want("250 ")
	c.want("250 ")
	c.want("250 ")
	c.want("250 ")
	c.want("354 ")
	c.want("250 ")
	c.want("221 ")
	if got := e.messages("alice"); len(got) != 1 || body(got[0]) != "Subject: piped\n\n.dot\n" || !strings.HasPrefix(got[0], "Return-Path: <>\n") {
		t.Errorf("alice has %q", got)
	}
	if got := e.messages("bob"); len(got) != 2 {
		t.Errorf("bob has %d messages, want 2", len(got))
	}
}

// Bad input gets a clear reply, nothing is stored, and the connection
// stays usable for the next transaction.
func TestBadInput(t *testing.T) {
	e := newEnv(t, options{maxMessageSize: 4096})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<a@b> SIZE=5000").want("552 5.3.4")
	c.cmd("MAIL FROM:<bad\x01sender@example.net>").want("501 ")
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@[127.0.0.1]>").want("501 5.1.3")
	c.cmd("RCPT TO:<>").want("501 ")
	c.cmd("RCPT TO:<" + strings.Repeat("a", 70) + "@example.org>").want("501 5.1.3")
	for _, tc := range []struct{ name, data, reply string }{
		{"nul", "Subject: nul\r\n\r\na\x00b\r\n.\r\n", "554 5.6.0"},
		{"long line", "Subject: long\r\n\r\n" + strings.Repeat("x", 1200) + "\r\n.\r\n", "554 5.6.0"},
		{"too big", strings.Repeat("0123456789\r\n", 500) + ".\r\n", "552 5.3.4"},
	} {
		c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
		c.cmd("RCPT TO:<alice@example.org>").want("250 ")
		c.cmd("DATA").want("354 ")
		c.send(tc.data)
		c.want(tc.reply + " <alice@example.org>")
	}
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("DATA").want("354 ")
	c.send("Subject: fine\r\n\r\nok\r\n.\r\n")
	c.want("250 ")
	if got := e.messages("alice"); len(got) != 1 || body(got[0]) != "Subject: fine\n\nok\n" {
		t.Errorf("alice has %q, want only the good message", got)
	}
	e.tmpEmpty("alice")
}

// A sender that disconnects mid-DATA: nothing stored, nothing left.
func TestDisconnectMidData(t *testing.T) {
	e := newEnv(t, options{})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("DATA").want("354 ")
	c.send("Subject: cut\r\n\r\n" + strings.Repeat("partial line\r\n", 10000))
	c.nc.Close()
	// The server notices the close; give it a moment, then look.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.logs.String(), "message refused") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.messages("alice"); len(got) != 0 {
		t.Errorf("a cut message was stored: %d messages", len(got))
	}
	e.tmpEmpty("alice")
}

// The read deadline is refreshed at every read: a sender that trickles a
// message slower than the whole timeout, but never pauses that long, gets
// through; one that goes silent is cut off.
func TestSlowSender(t *testing.T) {
	e := newEnv(t, options{readTimeout: 300 * time.Millisecond})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<sender@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("250 ")
	c.cmd("DATA").want("354 ")
	c.send("Subject: slow\r\n\r\n")
	for i := range 8 { // 8 × 100 ms: far longer than the 300 ms timeout
		time.Sleep(100 * time.Millisecond)
		c.send(fmt.Sprintf("line %d\r\n", i))
	}
	c.send(".\r\n")
	c.want("250 ")
	time.Sleep(600 * time.Millisecond)
	c.want("421 4.4.2") // idle past the timeout: closed
	if got := e.messages("alice"); len(got) != 1 || !strings.Contains(got[0], "line 7\n") {
		t.Errorf("alice has %q", got)
	}
}

// Quotas: at RCPT when the maildrop is full or MAIL's SIZE would overflow
// it, after DATA when the message does.
func TestQuota(t *testing.T) {
	e := newEnv(t, options{quota: delivery.Quota{Messages: 2, Bytes: 4000}})
	c := e.dial()
	c.lhlo()
	c.cmd("MAIL FROM:<s@example.net> SIZE=5000").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("552 5.2.2")
	deliver := func(data, reply string) {
		t.Helper()
		c.cmd("MAIL FROM:<s@example.net>").want("250 ")
		c.cmd("RCPT TO:<alice@example.org>").want("250 ")
		c.cmd("DATA").want("354 ")
		c.send(data)
		c.want(reply)
	}
	deliver(strings.Repeat("x\r\n", 2000)+".\r\n", "552 5.2.2")
	deliver("Subject: 1\r\n\r\n.\r\n", "250 ")
	deliver("Subject: 2\r\n\r\n.\r\n", "250 ")
	c.cmd("MAIL FROM:<s@example.net>").want("250 ")
	c.cmd("RCPT TO:<alice@example.org>").want("552 5.2.2")
	if got := e.messages("alice"); len(got) != 2 {
		t.Errorf("alice has %d messages, want 2", len(got))
	}
}

// A delivery while a POP3 session holds the maildrop neither waits for it
// nor disturbs it; the next session has the message.
func TestDeliveryDuringPOP3Session(t *testing.T) {
	e := newEnv(t, options{})
	c := e.dial()
	c.lhlo()
	send := func(subject string) {
		c.cmd("MAIL FROM:<s@example.net>").want("250 ")
		c.cmd("RCPT TO:<alice@example.org>").want("250 ")
		c.cmd("DATA").want("354 ")
		c.send("Subject: " + subject + "\r\n\r\n.\r\n")
		c.want("250 ")
	}
	send("before")
	md, err := e.store.Open(t.Context(), store.Account{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	send("during")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("delivery during a session took %v", d)
	}
	if len(md.Messages()) != 1 {
		t.Errorf("session's snapshot changed: %d messages", len(md.Messages()))
	}
	if err := md.Commit(t.Context(), []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	md.Close()
	if got := e.messages("alice"); len(got) != 1 || body(got[0]) != "Subject: during\n\n" {
		t.Errorf("next session has %q", got)
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lmtp.sock")
	l, err := ListenUnix(path, 0o600, "")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", info.Mode(), err)
	}
	if _, err := ListenUnix(path, 0o600, ""); err == nil {
		t.Error("a second listener on a live socket succeeded")
	}
	l.Close()
	// A stale socket file (a crashed server) is replaced.
	if err := os.WriteFile(filepath.Join(dir, "plain"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(filepath.Join(dir, "plain"), 0o600, ""); err == nil {
		t.Error("ListenUnix replaced a regular file")
	}
	l, err = ListenUnix(path, 0o660, "")
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	l.Close()
}

// Shutdown closes an idle connection (an MTA's cached one) promptly with
// 421, but lets a sender in the middle of a message finish it.
func TestShutdownDrains(t *testing.T) {
	e := newEnv(t, options{})
	idle := e.dial()
	idle.lhlo()
	busy := e.dial()
	busy.lhlo()
	busy.cmd("MAIL FROM:<s@example.net>").want("250 ")
	busy.cmd("RCPT TO:<alice@example.org>").want("250 ")
	busy.cmd("DATA").want("354 ")
	busy.send("Subject: during shutdown\r\n\r\n")

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	for i := range 5 { // keeps sending, 300 ms apart: under the drain's idle second
		time.Sleep(300 * time.Millisecond)
		busy.send(fmt.Sprintf("line %d\r\n", i))
	}
	busy.send(".\r\n")
	busy.want("250 ")
	idle.want("421 ") // sent a second after Shutdown began
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	if got := e.messages("alice"); len(got) != 1 || !strings.Contains(got[0], "line 4\n") {
		t.Errorf("alice has %q", got)
	}
}

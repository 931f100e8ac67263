package pop3server

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

const (
	msg1 = "Subject: one\n\nfirst\n.dotted\n..two dots\n.\n"
	msg2 = "Subject: two\r\n\r\nsecond\r\n"
	msg3 = "Subject: three\r\n\r\nthird line 1\r\nline 2\r\nline 3\r\n"
)

func loggedIn(t *testing.T, msgs ...string) (*testServer, *testConn) {
	ts := newTestServer(t, func(c *Config) { c.MaxBadCommands = 1000 })
	ts.deliver("alice", msgs...)
	c := ts.dial()
	c.login("alice", "wonderland")
	return ts, c
}

func size(t *testing.T, m string) int64 {
	n, err := pop3.NormalizedSize(strings.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStatListUidl(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2, msg3)
	s1, s2, s3 := size(t, msg1), size(t, msg2), size(t, msg3)
	if got, want := c.send("STAT").wantOK(), fmt.Sprintf("3 %d", s1+s2+s3); got != want {
		t.Errorf("STAT %q, want %q", got, want)
	}
	c.send("LIST").wantOK()
	c.wantLines(fmt.Sprintf("1 %d", s1), fmt.Sprintf("2 %d", s2), fmt.Sprintf("3 %d", s3))
	if got, want := c.send("LIST 2").wantOK(), fmt.Sprintf("2 %d", s2); got != want {
		t.Errorf("LIST 2 %q, want %q", got, want)
	}
	uids := ts.store.Messages("alice")
	c.send("UIDL").wantOK()
	c.wantLines("1 "+uids[0].UID, "2 "+uids[1].UID, "3 "+uids[2].UID)
	if got := c.send("UIDL 3").wantOK(); got != "3 "+uids[2].UID {
		t.Errorf("UIDL 3 %q", got)
	}
	// Deleted messages vanish from every listing; numbers stay fixed.
	c.send("DELE 2").wantOK()
	if got, want := c.send("STAT").wantOK(), fmt.Sprintf("2 %d", s1+s3); got != want {
		t.Errorf("STAT after DELE %q, want %q", got, want)
	}
	c.send("LIST").wantOK()
	c.wantLines(fmt.Sprintf("1 %d", s1), fmt.Sprintf("3 %d", s3))
	c.send("UIDL").wantOK()
	c.wantLines("1 "+uids[0].UID, "3 "+uids[2].UID)
	c.send("LIST 2").wantErr("")
	c.send("UIDL 2").wantErr("")
	c.send("RSET").wantOK()
	c.send("LIST 2").wantOK()
}

func TestRetrDotStuffingAndSize(t *testing.T) {
	_, c := loggedIn(t, msg1)
	if got, want := c.send("RETR 1").wantOK(), fmt.Sprintf("%d octets", size(t, msg1)); got != want {
		t.Errorf("RETR reply %q, want %q", got, want)
	}
	c.wantLines("Subject: one", "", "first", "..dotted", "...two dots", "..")
}

func TestRetrWithoutTrailingNewline(t *testing.T) {
	_, c := loggedIn(t, "Subject: x\n\nno newline at end")
	c.send("RETR 1").wantOK()
	c.wantLines("Subject: x", "", "no newline at end")
	c.send("NOOP").wantOK()
}

func TestTop(t *testing.T) {
	_, c := loggedIn(t, msg3)
	c.send("TOP 1 0").wantOK()
	c.wantLines("Subject: three", "")
	c.send("TOP 1 2").wantOK()
	c.wantLines("Subject: three", "", "third line 1", "line 2")
	// fetchmail downloads whole messages with TOP n 99999999.
	c.send("TOP 1 99999999").wantOK()
	c.wantLines("Subject: three", "", "third line 1", "line 2", "line 3")
	c.send("TOP 1 999999999999999999999999").wantOK()
	c.wantLines("Subject: three", "", "third line 1", "line 2", "line 3")
	c.send("TOP 1").wantErr("")
	c.send("TOP 1 -1").wantErr("")
	c.send("TOP 1 x").wantErr("")
	c.send("TOP 2 1").wantErr("")
}

func TestMessageNumbers(t *testing.T) {
	_, c := loggedIn(t, msg1, msg2)
	c.send("DELE 2").wantOK()
	for _, arg := range []string{"0", "-1", "3", "99999999999999999999", "1x", "x", "+1", "1.0", "２", "2"} {
		for _, cmd := range []string{"LIST", "UIDL", "RETR", "DELE"} {
			c.send(cmd + " " + arg).wantErr("")
		}
		c.send("TOP " + arg + " 1").wantErr("")
	}
	c.send("NOOP").wantOK() // the session goes on
}

func TestWrongState(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBadCommands = 1000 })
	ts.deliver("alice", msg1)
	c := ts.dial()
	for _, cmd := range []string{"STAT", "LIST", "UIDL", "RETR 1", "TOP 1 1", "DELE 1", "NOOP", "RSET"} {
		c.send(cmd).wantErr("")
	}
	c.login("alice", "wonderland")
	for _, cmd := range []string{"USER alice", "PASS x", "APOP alice x", "STLS"} {
		c.send(cmd).wantErr("")
	}
	for _, cmd := range []string{"XYZZY", "STAT 1", "NOOP x", "RSET 1", "DELE", "RETR", "RETR 1 2", "LIST 1 2"} {
		c.send(cmd).wantErr("")
	}
	c.send("noop").wantOK()
	c.send("sTaT").wantOK()
}

func TestQuitAppliesDeletions(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2, msg3)
	uids := ts.store.Messages("alice")
	c.send("DELE 1").wantOK()
	c.send("DELE 3").wantOK()
	c.send("DELE 3").wantErr("")
	c.send("QUIT").wantOK()
	c.wantClosed()
	left := ts.store.Messages("alice")
	if len(left) != 1 || left[0].UID != uids[1].UID {
		t.Fatalf("left %+v, want only message 2", left)
	}
}

func TestRsetUnmarks(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2)
	c.send("DELE 1").wantOK()
	c.send("RSET").wantOK()
	c.send("QUIT").wantOK()
	c.wantClosed()
	if n := len(ts.store.Messages("alice")); n != 2 {
		t.Fatalf("%d messages left, want 2", n)
	}
}

// Invariant 1: a session that ends without QUIT deletes nothing.
func TestDisconnectDeletesNothing(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2)
	c.send("DELE 1").wantOK()
	c.send("DELE 2").wantOK()
	c.nc.Close()
	c = ts.dial() // waits for the lock to be released
	for range 100 {
		if !ts.store.Locked("alice") {
			break
		}
		sleep()
	}
	if got := c.login("alice", "wonderland"); got != fmt.Sprintf("maildrop has 2 messages (%d octets)", size(t, msg1)+size(t, msg2)) {
		t.Fatalf("after a dropped session: %q", got)
	}
}

func TestMessageRemovedBehindTheSessionsBack(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2)
	uids := ts.store.Messages("alice")
	if err := ts.store.RemoveBehind(t.Context(), store.Account{Name: "alice"}, uids[0].UID); err != nil {
		t.Fatal(err)
	}
	c.send("RETR 1").wantErr("")
	c.send("RETR 2").wantOK()
	c.wantLines("Subject: two", "", "second")
	c.send("DELE 1").wantOK()
	c.send("QUIT").wantOK()
}

func TestExpireZeroDeletesRetrieved(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.ExpireDays, c.ExpireSet = 0, true })
	ts.deliver("alice", msg1, msg2)
	c := ts.dial()
	c.login("alice", "wonderland")
	c.send("RETR 2").wantOK()
	c.readBody()
	c.send("TOP 1 0").wantOK() // a partial TOP is not a retrieval
	c.readBody()
	c.send("QUIT").wantOK()
	c.wantClosed()
	if left := ts.store.Messages("alice"); len(left) != 1 {
		t.Fatalf("%d messages left, want 1", len(left))
	}
}

func TestCommitFailureReported(t *testing.T) {
	for _, tc := range []struct {
		name    string
		command string // what the session does before QUIT
		want    string // the -ERR text
	}{
		{"deletion", "DELE 1", "some deleted messages not removed"},
		{"retrieval only", "RETR 1", "retrievals not recorded; no message was to be deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, c := loggedIn(t, msg1)
			ts.store.SetFaults(memstore.Faults{Commit: errors.New("disk on fire")})
			c.send(tc.command).wantOK()
			if strings.HasPrefix(tc.command, "RETR") {
				c.readBody()
			}
			if text := c.send("QUIT").wantErr(pop3.CodeSysTemp); text != tc.want {
				t.Errorf("QUIT: %q, want %q (and no internal error text)", text, tc.want)
			}
			c.wantClosed()
			ts.store.SetFaults(memstore.Faults{})
			if n := len(ts.store.Messages("alice")); n != 1 {
				t.Fatalf("%d messages, want 1", n)
			}
		})
	}
}

func TestMaildropOpenFailure(t *testing.T) {
	ts := newTestServer(t)
	ts.store.SetFaults(memstore.Faults{Open: errors.New("permission denied")})
	c := ts.dial()
	c.send("USER alice").wantOK()
	c.send("PASS wonderland").wantErr(pop3.CodeSysTemp)
	ts.store.SetFaults(memstore.Faults{})
	c.login("alice", "wonderland")
}

func TestMessageOpenFailure(t *testing.T) {
	ts, c := loggedIn(t, msg1, msg2)
	uids := ts.store.Messages("alice")
	ts.store.SetMessageFault("alice", uids[0].UID, memstore.MessageFault{Open: errors.New("EIO")})
	c.send("RETR 1").wantErr(pop3.CodeSysTemp)
	c.send("RETR 2").wantOK()
	c.readBody()
}

// A read failure after +OK cannot be reported inside the multi-line reply:
// the server must close rather than end the reply as if it were complete.
func TestReadFailureMidMessageCloses(t *testing.T) {
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 10000)
	ts, c := loggedIn(t, big)
	uids := ts.store.Messages("alice")
	ts.store.SetMessageFault("alice", uids[0].UID, memstore.MessageFault{Read: errors.New("EIO"), ReadAfter: 50000})
	c.send("RETR 1").wantOK()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(c.r)
	if strings.HasSuffix(string(rest), "\r\n.\r\n") {
		t.Fatal("a truncated message was terminated as if complete")
	}
	if len(rest) >= len(big) {
		t.Fatalf("got %d octets, more than the fault allowed", len(rest))
	}
}

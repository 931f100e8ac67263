package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCrashDuringDeliveries kills the server with SIGKILL in the middle of
// 500 concurrent LMTP deliveries, restarts it, and checks from the
// outside: every message the sender saw acknowledged is there exactly once
// and complete; nothing is there twice or in part; nothing is there that
// was not sent completely; the crashed deliveries' files are gone from
// tmp/ (a file of a live writer stays); and the maildrop works on with
// its unique ids unchanged.
func TestCrashDuringDeliveries(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range crashDeliveries(t, s, srv, 500) {
		t.Error(p)
	}
}

// crashDeliveries is the scenario of TestCrashDuringDeliveries with
// concurrent deliveries; it returns the broken promises.
func crashDeliveries(t *testing.T, s *site, srv *server, concurrent int) []string {
	l := newLedger()
	var (
		ackCount atomic.Int64
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	for i := range concurrent {
		wg.Go(func() {
			<-start
			c, err := dialLMTP(srv.lmtp)
			if err != nil {
				return // the server is gone
			}
			defer c.Close()
			id := fmt.Sprintf("d%d", i)
			rcpts := []string{"alice"}
			if i%3 == 0 {
				rcpts = append(rcpts, "carol")
			}
			replies, _ := c.deliver(l, id, rcpts, testMessage(id))
			for _, r := range replies {
				if strings.HasPrefix(r, "250 ") {
					ackCount.Add(1)
				}
			}
		})
	}
	close(start)
	// Kill once a fifth of the deliveries were acknowledged: the rest
	// are in every stage from connecting to their final fsync.
	for deadline := time.Now().Add(30 * time.Second); ackCount.Load() < int64(concurrent/5) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	pid := srv.pid()
	srv.kill(t)
	l.crashed()
	wg.Wait()
	if ackCount.Load() == 0 {
		t.Fatal("no delivery was acknowledged before the kill")
	}
	var problems []string
	problems = append(problems, restartAndCheck(t, s, srv, l, pid)...)

	// The maildrop works on: a delivery after the restart is there, and
	// every unique id stayed as it was.
	c, err := dialLMTP(srv.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if replies, _ := c.deliver(l, "after-restart", []string{"alice"}, testMessage("after-restart")); len(replies) != 1 || !strings.HasPrefix(replies[0], "250 ") {
		t.Fatalf("delivery after the restart: %q", replies)
	}
	view, err := observe(t.Context(), srv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, l.check("alice", view)...)
	stored, inFlight := 0, 0
	for _, u := range users {
		stored += l.count(u, acked)
		inFlight += l.count(u, absent)
	}
	t.Logf("%d deliveries: %d acknowledged before SIGKILL; %d stored in all; %d sent but not stored (no reply came)", concurrent, ackCount.Load(), stored, inFlight)
	return problems
}

// restartAndCheck is what follows every kill: it plants two files in
// alice's tmp/ — a delivery of the killed server (pid) that never
// finished, and one of a live writer, the test itself — makes tmp/ look
// minutes old, restarts the server, and checks every user's maildrop over
// POP3 and on disk. The first login must succeed (the dead server's
// session locks are taken over), the killed server's tmp/ file must be
// gone after it, and the live writer's must stay.
func restartAndCheck(t *testing.T, s *site, srv *server, l *ledger, pid int) []string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(s.maildir("alice"), "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(tmp, fmt.Sprintf("%d.M1P%dQ999999.%s", time.Now().Unix(), pid, host))
	live := filepath.Join(tmp, fmt.Sprintf("%d.M1P%dQ999999.%s", time.Now().Unix(), os.Getpid(), host))
	for _, f := range []string{dead, live} {
		if err := os.WriteFile(f, []byte("X-Test-ID: half\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var problems []string
	for _, u := range users {
		if _, err := ageTmp(s, u); err != nil {
			t.Fatal(err)
		}
	}
	srv.restart(t)
	for _, u := range users {
		// The dead server's session locks must not keep anyone out:
		// its pid is gone, so the lock is taken over at once.
		if c, err := srv.login(t.Context(), u); err != nil {
			problems = append(problems, fmt.Sprintf("%s: first login after the restart: %v", u, err))
		} else {
			c.Quit(t.Context())
		}
		view, err := observeKnown(t.Context(), srv, u, l, 50)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, l.check(u, view)...)
		if u == "alice" {
			if _, err := os.Stat(live); err != nil {
				problems = append(problems, fmt.Sprintf("alice: a live writer's tmp/ file was removed: %v", err))
			}
			os.Remove(live)
		}
		problems = append(problems, diskProblems(s, u, len(view))...)
	}
	return problems
}

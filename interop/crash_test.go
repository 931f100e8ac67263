package interop

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashMessage is the content of the crash test's message id: a header
// naming it and a body whose length and text follow from the id, so that
// a stored copy can be checked for completeness.
func crashMessage(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	lines := int(h.Sum32()%300) + 1 // up to about 10 KiB
	var b strings.Builder
	fmt.Fprintf(&b, "X-Test-ID: %s\r\nSubject: crash test %s\r\n\r\n", id, id)
	for i := range lines {
		fmt.Fprintf(&b, "%s line %d of %d\r\n", id, i, lines)
	}
	return b.String()
}

// delivery states of one (message, recipient) as the sender saw them.
const (
	stateInFlight = 1 // the whole message was sent, but no reply came: may or may not be stored
	stateAcked    = 2 // 250 after DATA: must be stored exactly once
)

// TestCrashDuringDeliveries kills the server with SIGKILL in the middle of
// many concurrent LMTP deliveries, then looks at the maildrops: every
// message the sender saw acknowledged is there exactly once and complete;
// nothing is there twice; nothing is there that was not sent completely;
// and the maildrop works on (the index is sound, the next server delivers
// and lists). A message whose final dot went out but whose reply did not
// come back may be there or not — no protocol can tell the sender which
// (RFC 5321 §6.1 accepts the resulting duplicate on retry) — and the test
// reports how many were.
func TestCrashDuringDeliveries(t *testing.T) {
	t.Parallel()
	site := newSite(t)
	srv := startDeliveryBinary(t, site, "")

	const senders = 8
	var (
		mu     sync.Mutex
		states = map[[2]string]int{} // (id, user) -> state
		acked  atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	set := func(id, user string, state int) {
		mu.Lock()
		states[[2]string{id, user}] = state
		mu.Unlock()
	}
	deadline := time.Now().Add(20 * time.Second)
	for w := range senders {
		wg.Go(func() {
			// Bounded: at most 1000 messages per sender, 20 seconds.
			for i := 0; i < 1000 && time.Now().Before(deadline); {
				select {
				case <-stop:
					return
				default:
				}
				nc, r, err := dialLMTP(srv.lmtp)
				if err != nil {
					return // the server is gone
				}
				fmt.Fprintf(nc, "LHLO crash%d\r\n", w)
				if _, err := readReply(nc, r); err != nil {
					nc.Close()
					return
				}
				// A few messages per connection, as an MTA reuses them.
				for j := 0; j < 5 && i < 1000; j, i = j+1, i+1 {
					id := fmt.Sprintf("w%d-%d", w, i)
					users := []string{alice}
					if i%3 == 0 {
						users = append(users, carol)
					}
					if !sendCrashMessage(nc, r, id, users, set, &acked) {
						break
					}
				}
				nc.Close()
			}
		})
	}
	// Kill once a good number of deliveries were acknowledged, in the
	// middle of the traffic.
	for acked.Load() < 150 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.kill(t)
	close(stop)
	wg.Wait()
	if acked.Load() == 0 {
		t.Fatal("no delivery was acknowledged before the kill")
	}

	inFlightStored := 0
	for _, user := range []string{alice, carol} {
		_, contents := maildropContents(t, site, user)
		seen := map[string]bool{}
		for _, c := range contents {
			_, rest := splitTrace(c)
			id, _, _ := strings.Cut(strings.TrimPrefix(rest, "X-Test-ID: "), "\n")
			if seen[id] {
				t.Errorf("%s: message %q stored twice", user, id)
			}
			seen[id] = true
			if want := strings.ReplaceAll(crashMessage(id), "\r\n", "\n"); rest != want {
				t.Errorf("%s: message %q stored incomplete or damaged (%d octets, want %d)", user, id, len(rest), len(want))
			}
			switch states[[2]string{id, user}] {
			case stateAcked:
			case stateInFlight:
				inFlightStored++
			default:
				t.Errorf("%s: message %q stored though its final dot was never sent", user, id)
			}
		}
		for key, state := range states {
			if key[1] == user && state == stateAcked && !seen[key[0]] {
				t.Errorf("%s: acknowledged message %q is missing", user, key[0])
			}
		}
		// No stray file in new/ or cur/ that the store did not list.
		for _, sub := range []string{"new", "cur"} {
			entries, _ := os.ReadDir(filepath.Join(site.maildir(user), sub))
			if sub == "new" && len(entries) != len(contents) {
				t.Errorf("%s: %d files in new/, %d messages listed", user, len(entries), len(contents))
			}
		}
	}
	inFlight := 0
	for _, s := range states {
		if s == stateInFlight {
			inFlight++
		}
	}
	t.Logf("%d deliveries acknowledged before SIGKILL; %d were in flight (sent, no reply), of which %d were stored", acked.Load(), inFlight, inFlightStored)

	// The maildrop works on: a new server delivers into it and the
	// acknowledged messages are all still listed once.
	before, _ := maildropContents(t, site, alice)
	again := startDeliveryBinary(t, site, "")
	nc, r, err := dialLMTP(again.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "LHLO after\r\n")
	readReply(nc, r)
	if !sendCrashMessage(nc, r, "after-restart", []string{alice}, set, &acked) || states[[2]string{"after-restart", alice}] != stateAcked {
		t.Fatal("delivery after the restart failed")
	}
	after, _ := maildropContents(t, site, alice)
	if len(after) != len(before)+1 {
		t.Errorf("after the restart alice has %d messages, want %d", len(after), len(before)+1)
	}
	for i := range before {
		if after[i].UID != before[i].UID {
			t.Errorf("message %d changed its unique id from %q to %q", i, before[i].UID, after[i].UID)
		}
	}
}

// sendCrashMessage runs one LMTP transaction and records what the sender
// learned. It reports whether the connection is still usable.
func sendCrashMessage(nc net.Conn, r *bufio.Reader, id string, users []string, set func(id, user string, state int), acked *atomic.Int64) bool {
	fmt.Fprintf(nc, "MAIL FROM:<crash@example.net>\r\n")
	for _, u := range users {
		fmt.Fprintf(nc, "RCPT TO:<%s@example.org>\r\n", u)
	}
	fmt.Fprintf(nc, "DATA\r\n")
	for range 2 + len(users) {
		if line, err := readReply(nc, r); err != nil || (line[0] != '2' && line[0] != '3') {
			return false
		}
	}
	if _, err := nc.Write([]byte(crashMessage(id))); err != nil {
		return false
	}
	for _, u := range users {
		set(id, u, stateInFlight)
	}
	if _, err := nc.Write([]byte(".\r\n")); err != nil {
		return false
	}
	for _, u := range users {
		line, err := readReply(nc, r)
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "250 ") && strings.Contains(line, "<"+u+"@example.org>") {
			set(id, u, stateAcked)
			acked.Add(1)
		}
	}
	return true
}

// readReply reads one (possibly multi-line) reply and returns its last
// line.
func readReply(nc net.Conn, r *bufio.Reader) (string, error) {
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if len(line) < 4 {
			return "", fmt.Errorf("short reply %q", line)
		}
		if line[3] != '-' {
			return line, nil
		}
	}
}

package chaos

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestOutOfFileDescriptors: the server runs out of descriptors (its
// RLIMIT_NOFILE set just above what it has open) under a flood of
// connections. It must not crash or spin: the accept loop backs off (a
// bounded number of "accept failed" warnings), a session already logged
// in keeps working, memory stays bounded, and once the flood's clients
// go away, new logins succeed again and the descriptors are back to the
// baseline.
func TestOutOfFileDescriptors(t *testing.T) {
	const flood, perAddr, headroom = 200, 20, 16
	raiseFDLimit(t, flood+1000)
	srv := startAbuseServer(t, abuseOptions{})
	held := dialPOP(t, nil, srv.plain)
	held.login(t, "carol")
	base := srv.fds(t)
	srv.limitFDs(t, uint64(base+headroom))

	stopSampling := make(chan struct{})
	peak := srv.memoryPeak(stopSampling)
	var conns []net.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	exhaustedAt := time.Now()
	for i := range flood {
		// The kernel completes the handshake into the listen queue
		// whether or not the server can accept: the dial succeeds.
		nc, err := dialFrom(sourceAddr(i/perAddr), srv.plain)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, nc)
	}

	// The server notices: accept fails with EMFILE, and is retried.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(srv.logTail(200), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("no EMFILE in the server log 20s into the flood (%d descriptors open, limit %d)", srv.fds(t), base+headroom)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // let the back-off run for a while
	srv.alive(t)
	// A session already logged in is not disturbed.
	held.expect(t, "STAT")
	held.expect(t, "NOOP")

	// The flood's clients give up; new logins work again.
	for _, nc := range conns {
		nc.Close()
	}
	conns = nil
	gaveUp := time.Now()
	exhausted := gaveUp.Sub(exhaustedAt)
	var loginErr error
	for time.Since(gaveUp) < 20*time.Second {
		if _, loginErr = popLogin(srv.plain, "alice"); loginErr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if loginErr != nil {
		t.Fatalf("no login within 20s after the flood's clients left: %v", loginErr)
	}
	recovered := time.Since(gaveUp)
	close(stopSampling)
	mem := <-peak
	srv.alive(t)

	// Back-off, not a busy loop: with delays doubling from 5ms to at most
	// a second, each listener logs a handful of warnings and then about
	// one a second.
	warnings := strings.Count(readFile(t, srv.log), "accept failed; retrying")
	limit := 2 * (int((exhausted + recovered).Seconds()) + 12)
	t.Logf("out of descriptors for %v, %d accept warnings; login %v after the clients left; peak RSS %d KiB",
		(exhausted + recovered).Round(time.Millisecond), warnings, recovered.Round(time.Millisecond), mem[0])
	if warnings > limit {
		t.Errorf("%d accept warnings in %v: the accept loop spins (want at most %d)", warnings, exhausted+recovered, limit)
	}
	if mem[0] > memoryBound {
		t.Errorf("peak RSS %d KiB over the bound of %d KiB", mem[0], memoryBound)
	}
	held.expect(t, "STAT")
	held.quit(t)
	srv.waitFDs(t, base)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

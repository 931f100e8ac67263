// Package leakcheck is the goroutine and file-descriptor leak check that
// the end-to-end test packages run after all their tests (TestMain): a
// server that leaves a goroutine or an open socket behind per session
// leaks without bound in production, yet passes every test that only looks
// at replies.
//
// Goroutines are checked with go.uber.org/goleak (which retries for a
// while, so that goroutines already on their way out are not counted).
// Descriptors are counted in /proc/self/fd before the tests and again
// after them, until the count is back to the baseline or a grace period
// has passed; what is still open then is listed by what it points to.
package leakcheck

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fdGrace is how long Main waits for descriptors to be closed by
// goroutines that are finishing.
const fdGrace = 5 * time.Second

// Main runs the tests, then fails the run (exit status 1) if goroutines
// or file descriptors are left over. opts are passed to goleak, for
// goroutines a package starts on purpose and keeps for the life of the
// process. It does not return.
func Main(m *testing.M, opts ...goleak.Option) {
	b := Start()
	os.Exit(b.Check(m.Run(), opts...))
}

// Baseline is what was open before the tests.
type Baseline struct {
	fds map[string]string
	err error
}

// Start records the baseline; call it first thing in TestMain, for a
// TestMain that has cleanup of its own to do between m.Run and Check.
func Start() *Baseline {
	warmUp()
	fds, err := openFDs()
	return &Baseline{fds: fds, err: err}
}

// Check returns the exit status for a test run that ended with code:
// 1 if goroutines or descriptors are left over (reported on standard
// error), code otherwise. A failed run is not checked: its leftovers are
// most likely the failure's, and would only bury it.
func (b *Baseline) Check(code int, opts ...goleak.Option) int {
	if code != 0 || skip() {
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "leakcheck: goroutines left after the tests: %v\n", err)
		code = 1
	}
	if b.err != nil {
		fmt.Fprintf(os.Stderr, "leakcheck: %v\n", b.err)
		return 1
	}
	if leaked := waitFDs(b.fds, fdGrace); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "leakcheck: %d file descriptors left open after the tests:\n  %s\n",
			len(leaked), strings.Join(leaked, "\n  "))
		code = 1
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: leak check (internal/leakcheck)")
	}
	return code
}

// skip reports whether the run is one the check does not apply to:
// benchmarks (their servers are torn down by b.Cleanup as well, but they
// measure, and a leak check there only adds noise) and fuzzing (the
// fuzzing engine keeps its workers' pipes open). A run of selected tests
// (-run) is checked like the whole suite.
func skip() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.bench=") && a != "-test.bench=" {
			return true
		}
		if strings.HasPrefix(a, "-test.fuzz=") && a != "-test.fuzz=" {
			return true
		}
	}
	return false
}

// warmUp opens what the runtime keeps for the life of the process once it
// is first used (the network poller's epoll and event descriptors), so
// that the baseline already counts them.
func warmUp() {
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	runtime.GC()
}

// FDs is the number of open file descriptors of this process, from
// /proc/self/fd (Linux); the descriptor used to read the directory is not
// counted.
func FDs() (int, error) {
	fds, err := openFDs()
	return len(fds), err
}

// openFDs maps each open descriptor (as a decimal string) to what it
// points to.
func openFDs() (map[string]string, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("counting file descriptors: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("counting file descriptors: %w", err)
	}
	self := fmt.Sprint(d.Fd())
	fds := make(map[string]string, len(names))
	for _, n := range names {
		if n == self {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", n))
		if err != nil {
			continue // closed while we looked
		}
		fds[n] = target
	}
	return fds, nil
}

// waitFDs waits up to grace for the open descriptors to be those of
// before (or fewer), and returns the extra ones, described.
func waitFDs(before map[string]string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		now, err := openFDs()
		if err != nil {
			return []string{err.Error()}
		}
		var extra []string
		for fd, target := range now {
			if before[fd] != target {
				extra = append(extra, fd+" -> "+target)
			}
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			slices.Sort(extra)
			return extra
		}
		// No runtime.GC here: it would run the finalizers that close
		// forgotten sockets and files, and hide the very leak looked for.
		time.Sleep(50 * time.Millisecond)
	}
}

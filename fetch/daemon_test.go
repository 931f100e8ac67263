package fetch

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3server"
)

// daemonRun runs Daemon in the background and hands its reports to the
// test, each with the time it arrived.
type daemonRun struct {
	reports chan daemonReport
	cancel  context.CancelFunc
	done    chan struct{}
}

type daemonReport struct {
	Result
	at time.Time
}

func startDaemon(t *testing.T, cfg *Config, interval time.Duration) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{reports: make(chan daemonReport, 100), cancel: cancel, done: make(chan struct{})}
	var mu sync.Mutex
	var log bytes.Buffer
	go func() {
		defer close(d.done)
		Daemon(ctx, cfg, nil, interval, Options{Log: &lockedWriter{mu: &mu, w: &log}}, func(r Result) {
			d.reports <- daemonReport{r, time.Now()}
		})
	}()
	t.Cleanup(func() {
		d.stop(t)
		mu.Lock()
		defer mu.Unlock()
		if log.Len() > 0 {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	return d
}

// next waits for the daemon's next report.
func (d *daemonRun) next(t *testing.T) daemonReport {
	t.Helper()
	select {
	case r := <-d.reports:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no poll within 30 s")
		return daemonReport{}
	}
}

// stop cancels the daemon and waits for it to return: it must, promptly,
// even while waiting for its next poll.
func (d *daemonRun) stop(t *testing.T) {
	d.cancel()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop within 10 s of its context ending")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDaemonPolls runs the daemon against the real server: it fetches what
// is there, then, on later polls, only what arrived in between, and stops
// when told.
func TestDaemonPolls(t *testing.T) {
	ts := newServer(t)
	ts.deliver(testMessages[0], testMessages[1])
	cfg, a := ts.account(t)
	d := startDaemon(t, cfg, time.Second)

	if r := d.next(t); r.Err != nil || r.Fetched != 2 || r.Deleted != 2 {
		t.Fatalf("first poll: %+v", r.Result)
	}
	ts.deliver(testMessages[2])
	// Polls that found nothing new may come first; the message arrives
	// on a later one, and is fetched exactly once.
	for fetched := 0; fetched == 0; {
		r := d.next(t)
		if r.Err != nil {
			t.Fatalf("poll: %v", r.Err)
		}
		fetched = r.Fetched
		if fetched > 1 {
			t.Fatalf("poll fetched %d messages, want 1", fetched)
		}
	}
	d.stop(t)
	if got, want := maildirMessages(t, a.Maildir), sorted(testMessages[:3]); !slices.Equal(got, want) {
		t.Errorf("Maildir holds\n%q\nwant the 3 delivered\n%q", got, want)
	}
	if n := ts.onServer(); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
}

// TestDaemonRespectsLoginDelay: a server announcing LOGIN-DELAY longer than
// the polling interval is polled no more often than it allows, and so
// never refuses a login for coming too soon.
func TestDaemonRespectsLoginDelay(t *testing.T) {
	const delay = 3 * time.Second
	ts := newServer(t, func(c *pop3server.Config) { c.LoginDelay = delay })
	ts.deliver(testMessages[0])
	cfg, a := ts.account(t)
	a.Keep = true
	d := startDaemon(t, cfg, time.Second)

	first := d.next(t)
	if first.Err != nil || first.Fetched != 1 || first.LoginDelay != delay {
		t.Fatalf("first poll: %+v", first.Result)
	}
	ts.deliver(testMessages[1])
	second := d.next(t)
	if second.Err != nil {
		t.Fatalf("second poll refused: %v", second.Err)
	}
	if second.Fetched != 1 {
		t.Errorf("second poll fetched %d, want only the new message", second.Fetched)
	}
	// A report comes at the end of its poll, which began Duration
	// earlier with the login: the logins are at least the delay apart.
	if gap := second.at.Add(-second.Duration).Sub(first.at.Add(-first.Duration)); gap < delay {
		t.Errorf("polled again after %v, before the server's LOGIN-DELAY of %v", gap, delay)
	}
}

package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3client"
)

// soakDuration is how long TestSoak runs. The project's test command
// runs the default; the longer campaign is a local command (see
// docs/reliability.md): go test ./chaos -run TestSoak -soak=30m -timeout=40m
var soakDuration = flag.Duration("soak", 2*time.Minute, "how long TestSoak runs")

// TestSoak runs a mixed workload — LMTP deliveries, POP3 sessions that
// log in, retrieve, delete and quit, and SIGKILLs of the server at random
// moments followed by a restart — for the -soak duration, with a running
// invariant check: every few seconds each maildrop is listed and compared
// with what the senders and sessions were told (nothing acknowledged is
// missing, nothing deleted is back, nothing is there twice or in part,
// no unique id changes); at the end, with everything quiet, delivered −
// deleted = present.
func TestSoak(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range soak(t, s, srv, *soakDuration) {
		t.Error(p)
	}
}

// soakStats counts what a soak did.
type soakStats struct {
	delivered, sessions, retrieved, deleted, crashes, checks atomic.Int64
}

// soak is TestSoak's scenario, running for d.
func soak(t *testing.T, s *site, srv *server, d time.Duration) []string {
	l := newLedger()
	var (
		mu       sync.Mutex
		problems []string
		stats    soakStats
	)
	report := func(ps ...string) {
		mu.Lock()
		problems = append(problems, ps...)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	// up is held for reading by every worker's step and for writing by
	// the crasher while it restarts, so that no step starts against a
	// server that is not there yet (steps cut off by the kill are the
	// point).
	var up sync.RWMutex
	var wg sync.WaitGroup

	// Two MTAs delivering over LMTP, some messages to both users.
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				up.RLock()
				c, err := dialLMTP(srv.lmtp)
				up.RUnlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				for j := 0; j < 10 && ctx.Err() == nil; j++ {
					id := fmt.Sprintf("s%d-%d-%d", w, i, j)
					rcpts := []string{users[rand.IntN(len(users))]}
					if j%4 == 0 {
						rcpts = users
					}
					replies, ok := c.deliver(l, id, rcpts, testMessage(id))
					for _, r := range replies {
						if strings.HasPrefix(r, "250 ") {
							stats.delivered.Add(1)
						}
					}
					if !ok {
						break // the server was killed
					}
				}
				c.Close()
			}
		})
	}
	// A POP3 client per user: log in, retrieve some, delete some, quit.
	for _, u := range users {
		wg.Go(func() {
			for ctx.Err() == nil {
				up.RLock()
				c, err := srv.login(t.Context(), u)
				up.RUnlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				soakSession(t.Context(), c, l, u, &stats, report)
				c.Close()
				time.Sleep(time.Duration(rand.IntN(50)) * time.Millisecond)
			}
		})
	}
	// The crasher: SIGKILL every 2 to 6 seconds, then a restart.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2*time.Second + time.Duration(rand.Int64N(int64(4*time.Second)))):
			}
			up.Lock()
			srv.kill(t)
			l.crashed()
			stats.crashes.Add(1)
			for _, u := range users {
				if _, err := ageTmp(s, u); err != nil {
					report(err.Error())
				}
			}
			if err := srv.start(); err != nil {
				report(fmt.Sprintf("restart: %v", err))
				up.Unlock()
				cancel()
				return
			}
			up.Unlock()
		}
	})
	// The running invariant check.
	wg.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(1500 * time.Millisecond)
			for _, u := range users {
				epoch, mark := l.epochNow(), l.mark()
				view, err := observeKnown(t.Context(), srv, u, l, 10)
				if err != nil {
					continue // killed meanwhile
				}
				if ps, ok := l.checkSince(u, view, epoch, mark); ok {
					report(ps...)
					stats.checks.Add(1)
				}
			}
		}
	})
	wg.Wait()

	// All quiet: one more look, holding the ledger to the end.
	for _, u := range users {
		view, err := observe(t.Context(), srv, u)
		if err != nil {
			t.Fatal(err)
		}
		report(l.check(u, view)...)
		report(diskProblems(s, u, len(view))...)
		// delivered − deleted = present (the per-message check above
		// implies it; this is the sum).
		present, gone := l.count(u, acked), l.count(u, deleted)+l.count(u, absent)
		t.Logf("%s: %d messages there; %d deletions confirmed; %d gone with a crash (sent but never acknowledged, or deleted by a QUIT whose answer the kill cut off)",
			u, len(view), l.count(u, deleted), l.count(u, absent))
		if present != len(view) {
			report(fmt.Sprintf("%s: %d messages there, but %d delivered and %d deleted or never stored", u, len(view), present+gone, gone))
		}
	}
	t.Logf("soak of %v: %d deliveries acknowledged, %d sessions, %d messages retrieved, %d deletions confirmed, %d crashes, %d invariant checks",
		d, stats.delivered.Load(), stats.sessions.Load(), stats.retrieved.Load(), stats.deleted.Load(), stats.crashes.Load(), stats.checks.Load())
	if stats.crashes.Load() == 0 || stats.checks.Load() == 0 {
		report(fmt.Sprintf("the soak ran no crash (%d) or no check (%d): too short", stats.crashes.Load(), stats.checks.Load()))
	}
	return problems
}

// soakSession is one POP3 session of the soak: it retrieves up to ten
// messages, checks each, marks about a third of them deleted and quits.
// The server may be killed at any point; what was then in the air is
// settled by the next check.
func soakSession(ctx context.Context, c *pop3client.Client, l *ledger, user string, stats *soakStats, report func(...string)) {
	list, err := c.Messages(ctx)
	if err != nil {
		return
	}
	stats.sessions.Add(1)
	var marked []string
	for _, k := range rand.Perm(len(list))[:min(10, len(list))] {
		sn, err := retrieve(ctx, c, list[k])
		if err != nil {
			return // killed
		}
		stats.retrieved.Add(1)
		if sn.damage != "" {
			report(fmt.Sprintf("%s: message %d (%q): %s", user, sn.number, sn.id, sn.damage))
			continue
		}
		if p := l.note(user, sn); p != "" {
			report(p)
		}
		if rand.IntN(3) == 0 {
			if err := c.Dele(ctx, sn.number); err != nil {
				return
			}
			l.deleting(user, sn.id)
			marked = append(marked, sn.id)
		}
	}
	err = c.Quit(ctx)
	var cerr *pop3client.CommandError
	switch {
	case err == nil:
		for _, id := range marked {
			l.deleted(user, id)
		}
		stats.deleted.Add(int64(len(marked)))
	case errors.As(err, &cerr) && strings.Contains(err.Error(), "-ERR"):
		report(fmt.Sprintf("%s: QUIT: %v", user, err))
	}
}

package pop3server

import (
	"sync"
	"time"
)

// loginTracker enforces RFC 2449 LOGIN-DELAY: when each user last opened
// their maildrop, and the delay in force for them then. It lives in
// memory, so the delay holds per server process; entries whose delay has
// passed are swept so the map stays small.
type loginTracker struct {
	mu        sync.Mutex
	last      map[string]loginRecord
	lastSweep time.Time
}

type loginRecord struct {
	at    time.Time
	delay time.Duration
}

// sweepInterval is how often, at most, record looks for expired entries.
const sweepInterval = time.Minute

func newLoginTracker() *loginTracker {
	return &loginTracker{last: make(map[string]loginRecord)}
}

// check returns how long the user must still wait under delay, or 0.
func (t *loginTracker) check(user string, delay time.Duration, now time.Time) time.Duration {
	if delay <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	last, ok := t.last[user]
	if !ok {
		return 0
	}
	return max(0, delay-now.Sub(last.at))
}

// record notes a successful login under delay.
func (t *loginTracker) record(user string, delay time.Duration, now time.Time) {
	if delay <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[user] = loginRecord{at: now, delay: delay}
	if now.Sub(t.lastSweep) > sweepInterval {
		for u, r := range t.last {
			if now.Sub(r.at) >= r.delay {
				delete(t.last, u)
			}
		}
		t.lastSweep = now
	}
}

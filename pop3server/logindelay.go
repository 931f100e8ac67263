package pop3server

import (
	"sync"
	"time"
)

// loginTracker enforces RFC 2449 LOGIN-DELAY: the time each user last
// opened their maildrop. It lives in memory, so the delay holds per
// server process; old entries are swept so the map stays small.
type loginTracker struct {
	delay time.Duration

	mu        sync.Mutex
	last      map[string]time.Time
	lastSweep time.Time
}

func newLoginTracker(delay time.Duration) *loginTracker {
	return &loginTracker{delay: delay, last: make(map[string]time.Time)}
}

// check returns how long the user must still wait, or 0.
func (t *loginTracker) check(user string, now time.Time) time.Duration {
	if t.delay <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	last, ok := t.last[user]
	if !ok {
		return 0
	}
	return max(0, t.delay-now.Sub(last))
}

// record notes a successful login.
func (t *loginTracker) record(user string, now time.Time) {
	if t.delay <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last[user] = now
	if now.Sub(t.lastSweep) > t.delay {
		for u, at := range t.last {
			if now.Sub(at) >= t.delay {
				delete(t.last, u)
			}
		}
		t.lastSweep = now
	}
}

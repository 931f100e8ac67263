package maildir

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// lockRecorder is an Observer that keeps what it is told.
type lockRecorder struct {
	mu        sync.Mutex
	waits     int
	failures  int
	takeovers int
}

func (r *lockRecorder) IndexLockWaited(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits++
	if err != nil {
		r.failures++
	}
}

func (r *lockRecorder) LockTakenOver() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.takeovers++
}

// TestObserver: deliveries report their index lock waits, and a stale
// session lock taken over is reported.
func TestObserver(t *testing.T) {
	s, _, lockPath := lockFixture(t)
	rec := &lockRecorder{}
	s.SetObserver(rec)
	for range 3 {
		if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: x\n\nbody\n")); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	if rec.waits < 1 || rec.failures != 0 || rec.takeovers != 0 {
		t.Errorf("after deliveries: %d waits, %d failures, %d takeovers", rec.waits, rec.failures, rec.takeovers)
	}
	rec.mu.Unlock()

	writeLock(t, lockPath, lockHolder{host: "here", boot: bootID(), pid: 1 << 30, token: "dead"}, 0)
	md := open(t, s, alice)
	md.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.takeovers != 1 {
		t.Errorf("%d takeovers reported, want 1", rec.takeovers)
	}
}

package maildir

import (
	"sync/atomic"
	"time"
)

// Observer is told of lock contention, for the server's metrics (package
// metrics implements it). The methods are called from the goroutines
// that take the locks: they must be cheap and must not block.
type Observer interface {
	// IndexLockWaited reports how long taking a maildir's index lock
	// took (for a delivery, a login that reconciles the index, a QUIT
	// that applies deletions); err is non-nil if it was not taken (the
	// 30-second bound passed, or the caller gave up).
	IndexLockWaited(d time.Duration, err error)
	// LockTakenOver counts a session lock taken over from a holder that
	// crashed, hung or lost its lease.
	LockTakenOver()
}

// SetObserver makes o receive the store's lock events from now on (nil
// stops them). It may be called at any time.
func (s *Store) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&o)
}

// obs returns the current observer, or nil.
func (s *Store) obs() Observer {
	if p := s.observer.Load(); p != nil {
		return *p
	}
	return nil
}

// observerSlot holds a Store's Observer.
type observerSlot = atomic.Pointer[Observer]

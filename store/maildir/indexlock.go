package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// The index lock serialises the read-modify-write steps on the index:
// Deliver appending a record, Open reconciling the index with the files,
// Commit applying a session's deletions. It is not the session lock (the
// POP3 lease in lock.go): it is held for milliseconds, never for a whole
// session, so a delivery never waits for a POP3 session to end.
//
// Within one process, a channel per maildir queues the contenders without
// polling; between processes (the server and "postoffice deliver" running
// from an MTA), an flock(2) of a separate lock file does, polled because
// a blocking flock cannot be given up at a deadline. A process that dies
// while holding the lock loses the flock with its file descriptor, so the
// lock can never be left behind.
const (
	indexLockFile = "postoffice-index.lock"
	// indexLockWait is the longest wait for the index lock. Past it the
	// caller fails with a temporary error (the MTA retries later).
	indexLockWait = 30 * time.Second
)

// errIndexLockTimeout is returned when the index lock stays busy for
// indexLockWait.
var errIndexLockTimeout = errors.New("index lock busy")

// indexMutexes queues this process's contenders for each maildir's index.
var indexMutexes = struct {
	sync.Mutex
	dirs map[string]*indexMutex
}{dirs: map[string]*indexMutex{}}

// indexMutex is one maildir's in-process queue; refs counts the
// goroutines holding or waiting for it, so the entry can be dropped when
// nobody needs it.
type indexMutex struct {
	sem  chan struct{}
	refs int
}

// lockIndex takes the index lock of the maildir at dir (opened as root).
// The returned function releases it. The Observer, if any, is told how
// long that took.
func (s *Store) lockIndex(ctx context.Context, root *os.Root, dir string) (unlock func(), err error) {
	o := s.obs()
	if o == nil {
		return s.waitIndexLock(ctx, root, dir)
	}
	start := time.Now()
	unlock, err = s.waitIndexLock(ctx, root, dir)
	o.IndexLockWaited(time.Since(start), err)
	return unlock, err
}

// waitIndexLock is lockIndex without the Observer.
func (s *Store) waitIndexLock(ctx context.Context, root *os.Root, dir string) (unlock func(), err error) {
	if err := s.fault("lock-index"); err != nil {
		return nil, err
	}
	indexMutexes.Lock()
	m := indexMutexes.dirs[dir]
	if m == nil {
		m = &indexMutex{sem: make(chan struct{}, 1)}
		indexMutexes.dirs[dir] = m
	}
	m.refs++
	indexMutexes.Unlock()
	drop := func() {
		indexMutexes.Lock()
		if m.refs--; m.refs == 0 {
			delete(indexMutexes.dirs, dir)
		}
		indexMutexes.Unlock()
	}

	timer := time.NewTimer(indexLockWait)
	defer timer.Stop()
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	case <-timer.C:
		drop()
		return nil, fmt.Errorf("lock index of %s: %w", dir, errIndexLockTimeout)
	}
	release := func() { <-m.sem; drop() }

	f, err := root.OpenFile(indexLockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		release()
		return nil, fmt.Errorf("lock index of %s: %w", dir, err)
	}
	delay := 200 * time.Microsecond
	for {
		locked, err := tryLock(f)
		if err != nil {
			f.Close()
			release()
			return nil, fmt.Errorf("lock index of %s: %w", dir, err)
		}
		if locked {
			// Closing the file releases the flock.
			return func() { f.Close(); release() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			release()
			return nil, ctx.Err()
		case <-timer.C:
			f.Close()
			release()
			return nil, fmt.Errorf("lock index of %s: %w", dir, errIndexLockTimeout)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A session lock is a row of the leases table: the maildrop, a random
// token naming the session, the holder (node) for administrators, and an
// expiry by the database's clock. Taking it is one INSERT that succeeds
// when there is no row, or when the row's lease has expired (a node died
// or lost its database connection for longer than the lease): then the new
// session takes it over. Two contenders are serialised by the primary key,
// so exactly one wins (store.Store's promise, across nodes).
//
// The holder renews its leases every Lease/3. One goroutine per Store does
// that for all sessions of the node in a single UPDATE, so an idle session
// costs neither a goroutine nor a database connection, and a node with ten
// thousand idle sessions sends three small statements per lease period.
// A lease the renewal no longer finds under its token was taken over (the
// node was cut off from the database for longer than the lease): its
// session can still read, but its Commit fails rather than change a
// maildrop another session now holds.

// errLeaseLost is returned by Commit when another session took the lease
// over.
var errLeaseLost = errors.New("maildrop lock was lost (taken over by another session after expiring)")

// lease is one held session lock.
type lease struct {
	maildropID int64
	token      string
	lost       atomic.Bool
}

// newToken returns a random session token.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// leaseKeeper renews the leases of one Store.
type leaseKeeper struct {
	s    *Store
	mu   sync.Mutex
	held map[string]*lease // by token
	// unreleased are leases whose session ended but whose row could not
	// be deleted then (no connection within the acquire timeout, the
	// database away): retried at every renewal, so that the user waits
	// at most a third of the lease rather than all of it.
	unreleased map[string]*lease
	quit       chan struct{}
	stopped    chan struct{}
	once       sync.Once
}

func newLeaseKeeper(s *Store) *leaseKeeper {
	k := &leaseKeeper{s: s, held: make(map[string]*lease), unreleased: make(map[string]*lease),
		quit: make(chan struct{}), stopped: make(chan struct{})}
	go k.run()
	return k
}

func (k *leaseKeeper) add(l *lease) {
	k.mu.Lock()
	k.held[l.token] = l
	k.mu.Unlock()
}

func (k *leaseKeeper) remove(l *lease) {
	k.mu.Lock()
	delete(k.held, l.token)
	k.mu.Unlock()
}

// releaseLater queues a lease whose release failed.
func (k *leaseKeeper) releaseLater(l *lease) {
	k.mu.Lock()
	k.unreleased[l.token] = l
	k.mu.Unlock()
}

// releasePending deletes the rows of queued leases, in one statement.
func (k *leaseKeeper) releasePending(ctx context.Context) {
	k.mu.Lock()
	tokens := make([]string, 0, len(k.unreleased))
	for token := range k.unreleased {
		tokens = append(tokens, token)
	}
	k.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	conn, err := k.s.acquire(ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommit)
	b.Queue("DELETE FROM leases WHERE token = ANY($1)", tokens)
	b.Queue("COMMIT")
	if conn.SendBatch(ctx, b).Close() != nil {
		return
	}
	k.mu.Lock()
	for _, token := range tokens {
		delete(k.unreleased, token)
	}
	k.mu.Unlock()
}

func (k *leaseKeeper) stop() {
	k.once.Do(func() { close(k.quit) })
	<-k.stopped
}

func (k *leaseKeeper) run() {
	defer close(k.stopped)
	interval := k.s.lease / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-k.quit:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		k.releasePending(ctx)
		k.renew(ctx)
		cancel()
	}
}

// renew extends every held lease in one statement. Leases it does not
// find under their tokens are marked lost.
func (k *leaseKeeper) renew(ctx context.Context) {
	k.mu.Lock()
	tokens := make([]string, 0, len(k.held))
	for token := range k.held {
		tokens = append(tokens, token)
	}
	k.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	conn, err := k.s.acquire(ctx)
	if err != nil {
		k.s.log.Warn("cannot renew maildrop leases", "leases", len(tokens), "err", err)
		return
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommit)
	b.Queue("UPDATE leases SET expires_at = now() + make_interval(secs => $1) WHERE token = ANY($2) RETURNING token",
		k.s.lease.Seconds(), tokens)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	renewed, err := func() (map[string]bool, error) {
		defer br.Close()
		for range 2 {
			if _, err := br.Exec(); err != nil {
				return nil, err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		renewed := make(map[string]bool, len(tokens))
		for rows.Next() {
			var token string
			if rows.Scan(&token) == nil {
				renewed[token] = true
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		return renewed, br.Close()
	}()
	if err != nil {
		k.s.log.Warn("cannot renew maildrop leases", "leases", len(tokens), "err", err)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, token := range tokens {
		l := k.held[token]
		if l == nil || renewed[token] {
			continue // released meanwhile, or renewed
		}
		l.lost.Store(true)
		delete(k.held, token)
		k.s.log.Warn("maildrop lease lost: another session took it over", "maildrop_id", l.maildropID)
	}
}

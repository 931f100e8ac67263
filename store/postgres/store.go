package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postoffice-mail/postoffice/store"
)

// takeLease takes the maildrop's lease for a new session: it inserts the
// lease row, or takes over one that has expired. No row back means the
// lease is held, or the maildrop does not exist yet.
const takeLease = `INSERT INTO leases (maildrop_id, token, holder, expires_at)
SELECT id, $2, $3, now() + make_interval(secs => $4) FROM maildrops WHERE name = $1
ON CONFLICT (maildrop_id) DO UPDATE
	SET token = EXCLUDED.token, holder = EXCLUDED.holder, acquired_at = now(), expires_at = EXCLUDED.expires_at
	WHERE leases.expires_at < now()
RETURNING maildrop_id`

// snapshot is the session's message list: an index-only scan of
// messages_snapshot, oldest (lowest uid) first. It runs in the same
// implicit transaction as takeLease (one batch), so it sees the maildrop
// as it was when the lease was taken.
const snapshot = `SELECT id, unique_id, size, chunks, received_at, first_retrieved_at
FROM messages WHERE maildrop_id = (SELECT id FROM maildrops WHERE name = $1) ORDER BY uid`

// createMaildrop creates a maildrop on first use. Its uid_validity is the
// time now, as store/maildir does.
const createMaildrop = `INSERT INTO maildrops (name, uid_validity) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`

// Open implements store.Store: it takes the maildrop's lease (creating the
// maildrop on first use) and reads the snapshot, in one round trip when
// the maildrop exists. It returns store.ErrInUse while another session,
// on any node, holds an unexpired lease.
func (s *Store) Open(ctx context.Context, acct store.Account) (store.Maildrop, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
	}
	defer conn.Release()
	for attempt := 0; ; attempt++ {
		md, err := s.open(ctx, conn, acct.Name)
		if !errors.Is(err, errNoMaildrop) || attempt > 0 {
			if err != nil && !errors.Is(err, store.ErrInUse) {
				err = fmt.Errorf("open maildrop of %q: %w", acct.Name, err)
			}
			return md, err
		}
		if err := s.fault("create-maildrop"); err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, createMaildrop, acct.Name, time.Now().Unix()); err != nil {
			return nil, fmt.Errorf("open maildrop of %q: create: %w", acct.Name, err)
		}
	}
}

// errNoMaildrop means the maildrop has no row yet.
var errNoMaildrop = errors.New("no such maildrop")

// open is one attempt of Open.
func (s *Store) open(ctx context.Context, conn *pgxpool.Conn, name string) (*maildrop, error) {
	if err := s.fault("open"); err != nil {
		return nil, err
	}
	l := &lease{token: newToken()}
	// One round trip: the lease and the snapshot in one transaction
	// whose commit does not wait for the WAL flush (see asyncCommit).
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommit)
	b.Queue(takeLease, name, l.token, s.holder, s.lease.Seconds())
	b.Queue(snapshot, name)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	defer br.Close()
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
	}
	err := br.QueryRow().Scan(&l.maildropID)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := br.Close(); err != nil {
			return nil, err
		}
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM maildrops WHERE name = $1)", name).Scan(&exists); err != nil {
			return nil, err
		}
		if !exists {
			return nil, errNoMaildrop
		}
		return nil, store.ErrInUse
	}
	if err != nil {
		return nil, err
	}
	md := &maildrop{s: s, name: name, lease: l}
	rows, err := br.Query()
	if err != nil {
		s.releaseLease(l)
		return nil, err
	}
	for rows.Next() {
		var (
			info  store.MessageInfo
			id    int64
			n     int32
			first *time.Time
		)
		if err := rows.Scan(&id, &info.UID, &info.Size, &n, &info.Received, &first); err != nil {
			rows.Close()
			s.releaseLease(l)
			return nil, err
		}
		if first != nil {
			info.FirstRetrieved = *first
		}
		md.infos = append(md.infos, info)
		md.ids = append(md.ids, id)
		md.chunks = append(md.chunks, n)
	}
	if err := rows.Err(); err != nil {
		s.releaseLease(l)
		return nil, err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		s.releaseLease(l)
		return nil, err
	}
	if err := br.Close(); err != nil {
		s.releaseLease(l)
		return nil, err
	}
	s.leases.add(l)
	return md, nil
}

// releaseLease deletes the lease row. If the database cannot be reached,
// the lease expires on its own.
func (s *Store) releaseLease(l *lease) error {
	s.leases.remove(l)
	ctx, cancel := context.WithTimeout(context.Background(), s.acquireTimeout+5*time.Second)
	defer cancel()
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(asyncCommit)
	b.Queue("DELETE FROM leases WHERE maildrop_id = $1 AND token = $2", l.maildropID, l.token)
	b.Queue("COMMIT")
	return conn.SendBatch(ctx, b).Close()
}

// asyncCommit lets a transaction that only takes, renews or releases a
// lease commit without waiting for its WAL record to reach the disk: it
// halves the fsyncs of a login. Losing such a commit in a database crash
// is harmless: a lost release or renewal only means the lease expires on
// its own, and a lost acquisition is noticed by the session's Commit,
// which checks its lease in a transaction that does wait for the disk
// (and so deletes nothing when the lease is gone).
const asyncCommit = "SET LOCAL synchronous_commit = off"

// Usage implements store.UsageReporter from the maildrop row's totals,
// which every delivery and deletion keeps up to date in its transaction:
// one primary-key read, whatever the size of the maildrop.
func (s *Store) Usage(ctx context.Context, acct store.Account) (store.Usage, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of %q: %w", acct.Name, err)
	}
	defer conn.Release()
	var u store.Usage
	err = conn.QueryRow(ctx, "SELECT message_count, total_size FROM maildrops WHERE name = $1", acct.Name).Scan(&u.Messages, &u.Bytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Usage{}, nil
	}
	if err != nil {
		return store.Usage{}, fmt.Errorf("usage of %q: %w", acct.Name, err)
	}
	return u, nil
}

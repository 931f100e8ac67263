package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// What "postoffice migrate" (package migrate) needs of the PostgreSQL
// store: reading a maildrop with the numbers its unique ids are made of,
// and writing one that keeps them, both under the maildrop's lease so
// that no POP3 session, on any node, changes it meanwhile.

// Export is a maildrop open for copying out.
type Export struct {
	md *maildrop
	// UIDValidity and NextUID are the maildrop's.
	UIDValidity, NextUID uint64
	// Messages are its messages, oldest first.
	Messages []store.Migrated
}

// Export takes the account's lease and reads what a migration copies.
func (s *Store) Export(ctx context.Context, acct store.Account) (*Export, error) {
	sm, err := s.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	md := sm.(*maildrop)
	ex := &Export{md: md}
	err = func() error {
		conn, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		if err := conn.QueryRow(ctx, "SELECT uid_validity, next_uid FROM maildrops WHERE id = $1", md.lease.maildropID).
			Scan(&ex.UIDValidity, &ex.NextUID); err != nil {
			return err
		}
		rows, err := conn.Query(ctx, "SELECT id, uid, coalesce(maildir_info, '') FROM messages WHERE maildrop_id = $1", md.lease.maildropID)
		if err != nil {
			return err
		}
		type extra struct {
			seq  uint64
			info string
		}
		byID := map[int64]extra{}
		for rows.Next() {
			var id int64
			var e extra
			if err := rows.Scan(&id, &e.seq, &e.info); err != nil {
				rows.Close()
				return err
			}
			byID[id] = e
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i, info := range md.infos {
			e, ok := byID[md.ids[i]]
			if !ok {
				continue // removed since the snapshot
			}
			ex.Messages = append(ex.Messages, store.Migrated{Seq: e.seq, Info: info, MaildirInfo: e.info})
		}
		return nil
	}()
	if err != nil {
		md.Close()
		return nil, fmt.Errorf("export %q: %w", acct.Name, err)
	}
	return ex, nil
}

// Open returns the content of Messages[i].
func (ex *Export) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	for j, info := range ex.md.infos {
		if info.UID == ex.Messages[i].Info.UID {
			return ex.md.Open(ctx, j)
		}
	}
	return nil, store.ErrNoSuchMessage
}

// Close releases the lease.
func (ex *Export) Close() error { return ex.md.Close() }

// ErrNotEmpty is returned by BeginImport for a destination that holds
// messages from elsewhere: a migration does not merge maildrops.
var ErrNotEmpty = errors.New("destination maildrop holds other messages")

// Import is a maildrop open for copying into.
type Import struct {
	s        *Store
	md       *maildrop
	validity uint64
	have     map[uint64]bool
}

// BeginImport takes the account's lease for a migration from a maildrop
// of the given UIDValidity and uid counter. The maildrop must be empty or
// hold what an earlier, interrupted migration of the same source copied
// (same UIDValidity); it takes the source's UIDValidity, and its counter
// is raised to the source's so that no id is handed out twice.
func (s *Store) BeginImport(ctx context.Context, acct store.Account, uidValidity, nextUID uint64) (*Import, error) {
	if uidValidity == 0 || uidValidity > 1<<62 || nextUID == 0 || nextUID > 1<<62 {
		return nil, fmt.Errorf("import into %q: bad uid validity %d or next uid %d", acct.Name, uidValidity, nextUID)
	}
	sm, err := s.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	md := sm.(*maildrop)
	im := &Import{s: s, md: md, validity: uidValidity, have: map[uint64]bool{}}
	err = func() error {
		conn, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var validity uint64
			var count int64
			if err := tx.QueryRow(ctx, "SELECT uid_validity, message_count FROM maildrops WHERE id = $1 FOR UPDATE", md.lease.maildropID).
				Scan(&validity, &count); err != nil {
				return err
			}
			if count > 0 && validity != uidValidity {
				return fmt.Errorf("%w (%d messages of uid validity %d, not %d)", ErrNotEmpty, count, validity, uidValidity)
			}
			if _, err := tx.Exec(ctx, "UPDATE maildrops SET uid_validity = $2, next_uid = greatest(next_uid, $3) WHERE id = $1",
				md.lease.maildropID, uidValidity, nextUID); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "SELECT uid FROM messages WHERE maildrop_id = $1", md.lease.maildropID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var uid uint64
				if err := rows.Scan(&uid); err != nil {
					rows.Close()
					return err
				}
				im.have[uid] = true
			}
			return rows.Err()
		})
	}()
	if err != nil {
		md.Close()
		return nil, fmt.Errorf("import into %q: %w", acct.Name, err)
	}
	return im, nil
}

// Has reports whether the message numbered seq is there already.
func (im *Import) Has(seq uint64) bool { return im.have[seq] }

// Add stores one message with its number, unique id, arrival and first
// retrieval time and Maildir flags, in one transaction: an interrupted
// migration leaves each message either wholly copied or not at all, and
// the unique key on (maildrop, unique id) makes a second copy impossible.
func (im *Import) Add(ctx context.Context, m store.Migrated, body io.Reader) error {
	if im.md.lease.lost.Load() {
		return errLeaseLost
	}
	conn, err := im.s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	w := &chunkWriter{ctx: ctx, s: im.s, conn: conn, buf: (*chunkBuffers.Get().(*[]byte))[:0]}
	defer w.finish()
	vsize, err := pop3.NormalizedSize(io.TeeReader(contextReader{ctx, body}, w))
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if len(w.buf) > 0 || w.tx == nil {
		if err := w.flush(); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	received := m.Info.Received
	if received.IsZero() {
		received = time.Now()
	}
	var first *time.Time
	if !m.Info.FirstRetrieved.IsZero() {
		first = &m.Info.FirstRetrieved
	}
	var info *string
	if m.MaildirInfo != "" {
		info = &m.MaildirInfo
	}
	tag, err := w.tx.Exec(ctx, `INSERT INTO messages (id, maildrop_id, uid, unique_id, size, stored_size, chunks, received_at, first_retrieved_at, maildir_info)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
		w.id, im.md.lease.maildropID, m.Seq, m.Info.UID, vsize, w.stored, w.chunks, received, first, info)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Copied already (by a run that was interrupted after its
		// commit): drop the chunks written for nothing.
		w.tx.Rollback(ctx)
		w.tx = nil
		im.have[m.Seq] = true
		return nil
	}
	{
		if _, err := w.tx.Exec(ctx, `UPDATE maildrops SET message_count = message_count + 1, total_size = total_size + $2,
			next_uid = greatest(next_uid, $3) WHERE id = $1`, im.md.lease.maildropID, vsize, m.Seq+1); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := w.tx.Commit(ctx); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	w.tx = nil
	im.have[m.Seq] = true
	return nil
}

// Close releases the lease.
func (im *Import) Close() error { return im.md.Close() }

// Maildrops lists the names of every maildrop, for migrating them all.
func (s *Store) Maildrops(ctx context.Context) ([]string, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, "SELECT name FROM maildrops ORDER BY name")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

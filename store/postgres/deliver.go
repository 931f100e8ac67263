package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// insertMessage hands out the maildrop's next uid, updates its totals and
// inserts the message row, in one statement: the maildrop row is locked
// from here to the end of the transaction, which is its next step. $1 the
// maildrop name, $2 the CRLF size, $3 the stored size, $4 the number of
// chunks, $5 the message id (its chunks are already written under it).
const insertMessage = `WITH md AS (
	UPDATE maildrops SET next_uid = next_uid + 1, message_count = message_count + 1, total_size = total_size + $2
	WHERE name = $1 RETURNING id, next_uid - 1 AS uid, uid_validity
)
INSERT INTO messages (id, maildrop_id, uid, unique_id, size, stored_size, chunks)
SELECT $5, id, uid, postoffice_uidl(uid, uid_validity), $2, $3, $4 FROM md
RETURNING unique_id, received_at`

// insertSmall is insertMessage for a message of one chunk, with the chunk:
// one statement, so one round trip and one implicit transaction. $6 is
// the body.
const insertSmall = `WITH md AS (
	UPDATE maildrops SET next_uid = next_uid + 1, message_count = message_count + 1, total_size = total_size + $2
	WHERE name = $1 RETURNING id, next_uid - 1 AS uid, uid_validity
), m AS (
	INSERT INTO messages (maildrop_id, uid, unique_id, size, stored_size, chunks)
	SELECT id, uid, postoffice_uidl(uid, uid_validity), $2, $3, 1 FROM md
	RETURNING id, unique_id, received_at
), c AS (
	INSERT INTO message_chunks (message_id, seq, data) SELECT id, 0, $4 FROM m
)
SELECT unique_id, received_at FROM m`

// Deliver implements store.Deliverer. The message is read once, counting
// its CRLF size on the way (pop3.NormalizedSize), and stored in chunks of
// ChunkSize octets. A message that fits in one chunk is stored by a
// single statement; a larger one in a transaction that writes its chunks
// as they are read and the message row last. Either way the message and
// its unique id become visible at commit, all at once, and a failure
// (the reader's, the database's) leaves nothing behind (design invariant
// 5). Deliver returns once the commit is durable: that is PostgreSQL's
// synchronous_commit, which must stay on (and, with replicas, should wait
// for one: see docs/cluster.md).
//
// Deliver takes no lease: a POP3 session holding the maildrop keeps its
// snapshot, and the message appears in the next one under the unique id
// Deliver returned.
func (s *Store) Deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	info, err := s.deliver(ctx, acct, msg)
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	return info, nil
}

func (s *Store) deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return store.MessageInfo{}, err
	}
	defer conn.Release()
	w := &chunkWriter{ctx: ctx, s: s, conn: conn, name: acct.Name, buf: (*chunkBuffers.Get().(*[]byte))[:0]}
	defer w.finish()
	vsize, err := pop3.NormalizedSize(io.TeeReader(contextReader{ctx, msg}, w))
	if err == nil {
		err = s.fault("read")
	}
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("write message: %w", err)
	}
	info := store.MessageInfo{Size: vsize}
	for attempt := 0; ; attempt++ {
		if err = s.fault("insert"); err == nil {
			info.UID, info.Received, err = w.commit(vsize)
		}
		if !errors.Is(err, errNoMaildrop) || attempt > 0 {
			return info, err
		}
		if _, err := conn.Exec(ctx, createMaildrop, acct.Name, time.Now().Unix()); err != nil {
			return store.MessageInfo{}, fmt.Errorf("create maildrop: %w", err)
		}
	}
}

// chunkWriter collects a message being delivered and writes it to the
// database a chunk at a time.
type chunkWriter struct {
	ctx    context.Context
	s      *Store
	conn   *pgxpool.Conn
	name   string
	buf    []byte
	tx     pgx.Tx // open once the first full chunk is written
	id     int64  // the message's id, drawn with the first chunk
	chunks int32  // chunks written
	stored int64  // octets written
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
		m := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+m]
		p = p[m:]
	}
	return n, nil
}

// flush writes the full buffer as the next chunk, starting the
// transaction with the first.
func (w *chunkWriter) flush() error {
	if err := w.s.fault("write-chunk"); err != nil {
		return err
	}
	if w.tx == nil {
		tx, err := w.conn.Begin(w.ctx)
		if err != nil {
			return err
		}
		w.tx = tx
		if err := tx.QueryRow(w.ctx, "SELECT nextval(pg_get_serial_sequence('messages', 'id'))").Scan(&w.id); err != nil {
			return err
		}
	}
	if _, err := w.tx.Exec(w.ctx, "INSERT INTO message_chunks (message_id, seq, data) VALUES ($1, $2, $3)", w.id, w.chunks, w.buf); err != nil {
		return err
	}
	w.chunks++
	w.stored += int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// commit stores what is left and the message row, and commits. It returns
// errNoMaildrop, having rolled back nothing of the chunks, when the
// maildrop has no row yet.
func (w *chunkWriter) commit(vsize int64) (uid string, received time.Time, err error) {
	if w.tx == nil {
		err := w.conn.QueryRow(w.ctx, insertSmall, w.name, vsize, int64(len(w.buf)), w.buf).Scan(&uid, &received)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", time.Time{}, errNoMaildrop
		}
		return uid, received, err
	}
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			return "", time.Time{}, err
		}
	}
	// A savepoint, so that a missing maildrop can be created and the
	// row tried again without losing the chunks.
	if _, err := w.tx.Exec(w.ctx, "SAVEPOINT message_row"); err != nil {
		return "", time.Time{}, err
	}
	err = w.tx.QueryRow(w.ctx, insertMessage, w.name, vsize, w.stored, w.chunks, w.id).Scan(&uid, &received)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := w.tx.Exec(w.ctx, "ROLLBACK TO SAVEPOINT message_row"); err != nil {
			return "", time.Time{}, err
		}
		return "", time.Time{}, errNoMaildrop
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if err := w.s.fault("commit-delivery"); err != nil {
		return "", time.Time{}, err
	}
	if err := w.tx.Commit(w.ctx); err != nil {
		return "", time.Time{}, err
	}
	w.tx = nil
	return uid, received, nil
}

// finish rolls back an unfinished transaction and recycles the buffer.
func (w *chunkWriter) finish() {
	if w.tx != nil {
		w.tx.Rollback(context.WithoutCancel(w.ctx))
		w.tx = nil
	}
	if cap(w.buf) == ChunkSize {
		b := w.buf[:0]
		chunkBuffers.Put(&b)
	}
	w.buf = nil
}

// contextReader ends a delivery once ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

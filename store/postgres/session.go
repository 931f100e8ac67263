package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postoffice-mail/postoffice/store"
)

// errClosed is returned by a maildrop's methods after Close.
var errClosed = errors.New("maildrop already closed")

// chunkTimeout bounds the read of one body chunk. The reader outlives the
// context Open was called with, so it keeps its own deadline per chunk.
const chunkTimeout = 60 * time.Second

// maildrop is one leased maildrop, open for a session. It implements
// store.Maildrop. It holds no database connection: each call takes one
// from the pool for as long as it runs.
type maildrop struct {
	s      *Store
	name   string
	lease  *lease
	infos  []store.MessageInfo // the snapshot; never changes
	ids    []int64             // messages.id of each snapshot message
	chunks []int32             // and its number of chunks

	mu     sync.Mutex
	closed bool
}

// Messages implements store.Maildrop.
func (md *maildrop) Messages() []store.MessageInfo { return md.infos }

func (md *maildrop) usable(index int) error {
	if md.closed {
		return errClosed
	}
	if index < 0 || index >= len(md.infos) {
		return fmt.Errorf("index out of range [0,%d)", len(md.infos))
	}
	return nil
}

// Open implements store.Maildrop. It reads the first chunk before
// returning, so that a message deleted meanwhile (store.ErrNoSuchMessage)
// or a database that went away is reported before the POP3 server sends
// +OK; the other chunks are read as the caller gets to them.
func (md *maildrop) Open(ctx context.Context, index int) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	md.mu.Lock()
	err := md.usable(index)
	md.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("open message %d: %w", index, err)
	}
	r := &chunkReader{s: md.s, id: md.ids[index], chunks: md.chunks[index]}
	if err := r.fetch(ctx); err != nil {
		if errors.Is(err, errNoChunk) {
			return nil, store.ErrNoSuchMessage
		}
		return nil, fmt.Errorf("open message %d of %q: %w", index, md.name, err)
	}
	return r, nil
}

// errNoChunk means a chunk's row is gone: its message was deleted.
var errNoChunk = errors.New("message body chunk missing")

// chunkReader streams a message body chunk by chunk.
type chunkReader struct {
	s      *Store
	id     int64
	chunks int32
	next   int32   // the next chunk to fetch
	buf    *[]byte // the current chunk (pooled)
	data   []byte  // its unread part
	closed bool
}

// chunkBuffers recycles chunk buffers between RETRs.
var chunkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, ChunkSize); return &b }}

// fetch reads the next chunk into the buffer.
func (r *chunkReader) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), chunkTimeout)
	defer cancel()
	if err := r.s.fault("read-chunk"); err != nil {
		return err
	}
	conn, err := r.s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, "SELECT data FROM message_chunks WHERE message_id = $1 AND seq = $2",
		pgx.QueryResultFormats{pgx.BinaryFormatCode}, r.id, r.next)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errNoChunk
	}
	// The raw value of a binary bytea is its octets: copy them into the
	// recycled buffer instead of letting Scan allocate a new slice.
	raw := rows.RawValues()[0]
	if r.buf == nil {
		r.buf = chunkBuffers.Get().(*[]byte)
	}
	*r.buf = append((*r.buf)[:0], raw...)
	r.data = *r.buf
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	r.next++
	return nil
}

// Read implements io.Reader.
func (r *chunkReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errClosed
	}
	for len(r.data) == 0 {
		if r.next >= r.chunks {
			return 0, io.EOF
		}
		if err := r.fetch(context.Background()); err != nil {
			if errors.Is(err, errNoChunk) {
				err = fmt.Errorf("message deleted while being read: %w", err)
			}
			return 0, err
		}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// Close implements io.Closer.
func (r *chunkReader) Close() error {
	if !r.closed && r.buf != nil {
		chunkBuffers.Put(r.buf)
	}
	r.closed, r.buf, r.data = true, nil, nil
	return nil
}

// Commit implements store.Maildrop (the RFC 1939 §6 UPDATE state): in one
// transaction it checks that the lease is still this session's (and
// renews it, which also locks it against a takeover until the end),
// deletes the marked messages (their chunks go with them) and updates the
// maildrop's totals, and records first retrievals. Either all of it
// happens or none: a database that goes away mid-way deletes nothing.
func (md *maildrop) Commit(ctx context.Context, deleted, retrieved []int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return fmt.Errorf("commit %q: %w", md.name, errClosed)
	}
	for _, list := range [][]int{deleted, retrieved} {
		for _, i := range list {
			if err := md.usable(i); err != nil {
				return fmt.Errorf("commit %q: message %d: %w", md.name, i, err)
			}
		}
	}
	if md.lease.lost.Load() {
		return fmt.Errorf("commit %q: %w", md.name, errLeaseLost)
	}
	if len(deleted) == 0 && len(retrieved) == 0 {
		return nil
	}
	del := make([]int64, 0, len(deleted))
	for _, i := range deleted {
		del = append(del, md.ids[i])
	}
	ret := make([]int64, 0, len(retrieved))
	for _, i := range retrieved {
		ret = append(ret, md.ids[i])
	}
	conn, err := md.s.acquire(ctx)
	if err != nil {
		return fmt.Errorf("commit %q: %w", md.name, err)
	}
	defer conn.Release()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE leases SET expires_at = now() + make_interval(secs => $3) WHERE maildrop_id = $1 AND token = $2",
			md.lease.maildropID, md.lease.token, md.s.lease.Seconds())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			md.lease.lost.Store(true)
			return errLeaseLost
		}
		if len(ret) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE messages SET first_retrieved_at = now()
				WHERE maildrop_id = $1 AND id = ANY($2) AND first_retrieved_at IS NULL`, md.lease.maildropID, ret); err != nil {
				return err
			}
		}
		if len(del) > 0 {
			if _, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM messages WHERE maildrop_id = $1 AND id = ANY($2) RETURNING size)
				UPDATE maildrops SET message_count = message_count - (SELECT count(*) FROM gone),
					total_size = total_size - (SELECT coalesce(sum(size), 0) FROM gone)
				WHERE id = $1`, md.lease.maildropID, del); err != nil {
				return err
			}
		}
		return md.s.fault("commit")
	})
	if err != nil {
		return fmt.Errorf("commit %q: %w", md.name, err)
	}
	return nil
}

// Close implements store.Maildrop: it releases the lease. Without a Commit
// nothing was changed (RFC 1939 §6). If the database cannot be reached the
// lease is left to expire, which only delays the next login. A second
// Close does nothing.
func (md *maildrop) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.closed {
		return nil
	}
	md.closed = true
	if err := md.s.releaseLease(md.lease); err != nil {
		md.s.log.Warn("cannot release maildrop lease now; retrying", "maildrop", md.name, "err", err)
		md.s.leases.releaseLater(md.lease)
	}
	return nil
}

package maildir

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// deliveries numbers this process's deliveries, for unique file names
// (the "Q" part) even within one microsecond and across Store values.
var deliveries atomic.Uint64

// Deliver implements store.Deliverer, the Maildir way, and gives the
// message its permanent unique id at once:
//
//  1. the message is written to tmp/ under a name unique to this host,
//     process and moment, and synced to disk;
//  2. under the index lock (held for milliseconds, never for a POP3
//     session), its record — next uid, CRLF size, arrival time, base name —
//     is appended to the index and synced;
//  3. the file is renamed into new/ with its sizes in the name
//     (",S=<file size>,W=<CRLF size>", as Dovecot writes them), and new/ is
//     synced so that the rename is durable; then the index lock is
//     released.
//
// Only then does Deliver return nil (design invariant 5). A failure at any
// step removes what the earlier steps made: the tmp/ file, the record.
// A crash leaves either a tmp/ file (removed after 36 hours by a later
// Open, as the Maildir specification asks) and perhaps a record without a
// file (dropped by the next Open; its uid is never used again), or the
// complete message with its record: never a message without its id, and
// never half a message in new/.
//
// The record goes in before the rename, under the lock that Open and
// Commit also take, so that no reader ever sees the file without its
// record and gives it an id of its own. Deliver takes no session lock: a
// POP3 session holding the maildrop keeps its snapshot, and the message
// appears in the next session with the id Deliver returned.
func (s *Store) Deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
		return store.MessageInfo{}, err
	}
	if err := s.noteControlDir(acct, dir); err != nil {
		return store.MessageInfo{}, err
	}
	root, err := openMaildir(dir)
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	defer root.Close()

	now := time.Now()
	// time.M<microseconds>P<pid>Q<delivery>.host, Dovecot's form.
	unique := strconv.FormatInt(now.Unix(), 10) +
		".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(os.Getpid()) +
		"Q" + strconv.FormatUint(deliveries.Add(1), 10) +
		"." + sanitizeHost(s.hostname)
	tmp := dirTmp + "/" + unique

	size, vsize, err := s.writeMessage(ctx, root, tmp, msg)
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	info, err := s.commitDelivery(ctx, root, dir, tmp, unique, size, vsize, now)
	if err != nil {
		root.Remove(tmp)
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	return info, nil
}

// writeMessage copies msg into a new file, counting its size as stored and
// its CRLF size (pop3.NormalizedSize reads the message through a tee into
// the file, so the message is read once), and syncs the file. On failure
// it removes the file, if it created it.
func (s *Store) writeMessage(ctx context.Context, root *os.Root, name string, msg io.Reader) (size, vsize int64, err error) {
	if err := s.fault("create"); err != nil {
		return 0, 0, err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			root.Remove(name)
		}
	}()
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(f)
	defer func() { bw.Reset(nil); writers.Put(bw) }()
	w := &countingWriter{w: bw}
	vsize, err = pop3.NormalizedSize(io.TeeReader(contextReader{ctx, msg}, w))
	if err == nil {
		err = s.fault("write")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("write message: %w", err)
	}
	if err := w.w.Flush(); err != nil {
		return 0, 0, fmt.Errorf("write message: %w", err)
	}
	if err := s.fault("sync-file"); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("sync message: %w", err)
	}
	return w.n, vsize, nil
}

// writers recycles the write buffers of deliveries.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64*1024) }}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// contextReader ends a delivery once ctx is done (the client went away,
// the server is shutting down).
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

package maildir

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/store"
)

// deliveries numbers this process's deliveries, for unique file names
// (the "Q" part) even within one microsecond and across Store values.
var deliveries atomic.Uint64

// Deliver implements store.Deliverer, the Maildir way: the message is
// written to tmp/ under a name unique to this host, process and moment,
// synced to disk, renamed into new/ with its sizes in the name
// (",S=<file size>,W=<CRLF size>", as Dovecot writes them, so no reader has
// to compute them), and the rename is made durable by syncing new/. Only
// then does Deliver return nil (design invariant 5). On failure nothing is
// left behind.
//
// Deliver takes neither the session lock nor the index, so it never waits
// for a POP3 session. The returned MessageInfo has Size and Received but
// an empty UID: the unique id is assigned by the next Store.Open.
func (s *Store) Deliver(ctx context.Context, acct store.Account, msg io.Reader) (store.MessageInfo, error) {
	dir, err := s.maildropDir(acct)
	if err != nil {
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

	size, vsize, err := writeMessage(ctx, root, tmp, msg)
	if err != nil {
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	final := dirNew + "/" + formatName(unique, size, vsize)
	if err := root.Rename(tmp, final); err != nil {
		root.Remove(tmp)
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	if err := syncDir(root, dirNew); err != nil {
		// Not durable, so not delivered: the sender will retry, and a
		// copy left here could make the message appear twice.
		root.Remove(final)
		return store.MessageInfo{}, fmt.Errorf("deliver to %q: %w", acct.Name, err)
	}
	// The received time Open will report: the name's, in whole seconds.
	return store.MessageInfo{Size: vsize, Received: time.Unix(now.Unix(), 0)}, nil
}

// writeMessage copies msg into a new file, counting its size as stored and
// its CRLF size (pop3.NormalizedSize reads the message through a tee into
// the file, so the message is read once), and syncs the file. On failure
// it removes the file, if it created it.
func writeMessage(ctx context.Context, root *os.Root, name string, msg io.Reader) (size, vsize int64, err error) {
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
	w := &countingWriter{w: bufio.NewWriterSize(f, 64*1024)}
	vsize, err = pop3.NormalizedSize(io.TeeReader(contextReader{ctx, msg}, w))
	if err != nil {
		return 0, 0, fmt.Errorf("write message: %w", err)
	}
	if err := w.w.Flush(); err != nil {
		return 0, 0, fmt.Errorf("write message: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("sync message: %w", err)
	}
	return w.n, vsize, nil
}

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

package fetch

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/mbox"
)

// mboxDest appends to an mbox file in the mboxrd format: each message
// starts with a "From " line, every line that starts with zero or more
// '>' followed by "From " gets one more '>', and a blank line ends it.
// Appends take a POSIX (fcntl) write lock on the whole file, the lock
// mutt, procmail and Dovecot take as well.
//
// Exactly once: before writing, the offset the message will start at and
// the date of its "From " line are recorded (durably) in the journal.
// After an interrupted run, a delivery recorded so and not settled is
// decided by comparing the file from that offset with the message
// downloaded again and rendered the same way: equal means delivered; a
// file that ends partway through the rendering is cut back to the offset
// (the partial message was ours, written last); anything else is left
// alone.
type mboxDest struct {
	path    string
	journal journal
	f       *os.File
}

func newMboxDest(path string, j journal) *mboxDest {
	return &mboxDest{path: path, journal: j}
}

func (d *mboxDest) String() string { return "mbox " + d.path }

func (d *mboxDest) batchSize() int { return 32 }

func (d *mboxDest) durableOnWrite() bool { return true }

func (d *mboxDest) open() error {
	if d.f != nil {
		return nil
	}
	f, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	d.f = f
	return nil
}

// lock takes the fcntl write lock (package mbox), waiting for another
// writer up to a minute (or ctx).
func (d *mboxDest) lock(ctx context.Context) error {
	if err := mbox.Lock(ctx, d.f, true, time.Minute); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	return nil
}

func (d *mboxDest) unlock() { mbox.Unlock(d.f) }

func (d *mboxDest) write(ctx context.Context, m *message, body io.Reader) (err error) {
	if err := d.open(); err != nil {
		return err
	}
	if err := d.lock(ctx); err != nil {
		return err
	}
	defer d.unlock()
	st, err := d.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	offset := st.Size()
	date := now().Unix()
	if err := d.journal.begin(m.uid, strconv.FormatInt(offset, 10)+" "+strconv.FormatInt(date, 10)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Nothing half-written stays: cut back to where we began.
			if terr := d.f.Truncate(offset); terr == nil && d.f.Sync() == nil {
				d.journal.cancel(m.uid)
			}
		}
	}()
	w := bufio.NewWriterSize(&offsetWriter{f: d.f, off: offset}, 64<<10)
	if err := renderMboxrd(w, newLFReader(contextReader{ctx, body}), date); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	return nil
}

// offsetWriter writes at an explicit offset (the file is not opened with
// O_APPEND so that the same descriptor can truncate and compare).
type offsetWriter struct {
	f   *os.File
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}

// renderMboxrd writes the message in mboxrd form (package mbox). No
// envelope sender is known to a POP3 client, so its "From " line names
// MAILER-DAEMON, as mpop and mutt write it.
func renderMboxrd(w *bufio.Writer, body io.Reader, date int64) error {
	return mbox.WriteMboxrd(w, mbox.FormatFromLine("", time.Unix(date, 0)), body)
}

func (d *mboxDest) commit(ctx context.Context) error { return nil }

func (d *mboxDest) recover(ctx context.Context, r *recovery) (map[string]bool, error) {
	found := make(map[string]bool)
	if len(r.pending) == 0 {
		return found, nil
	}
	if err := d.open(); err != nil {
		return nil, err
	}
	if err := d.lock(ctx); err != nil {
		return nil, err
	}
	defer d.unlock()
	for uid, token := range r.pending {
		offStr, dateStr, _ := strings.Cut(token, " ")
		offset, err1 := strconv.ParseInt(offStr, 10, 64)
		date, err2 := strconv.ParseInt(dateStr, 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad journal token %q for %s", d, token, uid)
		}
		st, err := d.f.Stat()
		if err != nil {
			return nil, err
		}
		if st.Size() <= offset {
			continue // nothing was written
		}
		rc, err := r.refetch(ctx, uid)
		if err != nil {
			// Gone from the server: the file has data after the offset
			// and we cannot compare; count it delivered rather than lose
			// track of it.
			r.warn("%s: message %s is no longer on the server; assuming the data at offset %d is it", d, uid, offset)
			found[uid] = true
			continue
		}
		var want bytes.Buffer
		bw := bufio.NewWriter(&want)
		err = renderMboxrd(bw, newLFReader(rc), date)
		rc.Close()
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: downloading message %s again: %w", d, uid, err)
		}
		have := make([]byte, min(st.Size()-offset, int64(want.Len())))
		if _, err := d.f.ReadAt(have, offset); err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		switch {
		case bytes.Equal(have, want.Bytes()):
			found[uid] = true
		case bytes.HasPrefix(want.Bytes(), have) && st.Size()-offset == int64(len(have)):
			// Our own partial write, last in the file.
			if err := d.f.Truncate(offset); err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			if err := d.f.Sync(); err != nil {
				return nil, fmt.Errorf("%s: %w", d, err)
			}
			r.warn("%s: removed the incomplete copy of message %s an interrupted run left at offset %d", d, uid, offset)
		default:
			r.warn("%s: data at offset %d is not message %s; leaving it alone", d, offset, uid)
		}
	}
	return found, nil
}

// contextReader stops a copy once ctx is done.
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

func (d *mboxDest) close() error {
	if d.f == nil {
		return nil
	}
	return d.f.Close()
}

package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/mail"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/mbox"
	"github.com/postoffice-mail/postoffice/store"
)

// MboxOptions say where each user's mbox file is and how to read it.
type MboxOptions struct {
	// Path is the file of an account's mbox; "{user}" in it is replaced
	// by the account's name ("/var/mail/{user}").
	Path string
	// Format is the mbox variant; mbox.Auto detects it.
	Format mbox.Format
	// UIDLHeader keeps each message's X-UIDL header as its unique id (the
	// id an old server showed, when it kept them there).
	UIDLHeader bool
	// Location is the time zone of "From " line dates without one
	// (time.Local when nil).
	Location *time.Location
	// LockWait bounds the wait for another program's write lock on the
	// file (30 seconds when 0).
	LockWait time.Duration
}

// ErrNoMbox is returned by the mbox source's Export for an account whose
// mbox file does not exist (a user who never had mail).
var ErrNoMbox = errors.New("no mbox file")

// Mbox is a set of mbox files, one a user, as a migration source. Its
// messages are numbered 1, 2... in file order, and the maildrop's
// UIDValidity is made from the file's first message: an interrupted
// import is resumed, and a second one imports nothing twice, as long as
// the file only grows at its end meanwhile (mail delivered into it); a
// file whose first message changed is refused by the destination as one
// holding other mail. It cannot be a destination.
func Mbox(opts MboxOptions) End {
	return End{
		Name: "mbox",
		Export: func(ctx context.Context, acct store.Account) (*Exported, error) {
			return exportMbox(ctx, opts, acct)
		},
		Import: func(context.Context, store.Account, uint64, uint64) (Importer, error) {
			return nil, errors.New("an mbox file cannot be a migration destination")
		},
	}
}

// MboxPath is the mbox file of an account.
func (o MboxOptions) MboxPath(acct store.Account) string {
	return strings.ReplaceAll(o.Path, "{user}", acct.Name)
}

func exportMbox(ctx context.Context, opts MboxOptions, acct store.Account) (*Exported, error) {
	path := opts.MboxPath(acct)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoMbox)
	}
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	wait := opts.LockWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	if err := lockShared(ctx, f, wait); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ix, err := mbox.Scan(f, st.Size(), mbox.Options{Format: opts.Format, Location: opts.Location})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ex, rep := mboxExport(ix, f, st.ModTime(), opts.UIDLHeader)
	rep.Source = path + " (" + ix.Format.String() + ")"
	ex.Report = rep
	ex.Close = f.Close // closing the file drops its lock
	ok = true
	return ex, nil
}

// mboxExport builds the export of a scanned file: numbers, unique ids
// and arrival times, with the report of what was decided.
func mboxExport(ix *mbox.Index, r io.ReaderAt, modTime time.Time, uidlHeader bool) (*Exported, *Report) {
	rep := &Report{Messages: len(ix.Messages)}
	for _, p := range ix.Problems {
		if s, ok := strings.CutSuffix(p.String(), ": skipped"); ok {
			rep.Skipped = append(rep.Skipped, s)
		} else {
			rep.Notes = append(rep.Notes, p.String())
		}
	}
	validity := mboxValidity(ix, r)
	own := make([]string, len(ix.Messages))
	for i, m := range ix.Messages {
		if !uidlHeader || len(m.UIDL) == 0 {
			continue
		}
		own[i] = m.UIDL[0]
		for _, other := range m.UIDL[1:] {
			if other != own[i] {
				rep.Notes = append(rep.Notes, fmt.Sprintf("message %d (offset %d): %d X-UIDL headers; the first, %q, is its id",
					i+1, m.Offset, len(m.UIDL), own[i]))
				break
			}
		}
	}
	ids := assignIDs(own, validity, rep)
	ex := &Exported{UIDValidity: validity, NextUID: uint64(len(ix.Messages)) + 1}
	for i, m := range ix.Messages {
		received := m.From.Date
		if received.IsZero() {
			if t, err := mail.ParseDate(m.DateHeader); err == nil {
				received = t
				rep.Notes = append(rep.Notes, fmt.Sprintf("message %d (offset %d): arrival time taken from its Date header", i+1, m.Offset))
			} else {
				received = modTime
				rep.Notes = append(rep.Notes, fmt.Sprintf("message %d (offset %d): no date in its \"From \" line or Date header: arrival time is the file's modification time", i+1, m.Offset))
			}
		}
		size := m.End - m.Start
		rep.Octets += size
		ex.Messages = append(ex.Messages, store.Migrated{
			Seq:  uint64(i + 1),
			Info: store.MessageInfo{UID: ids[i], Size: size, Received: received},
		})
	}
	ex.Open = func(_ context.Context, i int) (io.ReadCloser, error) {
		return io.NopCloser(ix.Content(r, i)), nil
	}
	return ex, rep
}

// mboxValidity makes the maildrop's UIDValidity from the file's first
// message (its "From " line and up to 4 KiB of it), so that the same
// file gives the same one each time and another file almost surely
// another: a destination that holds an earlier import of the same file
// is resumed, one that holds other mail refuses the import.
func mboxValidity(ix *mbox.Index, r io.ReaderAt) uint64 {
	h := fnv.New32a()
	if len(ix.Messages) > 0 {
		m := ix.Messages[0]
		io.Copy(h, io.NewSectionReader(r, m.Offset, min(m.End, m.Start+4096)-m.Offset))
	}
	if v := uint64(h.Sum32()); v != 0 {
		return v
	}
	return 1
}

// lockShared takes a POSIX (fcntl) read lock on the whole file, the lock
// that Postfix's local(8), procmail, mutt and Dovecot take to write an
// mbox: no delivery changes it while it is read. It waits for a writer
// up to wait.
func lockShared(ctx context.Context, f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: io.SeekStart}
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("locked by another program for over %v", wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

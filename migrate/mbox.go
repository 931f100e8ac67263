package migrate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/mbox"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
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
	// DovecotFormat, if set, makes each message's id as Dovecot's POP3
	// server made it by this pop3_uidl_format from the X-UID header (%u)
	// and the uidvalidity of the X-IMAPbase header (%v) that Dovecot keeps
	// in an mbox. An X-UIDL header still wins with UIDLHeader, as it does
	// with Dovecot's pop3_reuse_xuidl. The format may use %u and %v only.
	DovecotFormat *legacy.Format
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
	// A shared lock: no delivery changes the file while it is read.
	if err := mbox.Lock(ctx, f, false, wait); err != nil {
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
	ex, rep := mboxExport(ix, f, st.ModTime(), opts)
	rep.Source = path + " (" + ix.Format.String() + ")"
	ex.Report = rep
	ex.Close = f.Close // closing the file drops its lock
	ok = true
	return ex, nil
}

// mboxExport builds the export of a scanned file: numbers, unique ids
// and arrival times, with the report of what was decided.
func mboxExport(ix *mbox.Index, r io.ReaderAt, modTime time.Time, opts MboxOptions) (*Exported, *Report) {
	rep := &Report{}
	for _, p := range ix.Problems {
		if s, ok := strings.CutSuffix(p.String(), ": skipped"); ok {
			rep.Skipped = append(rep.Skipped, s)
		} else {
			rep.Notes = append(rep.Notes, p.String())
		}
	}
	// The messages to import: all but the internal-data pseudo-message
	// UW-IMAP and Pine keep first in a file, which no POP3 server showed.
	var keep []int
	for i, m := range ix.Messages {
		if m.XIMAP != "" {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("message %d (offset %d): the folder's internal data (X-IMAP header, written by UW-IMAP or Pine), not mail", i+1, m.Offset))
			continue
		}
		keep = append(keep, i)
	}
	validity := mboxValidity(ix, r)
	own := make([]sourceID, len(keep))
	dovecotValidity, validityWhy := dovecotUIDValidity(ix)
	for j, i := range keep {
		m := ix.Messages[i]
		own[j].num = i + 1
		if opts.UIDLHeader && len(m.UIDL) > 0 {
			own[j].id, own[j].label = m.UIDL[0], "X-UIDL"
			for _, other := range m.UIDL[1:] {
				if other != m.UIDL[0] {
					rep.Notes = append(rep.Notes, fmt.Sprintf("message %d (offset %d): %d X-UIDL headers; the first, %q, is its id",
						i+1, m.Offset, len(m.UIDL), m.UIDL[0]))
					break
				}
			}
			continue
		}
		if opts.DovecotFormat == nil {
			continue
		}
		// Dovecot's POP3 server made the id from the X-UID header (%u)
		// and the file's X-IMAPbase (%v), by its pop3_uidl_format.
		own[j].label = "the id made from X-UID"
		uid, err := strconv.ParseUint(m.XUID, 10, 32)
		switch {
		case opts.DovecotFormat.Uses('u') && (err != nil || uid == 0):
			rep.NotKept = append(rep.NotKept, IDChange{Message: i + 1,
				Why: fmt.Sprintf("no X-UID header with a uid (%q): the id Dovecot showed is not known", m.XUID)})
		case opts.DovecotFormat.Uses('v') && validityWhy != "":
			rep.NotKept = append(rep.NotKept, IDChange{Message: i + 1, Why: validityWhy})
		default:
			own[j].id = opts.DovecotFormat.Expand(func(key byte) string {
				if key == 'v' {
					return strconv.FormatUint(dovecotValidity, 10)
				}
				return strconv.FormatUint(uid, 10)
			})
		}
	}
	ids := assignIDs(own, validity, rep)
	ex := &Exported{UIDValidity: validity, NextUID: uint64(len(keep)) + 1}
	for j, i := range keep {
		m := ix.Messages[i]
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
			Seq:  uint64(j + 1),
			Info: store.MessageInfo{UID: ids[j], Size: size, Received: received},
		})
	}
	rep.Messages = len(ex.Messages)
	ex.Open = func(_ context.Context, j int) (io.ReadCloser, error) {
		return io.NopCloser(ix.Content(r, keep[j])), nil
	}
	return ex, rep
}

// dovecotUIDValidity is the uidvalidity an IMAP server kept in the file:
// the first number of the first X-IMAPbase header (Dovecot's, in the
// first message) or X-IMAP header (UW-IMAP's pseudo-message); why says
// why there is none.
func dovecotUIDValidity(ix *mbox.Index) (validity uint64, why string) {
	for _, m := range ix.Messages {
		base := m.XIMAPBase
		if base == "" {
			base = m.XIMAP
		}
		if base == "" {
			continue
		}
		f := strings.Fields(base)
		if len(f) > 0 {
			if v, err := strconv.ParseUint(f[0], 10, 32); err == nil && v > 0 {
				return v, ""
			}
		}
		return 0, fmt.Sprintf("the X-IMAPbase header (%q) has no uidvalidity: the id Dovecot showed is not known", base)
	}
	return 0, "no X-IMAPbase header in the file: the uidvalidity of the ids Dovecot showed is not known"
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

// Package migrate copies maildrops between stores — Maildir to PostgreSQL
// and back — keeping what POP3 clients and mail programs rely on: every
// message's unique id (so that leave-on-server clients download nothing
// twice), their order, arrival and first-retrieval times (EXPIRE), and the
// Maildir flags. It is the logic behind "postoffice migrate".
//
// Both ends are held under their session locks for the copy of a
// maildrop, so no POP3 session changes either meanwhile. Each message is
// copied durably on its own (a transaction in PostgreSQL, file, index
// record and rename in Maildir), and the destination keeps the source's
// message numbers, so a run that was interrupted (a crash, ^C, a database
// that went away) is resumed by running it again: what was copied is
// recognised by its number and skipped, nothing is copied twice.
//
// The source is left as it was; deleting it once the destination is in
// service is the administrator's step.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// Exported is an open source maildrop.
type Exported struct {
	// UIDValidity and NextUID are the numbers the unique ids are made of.
	UIDValidity, NextUID uint64
	// Messages are the messages to copy, oldest first.
	Messages []store.Migrated
	// Open returns message i's content.
	Open func(ctx context.Context, i int) (io.ReadCloser, error)
	// Close releases the source's lock.
	Close func() error
	// Report says what becomes of the messages' unique ids; nil means
	// every one is kept as it is (a postoffice store's).
	Report *Report
}

// Importer is an open destination maildrop.
type Importer interface {
	// Has reports whether the message numbered seq is there already.
	Has(seq uint64) bool
	// Add copies one message, durably.
	Add(ctx context.Context, m store.Migrated, body io.Reader) error
	// Close releases the destination's lock.
	Close() error
}

// End is one store as a migration end.
type End struct {
	// Name names the store in messages ("maildir", "postgres").
	Name string
	// Export opens a maildrop to copy from.
	Export func(ctx context.Context, acct store.Account) (*Exported, error)
	// Import opens a maildrop to copy into.
	Import func(ctx context.Context, acct store.Account, uidValidity, nextUID uint64) (Importer, error)
	// List, if set, returns the unique ids a maildrop holds, without
	// creating it: what Run compares with the messages the destination
	// says it has by number, so that a number another message took (mail
	// delivered after an earlier import) is not taken for the copy.
	List func(ctx context.Context, acct store.Account) (map[string]bool, error)
	// Inspect, if set, tells Check what an export would make of a
	// maildrop without the changes Export may make (a Maildir taking over
	// another server's ids); a nil Report means Export can tell.
	Inspect func(ctx context.Context, acct store.Account) (*Report, error)
}

// Maildir is the Maildir store as a migration end.
func Maildir(s *maildir.Store) End {
	return End{
		Name: "maildir",
		Export: func(ctx context.Context, acct store.Account) (*Exported, error) {
			// A maildrop opened for the first time takes over another
			// server's ids (maildir.Config.Legacy): what it kept and
			// what not is the report, told beforehand as the dry run
			// tells it, since the takeover itself only logs it.
			var rep *Report
			if c, err := s.CheckTakeover(ctx, acct); err == nil && c.Exists && !c.Indexed && c.Report != nil {
				rep = takeoverReport(c)
			}
			ex, err := s.Export(ctx, acct)
			if err != nil {
				return nil, err
			}
			if rep != nil {
				rep.Messages, rep.Octets = len(ex.Messages), 0
				for _, m := range ex.Messages {
					rep.Octets += m.Info.Size
				}
			}
			return &Exported{UIDValidity: ex.UIDValidity, NextUID: ex.NextUID, Messages: ex.Messages, Open: ex.Open, Close: ex.Close, Report: rep}, nil
		},
		Import: func(ctx context.Context, acct store.Account, v, n uint64) (Importer, error) {
			return s.BeginImport(ctx, acct, v, n)
		},
		Inspect: func(ctx context.Context, acct store.Account) (*Report, error) {
			return inspectMaildir(ctx, s, acct)
		},
		List: func(ctx context.Context, acct store.Account) (map[string]bool, error) {
			return listIDs(ctx, s, acct)
		},
	}
}

// Postgres is the PostgreSQL store as a migration end.
func Postgres(s *postgres.Store) End {
	return End{
		Name: "postgres",
		Export: func(ctx context.Context, acct store.Account) (*Exported, error) {
			ex, err := s.Export(ctx, acct)
			if err != nil {
				return nil, err
			}
			return &Exported{UIDValidity: ex.UIDValidity, NextUID: ex.NextUID, Messages: ex.Messages, Open: ex.Open, Close: ex.Close}, nil
		},
		Import: func(ctx context.Context, acct store.Account, v, n uint64) (Importer, error) {
			return s.BeginImport(ctx, acct, v, n)
		},
		List: func(ctx context.Context, acct store.Account) (map[string]bool, error) {
			return listIDs(ctx, s, acct)
		},
	}
}

// listIDs returns the unique ids of a maildrop; one that holds nothing
// is not opened (opening a Maildir creates it).
func listIDs(ctx context.Context, s Destination, acct store.Account) (map[string]bool, error) {
	ids := map[string]bool{}
	if u, err := s.Usage(ctx, acct); err != nil || u.Messages == 0 {
		return ids, err
	}
	md, err := s.Open(ctx, acct)
	if err != nil {
		return nil, err
	}
	defer md.Close() // without Commit: nothing changes
	for _, m := range md.Messages() {
		ids[m.UID] = true
	}
	return ids, nil
}

// Progress is told how a migration advances; nil tells nobody.
type Progress interface {
	// Start begins a maildrop of n messages and the given octets.
	Start(name string, messages int, octets int64)
	// Advance reports one more message handled (copied or skipped).
	Advance(octets int64)
	// Done ends the maildrop.
	Done(copied, skipped int, err error)
}

// Result counts what Run did.
type Result struct {
	Maildrops, Copied, Skipped int
	Octets                     int64
	// Failed names the maildrops that could not be copied, with why.
	Failed map[string]error
	// Reports holds, per maildrop copied or tried, what became of its
	// unique ids (see Report).
	Reports map[string]*Report
}

// Run copies each account's maildrop from one end to the other. A
// maildrop that fails (locked by a session, a destination with other
// mail, an unreadable message) is reported in Result.Failed and the
// others are still copied; Run returns an error only when ctx ends.
func Run(ctx context.Context, from, to End, accounts []store.Account, progress Progress) (Result, error) {
	res := Result{Failed: map[string]error{}, Reports: map[string]*Report{}}
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		copied, skipped, octets, rep, err := copyMaildrop(ctx, from, to, acct, progress)
		if rep != nil {
			res.Reports[acct.Name] = rep
		}
		res.Copied += copied
		res.Skipped += skipped
		res.Octets += octets
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Failed[acct.Name] = err
			continue
		}
		res.Maildrops++
	}
	return res, nil
}

func copyMaildrop(ctx context.Context, from, to End, acct store.Account, progress Progress) (copied, skipped int, octets int64, rep *Report, err error) {
	src, err := from.Export(ctx, acct)
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("open %s maildrop: %w", from.Name, err)
	}
	defer src.Close()
	rep = src.Report
	if rep == nil {
		rep = storeReport(from.Name, src.Messages)
	}
	var have map[string]bool
	if to.List != nil {
		if have, err = to.List(ctx, acct); err != nil {
			return 0, 0, 0, rep, fmt.Errorf("list %s maildrop: %w", to.Name, err)
		}
	}
	dst, err := to.Import(ctx, acct, src.UIDValidity, src.NextUID)
	if err != nil {
		return 0, 0, 0, rep, fmt.Errorf("open %s maildrop: %w", to.Name, err)
	}
	defer func() {
		if cerr := dst.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s maildrop: %w", to.Name, cerr)
		}
	}()
	// A message the destination has by number must be there under its
	// id too: otherwise the number is another message's (mail delivered
	// after an earlier import, or an import with other options), and
	// skipping it would lose this one.
	// Likewise a message it does not have by number must not find its id
	// taken: a destination may count that as copied already.
	if have != nil {
		for i, m := range src.Messages {
			switch has := dst.Has(m.Seq); {
			case has && !have[m.Info.UID]:
				return 0, 0, 0, rep, fmt.Errorf("message %d (%s): its number %d is another message's in the %s maildrop "+
					"(mail delivered there after an earlier import, or an earlier import with other options): nothing imported", i+1, m.Info.UID, m.Seq, to.Name)
			case !has && have[m.Info.UID]:
				return 0, 0, 0, rep, fmt.Errorf("message %d: its unique id %q is another message's in the %s maildrop: nothing imported", i+1, m.Info.UID, to.Name)
			}
		}
	}
	// A destination that cannot keep some message's unique id refuses
	// the maildrop before anything is copied.
	if c, ok := dst.(interface{ Check(store.Migrated) error }); ok {
		for _, m := range src.Messages {
			if err := c.Check(m); err != nil {
				return 0, 0, 0, rep, err
			}
		}
	}
	var total int64
	for _, m := range src.Messages {
		total += m.Info.Size
	}
	if progress != nil {
		progress.Start(acct.Name, len(src.Messages), total)
		defer func() { progress.Done(copied, skipped, err) }()
	}
	for i, m := range src.Messages {
		if dst.Has(m.Seq) {
			skipped++
		} else {
			if err := copyMessage(ctx, src, dst, i, m); errors.Is(err, store.ErrNoSuchMessage) {
				// Removed by another program since the listing.
				skipped++
			} else if err != nil {
				return copied, skipped, octets, rep, fmt.Errorf("message %d (%s): %w", i+1, m.Info.UID, err)
			} else {
				copied++
				octets += m.Info.Size
			}
		}
		if progress != nil {
			progress.Advance(m.Info.Size)
		}
	}
	return copied, skipped, octets, rep, nil
}

func copyMessage(ctx context.Context, src *Exported, dst Importer, i int, m store.Migrated) error {
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	body, err := src.Open(octx, i)
	cancel()
	if err != nil {
		return err
	}
	defer body.Close()
	return dst.Add(ctx, m, body)
}

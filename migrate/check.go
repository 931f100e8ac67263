package migrate

import (
	"context"
	"fmt"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// Destination is a store as the dry run looks at it: how much a maildrop
// holds (without creating it) and, when it holds something, which ids.
type Destination interface {
	store.Store
	store.UsageReporter
}

// Inspected is what the dry run found for one maildrop.
type Inspected struct {
	// Account is the maildrop's owner.
	Account string
	// Report is what an import would make of the source (nil when it
	// could not be read: see Err).
	Report *Report
	// There counts the messages the destination holds already under the
	// ids the import would give them (an earlier run's work); Others its
	// other messages (mail delivered there meanwhile, or from elsewhere).
	There, Others int
	// Err is why the maildrop could not be looked at.
	Err error
}

// Check is Run's dry run: it reads each source maildrop as Run would, and
// looks at the destination, and reports what an import would do, writing
// nothing to either: a Maildir source that has no postoffice index yet is
// not opened but reported as taking it over would make it (see
// maildir.Store.CheckTakeover); one that has is brought up to date as a
// login would. A nil dest is not looked at (a Maildir served in place).
// It returns an error only when ctx ends.
func Check(ctx context.Context, from End, dest Destination, accounts []store.Account) ([]Inspected, error) {
	var out []Inspected
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		in := Inspected{Account: acct.Name}
		in.Report, in.Err = inspectSource(ctx, from, acct)
		if in.Err == nil && dest != nil {
			in.There, in.Others, in.Err = inspectDestination(ctx, dest, acct, in.Report)
		}
		out = append(out, in)
	}
	return out, nil
}

func inspectSource(ctx context.Context, from End, acct store.Account) (*Report, error) {
	if from.Inspect != nil {
		rep, err := from.Inspect(ctx, acct)
		if err != nil || rep != nil {
			return rep, err
		}
	}
	src, err := from.Export(ctx, acct)
	if err != nil {
		return nil, fmt.Errorf("open %s maildrop: %w", from.Name, err)
	}
	defer src.Close()
	rep := src.Report
	if rep == nil {
		rep = storeReport(from.Name, src.Messages)
	}
	rep.ids = make([]string, len(src.Messages))
	for i, m := range src.Messages {
		rep.ids[i] = m.Info.UID
	}
	return rep, nil
}

func inspectDestination(ctx context.Context, dest Destination, acct store.Account, rep *Report) (there, others int, err error) {
	u, err := dest.Usage(ctx, acct)
	if err != nil {
		return 0, 0, fmt.Errorf("destination: %w", err)
	}
	if u.Messages == 0 {
		return 0, 0, nil
	}
	if rep.ids == nil {
		// Nothing was exported from the source yet, so nothing of it was
		// imported: what is there is other mail.
		return 0, int(u.Messages), nil
	}
	md, err := dest.Open(ctx, acct)
	if err != nil {
		return 0, 0, fmt.Errorf("destination: %w", err)
	}
	defer md.Close() // without Commit: nothing changes
	have := make(map[string]bool, len(md.Messages()))
	for _, m := range md.Messages() {
		have[m.UID] = true
	}
	for _, id := range rep.ids {
		if have[id] {
			there++
		}
	}
	return there, len(have) - there, nil
}

// inspectMaildir reports what opening a Maildir that has no postoffice
// index yet would keep of another server's unique ids; nil for one that
// has an index (its ids are frozen: Export tells them).
func inspectMaildir(ctx context.Context, s *maildir.Store, acct store.Account) (*Report, error) {
	c, err := s.CheckTakeover(ctx, acct)
	if err != nil {
		return nil, err
	}
	switch {
	case !c.Exists:
		return &Report{Source: c.Dir + " (no Maildir)", ids: []string{}}, nil
	case c.Messages == 0:
		return &Report{Source: c.Dir, ids: []string{}}, nil
	case c.Indexed:
		return nil, nil
	case c.Report == nil:
		return &Report{Source: c.Dir, Messages: c.Messages, New: c.Messages,
			Notes: []string{"no postoffice index and no other server named (-legacy): every message gets a new id"}}, nil
	}
	return takeoverReport(c), nil
}

// takeoverReport is a Maildir takeover's report (package legacy) as an
// import's.
func takeoverReport(c *maildir.TakeoverCheck) *Report {
	r := c.Report
	rep := &Report{Source: fmt.Sprintf("%s (%s ids", c.Dir, r.Source), Messages: c.Messages}
	if r.StateFile != "" {
		rep.Source += " from " + r.StateFile
	}
	if r.Format != "" {
		rep.Source += ", pop3_uidl_format " + r.Format
	}
	rep.Source += ")"
	rep.Kept = r.Kept - len(r.Renamed)
	for _, x := range r.Renamed {
		rep.Renamed = append(rep.Renamed, IDChange{File: x.Base, From: x.Was, To: x.Now, Why: "the id is another message's too"})
	}
	for _, x := range r.Lost {
		rep.NotKept = append(rep.NotKept, IDChange{File: x.Base, From: x.ID, To: "(a new id)", Why: x.Reason})
	}
	// Messages the other server never listed were never seen by a client
	// under any id: a new one costs nothing.
	rep.New = len(r.Unlisted)
	if !r.Found && r.Source != legacy.FileName {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no %s: no id can be kept; every message gets a new one", r.StateFile))
	}
	for _, p := range r.Problems {
		rep.Notes = append(rep.Notes, r.StateFile+" "+p)
	}
	return rep
}

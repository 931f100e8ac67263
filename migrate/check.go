package migrate

import (
	"context"
	"fmt"

	"github.com/postoffice-mail/postoffice/store"
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
// nothing to either (a Maildir source's index is brought up to date as a
// login would). It returns an error only when ctx ends.
func Check(ctx context.Context, from End, dest Destination, accounts []store.Account) ([]Inspected, error) {
	var out []Inspected
	for _, acct := range accounts {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		in := Inspected{Account: acct.Name}
		in.Report, in.Err = inspectSource(ctx, from, acct)
		if in.Err == nil {
			in.There, in.Others, in.Err = inspectDestination(ctx, dest, acct, in.Report)
		}
		out = append(out, in)
	}
	return out, nil
}

func inspectSource(ctx context.Context, from End, acct store.Account) (*Report, error) {
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

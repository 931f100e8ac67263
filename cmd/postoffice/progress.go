package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/postoffice-mail/postoffice/internal/progress"
)

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// copyProgress shows how a migration or an import advances
// (migrate.Progress) with the progress bar on a terminal and plain lines
// otherwise (internal/progress, as "postoffice fetch" does), one maildrop
// at a time.
type copyProgress struct {
	r progress.Reporter
	w io.Writer
	// summary: end each maildrop with a line of its own (migrate; import
	// prints its report instead).
	summary bool
	name    string
	total   int
	octets  int64
}

func newCopyProgress(w io.Writer, verb string, summary bool) *copyProgress {
	r := progress.NewLines(w, verb)
	if isTerminal(w) {
		r = progress.NewBar(w)
	}
	return &copyProgress{r: r, w: w, summary: summary}
}

func (p *copyProgress) Start(name string, messages int, octets int64) {
	p.name, p.total, p.octets = name, messages, octets
	p.r.Start(name, messages, octets)
}

func (p *copyProgress) Advance(octets int64) { p.r.Advance(1, octets) }

func (p *copyProgress) Done(copied, skipped int, err error) {
	p.r.Finish()
	if !p.summary {
		return
	}
	status := fmt.Sprintf("%d copied, %d already there", copied, skipped)
	if err != nil {
		status = "FAILED: " + err.Error()
	}
	fmt.Fprintf(p.w, "%s: %d messages, %s: %s\n", p.name, p.total, progress.Size(p.octets), status)
}

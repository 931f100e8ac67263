package fetch

import (
	"fmt"
	"io"
	"time"

	"github.com/postoffice-mail/postoffice/internal/progress"
)

// Progress is told how a download advances, one account at a time.
type Progress = progress.Reporter

// NewBarProgress draws a progress bar on a terminal: one line, redrawn
// at most ten times a second, with messages, octets, a bar and the rate.
func NewBarProgress(w io.Writer) Progress { return progress.NewBar(w) }

// NewLineProgress writes plain lines for a log or a pipe: one when an
// account starts, and one every 10% of its octets.
func NewLineProgress(w io.Writer) Progress { return progress.NewLines(w, "fetch") }

// humanBytes formats a size the way people read it: 512 B, 1.5 KB, 3.2 MB.
func humanBytes(n int64) string { return progress.Size(n) }

// Summary is the line printed for a result at the end of a run.
func Summary(r Result) string {
	d := r.Duration.Round(10 * time.Millisecond)
	switch {
	case r.Err != nil:
		done := ""
		if r.Fetched > 0 {
			done = fmt.Sprintf(" (after fetching %d messages)", r.Fetched)
		}
		return fmt.Sprintf("%s: failed%s: %v", r.Account, done, r.Err)
	case r.DryRun:
		return fmt.Sprintf("%s: dry run: would fetch %d messages (%s), delete %d, leave %d on the server",
			r.Account, r.Fetched, humanBytes(r.Bytes), r.Deleted, r.Left)
	case r.Fetched == 0:
		s := fmt.Sprintf("%s: no new mail (%d on the server", r.Account, r.Left)
		if r.Deleted > 0 {
			s += fmt.Sprintf(", %d old ones deleted", r.Deleted)
		}
		return s + ")"
	}
	return fmt.Sprintf("%s: %d messages (%s) fetched in %v, %d deleted from the server, %d left",
		r.Account, r.Fetched, humanBytes(r.Bytes), d, r.Deleted, r.Left)
}

package fetch

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Progress is told how a download advances.
type Progress interface {
	// Start begins an account with this many messages and octets to fetch.
	Start(account string, messages int, bytes int64)
	// Advance adds fetched messages and octets.
	Advance(messages int, bytes int64)
	// Finish ends the account.
	Finish()
}

// NewBarProgress draws a progress bar on a terminal: one line, redrawn
// at most ten times a second, with messages, octets, a bar and the rate.
func NewBarProgress(w io.Writer) Progress { return &bar{w: w} }

type bar struct {
	mu          sync.Mutex
	w           io.Writer
	account     string
	total, done int
	bytes, got  int64
	start, last time.Time
	drawn       bool
}

func (b *bar) Start(account string, messages int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.account, b.total, b.bytes, b.done, b.got = account, messages, bytes, 0, 0
	b.start = time.Now()
	b.last = time.Time{}
	if messages > 0 {
		b.draw()
	}
}

func (b *bar) Advance(messages int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += messages
	b.got += bytes
	if time.Since(b.last) >= 100*time.Millisecond || b.done == b.total {
		b.draw()
	}
}

func (b *bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
}

const barWidth = 24

func (b *bar) draw() {
	b.last = time.Now()
	frac := 1.0
	if b.bytes > 0 {
		frac = float64(b.got) / float64(b.bytes)
	}
	filled := int(frac * barWidth)
	rate := ""
	if el := time.Since(b.start).Seconds(); el > 0.2 {
		rate = "  " + humanBytes(int64(float64(b.got)/el)) + "/s"
	}
	fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %d/%d messages  %s/%s%s",
		b.account, strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled),
		b.done, b.total, humanBytes(b.got), humanBytes(b.bytes), rate)
	b.drawn = true
}

// NewLineProgress writes plain lines for a log or a pipe: one when an
// account starts, and one every 10% of its octets.
func NewLineProgress(w io.Writer) Progress { return &lines{w: w} }

type lines struct {
	mu          sync.Mutex
	w           io.Writer
	account     string
	total, done int
	bytes, got  int64
	nextTenth   int64
}

func (l *lines) Start(account string, messages int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.account, l.total, l.bytes, l.done, l.got, l.nextTenth = account, messages, bytes, 0, 0, 1
	if messages > 0 {
		fmt.Fprintf(l.w, "%s: %d messages (%s) to fetch\n", account, messages, humanBytes(bytes))
	}
}

func (l *lines) Advance(messages int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done += messages
	l.got += bytes
	if l.total >= 100 && l.bytes > 0 && l.got*10 >= l.nextTenth*l.bytes && l.done < l.total {
		fmt.Fprintf(l.w, "%s: %d/%d messages, %s/%s\n", l.account, l.done, l.total, humanBytes(l.got), humanBytes(l.bytes))
		for l.got*10 >= l.nextTenth*l.bytes {
			l.nextTenth++
		}
	}
}

func (l *lines) Finish() {}

// humanBytes formats a size the way people read it: 512 B, 1.5 KB, 3.2 MB.
func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}

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

// Package progress shows how a long copy advances — "postoffice fetch"
// downloading accounts, "postoffice import" and "postoffice migrate"
// copying maildrops: a bar redrawn in place on a terminal, or plain lines
// for a log or a pipe.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Reporter is told how a copy advances, one unit (an account, a
// maildrop) at a time.
type Reporter interface {
	// Start begins a unit with this many messages and octets to copy.
	Start(name string, messages int, bytes int64)
	// Advance adds copied messages and octets.
	Advance(messages int, bytes int64)
	// Finish ends the unit.
	Finish()
}

// NewBar draws a progress bar on a terminal: one line, redrawn at most
// ten times a second, with messages, octets, a bar and the rate. Finish
// erases it, so that the caller's summary line takes its place.
func NewBar(w io.Writer) Reporter { return &bar{w: w} }

type bar struct {
	mu          sync.Mutex
	w           io.Writer
	name        string
	total, done int
	bytes, got  int64
	start, last time.Time
	drawn       bool
}

func (b *bar) Start(name string, messages int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.name, b.total, b.bytes, b.done, b.got = name, messages, bytes, 0, 0
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
		frac = min(float64(b.got)/float64(b.bytes), 1)
	}
	filled := int(frac * barWidth)
	rate := ""
	if el := time.Since(b.start).Seconds(); el > 0.2 {
		rate = "  " + Size(int64(float64(b.got)/el)) + "/s"
	}
	fmt.Fprintf(b.w, "\r\033[K%s [%s%s] %d/%d messages  %s/%s%s",
		b.name, strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled),
		b.done, b.total, Size(b.got), Size(b.bytes), rate)
	b.drawn = true
}

// NewLines writes plain lines for a log or a pipe: one when a unit
// starts, and, for units of 100 messages or more, one every 10% of its
// octets.
func NewLines(w io.Writer, verb string) Reporter { return &lines{w: w, verb: verb} }

type lines struct {
	mu          sync.Mutex
	w           io.Writer
	verb        string
	name        string
	total, done int
	bytes, got  int64
	nextTenth   int64
}

func (l *lines) Start(name string, messages int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.name, l.total, l.bytes, l.done, l.got, l.nextTenth = name, messages, bytes, 0, 0, 1
	if messages > 0 {
		fmt.Fprintf(l.w, "%s: %d messages (%s) to %s\n", name, messages, Size(bytes), l.verb)
	}
}

func (l *lines) Advance(messages int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done += messages
	l.got += bytes
	if l.total >= 100 && l.bytes > 0 && l.got*10 >= l.nextTenth*l.bytes && l.done < l.total {
		fmt.Fprintf(l.w, "%s: %d/%d messages, %s/%s\n", l.name, l.done, l.total, Size(l.got), Size(l.bytes))
		for l.got*10 >= l.nextTenth*l.bytes {
			l.nextTenth++
		}
	}
}

func (l *lines) Finish() {}

// Size formats a number of octets the way people read it: 512 B,
// 1.5 KB, 3.2 MB (decimal units).
func Size(n int64) string {
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

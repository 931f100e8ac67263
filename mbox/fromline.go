package mbox

import (
	"bytes"
	"strings"
	"time"
)

// FromLine is a parsed "From " separator line: "From SENDER DATE", where
// DATE is in the form of C's asctime() ("Mon Jan  2 15:04:05 2006"),
// sometimes with a time zone, and older files may end with "remote from
// HOST".
type FromLine struct {
	// Sender is the envelope sender as written ("MAILER-DAEMON" when
	// none was known).
	Sender string
	// Date is when the message was written into the file, or the zero
	// time if the line carries no date this package can read.
	Date time.Time
}

// The date layouts seen in "From " lines; runs of spaces are folded to one
// before matching. Without a zone the date is the writer's local time,
// which is taken to be this machine's.
var fromDateLayouts = []string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04:05 2006 MST",
	"Mon Jan 2 15:04 2006",
	"Mon Jan 2 15:04 MST 2006",
	"Mon Jan 2 15:04 2006 -0700",
}

var weekdays = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
var months = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func isOneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// ParseFromLine parses a line that starts with "From " (its line end,
// LF or CRLF, may be included). ok is false when the line does not start
// with "From "; a line that does but has no readable date gives ok with a
// zero Date.
func ParseFromLine(line []byte, loc *time.Location) (fl FromLine, ok bool) {
	if !bytes.HasPrefix(line, []byte("From ")) {
		return FromLine{}, false
	}
	rest := strings.TrimRight(string(line[5:]), "\r\n")
	if i := strings.Index(rest, " remote from "); i >= 0 {
		rest = rest[:i]
	}
	fields := strings.Fields(rest)
	// The date starts at the last weekday followed by a month name: a
	// sender may hold spaces (a quoted local part) but rarely that.
	for i := len(fields) - 2; i >= 0; i-- {
		if !isOneOf(fields[i], weekdays) || !isOneOf(fields[i+1], months) {
			continue
		}
		date := strings.Join(fields[i:], " ")
		for _, layout := range fromDateLayouts {
			if t, err := time.ParseInLocation(layout, date, loc); err == nil {
				return FromLine{Sender: strings.Join(fields[:i], " "), Date: t}, true
			}
		}
		break
	}
	return FromLine{Sender: strings.Join(fields, " ")}, true
}

// FormatFromLine is the separator line WriteMboxrd writes, with its LF:
// the date in asctime() form in UTC, as mutt and mpop write it.
func FormatFromLine(sender string, date time.Time) string {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	return "From " + sender + " " + date.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n"
}

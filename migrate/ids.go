package migrate

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/postoffice-mail/postoffice/store"
)

// Report says, for one source maildrop, what an import makes of it: how
// many messages, which unique ids are kept as the source had them, which
// are changed and why, and what of the source is not imported. Nothing is
// changed silently: every id that is not kept is listed here.
type Report struct {
	// Source names what was read ("/var/mail/alice (mboxrd)").
	Source string
	// Messages is the number of messages to import; Octets their size.
	Messages int
	Octets   int64
	// Kept counts the ids kept as the source gave them.
	Kept int
	// New counts the messages that had no id of their own (an mbox
	// message without X-UIDL, or read without -uidl-header): they get a
	// new id, so clients that kept them on the old server download them
	// once more.
	New int
	// Renamed lists the duplicate ids made unique (the first message
	// keeps the id, the next ones get "-2", "-3"..., as Dovecot's
	// pop3_uidl_duplicates=rename does).
	Renamed []IDChange
	// NotKept lists the ids that cannot be kept (not an RFC 1939 §7 id),
	// with the new id each message gets instead.
	NotKept []IDChange
	// Skipped lists the data that is not imported, with why.
	Skipped []string
	// Notes lists what was found and decided that changes no id (a
	// "From " line without a date, a wrong Content-Length...).
	Notes []string

	ids []string // the ids the messages get, for Check
}

// IDChange is one unique id that an import does not keep as it was.
type IDChange struct {
	// Message is the message's number in the source (1-based), or 0
	// when File names it.
	Message int
	// File is the message's file name (a Maildir's, up to ':').
	File string
	// From is the id the source gave, To the id the message gets.
	From, To string
	// Why says why.
	Why string
}

func (c IDChange) String() string {
	if c.From == "" && c.File == "" {
		return fmt.Sprintf("message %d: %s: imported as %q", c.Message, c.Why, c.To)
	}
	if c.File != "" {
		return fmt.Sprintf("file %s: %s: %q becomes %q", c.File, c.Why, c.From, c.To)
	}
	return fmt.Sprintf("message %d: %s: %q imported as %q", c.Message, c.Why, c.From, c.To)
}

// invalidUniqueID says why id (from what label names) is not an RFC 1939
// §7 unique id, or "".
func invalidUniqueID(id, label string) string {
	switch {
	case id == "":
		return "an empty " + label + " is not a unique id"
	case len(id) > 70:
		return fmt.Sprintf("%s of %d characters is longer than a unique id may be (RFC 1939 §7: 70)", label, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7E {
			return fmt.Sprintf("%s holds octet 0x%02X at position %d, outside what a unique id may hold (RFC 1939 §7: 0x21..0x7E)", label, c, i+1)
		}
	}
	return ""
}

// generatedID is the id a postoffice store generates for a message
// number and UIDValidity (Dovecot's default form, %08Xu%08Xv).
func generatedID(seq, validity uint64) string {
	return fmt.Sprintf("%08X%08X", seq, validity)
}

// sourceID is the id a message brings from its source.
type sourceID struct {
	// id is the id, "" for none.
	id string
	// label names where it comes from in reports ("X-UIDL").
	label string
	// num is the message's number in the source, for reports.
	num int
}

// assignIDs gives each message its unique id: its own where it is a
// valid id and the first to carry it; a duplicate gets the first free
// "-2", "-3"... suffix; any other message the id a postoffice store
// generates from its number (its place in own, from 1) and validity. rep
// is filled in with what was kept and what changed; messages rep.NotKept
// names already (an id that could not be made) get their new id there.
func assignIDs(own []sourceID, validity uint64, rep *Report) []string {
	ids := make([]string, len(own))
	// Every valid id of the source is reserved first, so that a renamed
	// duplicate never takes an id another message holds in its own
	// right ("a", "a", "a-2": the second becomes "a-3").
	reserved := make(map[string]bool, len(own))
	for _, o := range own {
		if o.id != "" && invalidUniqueID(o.id, o.label) == "" {
			reserved[o.id] = true
		}
	}
	notKept := make(map[int]int, len(rep.NotKept))
	for j, c := range rep.NotKept {
		notKept[c.Message] = j
	}
	taken := make(map[string]bool, len(own))
	firstOf := make(map[string]int)
	for i, o := range own {
		id := o.id
		switch {
		case id == "":
			continue
		case invalidUniqueID(id, o.label) != "":
			notKept[o.num] = len(rep.NotKept)
			rep.NotKept = append(rep.NotKept, IDChange{Message: o.num, From: id, Why: invalidUniqueID(id, o.label)})
			continue
		case !taken[id]:
			ids[i] = id
			taken[id] = true
			firstOf[id] = o.num
			rep.Kept++
			continue
		}
		for n := 2; ; n++ {
			cand := id + "-" + strconv.Itoa(n)
			if len(cand) > 70 {
				notKept[o.num] = len(rep.NotKept)
				rep.NotKept = append(rep.NotKept, IDChange{Message: o.num, From: id,
					Why: fmt.Sprintf("%s is also message %d's, and too long to be made unique by a suffix", o.label, firstOf[id])})
				break
			}
			if !reserved[cand] && !taken[cand] {
				ids[i] = cand
				taken[cand] = true
				rep.Renamed = append(rep.Renamed, IDChange{Message: o.num, From: id, To: cand,
					Why: fmt.Sprintf("%s is also message %d's", o.label, firstOf[id])})
				break
			}
		}
	}
	for i := range ids {
		if ids[i] != "" {
			continue
		}
		id := generatedID(uint64(i+1), validity)
		for n := 2; taken[id] || reserved[id]; n++ {
			// Some message's X-UIDL has the generated form: it keeps it.
			id = generatedID(uint64(i+1), validity) + "-" + strconv.Itoa(n)
		}
		ids[i] = id
		taken[id] = true
		if j, ok := notKept[own[i].num]; ok {
			rep.NotKept[j].To = id
		} else if own[i].id == "" {
			rep.New++
		}
	}
	return ids
}

// Summary is the report's first line.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages", r.Messages)
	if r.Source != "" {
		fmt.Fprintf(&b, " from %s", r.Source)
	}
	fmt.Fprintf(&b, ": %d ids kept", r.Kept)
	if r.New > 0 {
		fmt.Fprintf(&b, ", %d new (no id in the source)", r.New)
	}
	if len(r.Renamed) > 0 {
		fmt.Fprintf(&b, ", %d renamed", len(r.Renamed))
	}
	if len(r.NotKept) > 0 {
		fmt.Fprintf(&b, ", %d not kept", len(r.NotKept))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d skipped", len(r.Skipped))
	}
	return b.String()
}

// Details are the report's other lines: every change, skip and note.
func (r *Report) Details() []string {
	var out []string
	for _, c := range r.Renamed {
		out = append(out, "renamed: "+c.String())
	}
	for _, c := range r.NotKept {
		out = append(out, "not kept: "+c.String())
	}
	for _, s := range r.Skipped {
		out = append(out, "skipped: "+s)
	}
	for _, s := range r.Notes {
		out = append(out, "note: "+s)
	}
	return out
}

// storeReport is the report for a source that is a postoffice store:
// every id is kept as it is.
func storeReport(name string, msgs []store.Migrated) *Report {
	r := &Report{Source: name, Messages: len(msgs), Kept: len(msgs)}
	for _, m := range msgs {
		r.Octets += m.Info.Size
	}
	return r
}

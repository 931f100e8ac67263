package legacy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// UIDList is a parsed dovecot-uidlist.
//
// Version 3, the one Dovecot writes since 1.1:
//
//	3 V<uidvalidity> N<nextuid> G<mailbox guid> [other header fields]
//	<uid> [<extension> ...] :<file name>
//
// An extension is a key letter A–Z and its value, up to the next space:
// among them W (virtual size), S (physical size), G (message GUID), P (a
// saved POP3 UIDL; "P" alone means the base file name) and O (POP3
// order). Version 1 is "1 <uidvalidity> <nextuid>" and then "<uid> <file
// name>" lines. File names may carry the flags part (":2,S"); records are
// matched to files by the part before ':'.
type UIDList struct {
	Version     int
	UIDValidity uint64
	NextUID     uint64
	// Records in file order (ascending uid), one per base name.
	Records []UIDRecord
	// Problems are the damaged or unknown parts, with line numbers.
	Problems []string
	// Usable is false when the header is damaged: then Dovecot itself
	// would have thrown the file away and given new uids, and no id can
	// be trusted.
	Usable bool
}

// UIDRecord is one message of a uidlist.
type UIDRecord struct {
	UID  uint64
	Base string
	// Extensions are the record's extension fields, as "<key><value>"
	// (see Extension).
	Extensions []string
	Line       int
}

// Extension returns the value of the record's extension key (the last
// one, should the key be there twice) and whether it has one.
func (r *UIDRecord) Extension(key byte) (string, bool) {
	for i := len(r.Extensions) - 1; i >= 0; i-- {
		if r.Extensions[i][0] == key {
			return r.Extensions[i][1:], true
		}
	}
	return "", false
}

// ParseUIDList parses a dovecot-uidlist. It never fails: what it cannot
// read it leaves out and notes in Problems, with the line, so that one
// damaged record costs one message its id, not the whole maildrop.
func ParseUIDList(data []byte) *UIDList {
	l := &UIDList{}
	text := string(data)
	header, rest, ok := strings.Cut(text, "\n")
	if !ok && header == "" {
		l.Problems = append(l.Problems, "line 1: empty file")
		return l
	}
	if !l.parseHeader(header) {
		return l
	}
	l.Usable = true
	lines := strings.Count(rest, "\n") + 1
	l.Records = make([]UIDRecord, 0, lines)
	byBase := make(map[string]int, lines)
	var lastUID uint64
	dropped := false
	for lineNo := 2; rest != ""; lineNo++ {
		line, more, terminated := strings.Cut(rest, "\n")
		rest = more
		if !terminated {
			l.problem(lineNo, "no line end: the file was cut short (the record is used only if its file name is whole)")
		}
		rec, err := l.parseRecord(line)
		if err != nil {
			l.problem(lineNo, "%v; record ignored: %q", err, clip(line))
			continue
		}
		rec.Line = lineNo
		if rec.UID <= lastUID {
			l.problem(lineNo, "uid %d not above the previous one (%d); record ignored", rec.UID, lastUID)
			continue
		}
		lastUID = rec.UID
		if i, dup := byBase[rec.Base]; dup {
			// Dovecot gives the file its later uid (the file was
			// expunged and came back); the record moves to its uid's
			// place, so that the records stay in uid order.
			l.problem(lineNo, "file %q is listed again (was uid %d on line %d); the later uid %d counts",
				rec.Base, l.Records[i].UID, l.Records[i].Line, rec.UID)
			l.Records[i].Base = "" // dropped below
			dropped = true
		}
		byBase[rec.Base] = len(l.Records)
		l.Records = append(l.Records, rec)
	}
	if dropped {
		l.Records = slices.DeleteFunc(l.Records, func(r UIDRecord) bool { return r.Base == "" })
	}
	if l.NextUID <= lastUID {
		l.NextUID = lastUID + 1
	}
	return l
}

func (l *UIDList) problem(line int, format string, args ...any) {
	l.Problems = append(l.Problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
}

// parseHeader reads the first line; false means the file is unusable.
func (l *UIDList) parseHeader(line string) bool {
	if len(line) < 2 || !isDigit(line[0]) || line[1] != ' ' {
		l.problem(1, "not a dovecot-uidlist header: %q", clip(line))
		return false
	}
	l.Version = int(line[0] - '0')
	fields := strings.Fields(line[2:])
	switch l.Version {
	case 1:
		if len(fields) < 2 {
			l.problem(1, "version 1 header without uidvalidity and next uid")
			return false
		}
		l.UIDValidity, _ = strconv.ParseUint(fields[0], 10, 32)
		l.NextUID, _ = strconv.ParseUint(fields[1], 10, 32)
	case 3:
		for _, f := range fields {
			switch f[0] {
			case 'V':
				l.UIDValidity, _ = strconv.ParseUint(f[1:], 10, 32)
			case 'N':
				l.NextUID, _ = strconv.ParseUint(f[1:], 10, 32)
			}
		}
	default:
		l.problem(1, "unsupported dovecot-uidlist version %d", l.Version)
		return false
	}
	if l.UIDValidity == 0 || l.NextUID == 0 {
		l.problem(1, "header without a valid uidvalidity or next uid: %q", clip(line))
		return false
	}
	return true
}

// parseRecord reads "<uid> [extensions] :<name>" (version 3) or "<uid>
// <name>" (version 1).
func (l *UIDList) parseRecord(line string) (UIDRecord, error) {
	i := 0
	for i < len(line) && isDigit(line[i]) {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return UIDRecord{}, fmt.Errorf("no uid")
	}
	uid, err := strconv.ParseUint(line[:i], 10, 32)
	if err != nil || uid == 0 || uid == math.MaxUint32 {
		return UIDRecord{}, fmt.Errorf("bad uid %q", line[:i])
	}
	rest := strings.TrimLeft(line[i:], " ")
	rec := UIDRecord{UID: uid}
	if l.Version == 3 {
		for rest != "" && rest[0] != ':' {
			field, more, _ := strings.Cut(rest, " ")
			rest = strings.TrimLeft(more, " ")
			if field[0] < 'A' || field[0] > 'Z' {
				// Dovecot drops such a field and keeps the record.
				l.Problems = append(l.Problems, fmt.Sprintf("uid %d: unknown extension field %q ignored", uid, clip(field)))
				continue
			}
			// A slice, not a map: a uidlist has a few fields on each
			// of up to millions of lines.
			rec.Extensions = append(rec.Extensions, field)
		}
		name, ok := strings.CutPrefix(rest, ":")
		if !ok || name == "" {
			return UIDRecord{}, fmt.Errorf("no file name")
		}
		rest = name
	}
	if rest == "" || strings.ContainsAny(rest, "/\x00\r") {
		return UIDRecord{}, fmt.Errorf("bad file name")
	}
	rec.Base = baseOf(rest)
	if rec.Base == "" {
		return UIDRecord{}, fmt.Errorf("bad file name")
	}
	return rec, nil
}

// dovecotIDs makes the ids Dovecot's POP3 server shows with format for
// the files present: a saved POP3 UIDL (extension P) wins, else the
// format; duplicates are renamed in uid order (Dovecot's order for them),
// and the POP3 order is that of the O extension, then uid.
func (l *UIDList) dovecotIDs(res *Result, format *Format, bases []string, xuidl XUIDLFunc) {
	r := &res.Report
	r.Problems = append(r.Problems, l.Problems...)
	if !l.Usable {
		// Dovecot throws such a file away and numbers everything anew.
		for _, b := range sortedCopy(bases) {
			r.Lost = append(r.Lost, Lost{Base: b, Reason: "dovecot-uidlist is damaged (see problems); Dovecot itself would have given new ids"})
		}
		return
	}
	res.UIDValidity = l.UIDValidity
	present := make(map[string]bool, len(bases))
	for _, b := range bases {
		present[b] = true
	}
	listed := make(map[string]bool, len(l.Records))
	cands := make([]candidate, 0, len(l.Records))
	orders := make([]uint64, 0, len(l.Records))
	for _, rec := range l.Records {
		listed[rec.Base] = true
		if !present[rec.Base] {
			continue // expunged since
		}
		cands = append(cands, dovecotCandidate(l, rec, format, xuidl))
		order := uint64(math.MaxUint32)
		if o, ok := rec.Extension('O'); ok {
			if n, err := strconv.ParseUint(o, 10, 64); err == nil {
				order = n
			}
		}
		orders = append(orders, order)
	}
	for _, b := range bases {
		if !listed[b] {
			r.Unlisted = append(r.Unlisted, b)
		}
	}
	slices.Sort(r.Unlisted)
	// The POP3 order: by O, where Dovecot keeps one (a maildrop it
	// migrated from another POP3 server), then by uid.
	pop3Order := make([]int, len(cands))
	for i := range pop3Order {
		pop3Order[i] = i
	}
	slices.SortStableFunc(pop3Order, func(a, b int) int { return cmp.Compare(orders[a], orders[b]) })
	finish(res, cands, pop3Order)
}

// dovecotCandidate is the id Dovecot shows for one record: a saved UIDL,
// else (with pop3_reuse_xuidl, xuidl set) an X-UIDL header, else the
// format's.
func dovecotCandidate(l *UIDList, rec UIDRecord, format *Format, xuidl XUIDLFunc) candidate {
	c := candidate{base: rec.Base}
	if p, ok := rec.Extension('P'); ok {
		// A saved UIDL is the id, whatever the format says; an empty
		// one stands for the base file name.
		c.id = p
		if p == "" {
			c.id = rec.Base
		}
		return c
	}
	if xuidl != nil {
		v, ok, err := xuidl(rec.Base)
		if err != nil {
			c.lost = fmt.Sprintf("cannot read its X-UIDL header: %v", err)
			return c
		}
		if ok {
			c.id = v
			return c
		}
	}
	if format.Uses('m') {
		// Dovecot's Maildir storage has no header MD5 (only its mbox
		// storage computes one), so a Dovecot serving this Maildir with
		// %m answered UIDL with an error unless the UIDL was saved.
		c.lost = "pop3_uidl_format uses %m, which Dovecot computes only for mbox, and no POP3 UIDL was saved for it (P)"
		return c
	}
	c.id = format.Expand(func(key byte) string {
		switch key {
		case 'v':
			return strconv.FormatUint(l.UIDValidity, 10)
		case 'u':
			return strconv.FormatUint(rec.UID, 10)
		case 'f':
			return rec.Base
		case 'g':
			// The message GUID Dovecot saved, else the base name.
			if g, _ := rec.Extension('G'); g != "" {
				return g
			}
			return rec.Base
		}
		return ""
	})
	return c
}

// clip shortens s for a report line.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

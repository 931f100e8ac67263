package legacy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SizeList is a parsed courierpop3dsizelist, the file in which Courier's
// POP3 server keeps each message's size and unique id:
//
//	/<version> <nextuid> <uidvalidity>
//	<file name> <size> <uid>:<uidvalidity>[:<utf8>]
//
// Version 3 has the ":<utf8>" field (1 for a message with 8-bit
// headers), version 2 does not. The file name is the one the message had
// when the list was written, flags included; a record is matched to a
// file by the part before ':'. The file name may hold spaces: the last
// two fields are taken from the end of the line.
type SizeList struct {
	Version     int
	NextUID     uint64
	UIDValidity uint64
	Records     []SizeRecord
	Problems    []string
	// Usable is false when the header is damaged: Courier then ignores
	// the whole file and numbers every message anew.
	Usable bool
}

// SizeRecord is one message of a size list.
type SizeRecord struct {
	Base        string
	Size        uint64
	UID         uint64
	UIDValidity uint64
	Line        int
}

// ParseSizeList parses a courierpop3dsizelist. Like Courier, it skips
// lines it cannot read; unlike Courier, it says which.
func ParseSizeList(data []byte) *SizeList {
	l := &SizeList{}
	header, rest, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(strings.TrimPrefix(header, "/"))
	if !strings.HasPrefix(header, "/") || len(fields) < 2 {
		l.problem(1, "not a courierpop3dsizelist header: %q", clip(header))
		return l
	}
	var err error
	if l.Version, err = strconv.Atoi(fields[0]); err != nil || (l.Version != 2 && l.Version != 3) {
		l.problem(1, "unsupported courierpop3dsizelist version %q", fields[0])
		return l
	}
	if l.NextUID, err = strconv.ParseUint(fields[1], 10, 64); err != nil {
		l.problem(1, "bad next uid %q", fields[1])
		return l
	}
	if len(fields) > 2 {
		l.UIDValidity, _ = strconv.ParseUint(fields[2], 10, 64)
	}
	l.Usable = true
	byBase := make(map[string]int)
	for lineNo := 2; rest != ""; lineNo++ {
		line, more, terminated := strings.Cut(rest, "\n")
		rest = more
		if !terminated {
			// Courier itself skips a last line without its end.
			l.problem(lineNo, "no line end: the file was cut short; record ignored: %q", clip(line))
			continue
		}
		rec, err := parseSizeRecord(line)
		if err != nil {
			l.problem(lineNo, "%v; record ignored: %q", err, clip(line))
			continue
		}
		rec.Line = lineNo
		if i, dup := byBase[rec.Base]; dup {
			l.problem(lineNo, "file %q is listed again (line %d); the first record counts", rec.Base, l.Records[i].Line)
			continue
		}
		byBase[rec.Base] = len(l.Records)
		l.Records = append(l.Records, rec)
	}
	return l
}

func (l *SizeList) problem(line int, format string, args ...any) {
	l.Problems = append(l.Problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
}

// parseSizeRecord reads "<name> <size> <uid>:<uidvalidity>[:<utf8>]".
func parseSizeRecord(line string) (SizeRecord, error) {
	last := strings.LastIndexByte(line, ' ')
	if last < 0 {
		return SizeRecord{}, fmt.Errorf("too few fields")
	}
	prev := strings.LastIndexByte(line[:last], ' ')
	if prev <= 0 {
		return SizeRecord{}, fmt.Errorf("too few fields")
	}
	name, sizeText, uidText := line[:prev], line[prev+1:last], line[last+1:]
	var rec SizeRecord
	var err error
	if rec.Size, err = strconv.ParseUint(sizeText, 10, 64); err != nil {
		return SizeRecord{}, fmt.Errorf("bad size %q", sizeText)
	}
	parts := strings.Split(uidText, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return SizeRecord{}, fmt.Errorf("bad uid field %q", uidText)
	}
	if rec.UID, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return SizeRecord{}, fmt.Errorf("bad uid field %q", uidText)
	}
	if rec.UIDValidity, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return SizeRecord{}, fmt.Errorf("bad uid field %q", uidText)
	}
	if len(parts) == 3 {
		if _, err := strconv.Atoi(parts[2]); err != nil {
			return SizeRecord{}, fmt.Errorf("bad uid field %q", uidText)
		}
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	rec.Base = baseOf(name)
	if rec.Base == "" || strings.ContainsAny(rec.Base, "\x00\r") {
		return SizeRecord{}, fmt.Errorf("bad file name")
	}
	return rec, nil
}

// courierIDs makes the ids Courier's POP3 server shows for the files
// present: "UID<uid>-<uidvalidity>" ("UID<uid>" without a validity), or
// for a record with uid 0 the escaped file name (courierNameID). The
// order is Courier's: by the number the file name starts with (the
// arrival time), then by name.
func (l *SizeList) courierIDs(res *Result, bases []string) {
	r := &res.Report
	r.Problems = append(r.Problems, l.Problems...)
	if !l.Usable {
		for _, b := range sortedCopy(bases) {
			r.Lost = append(r.Lost, Lost{Base: b, Reason: "courierpop3dsizelist is damaged (see problems); Courier itself would have given new ids"})
		}
		return
	}
	res.UIDValidity = l.UIDValidity
	present := make(map[string]bool, len(bases))
	for _, b := range bases {
		present[b] = true
	}
	var recs []SizeRecord
	listed := make(map[string]bool, len(l.Records))
	for _, rec := range l.Records {
		listed[rec.Base] = true
		if present[rec.Base] {
			recs = append(recs, rec)
		}
	}
	for _, b := range bases {
		if !listed[b] {
			r.Unlisted = append(r.Unlisted, b)
		}
	}
	slices.Sort(r.Unlisted)
	slices.SortFunc(recs, func(a, b SizeRecord) int { return courierCompare(a.Base, b.Base) })
	cands := make([]candidate, len(recs))
	order := make([]int, len(recs))
	for i, rec := range recs {
		order[i] = i
		switch {
		case rec.UID == 0:
			cands[i] = candidate{base: rec.Base, id: courierNameID(rec.Base)}
		case rec.UIDValidity == 0:
			cands[i] = candidate{base: rec.Base, id: "UID" + strconv.FormatUint(rec.UID, 10)}
		default:
			cands[i] = candidate{base: rec.Base, id: "UID" + strconv.FormatUint(rec.UID, 10) + "-" + strconv.FormatUint(rec.UIDValidity, 10)}
		}
	}
	finish(res, cands, order)
}

// courierNameIDs gives every file the id Courier showed before it kept a
// size list.
func courierNameIDs(res *Result, bases []string) {
	sorted := slices.Clone(bases)
	slices.SortFunc(sorted, courierCompare)
	cands := make([]candidate, len(sorted))
	order := make([]int, len(sorted))
	for i, b := range sorted {
		cands[i] = candidate{base: b, id: courierNameID(b)}
		order[i] = i
	}
	finish(res, cands, order)
}

// courierNameID is the file name up to ':', with every octet outside
// 0x21..0x7E and ', " and + written as "+XX" (upper-case hex), as Courier
// shows it.
func courierNameID(base string) string {
	var b strings.Builder
	for i := 0; i < len(base); i++ {
		c := base[i]
		if c < 0x21 || c > 0x7E || c == '\'' || c == '"' || c == '+' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// courierCompare orders file names as Courier's POP3 server does: by the
// decimal number they start with, then octet by octet.
func courierCompare(a, b string) int {
	na, nb := leadingNumber(a), leadingNumber(b)
	if na != nb {
		if na < nb {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// leadingNumber is the decimal number at the start of s (0 if none), as
// C's atol reads it, bounded.
func leadingNumber(s string) int64 {
	var n int64
	for i := 0; i < len(s) && isDigit(s[i]) && n < 1e17; i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// fileNameIDs gives every file its base name as id, as qmail-pop3d and
// similar servers did; the order is the same as Courier's (arrival time
// first).
func fileNameIDs(res *Result, bases []string) {
	sorted := slices.Clone(bases)
	slices.SortFunc(sorted, courierCompare)
	cands := make([]candidate, len(sorted))
	order := make([]int, len(sorted))
	for i, b := range sorted {
		cands[i] = candidate{base: b, id: b}
		order[i] = i
	}
	finish(res, cands, order)
}

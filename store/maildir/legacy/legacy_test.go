package legacy

import (
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// ids is the kept ids in POP3 order, as "base=id".
func ids(res *Result) []string {
	var out []string
	for _, m := range res.Messages {
		out = append(out, m.Base+"="+m.ID)
	}
	return out
}

func read(t *testing.T, files map[string]string, cfg Config, bases ...string) *Result {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	res, err := Read(fsys, cfg, bases, func(base string) (string, bool, error) {
		// Messages whose name says "xuidl" have the header "X-UIDL: x-<base>".
		if strings.Contains(base, "xuidl") {
			return "x-" + base, true, nil
		}
		return "", false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const uidlist = `3 V1700000000 N9 G1f2e3d4c5b6a79881f2e3d4c5b6a7988
1 W120 S118 :1700000001.M1P1.host,S=118,W=120:2,S
2 W230 :1700000002.M1P1.host,S=228,W=230
4 G0123456789abcdef0123456789abcdef :1700000004.M1P1.host
6 Psaved-uidl-6 :1700000006.M1P1.host
7 P :1700000007.M1P1.host
8 Xfuture-extension :1700000008.M1P1.host
`

var uidlistFiles = []string{
	"1700000001.M1P1.host,S=118,W=120", "1700000002.M1P1.host,S=228,W=230", "1700000004.M1P1.host",
	"1700000006.M1P1.host", "1700000007.M1P1.host", "1700000008.M1P1.host",
	"1700000009.M1P1.host", // delivered after Dovecot last looked
}

func TestDovecotFormats(t *testing.T) {
	for _, c := range []struct {
		format string
		want   []string // ids of uids 1, 2, 4, 6, 7, 8
	}{
		{"", []string{"000000016553f100", "000000026553f100", "000000046553f100",
			"saved-uidl-6", "1700000007.M1P1.host", "000000086553f100"}},
		{"%u", []string{"1", "2", "4", "saved-uidl-6", "1700000007.M1P1.host", "8"}},
		{"%v.%u", []string{"1700000000.1", "1700000000.2", "1700000000.4", "saved-uidl-6", "1700000007.M1P1.host", "1700000000.8"}},
		{"%f", []string{"1700000001.M1P1.host,S=118,W=120", "1700000002.M1P1.host,S=228,W=230", "1700000004.M1P1.host",
			"saved-uidl-6", "1700000007.M1P1.host", "1700000008.M1P1.host"}},
		{"%g", []string{"1700000001.M1P1.host,S=118,W=120", "1700000002.M1P1.host,S=228,W=230", "0123456789abcdef0123456789abcdef",
			"saved-uidl-6", "1700000007.M1P1.host", "1700000008.M1P1.host"}},
	} {
		res := read(t, map[string]string{DovecotUIDList: uidlist}, Config{Source: Dovecot, DovecotFormat: c.format}, uidlistFiles...)
		var got []string
		for _, m := range res.Messages {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("format %q: ids %q, want %q", c.format, got, c.want)
		}
		r := res.Report
		if r.Kept != 6 || len(r.Lost) != 0 || !slices.Equal(r.Unlisted, []string{"1700000009.M1P1.host"}) || !r.Found || res.UIDValidity != 1700000000 {
			t.Errorf("format %q: report %+v", c.format, r)
		}
		if len(r.Problems) != 0 {
			t.Errorf("format %q: problems %q", c.format, r.Problems)
		}
	}
}

// %m is an mbox-only variable in Dovecot: without a saved UIDL, no id.
func TestDovecotMD5(t *testing.T) {
	res := read(t, map[string]string{DovecotUIDList: uidlist}, Config{Source: Dovecot, DovecotFormat: "%m"}, uidlistFiles...)
	if got := ids(res); !slices.Equal(got, []string{"1700000006.M1P1.host=saved-uidl-6", "1700000007.M1P1.host=1700000007.M1P1.host"}) {
		t.Errorf("ids %q", got)
	}
	if len(res.Report.Lost) != 4 || !strings.Contains(res.Report.Lost[0].Reason, "%m") {
		t.Errorf("lost %+v", res.Report.Lost)
	}
}

// Dovecot's POP3 order: by the O extension, the messages without one
// after, each group by uid.
func TestDovecotPOP3Order(t *testing.T) {
	list := "3 V5 N10\n1 O3 :a\n2 :b\n3 O1 :c\n4 O2 :d\n5 :e\n6 Onot-a-number :f\n"
	res := read(t, map[string]string{DovecotUIDList: list}, Config{Source: Dovecot, DovecotFormat: "%u"}, "a", "b", "c", "d", "e", "f")
	want := []string{"c=3", "d=4", "a=1", "b=2", "e=5", "f=6"}
	if got := ids(res); !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

// Duplicate ids are renamed as pop3_uidl_duplicates=rename does, in uid
// order, and reported.
func TestDuplicatesRenamed(t *testing.T) {
	list := "3 V5 N10\n1 Pdup :a\n2 Pdup :b\n3 Pdup-2 :c\n4 Pdup :d\n5 Ox O1 Pdup :e\n"
	res := read(t, map[string]string{DovecotUIDList: list}, Config{Source: Dovecot}, "a", "b", "c", "d", "e")
	// e is first in POP3 order but fifth in uid order.
	want := []string{"e=dup-4", "a=dup", "b=dup-2", "c=dup-2-2", "d=dup-3"}
	if got := ids(res); !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	wantRenamed := []Renamed{{"b", "dup", "dup-2"}, {"c", "dup-2", "dup-2-2"}, {"d", "dup", "dup-3"}, {"e", "dup", "dup-4"}}
	if !reflect.DeepEqual(res.Report.Renamed, wantRenamed) || res.Report.Kept != 5 {
		t.Errorf("renamed %+v", res.Report.Renamed)
	}
}

// Damage costs the damaged records their ids, never the others', and is
// reported with line numbers.
func TestDovecotDamage(t *testing.T) {
	for _, c := range []struct {
		name, list string
		want       []string
		problems   []string // one substring per problem, in order
		lost       int
	}{
		{"truncated last line, name whole",
			"3 V5 N10\n1 :a\n2 :b", []string{"a=1", "b=2"}, []string{"line 3: no line end"}, 0},
		{"truncated last line, name cut",
			"3 V5 N10\n1 :a\n2 :b-long-na", []string{"a=1"}, []string{"line 3: no line end"}, 0},
		{"truncated inside the extensions",
			"3 V5 N10\n1 :a\n2 W12", []string{"a=1"}, []string{"line 3: no line end", "line 3: no file name"}, 0},
		{"garbage line",
			"3 V5 N10\n1 :a\nthis is not a record\n2 :b\n", []string{"a=1", "b=2"}, []string{"line 3: no uid"}, 0},
		{"uids out of order",
			"3 V5 N10\n2 :a\n1 :b\n3 :c\n", []string{"a=2", "c=3"}, []string{"line 3: uid 1 not above"}, 0},
		{"file listed twice",
			"3 V5 N10\n1 :a\n2 :a:2,S\n", []string{"a=2"}, []string{"line 3: file \"a\" is listed again"}, 0},
		{"bad extension key",
			"3 V5 N10\n1 wlower :a\n", []string{"a=1"}, []string{"unknown extension field"}, 0},
		{"slash in the name",
			"3 V5 N10\n1 :../a\n", nil, []string{"line 2: bad file name"}, 0},
		{"damaged header", "3 X\n1 :a\n", nil, []string{"line 1: header without"}, 1},
		{"unknown version", "2 V5 N10\n1 :a\n", nil, []string{"unsupported"}, 1},
		{"not a uidlist", "hello\n", nil, []string{"line 1: not a dovecot-uidlist header"}, 1},
		{"empty", "", nil, []string{"empty file"}, 1},
		{"version 1", "1 5 10\n1 a\n2 b:2,S\n", []string{"a=1", "b=2"}, nil, 0},
	} {
		res := read(t, map[string]string{DovecotUIDList: c.list}, Config{Source: Dovecot, DovecotFormat: "%u"}, "a", "b", "c")
		if got := ids(res); !slices.Equal(got, c.want) {
			t.Errorf("%s: ids %q, want %q", c.name, got, c.want)
		}
		if len(res.Report.Problems) != len(c.problems) {
			t.Errorf("%s: problems %q, want %d", c.name, res.Report.Problems, len(c.problems))
			continue
		}
		for i, p := range c.problems {
			if !strings.Contains(res.Report.Problems[i], p) {
				t.Errorf("%s: problem %q, want it to say %q", c.name, res.Report.Problems[i], p)
			}
		}
		if c.lost > 0 && len(res.Report.Lost) != 3 {
			t.Errorf("%s: lost %+v, want every message", c.name, res.Report.Lost)
		}
	}
}

// An id Dovecot sent although RFC 1939 forbids it cannot be kept.
func TestInvalidIDLost(t *testing.T) {
	res := read(t, map[string]string{DovecotUIDList: "3 V5 N10\n1 :name with spaces\n2 :ok\n"},
		Config{Source: Dovecot, DovecotFormat: "%f"}, "name with spaces", "ok")
	if got := ids(res); !slices.Equal(got, []string{"ok=ok"}) {
		t.Errorf("ids %q", got)
	}
	if len(res.Report.Lost) != 1 || res.Report.Lost[0].ID != "name with spaces" || !strings.Contains(res.Report.Lost[0].Reason, "RFC 1939") {
		t.Errorf("lost %+v", res.Report.Lost)
	}
}

func TestMissingStateFile(t *testing.T) {
	for _, src := range []Source{Dovecot} {
		res := read(t, nil, Config{Source: src}, "b", "a")
		if res.Report.Found || len(res.Messages) != 0 || !slices.Equal(res.Report.Unlisted, []string{"a", "b"}) {
			t.Errorf("%s: %+v", src, res)
		}
	}
}

const sizelist = `/3 7 1600000000
1600000005.M2P3.host:2,S 1204 5:1600000000:0
1600000001.M1P3.host 300 1:1600000000:1
name with spaces:2, 10 2:1600000000:0
1600000003.M9P3.host 99 3:0:0
1600000004.M9P3.host 99 0:0:0
`

func TestCourierSizeList(t *testing.T) {
	res := read(t, map[string]string{CourierPOP3SizeList: sizelist}, Config{Source: Courier},
		"1600000001.M1P3.host", "1600000005.M2P3.host", "name with spaces", "1600000003.M9P3.host",
		"1600000004.M9P3.host", "1600000009.new")
	// Courier's order: the number the name starts with, then the name.
	want := []string{"name with spaces=UID2-1600000000", "1600000001.M1P3.host=UID1-1600000000",
		"1600000003.M9P3.host=UID3", "1600000004.M9P3.host=1600000004.M9P3.host", "1600000005.M2P3.host=UID5-1600000000"}
	if got := ids(res); !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if r := res.Report; r.Kept != 5 || !slices.Equal(r.Unlisted, []string{"1600000009.new"}) || len(r.Problems) != 0 {
		t.Errorf("report %+v", r)
	}
	// Version 2: no utf8 field.
	res = read(t, map[string]string{CourierPOP3SizeList: "/2 3 77\nx 5 2:77\n"}, Config{Source: Courier}, "x")
	if got := ids(res); !slices.Equal(got, []string{"x=UID2-77"}) {
		t.Errorf("version 2: %q", got)
	}
}

func TestCourierDamage(t *testing.T) {
	for _, c := range []struct {
		name, list string
		want       []string
		problems   int
		allLost    bool
	}{
		{"truncated", "/3 7 9\na 1 1:9:0\nb 1 2:9", []string{"a=UID1-9"}, 1, false},
		{"bad uid", "/3 7 9\na 1 x:9:0\nb 1 2:9:0\n", []string{"b=UID2-9"}, 1, false},
		{"too few fields", "/3 7 9\na\nb 1 2:9:0\n", []string{"b=UID2-9"}, 1, false},
		{"twice", "/3 7 9\na 1 1:9:0\na:2,S 1 2:9:0\n", []string{"a=UID1-9"}, 1, false},
		{"bad header", "3 7 9\na 1 1:9:0\n", nil, 1, true},
		{"version 4", "/4 7 9\na 1 1:9:0\n", nil, 1, true},
	} {
		res := read(t, map[string]string{CourierPOP3SizeList: c.list}, Config{Source: Courier}, "a", "b")
		if got := ids(res); !slices.Equal(got, c.want) {
			t.Errorf("%s: ids %q, want %q", c.name, got, c.want)
		}
		if len(res.Report.Problems) != c.problems {
			t.Errorf("%s: problems %q", c.name, res.Report.Problems)
		}
		if c.allLost && len(res.Report.Lost) != 2 {
			t.Errorf("%s: lost %+v", c.name, res.Report.Lost)
		}
	}
}

// Without a size list, Courier showed the escaped file name; qmail-pop3d
// the file name as it is.
func TestFileNameIDs(t *testing.T) {
	bases := []string{"1600000002.x+y", "1600000001.a'b\"c d"}
	res := read(t, nil, Config{Source: Courier}, bases...)
	if got := ids(res); !slices.Equal(got, []string{"1600000001.a'b\"c d=1600000001.a+27b+22c+20d", "1600000002.x+y=1600000002.x+2By"}) {
		t.Errorf("courier names: %q", got)
	}
	res = read(t, nil, Config{Source: FileName}, bases...)
	if got := ids(res); !slices.Equal(got, []string{"1600000002.x+y=1600000002.x+y"}) || len(res.Report.Lost) != 1 {
		t.Errorf("file names: %q, lost %+v", got, res.Report.Lost)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Source: Dovecot}, true},
		{Config{Source: Dovecot, DovecotFormat: "%v.%u"}, true},
		{Config{Source: Dovecot, DovecotFormat: "%x"}, false},
		{Config{Source: Courier}, true},
		{Config{Source: FileName}, true},
		{Config{Source: "cyrus"}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v", c.cfg, err)
		}
	}
}

// FuzzParseUIDList: never panics; every record has a usable base name and
// ascending uids; the ids Read makes are unique.
func FuzzParseUIDList(f *testing.F) {
	f.Add([]byte(uidlist))
	f.Add([]byte("1 5 10\n1 a\n2 b:2,S\n"))
	f.Add([]byte("3 V5 N10\n1 Pdup :a\n2 Pdup :b\n3 Pdup-2 :c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := ParseUIDList(data)
		var last uint64
		bases := make([]string, 0, len(l.Records))
		for _, r := range l.Records {
			if r.UID <= last || r.Base == "" || strings.ContainsAny(r.Base, ":/\n") {
				t.Fatalf("bad record %+v", r)
			}
			last = r.UID
			bases = append(bases, r.Base)
		}
		res := read(t, map[string]string{DovecotUIDList: string(data)}, Config{Source: Dovecot}, bases...)
		seen := make(map[string]bool)
		for _, m := range res.Messages {
			if seen[m.ID] || !validID(m.ID) {
				t.Fatalf("id %q repeated or invalid", m.ID)
			}
			seen[m.ID] = true
		}
	})
}

// FuzzParseSizeList: never panics; records have usable base names; the
// ids Read makes are unique and valid.
func FuzzParseSizeList(f *testing.F) {
	f.Add([]byte(sizelist))
	f.Add([]byte("/2 3 77\nx 5 2:77\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := ParseSizeList(data)
		bases := make([]string, 0, len(l.Records))
		for _, r := range l.Records {
			if r.Base == "" || strings.ContainsAny(r.Base, ":/\n") {
				t.Fatalf("bad record %+v", r)
			}
			bases = append(bases, r.Base)
		}
		res := read(t, map[string]string{CourierPOP3SizeList: string(data)}, Config{Source: Courier}, bases...)
		seen := make(map[string]bool)
		for _, m := range res.Messages {
			if seen[m.ID] || !validID(m.ID) {
				t.Fatalf("id %q repeated or invalid", m.ID)
			}
			seen[m.ID] = true
		}
	})
}

// pop3_reuse_xuidl: an X-UIDL header wins over the format, a saved UIDL
// over both.
func TestDovecotReuseXUIDL(t *testing.T) {
	list := "3 V5 N10\n1 :a\n2 :b-xuidl\n3 Psaved :c-xuidl\n"
	for _, c := range []struct {
		reuse bool
		want  []string
	}{
		{false, []string{"a=1", "b-xuidl=2", "c-xuidl=saved"}},
		{true, []string{"a=1", "b-xuidl=x-b-xuidl", "c-xuidl=saved"}},
	} {
		res := read(t, map[string]string{DovecotUIDList: list}, Config{Source: Dovecot, DovecotFormat: "%u", DovecotReuseXUIDL: c.reuse},
			"a", "b-xuidl", "c-xuidl")
		if got := ids(res); !slices.Equal(got, c.want) {
			t.Errorf("reuse %v: ids %q, want %q", c.reuse, got, c.want)
		}
	}
	if _, err := Read(fstest.MapFS{DovecotUIDList: {Data: []byte(list)}}, Config{Source: Dovecot, DovecotReuseXUIDL: true}, []string{"a"}, nil); err == nil {
		t.Error("pop3_reuse_xuidl without headers accepted")
	}
}

// A state file that is not a regular file (a FIFO would block the read)
// is an error, not an empty list.
func TestStateFileNotRegular(t *testing.T) {
	fsys := fstest.MapFS{DovecotUIDList: {Mode: fs.ModeNamedPipe}}
	if _, err := Read(fsys, Config{Source: Dovecot}, []string{"a"}, nil); err == nil {
		t.Error("a FIFO was read as dovecot-uidlist")
	}
}

package maildir

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
)

const sampleIndex = `postoffice-maildir-index 2
uidvalidity 1700000000
nextuid 12
3 1260 1700000100 0 - 1700000100.M1P2Q3.host,S=1234,W=1260
7 5 1700000200 1700000300 - name with spaces
9 5 1700000200 0 =UID9-kept:from/another~server =odd name
10 5 1700000200 0 =000000116553F100 imported
`

// sampleIndexV1 is a version 1 index, as earlier releases wrote it.
const sampleIndexV1 = `postoffice-maildir-index 1
uidvalidity 1700000000
nextuid 8
3 1260 1700000100 0 1700000100.M1P2Q3.host,S=1234,W=1260
7 5 1700000200 1700000300 name with spaces
`

func TestIndexRoundTrip(t *testing.T) {
	ix, err := parseIndex(sampleIndex)
	if err != nil {
		t.Fatal(err)
	}
	// nextuid 12: uid 11 (0x11 is 17, so 18) is taken by an explicit id of
	// the generated form; nextuid is raised past it.
	if ix.uidValidity != 1700000000 || ix.nextUID != 18 || len(ix.entries) != 4 {
		t.Fatalf("parsed %+v", ix)
	}
	e := ix.entries["name with spaces"]
	if e == nil || *e != (entry{uid: 7, vsize: 5, received: 1700000200, firstRetrieved: 1700000300, base: "name with spaces"}) {
		t.Errorf("entry = %+v", e)
	}
	if e := ix.entries["=odd name"]; e == nil || e.id != "UID9-kept:from/another~server" || ix.idOf(e) != e.id {
		t.Errorf("explicit entry = %+v", e)
	}
	if got, want := ix.idOf(ix.entries["name with spaces"]), "000000076553F100"; got != want {
		t.Errorf("generated id = %q, want %q", got, want)
	}
	want := strings.Replace(sampleIndex, "nextuid 12", "nextuid 18", 1)
	if got := string(ix.marshal()); got != want {
		t.Errorf("marshal:\n%s\nwant:\n%s", got, want)
	}
}

// A version 1 index reads as the same records, every id generated, and
// is written back as version 2.
func TestIndexVersion1(t *testing.T) {
	ix, err := parseIndex(sampleIndexV1)
	if err != nil {
		t.Fatal(err)
	}
	if ix.nextUID != 8 || len(ix.entries) != 2 || ix.entries["name with spaces"].uid != 7 {
		t.Fatalf("parsed %+v", ix)
	}
	for _, e := range ix.entries {
		if e.id != "" {
			t.Errorf("version 1 record %+v has an explicit id", e)
		}
	}
	want := `postoffice-maildir-index 2
uidvalidity 1700000000
nextuid 8
3 1260 1700000100 0 - 1700000100.M1P2Q3.host,S=1234,W=1260
7 5 1700000200 1700000300 - name with spaces
`
	if got := string(ix.marshal()); got != want {
		t.Errorf("marshal:\n%s\nwant:\n%s", got, want)
	}
}

// An explicit id that equals the record's own generated id is the
// generated id: one spelling, so that the round trip is exact.
func TestIndexExplicitSameAsGenerated(t *testing.T) {
	ix, err := parseIndex("postoffice-maildir-index 2\nuidvalidity 1\nnextuid 5\n4 1 1 0 =0000000400000001 a\n")
	if err != nil {
		t.Fatal(err)
	}
	if e := ix.entries["a"]; e.id != "" || ix.idOf(e) != "0000000400000001" {
		t.Errorf("entry = %+v", e)
	}
}

func TestGeneratedUID(t *testing.T) {
	for _, c := range []struct {
		id       string
		validity uint64
		uid      uint64
		ok       bool
	}{
		{"0000000100000002", 2, 1, true},
		{"1234567890ABCDEF", 0x90ABCDEF, 0x12345678, true},
		{"1000000006553F100", 1700000000, 0x1_0000_0000, true},
		{"0000000100000002", 3, 0, false},
		{"000000010000002", 2, 0, false},  // too short
		{"0000000a00000002", 2, 0, false}, // lower case: not uniqueID's spelling
		{"0000000000000002", 2, 0, false}, // uid 0
		{"000000001000000002", 2, 0, false},
		{"x0000000100000002", 2, 0, false},
		{"", 2, 0, false},
	} {
		uid, ok := generatedUID(c.id, c.validity)
		if uid != c.uid || ok != c.ok {
			t.Errorf("generatedUID(%q, %d) = %d, %v; want %d, %v", c.id, c.validity, uid, ok, c.uid, c.ok)
		}
	}
}

func TestIndexErrors(t *testing.T) {
	header := "postoffice-maildir-index 1\nuidvalidity 1\nnextuid 5\n"
	header2 := "postoffice-maildir-index 2\nuidvalidity 1\nnextuid 5\n"
	for _, bad := range []string{
		"",
		"something else\n",
		"postoffice-maildir-index 3\nuidvalidity 1\nnextuid 1\n",
		"postoffice-maildir-index 02\nuidvalidity 1\nnextuid 1\n",
		header2 + "1 2 3 4 name\n",                                  // no id field
		header2 + "1 2 3 4 -name\n",                                 // no space after it
		header2 + "1 2 3 4 = name\n",                                // empty explicit id
		header2 + "1 2 3 4 x name\n",                                // neither - nor =
		header2 + "1 2 3 4 =a\x7fb name\n",                          // not 0x21..0x7E
		header2 + "1 2 3 4 =" + strings.Repeat("x", 71) + " name\n", // over 70
		header2 + "1 2 3 4 =same a\n2 2 3 4 =same b\n",              // duplicate explicit ids
		header2 + "1 2 3 4 - a\n2 2 3 4 =0000000100000001 b\n",      // explicit = another's generated id
		header2 + "1 2 3 4 - a:b\n",
		"postoffice-maildir-index 1\nnextuid 1\nuidvalidity 1\n",
		"postoffice-maildir-index 1\nuidvalidity 1\nnextuid 0\n",
		"postoffice-maildir-index 1\nuidvalidity -1\nnextuid 1\n",
		header + "1 2 3 4 name", // truncated: no final LF
		header + "1 2 3 name\n",
		header + "0 2 3 4 name\n",
		header + "1 2 3 4 \n",
		header + "01 2 3 4 name\n",
		header + "1 +2 3 4 name\n",
		header + "1 2 3 4 a:b\n",
		header + "1 2 3 4 a/b\n",
		header + "1 2 3 4 name\n1 2 3 4 other\n",
		header + "2 2 3 4 name\n1 2 3 4 other\n",
		header + "1 2 3 4 name\n2 2 3 4 name\n",
		header + "1 2 3 4 name\n\n",
		header + "1 99999999999999999999 3 4 name\n",
	} {
		if ix, err := parseIndex(bad); err == nil {
			t.Errorf("parseIndex(%q) = %+v, want an error", bad, ix)
		}
	}
	// A record above nextuid raises it rather than risking reuse.
	ix, err := parseIndex(header + "9 1 1 0 name\n")
	if err != nil || ix.nextUID != 10 {
		t.Errorf("nextuid = %d, %v; want 10", ix.nextUID, err)
	}
}

func TestUniqueIDFormat(t *testing.T) {
	for _, c := range []struct{ uid, validity uint64 }{
		{1, 1700000000}, {0xFFFFFFFF, 0}, {0x1_0000_0000, 5}, {42, 0xFFFF_FFFF_FFFF},
	} {
		ix := newIndex(c.validity)
		if got, want := ix.uniqueID(c.uid), fmt.Sprintf("%08X%08X", c.uid, c.validity); got != want {
			t.Errorf("uniqueID(%d, %d) = %q, want %q", c.uid, c.validity, got, want)
		}
	}
}

func TestWriteIndexAtomic(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ix, _ := parseIndex(sampleIndex)
	for range 2 { // create, then replace
		if err := writeIndex(root, ix); err != nil {
			t.Fatal(err)
		}
	}
	got, err := loadIndex(root)
	if err != nil || !reflect.DeepEqual(got, ix) {
		t.Errorf("loadIndex = %+v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the index", len(entries))
	}
}

// FuzzParseIndex: parsing never panics, and whatever parses marshals to a
// file that parses to the same index.
func FuzzParseIndex(f *testing.F) {
	f.Add(sampleIndex)
	f.Add("postoffice-maildir-index 1\nuidvalidity 1\nnextuid 1\n")
	f.Add("postoffice-maildir-index 1\nuidvalidity 1\nnextuid 2\n1 2 3 4 a b\n")
	f.Add(sampleIndexV1)
	f.Add("postoffice-maildir-index 2\nuidvalidity 1\nnextuid 2\n1 2 3 4 =x a b\n2 1 1 0 =0000000900000001 c\n")
	f.Fuzz(func(t *testing.T, data string) {
		ix, err := parseIndex(data)
		if err != nil {
			return
		}
		out := ix.marshal()
		again, err := parseIndex(string(out))
		if err != nil {
			t.Fatalf("re-parse of\n%s\nfailed: %v", out, err)
		}
		if !reflect.DeepEqual(ix, again) {
			t.Fatalf("round trip changed the index:\n%+v\n%+v", ix, again)
		}
		if !strings.HasPrefix(string(out), indexMagic) {
			t.Fatal("marshal lost the header")
		}
		// Unique ids are unique, and no uid from nextuid on would
		// repeat one.
		ids := make(map[string]bool)
		for _, e := range ix.entries {
			id := ix.idOf(e)
			if ids[id] || !store.ValidUniqueID(id) {
				t.Fatalf("unique id %q repeated or invalid", id)
			}
			ids[id] = true
		}
		for uid := ix.nextUID; uid < ix.nextUID+3; uid++ {
			if ids[ix.uniqueID(uid)] {
				t.Fatalf("next uid %d would repeat id %q", uid, ix.uniqueID(uid))
			}
		}
	})
}

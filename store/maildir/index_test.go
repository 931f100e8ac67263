package maildir

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

const sampleIndex = `postoffice-maildir-index 1
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
	if ix.uidValidity != 1700000000 || ix.nextUID != 8 || len(ix.entries) != 2 {
		t.Fatalf("parsed %+v", ix)
	}
	e := ix.entries["name with spaces"]
	if e == nil || *e != (entry{uid: 7, vsize: 5, received: 1700000200, firstRetrieved: 1700000300, base: "name with spaces"}) {
		t.Errorf("entry = %+v", e)
	}
	if got := string(ix.marshal()); got != sampleIndex {
		t.Errorf("marshal:\n%s\nwant:\n%s", got, sampleIndex)
	}
}

func TestIndexErrors(t *testing.T) {
	header := "postoffice-maildir-index 1\nuidvalidity 1\nnextuid 5\n"
	for _, bad := range []string{
		"",
		"something else\n",
		"postoffice-maildir-index 2\nuidvalidity 1\nnextuid 1\n",
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
	})
}

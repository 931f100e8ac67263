package maildir

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// uidsOf is the unique ids a login sees, in order.
func uidsOf(t *testing.T, s *Store, acct store.Account) []string {
	t.Helper()
	md, err := s.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var out []string
	for _, m := range md.Messages() {
		out = append(out, m.UID)
	}
	return out
}

// An import keeps any valid unique id: those of the generated form for
// their number as generated records, the others as explicit ids; a later
// delivery continues after the source's counter and after every uid an
// explicit id would repeat.
func TestImportForeignIDs(t *testing.T) {
	for _, cache := range []int{0, -1} { // with and without the snapshot cache
		s, base := newTestStore(t, Config{SnapshotCacheMessages: cache})
		const validity = 0x10
		im, err := s.BeginImport(t.Context(), alice, validity, 3)
		if err != nil {
			t.Fatal(err)
		}
		received := time.Unix(1_600_000_000, 0)
		msgs := []store.Migrated{
			{Seq: 1, Info: store.MessageInfo{UID: "0000000100000010", Received: received}},                 // generated form
			{Seq: 2, Info: store.MessageInfo{UID: "UID2-from-dovecot", Received: received.Add(time.Hour)}}, // foreign
			{Seq: 4, Info: store.MessageInfo{UID: "0000000700000010", Received: received}},                 // generated form of uid 7
		}
		for _, m := range msgs {
			if err := im.Check(m); err != nil {
				t.Fatalf("Check(%+v): %v", m, err)
			}
			if err := im.Add(t.Context(), m, strings.NewReader("Subject: x\n\nbody\n")); err != nil {
				t.Fatalf("Add(%+v): %v", m, err)
			}
		}
		// Taken ids, within what was imported or against a generated id.
		for _, m := range []store.Migrated{
			{Seq: 5, Info: store.MessageInfo{UID: "UID2-from-dovecot"}},
			{Seq: 5, Info: store.MessageInfo{UID: "0000000100000010"}},
			{Seq: 7, Info: store.MessageInfo{UID: "0000000700000010"}},
			{Seq: 5, Info: store.MessageInfo{UID: "has space"}},
			{Seq: 5, Info: store.MessageInfo{UID: ""}},
			{Seq: 5, Info: store.MessageInfo{UID: strings.Repeat("x", 71)}},
		} {
			if err := im.Check(m); err == nil {
				t.Errorf("Check(%q as %d) accepted", m.Info.UID, m.Seq)
			}
			if err := im.Add(t.Context(), m, strings.NewReader("x\n")); err == nil {
				t.Errorf("Add(%q as %d) accepted", m.Info.UID, m.Seq)
			}
		}
		if err := im.Close(); err != nil {
			t.Fatal(err)
		}
		want := []string{"0000000100000010", "UID2-from-dovecot", "0000000700000010"}
		if got := uidsOf(t, s, alice); !slices.Equal(got, want) {
			t.Fatalf("ids after import = %q, want %q", got, want)
		}
		// uid 7's id is taken by message 4: the next delivery is uid 8.
		if _, err := s.Deliver(t.Context(), alice, strings.NewReader("Subject: new\n\n")); err != nil {
			t.Fatal(err)
		}
		want = append(want, "0000000800000010")
		if got := uidsOf(t, s, alice); !slices.Equal(got, want) {
			t.Fatalf("ids after delivery = %q, want %q", got, want)
		}
		data, err := os.ReadFile(filepath.Join(base, "alice/Maildir", indexFile))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), " =UID2-from-dovecot ") || !strings.Contains(string(data), " =0000000700000010 ") {
			t.Errorf("index does not keep the explicit ids:\n%s", data)
		}
		// Export gives them back with their numbers.
		ex, err := s.Export(t.Context(), alice)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ex.Messages {
			got = append(got, m.Info.UID)
		}
		if !slices.Equal(got, want) || ex.Messages[1].Seq != 2 || ex.Messages[2].Seq != 4 || !ex.Messages[1].Info.Received.Equal(received.Add(time.Hour)) {
			t.Errorf("export = %+v", ex.Messages)
		}
		ex.Close()
	}
}

// An import that was interrupted resumes: what is there is recognised by
// number, and its ids still count as taken.
func TestImportResumeKeepsIDsTaken(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	im, err := s.BeginImport(t.Context(), alice, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Add(t.Context(), store.Migrated{Seq: 1, Info: store.MessageInfo{UID: "kept-1"}}, strings.NewReader("a\n")); err != nil {
		t.Fatal(err)
	}
	im.Close()
	im, err = s.BeginImport(t.Context(), alice, 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if !im.Has(1) || im.Has(2) {
		t.Errorf("Has(1), Has(2) = %v, %v", im.Has(1), im.Has(2))
	}
	if err := im.Check(store.Migrated{Seq: 2, Info: store.MessageInfo{UID: "kept-1"}}); err == nil {
		t.Error("an id taken before the interruption was accepted again")
	}
	if err := im.Check(store.Migrated{Seq: 1, Info: store.MessageInfo{UID: "kept-1"}}); err != nil {
		t.Errorf("the message's own id: %v", err)
	}
}

// A version 1 index keeps working: deliveries append version 1 records,
// and the first rewrite makes it version 2 with the same ids.
func TestIndexVersion1Upgrade(t *testing.T) {
	s, base := newTestStore(t, Config{SnapshotCacheMessages: -1})
	dir := filepath.Join(base, "alice/Maildir")
	put(t, dir, "cur/1700000100.M1P2Q3.host,S=6,W=7:2,S", "a\nb\nc\n", time.Time{})
	put(t, dir, "new/1700000200.M1P2Q4.host,S=2,W=3", "x\n", time.Time{})
	put(t, dir, indexFile, "postoffice-maildir-index 1\nuidvalidity 1700000000\nnextuid 8\n"+
		"3 7 1700000100 0 1700000100.M1P2Q3.host,S=6,W=7\n"+
		"7 3 1700000200 0 1700000200.M1P2Q4.host,S=2,W=3\n", time.Time{})
	want := []string{"000000036553F100", "000000076553F100"}
	if got := uidsOf(t, s, alice); !slices.Equal(got, want) {
		t.Fatalf("ids = %q, want %q", got, want)
	}
	if _, err := s.Deliver(t.Context(), alice, strings.NewReader("new\n")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, indexFile))
	if !strings.HasPrefix(string(data), "postoffice-maildir-index 1\n") || strings.Contains(string(data), " - ") {
		t.Fatalf("a delivery changed the version 1 format:\n%s", data)
	}
	want = append(want, "000000086553F100")
	md := open(t, s, alice)
	if got := md.Messages(); len(got) != 3 || got[2].UID != want[2] {
		t.Fatalf("after delivery: %+v", got)
	}
	if err := md.Commit(t.Context(), []int{0}, []int{1}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	data, _ = os.ReadFile(filepath.Join(dir, indexFile))
	if !strings.HasPrefix(string(data), "postoffice-maildir-index 2\n") {
		t.Fatalf("the rewrite kept version 1:\n%s", data)
	}
	if got := uidsOf(t, s, alice); !slices.Equal(got, want[1:]) {
		t.Errorf("ids after the upgrade = %q, want %q", got, want[1:])
	}
}

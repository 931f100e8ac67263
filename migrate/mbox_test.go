package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/mbox"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

func TestAssignIDs(t *testing.T) {
	long := strings.Repeat("x", 70)
	for _, c := range []struct {
		name     string
		own      []string
		want     []string
		kept     int
		new      int
		renamed  []string // "message: from -> to"
		notKept  []string
		whyMatch string
	}{
		{
			name: "all kept",
			own:  []string{"a", "b", "c"},
			want: []string{"a", "b", "c"},
			kept: 3,
		},
		{
			name: "none: generated ids",
			own:  []string{"", ""},
			want: []string{"000000010000ABCD", "000000020000ABCD"},
			new:  2,
		},
		{
			name:    "duplicates renamed as Dovecot does, avoiding ids others hold",
			own:     []string{"a", "a", "a-2", "a"},
			want:    []string{"a", "a-3", "a-2", "a-4"},
			kept:    2,
			renamed: []string{"2: a -> a-3", "4: a -> a-4"},
		},
		{
			name:     "invalid ids are not kept, and say why",
			own:      []string{"has space", "", "ok"},
			want:     []string{"000000010000ABCD", "000000020000ABCD", "ok"},
			kept:     1,
			new:      1,
			notKept:  []string{"1: has space -> 000000010000ABCD"},
			whyMatch: "octet 0x20 at position 4",
		},
		{
			name:     "a duplicate too long for a suffix",
			own:      []string{long, long},
			want:     []string{long, "000000020000ABCD"},
			kept:     1,
			notKept:  []string{"2: " + long + " -> 000000020000ABCD"},
			whyMatch: "too long to be made unique",
		},
		{
			name:     "too long",
			own:      []string{long + "y"},
			want:     []string{"000000010000ABCD"},
			notKept:  []string{"1: " + long + "y -> 000000010000ABCD"},
			whyMatch: "71 characters",
		},
		{
			name: "an X-UIDL of the generated form keeps it; the generated one moves",
			own:  []string{"", "000000010000ABCD"},
			want: []string{"000000010000ABCD-2", "000000010000ABCD"},
			kept: 1,
			new:  1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var rep Report
			own := make([]sourceID, len(c.own))
			for i, id := range c.own {
				own[i] = sourceID{id: id, label: "X-UIDL", num: i + 1}
			}
			got := assignIDs(own, 0xABCD, &rep)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("ids %q, want %q", got, c.want)
			}
			if rep.Kept != c.kept || rep.New != c.new {
				t.Errorf("kept %d, new %d; want %d, %d", rep.Kept, rep.New, c.kept, c.new)
			}
			changes := func(cs []IDChange) (out []string) {
				for _, ch := range cs {
					out = append(out, fmt.Sprintf("%d: %s -> %s", ch.Message, ch.From, ch.To))
					if c.whyMatch != "" && !strings.Contains(ch.Why, c.whyMatch) {
						t.Errorf("why %q, want it to say %q", ch.Why, c.whyMatch)
					}
				}
				return out
			}
			if got := changes(rep.Renamed); strings.Join(got, "|") != strings.Join(c.renamed, "|") {
				t.Errorf("renamed %q, want %q", got, c.renamed)
			}
			if got := changes(rep.NotKept); strings.Join(got, "|") != strings.Join(c.notKept, "|") {
				t.Errorf("not kept %q, want %q", got, c.notKept)
			}
		})
	}
}

// uidlMbox is an mbox of five messages with X-UIDL headers: two equal,
// one invalid; message 3's body holds a quoted "From " line.
func uidlMbox() string {
	var b strings.Builder
	for i, uidl := range []string{"UID1-abc", "UID2-def", "UID1-abc", "bad uidl", "UID5"} {
		fmt.Fprintf(&b, "From sender@example.org %s\nX-UIDL: %s\nSubject: message %d\n\nbody %d\n>From quoted\n\n",
			time.Date(2024, 3, 1+i, 10, 0, 0, 0, time.UTC).Format("Mon Jan _2 15:04:05 2006"), uidl, i+1, i+1)
	}
	return b.String()
}

// An mbox imported into each store keeps X-UIDL ids, order, contents
// (quoting undone) and arrival times; an interrupted import resumes
// without duplicates, a second one imports nothing, mail appended later
// is imported alone, and the dry run counts what is there.
func TestMboxImport(t *testing.T) {
	t.Parallel()
	for _, dest := range []struct {
		name string
		end  func(t *testing.T) (End, Destination)
	}{
		{"maildir", func(t *testing.T) (End, Destination) { s := newMaildir(t); return Maildir(s), s }},
		{"postgres", func(t *testing.T) (End, Destination) { s := newPostgres(t); return Postgres(s), s }},
	} {
		t.Run(dest.name, func(t *testing.T) {
			t.Parallel()
			to, st := dest.end(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			if err := os.WriteFile(path, []byte(uidlMbox()), 0o600); err != nil {
				t.Fatal(err)
			}
			from := Mbox(MboxOptions{Path: filepath.Join(dir, "{user}"), UIDLHeader: true, Location: time.UTC})
			acct := store.Account{Name: "alice"}
			accts := []store.Account{acct}

			checked, err := Check(t.Context(), from, st, accts)
			if err != nil || len(checked) != 1 || checked[0].Err != nil {
				t.Fatalf("Check = %+v, %v", checked, err)
			}
			rep := checked[0].Report
			if rep.Messages != 5 || rep.Kept != 3 || len(rep.Renamed) != 1 || len(rep.NotKept) != 1 || checked[0].There != 0 {
				t.Errorf("dry run: %s, %d there\n%s", rep.Summary(), checked[0].There, strings.Join(rep.Details(), "\n"))
			}

			ctx, cancel := context.WithCancel(t.Context())
			if _, err := Run(ctx, from, to, accts, &cancelAfter{n: 2, cancel: cancel}); err == nil {
				t.Fatal("interrupted run reported no error")
			}
			if checked, _ := Check(t.Context(), from, st, accts); checked[0].There != 2 || checked[0].Others != 0 {
				t.Errorf("dry run after the interruption: %+v", checked[0])
			}
			res, err := Run(t.Context(), from, to, accts, nil)
			if err != nil || len(res.Failed) > 0 || res.Copied != 3 || res.Skipped != 2 {
				t.Fatalf("resumed run: %+v, %v", res, err)
			}
			if r := res.Reports["alice"]; r == nil || len(r.Renamed) != 1 || r.Renamed[0].To != "UID1-abc-2" {
				t.Errorf("report: %+v", r)
			}
			snap := look(t, st, acct)
			var ids []string
			for i, m := range snap.infos {
				ids = append(ids, m.UID)
				if want := time.Date(2024, 3, 1+i, 10, 0, 0, 0, time.UTC); !m.Received.Equal(want) {
					t.Errorf("message %d received %v, want %v", i+1, m.Received, want)
				}
				if want := fmt.Sprintf("Subject: message %d\n\nbody %d\nFrom quoted\n", i+1, i+1); !strings.HasSuffix(strings.ReplaceAll(snap.contents[i], "\r\n", "\n"), want) {
					t.Errorf("message %d:\n%q\nwant it to end with\n%q", i+1, snap.contents[i], want)
				}
			}
			gen := generatedID(4, mboxValidity(scanFile(t, path), strings.NewReader(uidlMbox())))
			if want := []string{"UID1-abc", "UID2-def", "UID1-abc-2", gen, "UID5"}; strings.Join(ids, ",") != strings.Join(want, ",") {
				t.Errorf("ids %q, want %q", ids, want)
			}

			if res, _ := Run(t.Context(), from, to, accts, nil); res.Copied != 0 || res.Skipped != 5 {
				t.Errorf("second run: %+v", res)
			}
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("From x Mon Apr  1 00:00:00 2024\nX-UIDL: UID6\n\nlate\n\n")
			f.Close()
			if res, _ := Run(t.Context(), from, to, accts, nil); res.Copied != 1 || res.Skipped != 5 {
				t.Errorf("run after mail was appended: %+v", res)
			}
			if snap := look(t, st, acct); len(snap.infos) != 6 || snap.infos[5].UID != "UID6" {
				t.Errorf("after the appended message: %+v", snap.infos)
			}
			// Another file under the same name (its first message
			// differs) is not merged into what was imported.
			os.WriteFile(path, []byte("From x Mon Apr  1 00:00:00 2024\nX-UIDL: other\n\nx\n"), 0o600)
			if res, _ := Run(t.Context(), from, to, accts, nil); res.Failed["alice"] == nil || res.Copied != 0 {
				t.Errorf("run with another file: %+v", res)
			}
		})
	}
}

func scanFile(t *testing.T, path string) *mbox.Index {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := mbox.Scan(strings.NewReader(string(b)), int64(len(b)), mbox.Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// A user without an mbox file has nothing to import; a file that is not
// an mbox is refused with the reason.
func TestMboxMissingOrNot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bob"), []byte("Subject: not an mbox\n\nx\n"), 0o600)
	from := Mbox(MboxOptions{Path: filepath.Join(dir, "{user}")})
	res, err := Run(t.Context(), from, Maildir(newMaildir(t)), []store.Account{{Name: "alice"}, {Name: "bob"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res.Failed["alice"], ErrNoMbox) || !errors.Is(res.Failed["bob"], mbox.ErrNotMbox) {
		t.Errorf("failures: %v", res.Failed)
	}
}

// A Dovecot Maildir imported into PostgreSQL: the dry run reports the
// ids a takeover keeps without touching the Maildir, and the import
// gives each message the id Dovecot showed, in Dovecot's order.
func TestDovecotMaildirToPostgres(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "dave", "Maildir")
	at := time.Unix(1_700_000_000, 0)
	for name, body := range map[string]string{
		"cur/1700000010.M1P1.mx,S=10,W=11:2,S": "Subject: a\n\n",
		"cur/1700000020.M1P1.mx,S=10,W=11:2,":  "Subject: b\n\n",
		"new/1700000030.M1P1.mx,S=10,W=11":     "Subject: c\n\n",
		"dovecot-uidlist": "3 V1690000000 N12 G00112233445566778899aabbccddeeff\n" +
			"7 :1700000010.M1P1.mx,S=10,W=11\n9 :1700000020.M1P1.mx,S=10,W=11\n11 :1700000030.M1P1.mx,S=10,W=11\n",
	} {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o700)
		os.WriteFile(path, []byte(body), 0o600)
		os.Chtimes(path, at, at)
	}
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o700)
	src, err := maildir.New(maildir.Config{Location: filepath.Join(root, "{user}", "Maildir"), Legacy: legacy.Config{Source: legacy.Dovecot}})
	if err != nil {
		t.Fatal(err)
	}
	pg := newPostgres(t)
	acct := []store.Account{{Name: "dave"}}
	checked, err := Check(t.Context(), Maildir(src), pg, acct)
	if err != nil || checked[0].Err != nil {
		t.Fatalf("Check: %+v, %v", checked, err)
	}
	if r := checked[0].Report; r.Messages != 3 || r.Kept != 3 || !strings.Contains(r.Source, "dovecot ids from dovecot-uidlist") {
		t.Errorf("dry run: %s\n%s", r.Summary(), strings.Join(r.Details(), "\n"))
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "postoffice") {
			t.Errorf("the dry run wrote %s into the Maildir", e.Name())
		}
	}
	res, err := Run(t.Context(), Maildir(src), Postgres(pg), acct, nil)
	if err != nil || res.Copied != 3 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	if r := res.Reports["dave"]; r == nil || r.Kept != 3 || !strings.Contains(r.Source, "dovecot-uidlist") {
		t.Errorf("the import's report is not the takeover's: %+v", r)
	}
	var ids []string
	for _, m := range look(t, pg, acct[0]).infos {
		ids = append(ids, m.UID)
	}
	if want := []string{"0000000764bb5a80", "0000000964bb5a80", "0000000b64bb5a80"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("ids in PostgreSQL %q, want Dovecot's %q", ids, want)
	}
}

// Damaged mbox files are imported as far as they hold messages, and the
// report says what was decided; no id changes without a line saying so.
func TestMboxBadInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		in       string
		format   mbox.Format
		messages int
		ids      []string // "" for a generated id
		report   []string // substrings of the report's lines
	}{
		{
			name:     "junk before the first From line, a From line without a date",
			in:       "junk\n\nFrom x Mon Apr  1 00:00:00 2024\nX-UIDL: a\n\none\n\nFrom broken\nX-UIDL: b\nDate: Tue, 2 Apr 2024 10:00:00 +0000\n\ntwo\n",
			messages: 2,
			ids:      []string{"a", "b"},
			report: []string{`skipped: offset 0: 6 octets before the first "From " line belong to no message`,
				`note: message 2 (offset 54): its "From " line has no date: "From broken"`,
				"note: message 2 (offset 54): arrival time taken from its Date header"},
		},
		{
			name:     "wrong Content-Length",
			in:       "From x Mon Apr  1 00:00:00 2024\nX-UIDL: a\nContent-Length: 2\n\nlonger than that\n\nFrom x Mon Apr  1 00:00:00 2024\nX-UIDL: b\nContent-Length: 4\n\ntwo\n",
			format:   mbox.Mboxcl2,
			messages: 2,
			ids:      []string{"a", "b"},
			report:   []string{"note: message 1 (offset 0): Content-Length 2 is wrong"},
		},
		{
			name:     "truncated in a header, no final newline",
			in:       "From x Mon Apr  1 00:00:00 2024\nX-UIDL: a\n\none\n\nFrom x Mon Apr  1 00:00:00 2024\nX-UIDL: b\nSubj",
			messages: 2,
			ids:      []string{"a", "b"},
			report:   []string{"ends inside its header", "the file ends without a line end"},
		},
		{
			name:     "CRLF, a duplicate and an id with a space",
			in:       strings.ReplaceAll("From x Mon Apr  1 00:00:00 2024\nX-UIDL: a\n\none\n\nFrom x Mon Apr  1 00:00:00 2024\nX-UIDL: a\n\ntwo\n\nFrom x Mon Apr  1 00:00:00 2024\nX-UIDL: a b\n\nthree\n", "\n", "\r\n"),
			messages: 3,
			ids:      []string{"a", "a-2", ""},
			report:   []string{`renamed: message 2: X-UIDL is also message 1's: "a" imported as "a-2"`, `not kept: message 3: X-UIDL holds octet 0x20 at position 2`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "alice"), []byte(c.in), 0o600)
			md := newMaildir(t)
			acct := store.Account{Name: "alice"}
			res, err := Run(t.Context(), Mbox(MboxOptions{Path: filepath.Join(dir, "{user}"), Format: c.format, UIDLHeader: true, Location: time.UTC}),
				Maildir(md), []store.Account{acct}, nil)
			if err != nil || len(res.Failed) > 0 || res.Copied != c.messages {
				t.Fatalf("Run = %+v, %v", res, err)
			}
			rep := res.Reports["alice"]
			details := strings.Join(rep.Details(), "\n")
			for _, want := range c.report {
				if !strings.Contains(details, want) {
					t.Errorf("report lacks %q:\n%s", want, details)
				}
			}
			snap := look(t, md, acct)
			for i, want := range c.ids {
				got := snap.infos[i].UID
				if want == "" {
					if !strings.Contains(details, fmt.Sprintf("message %d:", i+1)) || !strings.Contains(details, got) {
						t.Errorf("message %d got id %q, and the report does not say so:\n%s", i+1, got, details)
					}
				} else if got != want {
					t.Errorf("message %d id %q, want %q", i+1, got, want)
				}
			}
		})
	}
}

// An mbox Dovecot served keeps the ids its POP3 server made from the
// X-UID and X-IMAPbase headers it keeps in the file (pop3_uidl_format),
// an X-UIDL header winning as with pop3_reuse_xuidl; a message without
// X-UID is listed as not kept. UW-IMAP's internal-data pseudo-message is
// not imported, and gives the uidvalidity.
func TestMboxDovecotIDs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in, format string
		uidl             bool
		ids              []string // "" for a generated id
		report           []string
	}{
		{
			name: "Dovecot",
			in: "From a Mon Apr  1 00:00:00 2024\nX-IMAPbase: 1690000000 0000000012\nX-UID: 7     \nStatus: RO\n\none\n\n" +
				"From a Mon Apr  1 00:00:00 2024\nX-UID: 9\nX-UIDL: kept-xuidl\n\ntwo\n\n" +
				"From a Mon Apr  1 00:00:00 2024\nSubject: no X-UID\n\nthree\n\n" +
				"From a Mon Apr  1 00:00:00 2024\nX-UID: 11\n\nfour\n",
			format: "%08Xu%08Xv",
			uidl:   true,
			ids:    []string{"0000000764bb5a80", "kept-xuidl", "", "0000000b64bb5a80"},
			report: []string{`not kept: message 3: no X-UID header with a uid (""): the id Dovecot showed is not known: imported as "00000003`},
		},
		{
			name: "UW-IMAP pseudo-message",
			in: "From MAILER-DAEMON Mon Apr  1 00:00:00 2024\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nX-IMAP: 1690000000 0000000012\n\ninternal\n\n" +
				"From a Mon Apr  1 00:00:00 2024\nX-UID: 4\n\none\n",
			format: "%v.%u",
			ids:    []string{"1690000000.4"},
			report: []string{"skipped: message 1 (offset 0): the folder's internal data"},
		},
		{
			name:   "no X-IMAPbase",
			in:     "From a Mon Apr  1 00:00:00 2024\nX-UID: 4\n\none\n",
			format: "%08Xu%08Xv",
			ids:    []string{""},
			report: []string{"not kept: message 1: no X-IMAPbase header in the file"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "alice"), []byte(c.in), 0o600)
			format, err := legacy.ParseFormat(c.format)
			if err != nil {
				t.Fatal(err)
			}
			pg := newMaildir(t)
			acct := store.Account{Name: "alice"}
			res, err := Run(t.Context(), Mbox(MboxOptions{Path: filepath.Join(dir, "{user}"), UIDLHeader: c.uidl, DovecotFormat: format}),
				Maildir(pg), []store.Account{acct}, nil)
			if err != nil || len(res.Failed) > 0 || res.Copied != len(c.ids) {
				t.Fatalf("Run = %+v, %v", res, err)
			}
			details := strings.Join(res.Reports["alice"].Details(), "\n")
			for _, want := range c.report {
				if !strings.Contains(details, want) {
					t.Errorf("report lacks %q:\n%s", want, details)
				}
			}
			snap := look(t, pg, acct)
			for i, want := range c.ids {
				if got := snap.infos[i].UID; want != "" && got != want {
					t.Errorf("message %d id %q, want %q", i+1, got, want)
				}
			}
			if c.name == "UW-IMAP pseudo-message" && !strings.HasSuffix(snap.contents[0], "one\n") {
				t.Errorf("first message imported: %q", snap.contents[0])
			}
		})
	}
}

// Mail delivered into the destination after an import takes the next
// number; an mbox that grew since must not have its new message taken
// for that one ("already there") and lost: the import is refused, with
// the reason, and changes nothing.
func TestMboxGrewAfterDelivery(t *testing.T) {
	t.Parallel()
	for _, dest := range []struct {
		name string
		end  func(t *testing.T) (End, Destination, store.Deliverer)
	}{
		{"maildir", func(t *testing.T) (End, Destination, store.Deliverer) { s := newMaildir(t); return Maildir(s), s, s }},
		{"postgres", func(t *testing.T) (End, Destination, store.Deliverer) { s := newPostgres(t); return Postgres(s), s, s }},
	} {
		t.Run(dest.name, func(t *testing.T) {
			t.Parallel()
			to, st, deliver := dest.end(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "alice")
			os.WriteFile(path, []byte("From x Mon Apr  1 00:00:00 2024\nX-UIDL: one\n\n1\n\n"), 0o600)
			from := Mbox(MboxOptions{Path: filepath.Join(dir, "{user}"), UIDLHeader: true})
			acct := store.Account{Name: "alice"}
			if res, err := Run(t.Context(), from, to, []store.Account{acct}, nil); err != nil || res.Copied != 1 {
				t.Fatalf("first import: %+v, %v", res, err)
			}
			if _, err := deliver.Deliver(t.Context(), acct, strings.NewReader("Subject: delivered\n\nnew\n")); err != nil {
				t.Fatal(err)
			}
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("From x Tue Apr  2 00:00:00 2024\nX-UIDL: two\n\n2\n\n")
			f.Close()
			res, err := Run(t.Context(), from, to, []store.Account{acct}, nil)
			if err != nil || res.Failed["alice"] == nil || !strings.Contains(res.Failed["alice"].Error(), "is another message's") {
				t.Errorf("import after a delivery: %+v, %v; want alice refused", res, err)
			}
			if snap := look(t, st, acct); len(snap.infos) != 2 || snap.infos[0].UID != "one" {
				t.Errorf("destination after the refusal: %+v", snap.infos)
			}
		})
	}
}

// An id that a message of the destination holds already under another
// number refuses the maildrop: PostgreSQL would otherwise count the copy
// as done and drop it.
func TestMboxIDTaken(t *testing.T) {
	t.Parallel()
	pg := newPostgres(t)
	acct := store.Account{Name: "alice"}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "alice"), []byte("From x Mon Apr  1 00:00:00 2024\nX-UIDL: one\n\n1\n\n"), 0o600)
	from := Mbox(MboxOptions{Path: filepath.Join(dir, "{user}"), UIDLHeader: true})
	if res, err := Run(t.Context(), from, Postgres(pg), []store.Account{acct}, nil); err != nil || res.Copied != 1 {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	// The message "one" now has another number than the file gives it.
	if _, err := pg.Pool().Exec(t.Context(), "UPDATE messages SET uid = 5"); err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), from, Postgres(pg), []store.Account{acct}, nil)
	if err != nil || res.Failed["alice"] == nil || !strings.Contains(res.Failed["alice"].Error(), `unique id "one" is another message's`) || res.Copied != 0 {
		t.Errorf("import of a taken id: %+v, %v; want alice refused", res, err)
	}
}

package storetest

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

// Store.Open: "A maildrop that does not exist yet is empty."
func testEmptyUnknownAccount(t *testing.T, e *env) {
	s := e.open()
	if msgs := s.messages(); len(msgs) != 0 {
		t.Fatalf("unknown account has %d messages, want 0", len(msgs))
	}
	s.commit(nil, nil)
	s.close()
}

// A delivered message appears in the next snapshot with the announced size,
// the time it arrived, no retrieval yet, and its exact bytes.
func testDeliverThenOpen(t *testing.T, e *env) {
	const content = "From: a@example.org\nSubject: hi\n\nhello\n"
	before := time.Now()
	delivered := e.deliver(content)

	s := e.open()
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("snapshot has %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if want := normalizedSize(t, content); m.Size != want {
		t.Errorf("Size = %d, want %d (pop3.NormalizedSize)", m.Size, want)
	}
	checkRecent(t, "Received", m.Received, before)
	if !m.FirstRetrieved.IsZero() {
		t.Errorf("FirstRetrieved = %v, want zero for a message never retrieved", m.FirstRetrieved)
	}
	// Deliverer may assign the UID later (at the next Open), but if it
	// returned one it must be the one the snapshot shows.
	if delivered.UID != "" && delivered.UID != m.UID {
		t.Errorf("Deliver returned UID %q, snapshot shows %q", delivered.UID, m.UID)
	}
	if got := s.content(0); got != content {
		t.Errorf("content = %q, want %q", got, content)
	}
	// A message can be opened more than once in a session (RETR after TOP).
	if got := s.content(0); got != content {
		t.Errorf("second read: content = %q, want %q", got, content)
	}
	s.close()
}

// Contents round-trip byte for byte whatever their line endings, and the
// size always counts every line ending as CRLF (RFC 1939 §5).
func testContents(t *testing.T, e *env) {
	// A CRLF split across the 32 KiB boundary that readers commonly use
	// must not be counted as a bare LF.
	boundary := strings.Repeat("x", 32*1024-1) + "\r\n" + strings.Repeat("y", 100) + "\n"
	var big strings.Builder
	for i := 0; big.Len() < 300*1024; i++ {
		fmt.Fprintf(&big, "line %d with some text\n", i)
		if i%3 == 0 {
			big.WriteString("crlf line\r\n")
		}
	}
	cases := []struct{ name, content string }{
		{"lf", "Subject: lf\n\nbody\n"},
		{"crlf", "Subject: crlf\r\n\r\nbody\r\n"},
		{"mixed", "Subject: mixed\r\n\nbody\nmore\r\n"},
		{"no trailing newline", "Subject: x\n\nno newline at end"},
		{"crlf no trailing newline", "Subject: x\r\n\r\nno newline at end"},
		{"lone CR", "Subject: cr\r\n\r\na\rb\r"},
		{"leading LF", "\nSubject: x\n"},
		{"dots", ".\n..\n.x\r\n.\r\n"},
		{"binary", "Subject: bin\n\n\x00\x01\xff\xfe\n"},
		{"empty", ""},
		{"crlf at 32k", boundary},
		{"big", big.String()},
	}
	for _, c := range cases {
		e.deliver(c.content)
	}
	s := e.open()
	msgs := s.messages()
	if len(msgs) != len(cases) {
		t.Fatalf("snapshot has %d messages, want %d", len(msgs), len(cases))
	}
	for i, c := range cases {
		if got := s.content(i); got != c.content {
			t.Errorf("%s: content = %s, want %s", c.name, abbrev(got), abbrev(c.content))
		}
		if n := normalizedSize(t, c.content); msgs[i].Size != n {
			t.Errorf("%s: Size = %d, want %d", c.name, msgs[i].Size, n)
		}
	}
	s.close()
}

// failingReader yields some bytes, then an error, like a client connection
// that drops during DATA.
type failingReader struct{ sent bool }

var errDropped = errors.New("connection dropped")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errDropped
	}
	r.sent = true
	return copy(p, "Subject: partial\n\nthe rest never arr"), nil
}

// A failed delivery leaves nothing behind (design invariant 5): the MTA
// retries, and a half message must not appear in the maildrop.
func testDeliverReaderError(t *testing.T, e *env) {
	if _, err := e.dl.Deliver(t.Context(), e.acct, &failingReader{}); err == nil {
		t.Fatal("Deliver from a failing reader succeeded, want an error")
	}
	s := e.open()
	if n := len(s.messages()); n != 0 {
		t.Fatalf("after a failed delivery the maildrop has %d messages, want 0", n)
	}
	s.close()
}

// Maildrop.Messages: "in a stable order (oldest first)".
func testOrderOldestFirst(t *testing.T, e *env) {
	var want []string
	for i := range 5 {
		c := fmt.Sprintf("Subject: %d\n\nmessage %d\n", i, i)
		e.deliver(c)
		want = append(want, c)
	}
	s := e.open()
	checkContents(t, s, want)
	first := s.messages()
	s.close()

	// Another message arrives: it goes last, the others keep their order.
	last := "Subject: last\n\nnewest\n"
	e.deliver(last)
	s = e.open()
	checkContents(t, s, append(want, last))
	if got := s.messages()[:len(first)]; !sameInfos(got, first) {
		t.Errorf("earlier messages changed between sessions:\n got %v\nwant %v", got, first)
	}
	s.close()
}

// Maildrop: "mail delivered meanwhile is not part of the snapshot".
func testDeliveredDuringSession(t *testing.T, e *env) {
	e.deliver("Subject: before\n\n1\n")
	s := e.open()
	before := s.messages()
	e.deliver("Subject: during\n\n2\n")
	if got := s.messages(); !sameInfos(got, before) {
		t.Fatalf("snapshot changed during the session:\n got %v\nwant %v", got, before)
	}
	if got := s.content(0); got != "Subject: before\n\n1\n" {
		t.Errorf("content = %q", got)
	}
	// Committing the old snapshot must not touch the new message.
	s.commit([]int{0}, nil)
	s.close()

	s = e.open()
	checkContents(t, s, []string{"Subject: during\n\n2\n"})
	s.close()
}

// Deliverer: "exactly once", also when many deliveries race each other.
func testConcurrentDeliver(t *testing.T, e *env) {
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.dl.Deliver(t.Context(), e.acct,
				strings.NewReader(fmt.Sprintf("Subject: %d\n\nconcurrent %d\n", i, i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Deliver: %v", err)
		}
	}
	s := e.open()
	got := s.contents()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("Subject: %d\n\nconcurrent %d\n", i, i))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after %d concurrent deliveries the maildrop holds %d messages:\n%q", n, len(got), got)
	}
	checkDistinct(t, s.uids())
	s.close()
}

// Maildrop.Open with a bad index is an error, never a panic: the engine
// checks numbers, but a store must not trust it with its own memory.
func testOpenOutOfRange(t *testing.T, e *env) {
	e.deliver("Subject: one\n\n1\n")
	s := e.open()
	for _, i := range []int{-1, 1, 2, 1 << 30} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Open(%d) panicked: %v", i, p)
				}
			}()
			r, err := s.md.Open(t.Context(), i)
			if err == nil {
				r.Close()
				t.Errorf("Open(%d) of a 1-message snapshot succeeded, want an error", i)
			}
		}()
	}
	s.close()
}

// Maildrop.Open: "It returns ErrNoSuchMessage if another program removed
// the message." The rest of the snapshot stays usable.
func testOpenRemovedMessage(t *testing.T, e *env) {
	rm := e.remover()
	e.deliver("Subject: 0\n\nkept\n")
	e.deliver("Subject: 1\n\nremoved elsewhere\n")
	s := e.open()
	before := s.messages()
	if err := rm.RemoveBehind(t.Context(), e.acct, before[1].UID); err != nil {
		t.Fatalf("RemoveBehind: %v", err)
	}
	r, err := s.md.Open(t.Context(), 1)
	if err == nil {
		b, _ := io.ReadAll(r)
		r.Close()
		t.Fatalf("Open of a removed message succeeded (%q), want ErrNoSuchMessage", b)
	}
	if !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("Open of a removed message: %v, want ErrNoSuchMessage", err)
	}
	if got := s.messages(); !sameInfos(got, before) {
		t.Errorf("snapshot changed after an outside removal:\n got %v\nwant %v", got, before)
	}
	if got := s.content(0); got != "Subject: 0\n\nkept\n" {
		t.Errorf("content of the other message = %q", got)
	}
	s.close()
}

// A store that returns the UID from Deliver (assigning it at delivery
// rather than at the next Open) must keep that promise also when the
// delivery happens during a session that then commits deletions: the next
// session shows the message under the UID Deliver returned, and
// concurrent deliveries get distinct UIDs. Stores that return no UID skip
// this.
func testDeliveredUIDIsKept(t *testing.T, e *env) {
	first := e.deliver("Subject: first\n\n1\n")
	if first.UID == "" {
		t.Skip("store assigns unique ids at Open, not at Deliver")
	}
	s := e.open()
	during := e.deliver("Subject: during\n\n2\n")
	const n = 8
	infos := make(chan store.MessageInfo, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			info, err := e.dl.Deliver(t.Context(), e.acct, strings.NewReader(fmt.Sprintf("Subject: c%d\n\nx\n", i)))
			if err != nil {
				t.Errorf("Deliver: %v", err)
			}
			infos <- info
		})
	}
	wg.Wait()
	close(infos)
	s.commit([]int{0}, []int{0})
	s.close()

	want := map[string]bool{during.UID: true}
	for info := range infos {
		if want[info.UID] || info.UID == first.UID {
			t.Errorf("Deliver returned UID %q twice", info.UID)
		}
		want[info.UID] = true
	}
	s = e.open()
	got := s.uids()
	if len(got) != len(want) {
		t.Fatalf("next session has %d messages, want %d", len(got), len(want))
	}
	for _, u := range got {
		if !want[u] {
			t.Errorf("next session shows UID %q, which no Deliver returned (want %v)", u, want)
		}
	}
	if got[0] != during.UID {
		t.Errorf("oldest message has UID %q, want %q (delivered first)", got[0], during.UID)
	}
	s.close()
}

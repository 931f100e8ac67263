package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/pop3"
	"github.com/postoffice-mail/postoffice/pop3client"
)

// TestForeignPrograms runs POP3 sessions while other programs work on the
// same Maildirs, as Dovecot, procmail or a user's script would: they
// deliver (tmp/ then new/), move messages from new/ to cur/, change their
// flags and delete them, while the server delivers over LMTP too. Every
// session keeps working; what RETR sends is the message LIST announced,
// octet for octet; a message is only ever missing if another program
// deleted it, and is then gone for good; unique ids never change or move
// to another message, across sessions; and at the end every message is
// there exactly once unless deleted.
func TestForeignPrograms(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range foreignPrograms(t, s, srv, 10*time.Second) {
		t.Error(p)
	}
}

// foreignPrograms is TestForeignPrograms's scenario, running for d.
func foreignPrograms(t *testing.T, s *site, srv *server, d time.Duration) []string {
	l := newLedger()
	foreign := &foreignMDA{site: s, ledger: l}
	var (
		mu       sync.Mutex
		problems []string
	)
	report := func(p string) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}
	for _, u := range users {
		for i := range 150 {
			foreign.deliver(t, u, fmt.Sprintf("f-%s-%d", u, i))
		}
		view, err := observe(t.Context(), srv, u)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.check(u, view) {
			report(p)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var wg sync.WaitGroup
	// The other programs, one per maildrop.
	for _, u := range users {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := foreignStep(s, l, foreign, u, i); err != nil {
					report(fmt.Sprintf("%s: the other program failed: %v", u, err))
					return
				}
				time.Sleep(time.Duration(1+rand.IntN(3)) * time.Millisecond)
			}
		})
	}
	// The MTA, over LMTP.
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			c, err := dialLMTP(srv.lmtp)
			if err != nil {
				report(fmt.Sprintf("LMTP: %v", err))
				return
			}
			for j := 0; j < 10 && ctx.Err() == nil; j++ {
				id := fmt.Sprintf("lmtp-%d-%d", i, j)
				if replies, ok := c.deliver(l, id, []string{users[j%len(users)]}, testMessage(id)); !ok || !strings.HasPrefix(replies[0], "250 ") {
					report(fmt.Sprintf("LMTP delivery of %s: %q", id, replies))
				}
				time.Sleep(5 * time.Millisecond)
			}
			c.Close()
		}
	})
	// The POP3 clients, one per maildrop.
	sessions := make([]int, len(users))
	for k, u := range users {
		wg.Go(func() {
			for ctx.Err() == nil {
				// The session itself is not cut off by the end of
				// the run: it finishes.
				if err := foreignSession(t.Context(), srv, l, u, report); err != nil {
					report(fmt.Sprintf("%s: session: %v", u, err))
					return
				}
				sessions[k]++
			}
		})
	}
	wg.Wait()

	// All quiet: every message is there once, or deleted.
	for _, u := range users {
		view, err := observe(t.Context(), srv, u)
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, l.check(u, view)...)
		problems = append(problems, diskProblems(s, u, len(view))...)
	}
	for k, u := range users {
		t.Logf("%s: %d sessions; %d deleted by sessions or the other program", u, sessions[k], l.count(u, deleted))
	}
	return problems
}

// foreignStep is one action of the other program on user's Maildir:
// deliver, move new/ to cur/ (seen), change flags, or delete.
func foreignStep(s *site, l *ledger, foreign *foreignMDA, user string, i int) error {
	dir := s.maildir(user)
	if i%4 == 0 {
		return foreign.tryDeliver(user, fmt.Sprintf("f-%s-late-%d", user, i))
	}
	sub := []string{"new", "cur"}[rand.IntN(2)]
	entries, err := os.ReadDir(filepath.Join(dir, sub))
	if err != nil || len(entries) == 0 {
		return err
	}
	name := entries[rand.IntN(len(entries))].Name()
	from := filepath.Join(dir, sub, name)
	base, flags, _ := strings.Cut(name, ":")
	switch {
	case i%11 == 0: // delete
		id, err := testID(from)
		if errors.Is(err, os.ErrNotExist) {
			return nil // a session's QUIT was quicker
		}
		if err != nil {
			return err
		}
		// Noted first: a session may find it gone at once.
		l.deleted(user, id)
		if err := os.Remove(from); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case sub == "new":
		err = os.Rename(from, filepath.Join(dir, "cur", base+":2,S"))
	default:
		next := map[string]string{"2,S": "2,RS", "2,RS": "2,FRS", "2,FRS": "2,S"}[flags]
		if next == "" {
			next = "2,S"
		}
		err = os.Rename(from, filepath.Join(dir, "cur", base+":"+next))
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil // moved or deleted meanwhile
	}
	return err
}

// testID reads the X-Test-ID of a message file.
func testID(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	for !strings.HasPrefix(line, "X-Test-ID: ") {
		// LMTP deliveries start with trace fields; read on.
		rest, err := os.ReadFile(name)
		if err != nil {
			return "", err
		}
		i := strings.Index(string(rest), "\nX-Test-ID: ")
		if i < 0 {
			return "", fmt.Errorf("%s: no X-Test-ID", name)
		}
		line = string(rest[i+1:])
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(line, "X-Test-ID: "), "\n")
	return strings.TrimSuffix(id, "\r"), nil
}

// foreignSession is one POP3 session while the other program works: it
// lists, retrieves up to 20 messages, checks each against its listing
// and the ledger, deletes up to two, lists again (the same snapshot), and
// ends with QUIT.
func foreignSession(ctx context.Context, srv *server, l *ledger, user string, report func(string)) error {
	c, err := srv.login(ctx, user)
	if err != nil {
		return err
	}
	defer c.Close()
	list, err := c.Messages(ctx)
	if err != nil {
		return err
	}
	var toDelete []string
	for _, k := range rand.Perm(len(list))[:min(20, len(list))] {
		m := list[k]
		sn, err := retrieve(ctx, c, m)
		var perr *pop3.Error
		if errors.As(err, &perr) {
			// Only a message another program deleted after the
			// snapshot may be missing (one not seen before cannot be
			// told: it is checked at the end).
			if id, ok := l.idOf(user, m.UID); ok && l.stateOf(user, id) != deleted {
				report(fmt.Sprintf("%s: RETR %d (%q): %v, but nobody deleted it", user, m.Number, id, err))
			}
			continue
		}
		if err != nil {
			return err
		}
		if sn.damage != "" {
			report(fmt.Sprintf("%s: message %d (%q): %s", user, m.Number, sn.id, sn.damage))
			continue
		}
		if p := l.note(user, sn); p != "" {
			report(p)
		}
		if len(toDelete) < 2 && rand.IntN(8) == 0 {
			if err := c.Dele(ctx, m.Number); err != nil {
				return err
			}
			l.deleting(user, sn.id)
			toDelete = append(toDelete, sn.id)
		}
	}
	// The listing is the session's snapshot: whatever the other program
	// did meanwhile, LIST and UIDL answer as at the start, less the
	// messages marked deleted.
	again, err := c.Messages(ctx)
	if err != nil {
		return err
	}
	if want := len(list) - len(toDelete); len(again) != want {
		report(fmt.Sprintf("%s: the session's second listing has %d messages, want %d", user, len(again), want))
	} else {
		byNumber := make(map[int]pop3client.MessageInfo, len(list))
		for _, m := range list {
			byNumber[m.Number] = m
		}
		for _, m := range again {
			if m != byNumber[m.Number] {
				report(fmt.Sprintf("%s: message %d was listed as %+v, now as %+v in the same session", user, m.Number, byNumber[m.Number], m))
			}
		}
	}
	if err := c.Quit(ctx); err != nil {
		var cerr *pop3client.CommandError
		if errors.As(err, &cerr) {
			report(fmt.Sprintf("%s: QUIT: %v", user, err))
			return nil
		}
		return err
	}
	for _, id := range toDelete {
		l.deleted(user, id)
	}
	return nil
}

package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCrashDuringIndexRewrite kills the server at random moments of a
// login that must rewrite the index: another program delivered 500
// messages and moved and re-flagged others since the last session, so the
// login reads the new files, gives them unique ids and writes the index
// anew. After each restart every message is listed exactly once, whole,
// and every message that had a unique id keeps it: the index is either
// the old one or the new one (never half of each, never trusted when
// damaged), and what it lacks is rebuilt from the files.
func TestCrashDuringIndexRewrite(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startServer(t, s, serverOptions{})
	for _, p := range crashIndex(t, s, srv, 3) {
		t.Error(p)
	}
}

// crashIndex is TestCrashDuringIndexRewrite's scenario with rounds kills.
func crashIndex(t *testing.T, s *site, srv *server, rounds int) []string {
	l := newLedger()
	foreign := &foreignMDA{site: s, ledger: l}
	var problems []string
	for i := range 300 {
		foreign.deliver(t, "alice", fmt.Sprintf("x0-%d", i))
	}
	view, err := observe(t.Context(), srv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, l.check("alice", view)...)
	// The kill comes at a random moment in the second half of the time
	// a whole login took last (unknown at first: a guess), where the
	// index is written after the new files were read.
	window := 300 * time.Millisecond
	for round := 1; round <= rounds; round++ {
		for i := range 500 {
			foreign.deliver(t, "alice", fmt.Sprintf("x%d-%d", round, i))
		}
		moveAndFlag(t, s, "alice", 200)
		indexBefore := indexLines(s, "alice")
		delay := window/2 + time.Duration(rand.Int64N(int64(window*6/10)))
		started := time.Now()
		loggedIn := make(chan string, 1)
		go func() {
			p, err := tryDialPOP3(srv, "alice")
			if err != nil {
				loggedIn <- err.Error()
				return
			}
			p.close()
			loggedIn <- "+OK"
		}()
		answer := ""
		select {
		case answer = <-loggedIn:
		case <-time.After(delay):
		}
		took := time.Since(started)
		if answer == "+OK" {
			window = took // the whole rewrite fit: aim within it next time
		}
		pid := srv.pid()
		srv.kill(t)
		l.crashed()
		if answer == "" {
			// The login must be over (it fails now) before the
			// restart, or it could log in to the new server and hold
			// the maildrop when the checks begin.
			answer = <-loggedIn
		}
		leftovers, _ := filepath.Glob(filepath.Join(s.maildir("alice"), "postoffice-index.tmp-*"))
		t.Logf("round %d: killed %v into a login (answer %q); index lines %d before, %d after; %d temporary index files left",
			round, took, answer, indexBefore, indexLines(s, "alice"), len(leftovers))
		problems = append(problems, restartAndCheck(t, s, srv, l, pid)...)
	}
	return problems
}

// moveAndFlag does what a mail client on the same Maildir (through
// Dovecot's IMAP, say) does: moves n random messages from new/ to cur/ with
// the seen flag, and adds the replied flag to those already in cur/.
func moveAndFlag(t *testing.T, s *site, user string, n int) {
	t.Helper()
	dir := s.maildir(user)
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		rand.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		for _, e := range entries[:min(n, len(entries))] {
			from := filepath.Join(dir, sub, e.Name())
			to := filepath.Join(dir, "cur", e.Name()+":2,S")
			if sub == "cur" {
				base, _, _ := strings.Cut(e.Name(), ":")
				to = filepath.Join(dir, "cur", base+":2,RS")
			}
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// indexLines counts the lines of the maildrop's index, for the log.
func indexLines(s *site, user string) int {
	data, _ := os.ReadFile(filepath.Join(s.maildir(user), "postoffice-index"))
	return strings.Count(string(data), "\n")
}

package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/pop3"
)

// TestDiskFull puts the maildrops on a 512 KiB tmpfs and fills it: once it
// is full, LMTP answers 452 4.3.1 and "postoffice deliver" exits 75 (the
// MTA keeps the mail and retries), and neither leaves anything behind;
// POP3 sessions go on logging in, listing and retrieving (a user who has
// had a session before logs in even when not one octet is free, and gets
// the messages that have their unique ids); a QUIT whose
// index update cannot be written says so (-ERR), and one that deletes
// answers +OK only once the deletions are done; and once space is freed,
// deliveries work again and every acknowledged message is there exactly
// once, whole, with its unique id.
//
// It mounts the tmpfs itself, which needs root. Under the project's test
// command (POSTOFFICE_INTEROP=1) a failure to mount fails the test, so
// that CI cannot pass without running it; elsewhere it is skipped.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	// dave never logs in before the disk is full.
	if err := passwdfile.Add(s.passwd, "dave", password, "PLAIN", s.dir); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, s.mailRoot, "512k")
	srv := startServer(t, s, serverOptions{})
	for _, p := range diskFull(t, s, srv) {
		t.Error(p)
	}
}

// mountTmpfs mounts a tmpfs of the given size on dir for the test.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs on %s (needs root; running as uid %d): %v %s", dir, os.Geteuid(), err, bytes.TrimSpace(out))
		if os.Getenv(strictEnv) == "1" {
			t.Fatalf("%s; %s=1 requires this test to run", msg, strictEnv)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// diskFull is TestDiskFull's scenario; it returns the broken promises.
func diskFull(t *testing.T, s *site, srv *server) []string {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	l := newLedger()
	c, err := dialLMTP(srv.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// carol has had a session (her lock file and index exist), with a
	// message indexed at delivery; another program has put a second one
	// in her new/ since, which the index does not know yet.
	if replies, ok := c.deliver(l, "carol-indexed", []string{"carol"}, testMessage("carol-indexed")); !ok || len(replies) != 1 || !strings.HasPrefix(replies[0], "250 ") {
		t.Fatalf("LMTP to carol: %q", replies)
	}
	carolBefore, err := observe(t.Context(), srv, "carol")
	if err != nil || len(carolBefore) != 1 {
		t.Fatalf("carol's first session: %+v, %v", carolBefore, err)
	}
	foreign := filepath.Join(s.maildir("carol"), "new", "1700000000.M1P1.elsewhere")
	if err := os.WriteFile(foreign, []byte(strings.ReplaceAll(testMessage("carol-foreign"), "\r\n", "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	l.acked("carol", "carol-foreign")
	// alice has had a session too, on an empty maildrop.
	if view, err := observe(t.Context(), srv, "alice"); err != nil || len(view) != 0 {
		t.Fatalf("alice's first session: %+v, %v", view, err)
	}

	// Fill the disk by delivering, then take what is left with a file
	// of the test's own, so that nothing at all can be written.
	full := 0
	for i := 0; i < 100 && full < 3; i++ {
		id := fmt.Sprintf("full-%d", i)
		replies, ok := c.deliver(l, id, []string{"alice"}, testMessage(id))
		if !ok || len(replies) != 1 {
			t.Fatalf("LMTP connection failed at message %d", i)
		}
		switch {
		case strings.HasPrefix(replies[0], "250 "):
		case strings.HasPrefix(replies[0], "452 4.3.1"):
			l.refused("alice", id)
			full++
		default:
			report("message %d: reply %q, want 250 or 452 4.3.1", i, replies[0])
		}
	}
	if full == 0 {
		report("the disk never filled: no 452 after %d acknowledged deliveries", l.count("alice", acked))
	}
	// A session opened now lists and retrieves everything.
	pc, err := srv.login(t.Context(), "alice")
	if err != nil {
		report("log in after 452: %v", err)
		return problems
	}
	list, err := pc.Messages(t.Context())
	if err != nil {
		t.Fatalf("LIST after 452: %v", err)
	}
	var view []seen
	for _, m := range list {
		sn, err := retrieve(t.Context(), pc, m)
		if err != nil {
			t.Fatalf("RETR after 452: %v", err)
		}
		view = append(view, sn)
	}
	problems = append(problems, l.check("alice", view)...)

	// Then take the last free octet with a file of the test's own.
	filler := filepath.Join(s.mailRoot, "filler")
	fillDisk(t, filler)
	if replies, _ := c.deliver(l, "full-last", []string{"alice"}, "X-Test-ID: full-last\r\n\r\nsmall\r\n"); len(replies) != 1 || !strings.HasPrefix(replies[0], "452 4.3.1") {
		report("LMTP on a full disk answered %q, want 452 4.3.1", replies)
	} else {
		l.refused("alice", "full-last")
	}
	if code, stderr := deliverCommand(t, srv, "alice", "full-cmd"); code != 75 {
		report(`"postoffice deliver" on a full disk exited %d, want 75 (%s)`, code, stderr)
	} else {
		l.refused("alice", "full-cmd")
	}
	problems = append(problems, diskProblems(s, "alice", l.count("alice", acked))...)

	// carol logs in on a disk without a free octet: her lock is taken in
	// place, and her index needs no room for what it holds. She gets
	// the message with its unique id; the other one waits for a session
	// after space is freed, as the index cannot take it now.
	if other, err := srv.login(t.Context(), "carol"); err != nil {
		report("login of a user with an index on a full disk: %v, want success", err)
	} else {
		list, err := other.Messages(t.Context())
		if err != nil || len(list) != 1 || list[0].UID != carolBefore[0].uid {
			report("carol's LIST on a full disk: %+v, %v; want only %q", list, err, carolBefore[0].uid)
		}
		if err := other.Quit(t.Context()); err != nil {
			report("QUIT without changes on a full disk: %v", err)
		}
	}
	// dave's first session needs room for his lock file and index: on a
	// disk without a free octet he is refused with a temporary error,
	// not a crash.
	if other, err := srv.login(t.Context(), "dave"); err == nil {
		other.Quit(t.Context())
		report("dave's first login on a full disk succeeded: the test did not fill the disk")
	} else if perr := (*pop3.Error)(nil); !errors.As(err, &perr) || perr.Code != pop3.CodeSysTemp {
		report("first login on a full disk: %v, want -ERR [SYS/TEMP]", err)
	}

	// The open session goes on; its QUIT must record the first
	// retrievals in the index, which cannot be written: it must say so.
	if len(list) > 0 {
		if _, err := retrieve(t.Context(), pc, list[0]); err != nil {
			report("RETR on a full disk: %v", err)
		}
	}
	if err := pc.Quit(t.Context()); err == nil {
		report("QUIT after retrievals on a full disk answered +OK, though the index could not be written")
	} else {
		t.Logf("QUIT on a full disk: %v", err)
	}

	// A QUIT with deletions, on the disk as deliveries left it (full for
	// a message, room for a lock file): +OK only once they are done.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	pc, err = srv.login(t.Context(), "alice")
	if err != nil {
		t.Fatalf("log in on a nearly full disk after a failed QUIT: %v", err)
	}
	list, err = pc.Messages(t.Context())
	if err != nil || len(list) < 2 {
		t.Fatalf("LIST: %d messages, %v", len(list), err)
	}
	var marked []string
	for _, m := range list[:2] {
		r, err := pc.Retr(t.Context(), m.Number)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		id, _ := identify(string(data))
		if err := pc.Dele(t.Context(), m.Number); err != nil {
			t.Fatal(err)
		}
		l.deleting("alice", id)
		marked = append(marked, id)
	}
	if err := pc.Quit(t.Context()); err == nil {
		for _, id := range marked {
			l.deleted("alice", id)
		}
	} else {
		t.Logf("QUIT with deletions on a full disk: %v", err)
	}
	l.crashed() // no server: settle the deletions as found

	// Space again (the deletions made some): deliveries work, all is
	// consistent.
	if replies, _ := c.deliver(l, "after-full", []string{"alice"}, testMessage("after-full")); len(replies) != 1 || !strings.HasPrefix(replies[0], "250 ") {
		report("LMTP after space was freed answered %q, want 250", replies)
	}
	if code, stderr := deliverCommand(t, srv, "alice", "after-full-cmd"); code != 0 {
		report(`"postoffice deliver" after space was freed exited %d (%s)`, code, stderr)
	} else {
		l.acked("alice", "after-full-cmd")
	}
	view, err = observe(t.Context(), srv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, l.check("alice", view)...)
	problems = append(problems, diskProblems(s, "alice", len(view))...)
	// carol's waiting message is there now, under a new id; the other
	// kept its own.
	view, err = observe(t.Context(), srv, "carol")
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, l.check("carol", view)...)
	problems = append(problems, diskProblems(s, "carol", len(view))...)
	if len(view) != 2 || view[0].uid != carolBefore[0].uid {
		report("carol after space was freed: %+v, want 2 messages, the first still %q", view, carolBefore[0].uid)
	}
	t.Logf("%d messages acknowledged, %d refused with 452 or exit 75; %d there at the end", l.count("alice", acked)+l.count("alice", deleted), l.count("alice", refused), len(view))
	return problems
}

// fillDisk writes name until the file system is full.
func fillDisk(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// deliverCommand runs "postoffice deliver -d user" with the test message
// id on standard input, as an MTA's pipe would, and returns its exit code
// and standard error. The ledger is left to the caller.
func deliverCommand(t *testing.T, srv *server, user, id string) (int, string) {
	t.Helper()
	cmd := exec.Command(srv.bin, "deliver", "-config", srv.conf, "-d", user, "-f", "chaos@example.net")
	cmd.Env = append(os.Environ(), faultEnv+"="+srv.opt.fault)
	cmd.Stdin = strings.NewReader(testMessage(id))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), strings.TrimSpace(stderr.String())
	}
	t.Fatal(err)
	return 0, ""
}

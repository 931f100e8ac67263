package maildir

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/store"
)

const testLease = 300 * time.Millisecond

// lockFixture is a store with a short lease and the path of alice's lock.
func lockFixture(t *testing.T) (s *Store, dir, lockPath string) {
	t.Helper()
	s, base := newTestStore(t, Config{LockLease: testLease, Hostname: "here"})
	dir = filepath.Join(base, "alice", "Maildir")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return s, dir, filepath.Join(dir, lockFile)
}

// writeLock writes a lock file as another holder, with the given age.
func writeLock(t *testing.T, path string, h lockHolder, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, h.marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-age)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func lockToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := parseLockHolder(string(data))
	return h.token
}

func wantInUse(t *testing.T, s *Store) {
	t.Helper()
	md, err := s.Open(t.Context(), alice)
	if err == nil {
		md.Close()
		t.Fatal("Open succeeded, want ErrInUse")
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Open: %v, want ErrInUse", err)
	}
}

func TestLockLiveLeaseInUse(t *testing.T) {
	s, _, lockPath := lockFixture(t)
	// Another host's fresh lease: only time can tell it is dead.
	writeLock(t, lockPath, lockHolder{host: "there", pid: 1, token: "theirs"}, 0)
	wantInUse(t, s)
	// This host, a live process (our parent, the go command).
	writeLock(t, lockPath, lockHolder{host: "here", pid: os.Getppid(), pidns: pidNamespace(), token: "parent"}, 0)
	wantInUse(t, s)
	// A lock being written right now (empty) is in use too.
	writeLock(t, lockPath, lockHolder{}, 0)
	wantInUse(t, s)
	if got := lockToken(t, lockPath); got != "" {
		t.Errorf("a refused Open changed the lock (token %q)", got)
	}
}

func TestLockStaleLeaseTakenOver(t *testing.T) {
	for name, h := range map[string]lockHolder{
		"other host": {host: "there", pid: 1, token: "theirs"},
		"unreadable": {},
	} {
		t.Run(name, func(t *testing.T) {
			s, _, lockPath := lockFixture(t)
			writeLock(t, lockPath, h, 2*testLease)
			md := open(t, s, alice)
			if got := lockToken(t, lockPath); got != md.lease.token {
				t.Errorf("lock token %q after takeover, want ours %q", got, md.lease.token)
			}
			md.Close()
			if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
				t.Errorf("lock file after Close: %v", err)
			}
		})
	}
}

func TestLockDeadProcessTakenOver(t *testing.T) {
	s, _, lockPath := lockFixture(t)
	// Beyond any pid_max: no such process. The lease is fresh, so only the
	// pid check can free it.
	writeLock(t, lockPath, lockHolder{host: "here", pid: 1 << 30, pidns: pidNamespace(), token: "dead"}, 0)
	md := open(t, s, alice)
	md.Close()

	// Our own pid but not our token: an earlier process with this pid
	// (a restarted container) left it.
	writeLock(t, lockPath, lockHolder{host: "here", pid: os.Getpid(), pidns: pidNamespace(), token: "earlier"}, 0)
	md = open(t, s, alice)
	md.Close()

	// The same pid in another pid namespace is another process.
	writeLock(t, lockPath, lockHolder{host: "here", pid: 1 << 30, pidns: "pid:[1]", token: "container"}, 0)
	if pidNamespace() != "" {
		wantInUse(t, s)
	}
}

// Two paths to one maildir (a symbolic link, or an account's Mail field
// next to the template) must not give two sessions.
func TestLockSameProcessOtherPath(t *testing.T) {
	s, dir, _ := lockFixture(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	open(t, s, alice)
	_, err := s.Open(t.Context(), store.Account{Name: "alice", Mail: link})
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Open through a link: %v, want ErrInUse", err)
	}
}

func TestLockRenewed(t *testing.T) {
	s, _, lockPath := lockFixture(t)
	open(t, s, alice)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(lockPath, old, old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testLease)
	for time.Now().Before(deadline) {
		time.Sleep(testLease / 10)
		if info, err := os.Stat(lockPath); err == nil && time.Since(info.ModTime()) < testLease {
			return
		}
	}
	t.Fatalf("lock not renewed within one lease")
}

// A session whose lock was taken over (it stalled past its lease) must not
// Commit, and Close must leave the new holder's lock alone.
func TestLockLost(t *testing.T) {
	s, dir, lockPath := lockFixture(t)
	put(t, dir, "new/1500000001.a.host", "1\n", time.Time{})
	md := open(t, s, alice)
	writeLock(t, lockPath, lockHolder{host: "there", pid: 1, token: "usurper"}, 0)
	if err := md.Commit(t.Context(), []int{0}, nil); err == nil {
		t.Fatal("Commit with a lost lock succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "new/1500000001.a.host")); err != nil {
		t.Errorf("Commit with a lost lock deleted the message: %v", err)
	}
	if err := md.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if got := lockToken(t, lockPath); got != "usurper" {
		t.Errorf("Close released someone else's lock (token now %q)", got)
	}
}

func TestLockHolderRoundTrip(t *testing.T) {
	h := lockHolder{host: "mx1.example.org", pid: 4242, pidns: "pid:[4026531836]", token: "abc"}
	got, ok := parseLockHolder(string(h.marshal()))
	if !ok || got != h {
		t.Errorf("round trip: %+v, %v", got, ok)
	}
	if _, ok := parseLockHolder("garbage"); ok {
		t.Error("garbage parsed as a lock")
	}
}

// TestLockHelperProcess is not a test: TestLockOtherProcess runs the test
// binary with it to hold a lock in another process.
func TestLockHelperProcess(t *testing.T) {
	location := os.Getenv("POSTOFFICE_LOCK_HELPER")
	if location == "" {
		t.Skip("helper process for TestLockOtherProcess")
	}
	s, err := New(Config{Location: location, LockLease: time.Hour, Hostname: "here"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), alice); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin) // hold the lock until killed
}

// A live holder in another process keeps the maildrop; once it is killed
// (a crash: no Close), the lock is taken over at once, without waiting for
// its hour-long lease.
func TestLockOtherProcess(t *testing.T) {
	s, dir, _ := lockFixture(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "POSTOFFICE_LOCK_HELPER="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	wantInUse(t, s)

	cmd.Process.Kill()
	cmd.Wait()
	md := open(t, s, alice)
	md.Close()
}

// TestLockExclusiveHelper is a helper process for TestLockExclusive: it
// opens and closes the maildrop over and over for a while, and while it
// holds it, it owns a marker file that no other holder may own.
func TestLockExclusiveHelper(t *testing.T) {
	location := os.Getenv("POSTOFFICE_LOCK_STRESS")
	if location == "" {
		t.Skip("helper process for TestLockExclusive")
	}
	s, err := New(Config{Location: location, LockLease: time.Hour, Hostname: "here"})
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(location, "holder")
	held := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		md, err := s.Open(t.Context(), alice)
		if errors.Is(err, store.ErrInUse) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatalf("two holders at once: %v", err)
		}
		f.Close()
		held++
		os.Remove(marker)
		md.Close()
	}
	os.Stdout.WriteString("held " + strconv.Itoa(held) + "\n")
}

// Processes that keep taking and releasing one maildrop's lock never hold
// it at the same time.
func TestLockExclusive(t *testing.T) {
	_, dir, _ := lockFixture(t)
	var cmds []*exec.Cmd
	for range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockExclusiveHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "POSTOFFICE_LOCK_STRESS="+dir)
		cmds = append(cmds, cmd)
	}
	outs := make([][]byte, len(cmds))
	errs := make([]error, len(cmds))
	done := make(chan int)
	for i, cmd := range cmds {
		go func() { outs[i], errs[i] = cmd.CombinedOutput(); done <- i }()
	}
	for range cmds {
		<-done
	}
	total := 0
	for i := range cmds {
		_, count, found := strings.Cut(string(outs[i]), "held ")
		n, _ := strconv.Atoi(strings.Fields(count + " x")[0])
		if errs[i] != nil || !found {
			t.Errorf("helper %d: %v\n%s", i, errs[i], outs[i])
		}
		total += n
	}
	if total < len(cmds) {
		t.Errorf("the lock was held only %d times in all", total)
	}
}

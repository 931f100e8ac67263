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
	if err := os.WriteFile(path, h.marshal(0), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-age)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func lockToken(t *testing.T, path string) string {
	t.Helper()
	h, _ := lockRecord(t, path)
	return h.token
}

func lockRecord(t *testing.T, path string) (lockHolder, lockState) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseLock(data)
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
	// Neither can it for a record another host is writing right now.
	if err := os.WriteFile(lockPath, []byte("postoffice-pop3-lock 1\nhost th"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, s)
	if _, state := lockRecord(t, lockPath); state != stateUnknown {
		t.Errorf("a refused Open changed the lock (state %d)", state)
	}
}

func TestLockStaleLeaseTakenOver(t *testing.T) {
	for name, content := range map[string][]byte{
		"other host": lockHolder{host: "there", pid: 1, token: "theirs"}.marshal(0),
		"unreadable": []byte("\x00\x00\x00"),
	} {
		t.Run(name, func(t *testing.T) {
			s, _, lockPath := lockFixture(t)
			if err := os.WriteFile(lockPath, content, 0o600); err != nil {
				t.Fatal(err)
			}
			stale := time.Now().Add(-2 * testLease)
			if err := os.Chtimes(lockPath, stale, stale); err != nil {
				t.Fatal(err)
			}
			md := open(t, s, alice)
			if got := lockToken(t, lockPath); got != md.lease.token {
				t.Errorf("lock token %q after takeover, want ours %q", got, md.lease.token)
			}
			md.Close()
			if _, state := lockRecord(t, lockPath); state != stateFree {
				t.Errorf("lock after Close: state %d, want free", state)
			}
		})
	}
}

// On this host (this kernel), a record under a free flock was left by a
// session that ended without releasing it: it is taken over at once,
// whatever its lease, its process (gone, reused, this one) or the host
// name a container on this kernel gave it.
func TestLockLeftOnThisHostTakenOver(t *testing.T) {
	for name, h := range map[string]lockHolder{
		"process gone":      {host: "here", boot: bootID(), pid: 1 << 30, token: "dead"},
		"process reused":    {host: "here", boot: bootID(), pid: os.Getppid(), token: "parent"},
		"this process's id": {host: "here", boot: bootID(), pid: os.Getpid(), token: "earlier"},
		"another host name": {host: "container", boot: bootID(), pid: 7, token: "sibling"},
	} {
		t.Run(name, func(t *testing.T) {
			s, _, lockPath := lockFixture(t)
			writeLock(t, lockPath, h, 0)
			md := open(t, s, alice)
			if got := lockToken(t, lockPath); got != md.lease.token {
				t.Errorf("lock token %q after takeover, want ours %q", got, md.lease.token)
			}
			md.Close()
		})
	}
}

// Hosts sharing Maildirs over NFS often share a configured host name (the
// service's): a fresh record of another kernel is a live lease even under
// this host's name, and so is a record that names no kernel (an earlier
// design's, with a line this one does not write) until its lease runs out.
func TestLockSameNameOtherHostInUse(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id here: the host name is all there is")
	}
	s, _, lockPath := lockFixture(t)
	writeLock(t, lockPath, lockHolder{host: "here", boot: "another-kernel", pid: os.Getpid(), token: "node2"}, 0)
	wantInUse(t, s)
	old := "postoffice-pop3-lock 1\nhost here\npid 1\npidns pid:[4026531836]\ntoken old\n"
	if err := os.WriteFile(lockPath, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, s)
	stale := time.Now().Add(-2 * testLease)
	if err := os.Chtimes(lockPath, stale, stale); err != nil {
		t.Fatal(err)
	}
	md := open(t, s, alice)
	md.Close()
}

// The lock file stays, with its size, from session to session: taking
// and releasing the lock changes no directory and needs no new block.
func TestLockFileKept(t *testing.T) {
	s, _, lockPath := lockFixture(t)
	md := open(t, s, alice)
	first, err := os.Stat(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	md.Close()
	for range 3 {
		md := open(t, s, alice)
		if h, state := lockRecord(t, lockPath); state != stateHeld || h.token != md.lease.token || h.host != "here" || h.pid != os.Getpid() {
			t.Errorf("lock while held: %+v, state %d", h, state)
		}
		md.Close()
		info, err := os.Stat(lockPath)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(first, info) || info.Size() != first.Size() || info.Size() != recordSize {
			t.Errorf("lock file changed: size %d, same file %t; want %d, true", info.Size(), os.SameFile(first, info), recordSize)
		}
		if _, state := lockRecord(t, lockPath); state != stateFree {
			t.Errorf("lock after Close: state %d, want free", state)
		}
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

func TestParseLock(t *testing.T) {
	held := lockHolder{host: "mx1.example.org", boot: "66223054-c587-419c-b14d-02d2c6b82396", pid: 4242, token: "abc"}
	for _, tc := range []struct {
		name  string
		data  string
		want  lockHolder
		state lockState
	}{
		{"record", string(held.marshal(0)), held, stateHeld},
		{"padded to more", string(held.marshal(700)), held, stateHeld},
		{"new file", "", lockHolder{}, stateFree},
		{"released", string(freeRecord(0)), lockHolder{}, stateFree},
		// A shorter record over a longer one: the tail is not read.
		{"over a longer one", string(held.marshal(0)) + "token other\n", held, stateHeld},
		{"free over a record", lockMagic + "\nfree\n\nhost x\npid 1\ntoken y\n", lockHolder{}, stateFree},
		{"no token", lockMagic + "\nhost x\n\ntoken y\n", lockHolder{host: "x"}, stateUnknown},
		{"no boot id", lockMagic + "\nhost x\npid 2\ntoken y\n", lockHolder{host: "x", pid: 2, token: "y"}, stateHeld},
		{"garbage", "garbage", lockHolder{}, stateUnknown},
		{"zeros", "\x00\x00", lockHolder{}, stateUnknown},
		{"cut short", lockMagic[:5], lockHolder{}, stateUnknown},
	} {
		got, state := parseLock([]byte(tc.data))
		if got != tc.want || state != tc.state {
			t.Errorf("%s: parseLock = %+v, %d; want %+v, %d", tc.name, got, state, tc.want, tc.state)
		}
	}
	if n := len(freeRecord(700)); n != 700 {
		t.Errorf("free record padded to %d octets, want 700", n)
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

// FuzzParseLock: any content parses without a panic; a held record has a
// token; a record as this package writes it reads back as written,
// whatever follows it in the file.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte(lockHolder{host: "mx1", boot: "b", pid: 7, token: "abc"}.marshal(0)), "mx1", "b", 7, "abc")
	f.Add(freeRecord(0), "", "", 0, "")
	f.Add([]byte(lockMagic+"\nhost x"), "h\x00", "", -1, "t")
	f.Fuzz(func(t *testing.T, data []byte, host, boot string, pid int, token string) {
		if h, state := parseLock(data); state == stateHeld && h.token == "" {
			t.Fatalf("parseLock(%q) = %+v, held without a token", data, h)
		}
		if _, state := parseLock(append(freeRecord(0), data...)); state != stateFree {
			t.Fatalf("a free record followed by %q: state %d", data, state)
		}
		if token == "" || strings.ContainsRune(host+boot+token, '\n') {
			return
		}
		want := lockHolder{host: host, boot: boot, pid: pid, token: token}
		if got, state := parseLock(append(want.marshal(0), data...)); got != want || state != stateHeld {
			t.Fatalf("round trip of %+v followed by %q: %+v, state %d", want, data, got, state)
		}
	})
}

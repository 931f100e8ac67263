package fetch

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/postoffice once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "postoffice")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/postoffice")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestCrash kills "postoffice fetch" (the real binary, SIGKILL) at random
// moments of a 1,000-message download, again and again, then lets a run
// finish, and checks that every message arrived exactly once: into a
// Maildir deleting from the server, and into an mbox keeping them there.
// The kills are bounded in number (crashKills per destination) and time.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, dest := range []string{"maildir", "mbox"} {
		t.Run(dest, func(t *testing.T) {
			crashRun(t, bin, dest)
		})
	}
}

const (
	crashMessages = 1000
	crashKills    = 20
	crashBudget   = 40 * time.Second
)

var seqHeader = regexp.MustCompile(`(?m)^X-Seq: (\d+)$`)

func crashRun(t *testing.T, bin, dest string) {
	ts := newServer(t)
	for i := 1; i <= crashMessages; i++ {
		body := strings.Repeat(fmt.Sprintf("line %d of message %d\n", i%7, i), 1+i%5)
		if i%50 == 0 {
			body += ".\n..dots\nFrom here\n"
		}
		ts.deliver(fmt.Sprintf("X-Seq: %d\nSubject: crash test\n\n%s", i, body))
	}
	dir := t.TempDir()
	target := filepath.Join(dir, "Maildir")
	destLine := fmt.Sprintf("maildir = %q", target)
	keep := false
	if dest == "mbox" {
		target = filepath.Join(dir, "mbox")
		destLine = fmt.Sprintf("mbox = %q\nkeep = true", target)
		keep = true
	}
	conf := filepath.Join(dir, "fetch.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`state_dir = %q
[[account]]
name = "crash"
server = "127.0.0.1"
port = %d
tls = "implicit"
ca_file = %q
tls_server_name = "localhost"
user = "alice"
password = "wonderland"
%s
`, filepath.Join(dir, "state"), port(ts.tls), ts.caFile, destLine)), 0o600)

	deadline := time.Now().Add(crashBudget)
	killed, midway, recovered := 0, 0, 0
	recoveredLine := regexp.MustCompile(`(\d+) messages delivered by an interrupted run were recorded`)
	countRecovered := func(stderr string) {
		for _, m := range recoveredLine.FindAllStringSubmatch(stderr, -1) {
			var n int
			fmt.Sscan(m[1], &n)
			recovered += n
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for attempt := 0; killed < crashKills && time.Now().Before(deadline); attempt++ {
		cmd := exec.Command(bin, "fetch", "-config", conf, "-quiet")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// A quarter of the kills come at a random early moment (login,
		// listing, recovery); the rest at a random moment once this run
		// has delivered something, so that most land mid-download.
		before := delivered(t, dest, target)
		var delay <-chan time.Time
		if attempt%4 == 0 {
			delay = time.After(time.Duration(rng.IntN(30)+1) * time.Millisecond)
		} else {
			delay = afterProgress(t, dest, target, before, time.Duration(rng.IntN(20))*time.Millisecond)
		}
		select {
		case err := <-done:
			countRecovered(stderr.String())
			// The run finished before the kill: fine, if it succeeded.
			code := exitCode(err)
			if code != ExitFetched && code != ExitNoMail && code != ExitTempFail {
				t.Fatalf("run %d exited %d: %s", attempt, code, stderr.String())
			}
			if code == ExitNoMail && !keep {
				t.Fatalf("nothing left to fetch after %d kills; make the runs longer", killed)
			}
			if code == ExitNoMail {
				// keep mode: everything recorded; restart from scratch is
				// not possible, so stop killing.
				attempt = 1 << 20
			}
		case <-delay:
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			countRecovered(stderr.String())
			killed++
			if n := delivered(t, dest, target); n > 0 && n < crashMessages {
				midway++
			}
		}
	}
	t.Logf("%s: %d kills, %d of them with the download under way; recovery found %d delivered messages without a record", dest, killed, midway, recovered)
	if midway == 0 {
		t.Fatal("no run was killed in the middle of the download")
	}
	// Now let it finish (a run may still meet the server's lock of the
	// killed session, a temporary failure; a few tries suffice).
	for try := 0; ; try++ {
		out, err := exec.Command(bin, "fetch", "-config", conf, "-quiet").CombinedOutput()
		countRecovered(string(out))
		code := exitCode(err)
		if code == ExitFetched || code == ExitNoMail {
			break
		}
		if code != ExitTempFail || try == 5 {
			t.Fatalf("final run exited %d: %s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every message exactly once.
	var contents []string
	if dest == "maildir" {
		contents = maildirMessages(t, target)
		dirEmpty(t, filepath.Join(target, "tmp"))
	} else {
		data, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}
		contents = strings.Split(string(data), "\nFrom MAILER-DAEMON ")
	}
	count := make(map[string]int)
	for _, c := range contents {
		for _, m := range seqHeader.FindAllStringSubmatch(c, -1) {
			count[m[1]]++
		}
	}
	for i := 1; i <= crashMessages; i++ {
		if n := count[fmt.Sprint(i)]; n != 1 {
			t.Errorf("message %d arrived %d times", i, n)
		}
	}
	if len(count) != crashMessages {
		t.Errorf("%d distinct messages, want %d", len(count), crashMessages)
	}
	wantOnServer := 0
	if keep {
		wantOnServer = crashMessages
	}
	if n := ts.onServer(); n != wantOnServer {
		t.Errorf("%d messages on the server, want %d", n, wantOnServer)
	}
	readState(t, &Config{StateDir: filepath.Join(dir, "state")}, "crash")
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// delivered counts the messages in the destination so far.
func delivered(t *testing.T, dest, target string) int {
	if dest == "maildir" {
		names, _ := readNames(filepath.Join(target, "new"))
		return len(names)
	}
	data, _ := os.ReadFile(target)
	return bytes.Count(data, []byte("From MAILER-DAEMON "))
}

// afterProgress fires extra after the destination holds more than
// before messages (or after a second, whichever is first).
func afterProgress(t *testing.T, dest, target string, before int, extra time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		limit := time.Now().Add(time.Second)
		for time.Now().Before(limit) && delivered(t, dest, target) <= before {
			time.Sleep(500 * time.Microsecond)
		}
		time.Sleep(extra)
		ch <- time.Now()
	}()
	return ch
}

package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fetchmail exit codes (fetchmail(1), EXIT CODES).
const (
	fetchmailGotMail = 0
	fetchmailNoMail  = 1
)

// TestFetchmail runs fetchmail three times against one maildrop, over
// plain POP3, STLS and implicit TLS:
//
//  1. keep, uidl: downloads every message with "TOP n 99999999" (how
//     fetchmail fetches unless fetchall is set) and leaves them;
//  2. the same again: the unique ids tell it there is nothing new;
//  3. fetchall, no keep: downloads every message with RETR and deletes
//     them all.
func TestFetchmail(t *testing.T) {
	fetchmail := need(t, "fetchmail")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []string{"plain", "stls", "implicit"} {
			t.Run(tr, func(t *testing.T) {
				t.Parallel()
				site := newSite(t)
				site.deliverAll(alice)
				srv := launch(t, site, options{})
				fm := newFetchmail(t, fetchmail, srv, tr)

				got := fm.run(fetchmailGotMail, "keep")
				fm.wantDownloads(got, testMessages)
				fm.wantCommand("TOP 1 99999999")
				site.wantMaildrop(alice, testMessages...)

				got = fm.run(fetchmailNoMail, "keep")
				fm.wantDownloads(got, nil)
				site.wantMaildrop(alice, testMessages...)

				got = fm.run(fetchmailGotMail, "no keep", "fetchall")
				fm.wantDownloads(got, testMessages)
				fm.wantCommand("RETR 6")
				site.wantMaildrop(alice)
				srv.wantTLSSessions(t, tr != "plain")
			})
		}
	})
}

// fetchmailClient runs fetchmail with a fresh rcfile each time, sharing
// one home directory (and so one idfile with the unique ids seen).
type fetchmailClient struct {
	t              *testing.T
	path           string
	home           string
	srv            *server
	transport      string
	user, password string // alice's unless a test changes them
	// pollOptions are server options for the poll line, such as
	// "auth cram-md5".
	pollOptions string
	lastTrace   string
}

func newFetchmail(t *testing.T, path string, srv *server, transport string) *fetchmailClient {
	return &fetchmailClient{t: t, path: path, home: t.TempDir(), srv: srv, transport: transport, user: alice, password: alicePassword}
}

// run runs fetchmail once with the given extra rcfile options, expecting
// the given exit code, and returns the messages its MDA received.
func (f *fetchmailClient) run(wantExit int, opts ...string) [][]byte {
	f.t.Helper()
	out := f.t.TempDir()
	rcfile, rc := f.configure(saveMDA(out), opts...)
	// -v -v prints the protocol trace (without message contents) for
	// failure messages and wantCommand.
	r := run(f.t, command{env: f.env()}, f.path, f.args(rcfile)...)
	f.lastTrace = string(r.stdout) + string(r.stderr)
	if r.exitCode != wantExit {
		f.t.Fatalf("fetchmail %s: want exit status %d\nrcfile:\n%s\n%s", strings.Join(opts, " "), wantExit, rc, r.output())
	}
	return readMessages(f.t, out)
}

// saveMDA is an MDA command line that writes each message to its own file
// in dir, unchanged.
func saveMDA(dir string) string {
	return fmt.Sprintf(`cat > "$(mktemp %s/msg.XXXXXX)"`, dir)
}

// configure writes an rcfile that delivers with the MDA shell command and
// returns its path and content.
func (f *fetchmailClient) configure(mdaCommand string, opts ...string) (string, string) {
	f.t.Helper()
	port, tls := f.srv.plainPort(), ""
	switch f.transport {
	case "plain":
		// An empty sslproto keeps fetchmail from using the STLS the
		// server offers.
		tls = `sslproto ''`
	case "stls":
		// fetchmail checks the certificate's DNS names only, not its
		// IP addresses: sslcommonname names the one to expect.
		tls = fmt.Sprintf(`sslproto 'tls1.2+' sslcertck sslcertfile %q sslcommonname localhost`, f.srv.caFile)
	case "implicit":
		port = f.srv.tlsPort()
		tls = fmt.Sprintf(`ssl sslproto 'tls1.2+' sslcertck sslcertfile %q sslcommonname localhost`, f.srv.caFile)
	}
	// The MDA is a script, which spares the rcfile's quoting rules.
	mda := filepath.Join(f.home, "mda.sh")
	if err := os.WriteFile(mda, []byte("#!/bin/sh\n"+mdaCommand+"\n"), 0o700); err != nil {
		f.t.Fatal(err)
	}
	// "no stripcr": with an MDA fetchmail would otherwise turn CRLF into
	// LF (fetchmail(1), stripcr); "no rewrite": it would otherwise edit
	// addresses in the header; "no mimedecode" is the default, stated.
	// With these, fetchmail passes on what the server sent, plus its
	// Received: field.
	rc := fmt.Sprintf(`set no syslog
set idfile %q
set pidfile %q
poll 127.0.0.1 protocol pop3 port %s uidl timeout 30 %s
  user %q there with password %q
  %s
  no rewrite no stripcr no mimedecode
  mda %q
  %s
`, filepath.Join(f.home, "fetchids"), filepath.Join(f.home, "fetchmail.pid"), port, f.pollOptions,
		f.user, f.password, tls, mda, strings.Join(opts, " "))
	rcfile := filepath.Join(f.home, "fetchmailrc")
	// fetchmail refuses an rcfile others can read.
	if err := os.WriteFile(rcfile, []byte(rc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return rcfile, rc
}

// env is fetchmail's environment: its own home, for the idfile and
// anything else it keeps. As root fetchmail warns, but runs.
func (f *fetchmailClient) env() []string {
	return []string{"HOME=" + f.home, "FETCHMAILHOME=" + f.home}
}

// args runs fetchmail in the foreground, once, logging to stderr with
// the protocol trace (-v -v: commands and replies, not message contents).
func (f *fetchmailClient) args(rcfile string) []string {
	return []string{"--nodetach", "--nosyslog", "-v", "-v", "-f", rcfile}
}

// readMessages returns the contents of the files in dir.
func readMessages(t *testing.T, dir string) [][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, e := range entries {
		got = append(got, readFile(t, dir, e.Name()))
	}
	return got
}

// wantCommand checks that the last run sent a command, to be sure which
// download path (TOP or RETR) was tested.
func (f *fetchmailClient) wantCommand(cmd string) {
	f.t.Helper()
	if !strings.Contains(f.lastTrace, "> "+cmd+"\n") {
		f.t.Errorf("fetchmail did not send %q:\n%s", cmd, f.lastTrace)
	}
}

// wantDownloads compares what fetchmail delivered with msgs. fetchmail
// prepends one Received: field, which is removed before comparing; with
// "no stripcr" the rest is what the server sent.
func (f *fetchmailClient) wantDownloads(got [][]byte, msgs []message) {
	f.t.Helper()
	var stripped [][]byte
	for _, g := range got {
		s, err := stripAddedHeader(g)
		if err != nil {
			f.t.Errorf("fetchmail: %v", err)
			continue
		}
		stripped = append(stripped, s)
	}
	if diff := compareSets(wires(msgs), stripped); diff != "" {
		f.t.Errorf("fetchmail downloads: %s\ntrace:\n%s", diff, f.lastTrace)
	}
}

// TestFetchmailKilled drops a connection the way a real client does when
// it dies: fetchmail, told to delete what it downloads, is killed while
// its MDA is still busy with the second message, after it has sent DELE
// for the first. The session ends without QUIT, so the server must remove
// nothing (RFC 1939 §6), and must release the maildrop at once, so that
// the next run downloads and deletes everything.
func TestFetchmailKilled(t *testing.T) {
	fetchmail := need(t, "fetchmail")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		t.Parallel()
		site := newSite(t)
		site.deliverAll(alice)
		srv := launch(t, site, options{})
		fm := newFetchmail(t, fetchmail, srv, "plain")

		out := t.TempDir()
		stalled := filepath.Join(fm.home, "stalled")
		// The MDA saves each message; from the second one on it then
		// signals and waits to be killed.
		rcfile, _ := fm.configure(fmt.Sprintf(`%s
[ "$(ls %s | wc -l)" -ge 2 ] && touch %s && exec sleep 60
exit 0`, saveMDA(out), out, stalled), "no keep")

		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, fm.path, fm.args(rcfile)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}, fm.env()...)
		trace := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = trace, trace
		killProcessGroup(cmd)
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "fetchmail's MDA to stall", func() bool {
			_, err := os.Stat(stalled)
			return err == nil
		})
		if !strings.Contains(trace.String(), "> DELE 1\n") {
			t.Errorf("fetchmail did not send DELE 1 before the second message:\n%s", trace)
		}
		cancel() // kills fetchmail and its MDA
		cmd.Wait()

		// The server notices the dropped connection and ends the session
		// without applying the deletion.
		waitFor(t, "the server to end the dropped session", func() bool {
			return strings.Contains(srv.logs.String(), "quit=false")
		})
		site.wantMaildrop(alice, testMessages...)

		fresh := newFetchmail(t, fetchmail, srv, "plain")
		fresh.wantDownloads(fresh.run(fetchmailGotMail, "no keep"), testMessages)
		site.wantMaildrop(alice)
	})
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

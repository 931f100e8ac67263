package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mpopOK is mpop's exit status for success (EX_OK; mpop(1) uses the
// sysexits.h codes).
const mpopOK = 0

// TestMpop runs mpop three times against one maildrop, with pipelining
// (mpop sends its RETR and DELE commands in bursts when the server
// announces PIPELINING), delivering into a Maildir, over plain POP3, STLS
// and implicit TLS:
//
//  1. --keep=on: downloads every message and leaves them;
//  2. --keep=on again: the unique ids tell it there is nothing new;
//  3. --keep=off --only-new=off: downloads every message again and
//     deletes them all.
func TestMpop(t *testing.T) {
	mpop := need(t, "mpop")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []string{"plain", "stls", "implicit"} {
			t.Run(tr, func(t *testing.T) {
				t.Parallel()
				site := newSite(t)
				site.deliverAll(alice)
				srv := launch(t, site, options{})
				mp := newMpop(t, mpop, srv, tr)

				mp.wantDownloads(mp.run("--keep=on"), testMessages)
				mp.wantPipelined("RETR")
				site.wantMaildrop(alice, testMessages...)

				mp.wantDownloads(mp.run("--keep=on"), nil)
				site.wantMaildrop(alice, testMessages...)

				mp.wantDownloads(mp.run("--keep=off", "--only-new=off"), testMessages)
				mp.wantPipelined("DELE")
				site.wantMaildrop(alice)
				srv.wantTLSSessions(t, tr != "plain")
			})
		}
	})
}

// mpopClient runs mpop from the command line (no configuration file),
// sharing one UIDs file between runs.
type mpopClient struct {
	t         *testing.T
	path      string
	home      string
	srv       *server
	transport string
	lastTrace string
}

func newMpop(t *testing.T, path string, srv *server, transport string) *mpopClient {
	return &mpopClient{t: t, path: path, home: t.TempDir(), srv: srv, transport: transport}
}

// run runs mpop once with extra options and returns the messages it
// delivered into a fresh Maildir.
func (m *mpopClient) run(opts ...string) [][]byte {
	m.t.Helper()
	maildir := filepath.Join(m.t.TempDir(), "Maildir")
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			m.t.Fatal(err)
		}
	}
	args := []string{
		"--host=127.0.0.1",
		"--user=" + alice,
		"--passwordeval=echo '" + alicePassword + "'",
		// USER/PASS, which mpop otherwise only picks by itself over TLS.
		"--auth=user",
		"--pipelining=on",
		"--timeout=30",
		"--delivery=maildir," + maildir,
		"--uidls-file=" + filepath.Join(m.home, "uidls"),
		// The whole conversation, for wantPipelined and failures.
		"--debug",
	}
	switch m.transport {
	case "plain":
		args = append(args, "--port="+m.srv.plainPort(), "--tls=off")
	case "stls":
		args = append(args, "--port="+m.srv.plainPort(), "--tls=on", "--tls-starttls=on", "--tls-trust-file="+m.srv.caFile)
	case "implicit":
		args = append(args, "--port="+m.srv.tlsPort(), "--tls=on", "--tls-starttls=off", "--tls-trust-file="+m.srv.caFile)
	}
	args = append(args, opts...)
	r := run(m.t, command{env: []string{"HOME=" + m.home, "USER=interop"}}, m.path, args...)
	m.lastTrace = conversation(string(r.stdout))
	if r.exitCode != mpopOK {
		m.t.Fatalf("mpop %s: %s\nconversation:\n%s", strings.Join(args, " "), r.output(), m.lastTrace)
	}
	return append(readMessages(m.t, filepath.Join(maildir, "new")), readMessages(m.t, filepath.Join(maildir, "cur"))...)
}

// wantDownloads compares what mpop delivered with msgs, after removing
// the Received: field mpop prepends (mpop(1), received_header). mpop
// stores mail with local (Unix) line ends: whatever the delivery method
// (maildir or mda; seen with mpop 1.4.18, and it has no option to keep
// CRLF) it writes every CRLF it receives as LF. So the expected downloads
// are compared with CRLF → LF, and only here; that the server sends CRLF
// is checked byte for byte by the curl, poplib and fetchmail tests.
func (m *mpopClient) wantDownloads(got [][]byte, msgs []message) {
	m.t.Helper()
	want := make([][]byte, len(msgs))
	for i, msg := range msgs {
		want[i] = toLF(msg.wire())
	}
	var stripped [][]byte
	for _, g := range got {
		s, err := stripAddedHeader(g)
		if err != nil {
			m.t.Errorf("mpop: %v", err)
			continue
		}
		stripped = append(stripped, s)
	}
	if diff := compareSets(want, stripped); diff != "" {
		m.t.Errorf("mpop downloads: %s\nconversation:\n%s", diff, m.lastTrace)
	}
}

// wantPipelined checks that mpop sent a burst of commands (cmd, such as
// "RETR" or "DELE") before reading the replies, so that the server's
// answering of several commands from one read was tested.
func (m *mpopClient) wantPipelined(cmd string) {
	m.t.Helper()
	burst := 0
	for _, line := range strings.Split(m.lastTrace, "\n") {
		if strings.HasPrefix(line, "--> "+cmd+" ") {
			if burst++; burst >= 2 {
				return
			}
		} else {
			burst = 0
		}
	}
	m.t.Errorf("mpop sent no two %s commands in a row:\n%s", cmd, m.lastTrace)
}

// conversation keeps the protocol lines of mpop's --debug output and
// drops the message contents it also prints.
func conversation(debug string) string {
	var keep []string
	for _, line := range strings.Split(debug, "\n") {
		if strings.HasPrefix(line, "<-- ") || strings.HasPrefix(line, "--> ") {
			if len(line) > 120 {
				line = line[:120] + "..."
			}
			keep = append(keep, line)
		}
	}
	if len(keep) > 200 {
		keep = append(keep[:100], append([]string{"[...]"}, keep[len(keep)-100:]...)...)
	}
	return strings.Join(keep, "\n")
}

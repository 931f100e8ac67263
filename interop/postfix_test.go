package interop

import (
	"bytes"
	"context"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postfixMainCF returns the main.cf block of docs/delivery.md, so that the
// documented configuration is the tested one, with the LMTP address
// pointed at the test's server.
func postfixMainCF(t *testing.T, lmtpAddr string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/delivery.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- postfix main.cf: begin")
	if ok {
		block, _, ok = strings.Cut(block, "<!-- postfix main.cf: end -->")
	}
	if ok {
		_, block, ok = strings.Cut(block, "```\n")
	}
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok || !strings.Contains(block, "127.0.0.1:24\n") {
		t.Fatalf("docs/delivery.md has no usable Postfix main.cf block")
	}
	return strings.ReplaceAll(block, "127.0.0.1:24\n", lmtpAddr+"\n")
}

// postfixInstance is a private Postfix: its own configuration, queue and
// data directories, listening for SMTP on one loopback port, started as
// root with "postfix -c DIR start" and stopped (and removed) when the test
// ends.
type postfixInstance struct {
	dir  string
	smtp string // host:port
}

// startPostfix starts Postfix with the documented main.cf block plus the
// settings a private test instance needs: nothing is shared with a system
// Postfix, nothing leaves loopback (no DNS: no client name lookups, and
// everything that is not for the test domain goes to the error
// transport), and retries come quickly.
func startPostfix(t *testing.T, docBlock string) *postfixInstance {
	t.Helper()
	postfix := need(t, "postfix")
	if os.Geteuid() != 0 {
		if os.Getenv(interopEnv) == "1" {
			t.Fatal("the Postfix test must run as root (postfix start needs it)")
		}
		t.Skip("the Postfix test needs root")
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("no postfix user: %v (the Debian package creates it)", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)

	// Postfix's daemons run as the postfix user and must reach the queue,
	// so the instance lives in a directory of its own that they can
	// traverse, not in the test's private temporary directory.
	dir, err := os.MkdirTemp("", "postoffice-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
	}
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		t.Fatal(err)
	}
	inst := &postfixInstance{dir: dir, smtp: fmt.Sprintf("127.0.0.1:%d", freePort(t))}

	mainCF := fmt.Sprintf(`# A private Postfix instance for postoffice's interop test.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = mx.example.test
mydomain = example.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
alias_maps =
alias_database =
default_transport = error:no mail leaves this test instance
relay_transport = error:no mail leaves this test instance
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
# From docs/delivery.md:
%[2]s`, dir, docBlock)
	masterCF := inst.smtp + ` inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { inst.stop(t, postfix) })
	r := run(t, command{}, postfix, "-c", dir, "start")
	if r.exitCode != 0 {
		t.Fatalf("postfix start: %s\nmaillog:\n%s", r.output(), inst.maillog())
	}
	// The master daemon starts its listener right away; wait for SMTP.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := smtp.Dial(inst.smtp)
		if err == nil {
			c.Quit()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix does not answer on %s: %v\nmaillog:\n%s", inst.smtp, err, inst.maillog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return inst
}

func (p *postfixInstance) maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// stop stops the instance and waits for its master process to go (at most
// 20 seconds, then it is killed by its pid), and removes its directory.
func (p *postfixInstance) stop(t *testing.T, postfix string) {
	pidFile := filepath.Join(p.dir, "queue", "pid", "master.pid")
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exec.CommandContext(ctx, postfix, "-c", p.dir, "stop").Run()
	for pid > 0 && syscall.Kill(pid, 0) == nil {
		if ctx.Err() != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("Postfix master %d did not stop; killed", pid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if t.Failed() {
		t.Logf("Postfix maillog:\n%s", p.maillog())
	}
	os.RemoveAll(p.dir)
}

// TestPostfixLMTP relays mail through a real Postfix — SMTP in, its lmtp
// transport out, configured as docs/delivery.md says — into postoffice,
// and fetches it with Python's poplib: the message arrives byte for byte,
// behind the trace fields, with the size POP3 announces; an unknown
// recipient is refused at RCPT and Postfix bounces it.
func TestPostfixLMTP(t *testing.T) {
	python := need(t, "python3")
	t.Parallel()
	site := newSite(t)
	srv := startDeliveryBinary(t, site, "")
	pf := startPostfix(t, postfixMainCF(t, srv.lmtp))

	if err := smtp.SendMail(pf.smtp, nil, "sender@example.net",
		[]string{"alice@example.org", "carol+news@example.org", "nobody@example.org"}, []byte(lmtpMessage)); err != nil {
		t.Fatalf("SMTP to Postfix: %v", err)
	}

	// Postfix delivers within a second or two.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, _ := os.ReadDir(filepath.Join(site.maildir(alice), "new"))
		c, _ := os.ReadDir(filepath.Join(site.maildir(carol), "new"))
		log := pf.maillog()
		if len(a) == 1 && len(c) == 1 && strings.Contains(log, "nobody@example.org") && strings.Contains(log, "status=bounced") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix did not deliver within 30s (alice %d, carol %d)\nmaillog:\n%s", len(a), len(c), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log := pf.maillog(); !strings.Contains(log, "to=<nobody@example.org>") || !strings.Contains(log, "said: 550 5.1.1 No such user here (in reply to RCPT TO command)") {
		t.Errorf("Postfix's log does not show the RCPT refusal:\n%s", log)
	}

	for _, who := range []struct{ user, password, rcpt string }{
		{alice, alicePassword, "alice@example.org"},
		{carol, carolPassword, "carol+news@example.org"},
	} {
		spec := poplibConnect(srv.server, "plain")
		spec.User, spec.Password = who.user, who.password
		res := runPoplib(t, python, spec)
		if len(res.List) != 1 {
			t.Fatalf("%s: LIST %q, want one message", who.user, res.List)
		}
		got := string(readFile(t, res.outdir, "1.eml"))
		if _, size, _ := strings.Cut(res.List[0], " "); size != strconv.Itoa(len(got)) {
			t.Errorf("%s: LIST announced %s octets, RETR sent %d", who.user, size, len(got))
		}
		// Postfix adds its own Received field (one MTA hop).
		checkDelivered(t, got, lmtpMessage, "sender@example.net", who.rcpt, 1)
		if !bytes.Contains([]byte(got), []byte("by mx.example.test (Postfix) with ")) {
			t.Errorf("%s: no Postfix Received field in %q", who.user, got)
		}
	}
}

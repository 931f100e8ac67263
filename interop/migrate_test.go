package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// "postoffice migrate" as an administrator runs it: Maildirs with mail
// (one message already retrieved and flagged by a mail client) are copied
// into PostgreSQL, and a node serving from PostgreSQL shows every message
// under the unique id the Maildir server showed, in the same order, with
// the same content. A second run copies nothing.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	bin := postofficeBinary(t)
	s := newSite(t)
	md, err := maildir.New(maildir.Config{Location: filepath.Join(s.mailRoot, "{user}", "Maildir")})
	if err != nil {
		t.Fatal(err)
	}
	acct := store.Account{Name: alice}
	for i := range 5 {
		if _, err := md.Deliver(t.Context(), acct, strings.NewReader(fmt.Sprintf("Subject: migrated %d\n\nbody %d\n", i, i))); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := md.Open(t.Context(), acct)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, m := range sess.Messages() {
		want = append(want, fmt.Sprintf("%d %s", i+1, m.UID))
	}
	sess.Commit(t.Context(), nil, []int{0})
	sess.Close()

	dsn := pgCluster.Database(t)
	cfg := filepath.Join(s.dir, "migrate.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[pop3]\nlisten_tls = []\n[users]\npasswd_file = %q\n[maildir]\nlocation = %q\n[postgres]\ndsn = %q\n",
		s.passwd, filepath.Join(s.mailRoot, "{user}", "Maildir"), dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("postoffice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("db", "migrate", "-config", cfg)
	out := run("migrate", "-config", cfg, "-to", "postgres", "-all")
	t.Logf("postoffice migrate:\n%s", out)
	if !strings.Contains(out, "2 of 2 maildrops migrated from maildir to postgres: 5 messages") {
		t.Errorf("migrate output:\n%s", out)
	}
	if out := run("migrate", "-config", cfg, "-to", "postgres", "-all"); !strings.Contains(out, "0 messages (0 B) copied, 5 already there") {
		t.Errorf("second run:\n%s", out)
	}
	run("db", "import-users", "-config", cfg, s.passwd)

	n := startNode(t, bin, "migrated", dsn, nodeOptions{})
	p := dialPOP(t, n.pop3, "")
	if r := p.login(alice, alicePassword); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login: %q", r)
	}
	if got := p.multi("UIDL"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("UIDL after migration = %q, the Maildir server said %q", got, want)
	}
	if msg := strings.Join(p.multi("RETR 3"), "\n"); !strings.Contains(msg, "Subject: migrated 2") {
		t.Errorf("RETR 3:\n%s", msg)
	}
	p.cmd("QUIT")
}

package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurl drives curl's POP3 support: LIST, UIDL and RETR through URLs,
// TOP and DELE as custom commands (-X), over plain POP3, STLS and
// implicit TLS. curl writes what it receives without the byte-stuffing and
// the terminating ".", and changes nothing else.
func TestCurl(t *testing.T) {
	curl := need(t, "curl")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []struct {
			name string
			url  func(*server) string
			args []string
		}{
			{"plain", func(s *server) string { return "pop3://" + s.plain }, nil},
			// --ssl-reqd: STLS or fail, never fall back to plaintext.
			{"stls", func(s *server) string { return "pop3://" + s.plain }, []string{"--ssl-reqd"}},
			{"implicit", func(s *server) string { return "pop3s://" + s.tls }, nil},
		} {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				site := newSite(t)
				site.deliverAll(alice)
				srv := launch(t, site, options{})
				base := tr.url(srv)
				c := &curlClient{t: t, path: curl, args: append([]string{
					"--silent", "--show-error",
					// The certificate is checked against this CA; curl
					// verifies by default, and its name (127.0.0.1) must
					// match too.
					"--cacert", srv.caFile,
					"--user", alice + ":" + alicePassword,
				}, tr.args...)}
				testCurlSession(t, c, base, site)
				srv.wantTLSSessions(t, tr.name != "plain")
			})
		}
	})
}

func testCurlSession(t *testing.T, c *curlClient, base string, site *site) {
	// LIST: curl prints the multi-line body.
	var list strings.Builder
	for i, m := range testMessages {
		fmt.Fprintf(&list, "%d %d\r\n", i+1, m.size())
	}
	wantSame(t, "LIST", []byte(list.String()), c.run(base+"/"))

	// UIDL as a custom command.
	uidl := c.run("-X", "UIDL", base+"/")
	uids := parseUIDL(t, uidl, len(testMessages))

	// RETR every message in one session: curl reuses the connection
	// for URLs of the same server, so this is also six RETRs in a row.
	dir := t.TempDir()
	args := []string{}
	for i := range testMessages {
		args = append(args, base+fmt.Sprintf("/%d", i+1), "--output", filepath.Join(dir, fmt.Sprint(i+1)))
	}
	c.run(args...)
	for i, m := range testMessages {
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		wantSame(t, "RETR "+m.name, m.wire(), got)
	}

	// TOP with a custom command: the header and one body line of the
	// dot-stuffed message.
	wantSame(t, "TOP 2 1", testMessages[1].top(1), c.run("-X", "TOP 2 1", base+"/"))
	wantSame(t, "TOP 5 0", testMessages[4].top(0), c.run("-X", "TOP 5 0", base+"/"))

	// DELE: single-line reply, so --head (no body expected); curl then
	// sends QUIT and the server removes the message (RFC 1939 §6).
	c.run("-X", "DELE", "--head", base+"/1")
	site.wantMaildrop(alice, testMessages[1:]...)

	// The other messages keep their unique ids, and message 1 is gone.
	again := parseUIDL(t, c.run("-X", "UIDL", base+"/"), len(testMessages)-1)
	for i := range again {
		if again[i] != uids[i+1] {
			t.Errorf("after DELE 1, message %d has unique id %q, was %q as message %d", i+1, again[i], uids[i+1], i+2)
		}
	}
}

// curlClient runs curl with a fixed set of options.
type curlClient struct {
	t    *testing.T
	path string
	args []string
}

// run runs curl and returns its output; it fails the test if curl failed.
func (c *curlClient) run(args ...string) []byte {
	c.t.Helper()
	all := append(append([]string{}, c.args...), args...)
	r := run(c.t, command{}, c.path, all...)
	if r.exitCode != 0 {
		c.t.Fatalf("curl %s: %s", strings.Join(args, " "), r.output())
	}
	return r.stdout
}

// parseUIDL parses an RFC 1939 UIDL listing ("n uid" lines, CRLF) of
// count messages numbered from 1, checks the unique ids are valid and
// distinct (RFC 1939 §7: 1 to 70 octets from 0x21 to 0x7E), and returns
// them in message order.
func parseUIDL(t *testing.T, listing []byte, count int) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(listing), "\r\n"), "\r\n")
	if len(listing) == 0 {
		lines = nil
	}
	if len(lines) != count {
		t.Fatalf("UIDL listed %d messages, want %d: %q", len(lines), count, listing)
	}
	seen := map[string]bool{}
	uids := make([]string, count)
	for i, line := range lines {
		n, uid, ok := strings.Cut(line, " ")
		if !ok || n != fmt.Sprint(i+1) {
			t.Fatalf("UIDL line %q, want message number %d", line, i+1)
		}
		if !validUID(uid) {
			t.Errorf("UIDL: unique id %q is not 1 to 70 octets in 0x21..0x7E", uid)
		}
		if seen[uid] {
			t.Errorf("UIDL: unique id %q appears twice", uid)
		}
		seen[uid] = true
		uids[i] = uid
	}
	return uids
}

func validUID(uid string) bool {
	if len(uid) < 1 || len(uid) > 70 {
		return false
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < 0x21 || uid[i] > 0x7e {
			return false
		}
	}
	return true
}

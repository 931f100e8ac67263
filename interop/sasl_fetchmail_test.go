package interop

import (
	"strings"
	"testing"
)

// TestFetchmailSASL runs fetchmail 6.4 against servers that announce SASL
// mechanisms, over plain POP3, STLS and implicit TLS. Of the mechanisms
// postoffice offers, fetchmail's POP3 code speaks only CRAM-MD5 (plus
// Kerberos, GSSAPI, NTLM, OTP and RPA, which postoffice does not offer).
// With every mechanism offered:
//
//   - "auth cram-md5": AUTH CRAM-MD5, for carol, whose secret is stored in
//     plaintext;
//   - "auth any" (the default) for carol: fetchmail picks CRAM-MD5 itself;
//   - "auth password": USER/PASS, no AUTH at all;
//   - "auth any" for alice, whose password is hashed: fetchmail tries
//     CRAM-MD5, which fails (and counts as a failed login), then falls back
//     to USER/PASS, which works.
//
// With the default mechanisms (PLAIN, LOGIN), "auth password" and "auth any"
// both log in with USER/PASS: fetchmail has no PLAIN or LOGIN for POP3
// (checked over STLS only).
func TestFetchmailSASL(t *testing.T) {
	fetchmail := need(t, "fetchmail")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []string{"plain", "stls", "implicit"} {
			t.Run(tr, func(t *testing.T) {
				t.Parallel()
				t.Run("all-mechanisms", func(t *testing.T) {
					site, srv, _ := saslSite(t, launch)
					for _, c := range []struct {
						name, user, password, auth string
						// sent are commands fetchmail must send, in
						// order; notSent one it must not.
						sent    []string
						notSent string
					}{
						{"cram-md5", carol, carolPassword, "auth cram-md5", []string{"AUTH CRAM-MD5"}, "USER carol"},
						{"any-chooses-cram-md5", carol, carolPassword, "", []string{"AUTH CRAM-MD5"}, "USER carol"},
						{"password", alice, alicePassword, "auth password", []string{"USER alice"}, "AUTH"},
						// Last: the failed CRAM-MD5 delays the next
						// login from this address (the binary's
						// penalty).
						{"any-falls-back", alice, alicePassword, "", []string{"AUTH CRAM-MD5", "USER alice"}, ""},
					} {
						t.Run(c.name, func(t *testing.T) {
							failures := strings.Count(srv.logs.String(), failedLogin)
							fm := newFetchmail(t, fetchmail, srv, tr)
							fm.user, fm.password, fm.pollOptions = c.user, c.password, c.auth
							fm.wantDownloads(fm.run(fetchmailGotMail, "keep"), saslMessages)
							wantFetchmailSent(t, fm.lastTrace, c.sent, c.notSent)
							site.wantMaildrop(c.user, saslMessages...)
							wantFailures := failures
							if c.name == "any-falls-back" {
								wantFailures++
								// The binary's log arrives through a pipe.
								waitFor(t, "the failed CRAM-MD5 login in the log", func() bool {
									return strings.Count(srv.logs.String(), failedLogin) >= wantFailures
								})
							}
							if got := strings.Count(srv.logs.String(), failedLogin); got != wantFailures {
								t.Errorf("the server logged %d failed logins, want %d", got-failures, wantFailures-failures)
							}
						})
					}
					srv.wantTLSSessions(t, tr != "plain")
				})
				// fetchmail reads the capabilities the same way over
				// every transport; STLS is what it uses whenever
				// offered.
				if tr != "stls" {
					return
				}
				t.Run("default-mechanisms", func(t *testing.T) {
					site := newSite(t)
					site.deliver(alice, saslMessages...)
					srv := launch(t, site, options{})
					for _, auth := range []string{"auth password", ""} {
						fm := newFetchmail(t, fetchmail, srv, tr)
						fm.pollOptions = auth
						fm.wantDownloads(fm.run(fetchmailGotMail, "keep"), saslMessages)
						wantFetchmailSent(t, fm.lastTrace, []string{"USER alice"}, "AUTH")
					}
					if strings.Contains(srv.logs.String(), failedLogin) {
						t.Errorf("the server logged a failed login")
					}
					srv.wantTLSSessions(t, tr != "plain")
				})
			})
		}
	})
}

// wantFetchmailSent checks fetchmail's -v -v trace: the commands of sent
// were sent in that order, and none starting with notSent.
func wantFetchmailSent(t *testing.T, trace string, sent []string, notSent string) {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(trace, "\n") {
		if _, cmd, ok := strings.Cut(line, "POP3> "); ok {
			cmds = append(cmds, cmd)
		}
	}
	next := 0
	for _, cmd := range cmds {
		if next < len(sent) && (cmd == sent[next] || strings.HasPrefix(cmd, sent[next]+" ")) {
			next++
		}
		if notSent != "" && strings.HasPrefix(cmd, notSent) {
			t.Errorf("fetchmail sent %q\n%s", cmd, strings.Join(cmds, "\n"))
		}
	}
	if next < len(sent) {
		t.Errorf("fetchmail did not send %q (in this order); it sent:\n%s", sent, strings.Join(cmds, "\n"))
	}
}

package interop

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mpopNoPerm is mpop's exit status when authentication fails (EX_NOPERM
// from sysexits.h).
const mpopNoPerm = 77

// TestMpopSASL logs in with mpop's SASL support (GNU SASL for SCRAM and
// PLAIN, its own code for OAUTHBEARER and XOAUTH2), over plain POP3, STLS
// and implicit TLS, and downloads both messages after each login; then
// checks that a wrong SCRAM password and wrong tokens fail cleanly.
//
// mpop 1.4.18 has no SCRAM-SHA-256-PLUS (--auth rejects the name, and
// its SCRAM sends "n,," without channel binding even over TLS), so the
// -PLUS variant the server offers over TLS is left unused here.
func TestMpopSASL(t *testing.T) {
	mpop := need(t, "mpop")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []string{"plain", "stls", "implicit"} {
			t.Run(tr, func(t *testing.T) {
				t.Parallel()
				_, srv, idp := saslSite(t, launch)
				token := idp.issue(alice)
				// Left to itself, mpop takes PLAIN over TLS and the
				// strongest mechanism it knows without it.
				chosen := "AUTH PLAIN"
				if tr == "plain" {
					chosen = "AUTH SCRAM-SHA-256"
				}
				for _, c := range []struct {
					name, user, secret, auth string
					// want is the AUTH command mpop must send: the
					// mechanism, and for those that send an initial
					// response a space after it.
					want string
				}{
					{"scram-sha-256-stored", sam, samPassword, "scram-sha-256", "AUTH SCRAM-SHA-256"},
					// carol's {PLAIN} secret gives SCRAM credentials
					// derived on the fly.
					{"scram-sha-256-derived", carol, carolPassword, "scram-sha-256", "AUTH SCRAM-SHA-256"},
					{"scram-sha-1-derived", carol, carolPassword, "scram-sha-1", "AUTH SCRAM-SHA-1"},
					{"plain", alice, alicePassword, "plain", "AUTH PLAIN"},
					{"oauthbearer", alice, token, "oauthbearer", "AUTH OAUTHBEARER "},
					{"xoauth2", alice, token, "xoauth2", "AUTH XOAUTH2"},
					{"chosen", sam, samPassword, "", chosen},
				} {
					t.Run(c.name, func(t *testing.T) {
						r, trace, got := runMpopSASL(t, mpop, srv, tr, c.user, c.secret, c.auth)
						if r.exitCode != mpopOK {
							t.Fatalf("mpop: %s\nconversation:\n%s", r.output(), trace)
						}
						wantMpopAuth(t, trace, c.want)
						if strings.HasPrefix(c.want, "AUTH SCRAM") {
							wantMpopSCRAMEnd(t, trace)
						}
						(&mpopClient{t: t, lastTrace: trace}).wantDownloads(got, saslMessages)
					})
				}
				// Failures last, each on a server of its own: a failure
				// delays the next login from this address (the
				// binary's penalty), which would only make the test
				// slower.
				for i, c := range []struct {
					name, user, secret, auth, want string
				}{
					{"scram-wrong-password", sam, "not " + samPassword, "scram-sha-256", "AUTH SCRAM-SHA-256"},
					// RFC 7628 §3.2.2: the JSON error comes as a
					// challenge; mpop answers it, then the server
					// ends the exchange with -ERR.
					{"oauthbearer-wrong-token", alice, "at.not-issued", "oauthbearer", "AUTH OAUTHBEARER "},
					{"xoauth2-wrong-token", alice, "at.not-issued", "xoauth2", "AUTH XOAUTH2"},
				} {
					t.Run(c.name, func(t *testing.T) {
						srv := srv
						if i > 0 {
							_, srv, _ = saslSite(t, launch)
						}
						failures := strings.Count(srv.logs.String(), failedLogin)
						r, trace, got := runMpopSASL(t, mpop, srv, tr, c.user, c.secret, c.auth)
						if r.exitCode != mpopNoPerm {
							t.Errorf("mpop: want exit status %d (authentication failed)\n%s\nconversation:\n%s", mpopNoPerm, r.output(), trace)
						}
						if len(got) != 0 {
							t.Errorf("mpop delivered %d messages after a failed login", len(got))
						}
						wantMpopAuth(t, trace, c.want)
						// RFC 2449 §8.1.1 (RFC 3206): [AUTH] tells the
						// client its credentials were refused (a token
						// to refresh, a password to ask for again).
						if !strings.Contains(trace, "\n<-- -ERR [AUTH] ") {
							t.Errorf("the server did not end the exchange with -ERR [AUTH]:\n%s\nmpop: %s", trace, r.stderr)
						}
						wantFailedLogin(t, srv, failures)
					})
				}
				idp.wantAsked(t)
				srv.wantTLSSessions(t, tr != "plain")
			})
		}
	})
}

// runMpopSASL runs mpop once, keeping the messages on the server, with a
// fresh home (so it downloads everything) and a fresh Maildir. secret is
// the password or the bearer token; auth is the --auth method, "" for
// mpop's own choice. It returns mpop's result, the conversation and the
// messages delivered.
func runMpopSASL(t *testing.T, mpop string, srv *server, transport, user, secret, auth string) (result, string, [][]byte) {
	t.Helper()
	home := t.TempDir()
	maildir := filepath.Join(home, "Maildir")
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{
		"--host=127.0.0.1",
		"--user=" + user,
		// Secrets here have no quote or backslash.
		"--passwordeval=echo '" + secret + "'",
		"--keep=on",
		"--timeout=30",
		"--delivery=maildir," + maildir,
		"--uidls-file=" + filepath.Join(home, "uidls"),
		"--debug",
	}
	if auth != "" {
		args = append(args, "--auth="+auth)
	}
	switch transport {
	case "plain":
		args = append(args, "--port="+srv.plainPort(), "--tls=off")
	case "stls":
		args = append(args, "--port="+srv.plainPort(), "--tls=on", "--tls-starttls=on", "--tls-trust-file="+srv.caFile)
	case "implicit":
		args = append(args, "--port="+srv.tlsPort(), "--tls=on", "--tls-starttls=off", "--tls-trust-file="+srv.caFile)
	}
	r := run(t, command{env: []string{"HOME=" + home, "USER=interop"}}, mpop, args...)
	got := append(readMessages(t, filepath.Join(maildir, "new")), readMessages(t, filepath.Join(maildir, "cur"))...)
	return r, strings.ReplaceAll(conversation(string(r.stdout)), "\r", ""), got
}

// wantMpopAuth checks that the AUTH command mpop sent starts with want
// ("AUTH X" must be the whole command, "AUTH X " must have an initial
// response) and, for a command without one, that the server's first
// challenge was the empty "+ " of RFC 5034 §4.
func wantMpopAuth(t *testing.T, trace, want string) {
	t.Helper()
	lines := strings.Split(trace, "\n")
	for i, line := range lines {
		cmd, ok := strings.CutPrefix(line, "--> AUTH ")
		if !ok {
			continue
		}
		cmd = "AUTH " + cmd
		if strings.HasSuffix(want, " ") {
			if !strings.HasPrefix(cmd, want) || len(cmd) == len(want) {
				t.Errorf("mpop sent %q, want %q with an initial response\n%s", cmd, want, trace)
			}
			return
		}
		if cmd != want {
			t.Errorf("mpop sent %q, want %q\n%s", cmd, want, trace)
		} else if i+1 >= len(lines) || lines[i+1] != "<-- + " {
			t.Errorf("after %q the server did not send the empty challenge \"+ \"\n%s", cmd, trace)
		}
		return
	}
	t.Errorf("mpop sent no AUTH command, want %q\n%s", want, trace)
}

// wantMpopSCRAMEnd checks the end of a SCRAM exchange as GNU SASL wants
// it: the server-final message ("v=...") as a "+ " challenge, an empty
// response, then +OK.
func wantMpopSCRAMEnd(t *testing.T, trace string) {
	t.Helper()
	lines := strings.Split(trace, "\n")
	for i, line := range lines {
		// Long lines are cut short in the conversation: they do not
		// decode, and are not the short server-final message.
		challenge, _ := strings.CutPrefix(line, "<-- + ")
		if b, err := base64.StdEncoding.DecodeString(challenge); err != nil || !strings.HasPrefix(string(b), "v=") {
			continue
		}
		if i+2 >= len(lines) || lines[i+1] != "--> " || !strings.HasPrefix(lines[i+2], "<-- +OK") {
			t.Errorf("after the SCRAM server-final challenge: want an empty response and +OK\n%s", trace)
		}
		return
	}
	t.Errorf("no SCRAM server-final challenge (v=...)\n%s", trace)
}

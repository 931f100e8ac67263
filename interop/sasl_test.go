package interop

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
)

// The SASL tests (RFC 5034 AUTH) use, besides alice and carol, a user whose
// passwd-file entry holds SCRAM-SHA-256 credentials rather than a
// password: only SCRAM and the plaintext mechanisms can log her in.
const (
	sam         = "sam"
	samPassword = "salt and pepper 7"
)

// saslMechanisms is what the SASL tests offer: every mechanism a real
// client here speaks, in the order the server lists them. The server
// leaves out SCRAM-SHA-256-PLUS where there is no TLS.
var saslMechanisms = []string{
	"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "OAUTHBEARER", "XOAUTH2",
}

// saslOffered is the SASL capability the server must announce with
// saslMechanisms, with or without TLS.
func saslOffered(tls bool) []string {
	var out []string
	for _, m := range saslMechanisms {
		if m != "SCRAM-SHA-256-PLUS" || tls {
			out = append(out, m)
		}
	}
	return out
}

// addUser adds a user to the site's passwd-file, with the password
// stored in the given scheme, and makes the user's maildrop.
func (s *site) addUser(name, password, scheme string) {
	s.t.Helper()
	if err := passwdfile.Add(s.passwd, name, password, scheme, s.dir); err != nil {
		s.t.Fatal(err)
	}
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.maildir(name), sub), 0o700); err != nil {
			s.t.Fatal(err)
		}
	}
}

// saslSite is a site for the SASL tests: alice, carol and sam, each with
// two messages (one with dot-stuffed lines, one with 8-bit octets), and
// a server offering saslMechanisms with OAuth tokens checked at a test
// introspection endpoint.
func saslSite(t *testing.T, launch launcher) (*site, *server, *oauthEndpoint) {
	t.Helper()
	site := newSite(t)
	site.addUser(sam, samPassword, "SCRAM-SHA-256")
	for _, u := range []string{alice, carol, sam} {
		site.deliver(u, saslMessages...)
	}
	idp := newOAuthEndpoint(t)
	srv := launch(t, site, options{mechanisms: saslMechanisms, oauth: idp})
	return site, srv, idp
}

// saslMessages are in every maildrop of saslSite.
var saslMessages = []message{testMessages[1], testMessages[3]}

// TestCurlSASL logs in with curl's SASL support, over plain POP3 (allowed
// on loopback), STLS and implicit TLS, and retrieves both messages byte
// for byte after each login. curl chooses the mechanism itself from the
// server's SASL capability unless --login-options AUTH=... names one; it
// sends an initial response only with --sasl-ir. The trace (-v) shows the
// AUTH command curl actually sent.
func TestCurlSASL(t *testing.T) {
	curl := need(t, "curl")
	t.Parallel()
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, tr := range []struct {
			name string
			url  func(*server) string
			args []string
		}{
			{"plain", func(s *server) string { return "pop3://" + s.plain }, nil},
			{"stls", func(s *server) string { return "pop3://" + s.plain }, []string{"--ssl-reqd"}},
			{"implicit", func(s *server) string { return "pop3s://" + s.tls }, nil},
		} {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				_, srv, idp := saslSite(t, launch)
				token := idp.issue(alice)
				base := tr.url(srv)
				login := func(user, password string, args ...string) []string {
					return append([]string{"--user", user + ":" + password}, args...)
				}
				bearer := func(token string, args ...string) []string {
					return append([]string{"--user", alice, "--oauth2-bearer", token}, args...)
				}
				testCurlLogins(t, curl, srv, base, tr.args, []curlLogin{
					{"plain-ir", login(alice, alicePassword, "--sasl-ir", "--login-options", "AUTH=PLAIN"), "AUTH PLAIN", true},
					{"plain", login(alice, alicePassword, "--login-options", "AUTH=PLAIN"), "AUTH PLAIN", false},
					{"login", login(alice, alicePassword, "--login-options", "AUTH=LOGIN"), "AUTH LOGIN", false},
					{"cram-md5", login(carol, carolPassword, "--login-options", "AUTH=CRAM-MD5"), "AUTH CRAM-MD5", false},
					// Left to itself, curl takes CRAM-MD5 whenever it is
					// offered: fine for carol, whose secret is stored
					// in plaintext (alice's login would fail).
					{"cram-md5-chosen", login(carol, carolPassword), "AUTH CRAM-MD5", false},
					{"oauthbearer", bearer(token, "--login-options", "AUTH=OAUTHBEARER"), "AUTH OAUTHBEARER", false},
					{"oauthbearer-ir", bearer(token, "--sasl-ir", "--login-options", "AUTH=OAUTHBEARER"), "AUTH OAUTHBEARER", true},
					// With a bearer token curl 7.88 takes OAUTHBEARER
					// when offered, whatever --login-options says.
					{"oauthbearer-chosen", bearer(token, "--login-options", "AUTH=XOAUTH2"), "AUTH OAUTHBEARER", false},
				}, []curlLogin{
					// RFC 7628 §3.2.2: the server answers with a JSON
					// error as a challenge, the client acknowledges
					// with 0x01, the server ends with -ERR.
					{"oauthbearer-wrong-token", bearer("at.not-issued", "--login-options", "AUTH=OAUTHBEARER"), "AUTH OAUTHBEARER", false},
				})
				idp.wantAsked(t)
				srv.wantTLSSessions(t, tr.name != "plain")

				// XOAUTH2 needs a server that does not offer
				// OAUTHBEARER, which curl would take instead.
				site := newSite(t)
				site.deliver(alice, saslMessages...)
				idp = newOAuthEndpoint(t)
				token = idp.issue(alice)
				srv = launch(t, site, options{mechanisms: []string{"PLAIN", "LOGIN", "XOAUTH2"}, oauth: idp})
				base = tr.url(srv)
				testCurlLogins(t, curl, srv, base, tr.args, []curlLogin{
					{"xoauth2", bearer(token, "--login-options", "AUTH=XOAUTH2"), "AUTH XOAUTH2", false},
					{"xoauth2-ir", bearer(token, "--sasl-ir"), "AUTH XOAUTH2", true},
					// With a password and no preference curl takes
					// PLAIN over LOGIN, without an initial response.
					{"plain-chosen", login(alice, alicePassword), "AUTH PLAIN", false},
				}, []curlLogin{
					// curl does not answer the error challenge: it
					// closes the connection, exit status 67.
					{"xoauth2-wrong-token", bearer("at.not-issued"), "AUTH XOAUTH2", false},
				})
				idp.wantAsked(t)
				srv.wantTLSSessions(t, tr.name != "plain")
			})
		}
	})
}

// curlLogin is one curl login: its options, and the AUTH command curl
// must send (its first words, and whether an initial response follows on
// the same line).
type curlLogin struct {
	name string
	args []string
	auth string
	ir   bool
}

// testCurlLogins runs each login of good, retrieving saslMessages after
// it, then each of bad, which must fail.
func testCurlLogins(t *testing.T, curl string, srv *server, base string, transport []string, good, bad []curlLogin) {
	t.Helper()
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			trace := curlRetrieveAll(t, curl, srv, base, transport, c.args)
			wantCurlAuth(t, trace, c.auth, c.ir)
		})
	}
	// Failures last: each delays the next login from this address
	// (the binary's brute-force penalty).
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			failures := strings.Count(srv.logs.String(), failedLogin)
			r := curlRun(t, curl, srv, transport, append(c.args, base+"/1"))
			trace := curlTrace(r)
			// 67: CURLE_LOGIN_DENIED.
			if r.exitCode != 67 {
				t.Errorf("curl with a wrong token: want exit status 67 (login denied)\n%s\ntrace:\n%s", r.output(), trace)
			}
			if len(r.stdout) != 0 {
				t.Errorf("curl with a wrong token wrote %d octets of mail", len(r.stdout))
			}
			wantCurlAuth(t, trace, c.auth, c.ir)
			wantOAuthErrorChallenge(t, trace, c.auth == "AUTH OAUTHBEARER")
			wantFailedLogin(t, srv, failures)
		})
	}
}

// Log messages of the server.
const (
	failedLogin  = `msg="authentication failed"`
	sessionEnded = `msg="session ended"`
)

// wantFailedLogin checks that the server logged one more failed login
// than the failures it had logged before a client's attempt, once the
// session that failed has ended. The log line is what fail2ban acts on,
// and the brute-force defence counts the same failures: a refused token
// or password must count even when the client hangs up instead of
// answering the error challenge, since the challenge already told it the
// outcome.
//
// It waits for the end of a session logged after the last failure, not
// for any session to end: another session than the client's (another
// subtest's on a shared server) may end in between.
func wantFailedLogin(t *testing.T, srv *server, failures int) {
	t.Helper()
	waitFor(t, "a failed login to be logged and its session to end", func() bool {
		logs := srv.logs.String()
		last := strings.LastIndex(logs, failedLogin)
		return strings.Count(logs, failedLogin) > failures && strings.Contains(logs[last:], sessionEnded)
	})
	if got := strings.Count(srv.logs.String(), failedLogin); got != failures+1 {
		var last []string
		for _, line := range strings.Split(srv.logs.String(), "\n") {
			if strings.Contains(line, " session=") {
				last = append(last, line)
			}
		}
		t.Errorf("the server logged %d failed logins for the attempt, want 1; its last lines:\n%s", got-failures, strings.Join(last[max(0, len(last)-3):], "\n"))
	}
}

// curlRun runs curl -v with the server's CA and the given options.
func curlRun(t *testing.T, curl string, srv *server, transport, args []string) result {
	t.Helper()
	all := append([]string{"--verbose", "--silent", "--show-error", "--cacert", srv.caFile}, transport...)
	return run(t, command{}, curl, append(all, args...)...)
}

// curlRetrieveAll logs in with args and retrieves saslMessages in one
// session, comparing them byte for byte. It returns curl's trace.
func curlRetrieveAll(t *testing.T, curl string, srv *server, base string, transport, args []string) string {
	t.Helper()
	dir := t.TempDir()
	args = append([]string{}, args...)
	for i := range saslMessages {
		args = append(args, fmt.Sprintf("%s/%d", base, i+1), "--output", filepath.Join(dir, fmt.Sprint(i+1)))
	}
	r := curlRun(t, curl, srv, transport, args)
	trace := curlTrace(r)
	if r.exitCode != 0 {
		t.Fatalf("curl %s: %s\ntrace:\n%s", strings.Join(args, " "), r.output(), trace)
	}
	for i, m := range saslMessages {
		wantSame(t, "RETR "+m.name, m.wire(), readFile(t, dir, fmt.Sprint(i+1)))
	}
	return trace
}

// curlTrace keeps the protocol lines of curl -v: "> " what it sent, "< "
// what it received.
func curlTrace(r result) string {
	var keep []string
	for _, line := range strings.Split(string(r.stderr), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "> ") || strings.HasPrefix(line, "< ") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// wantCurlAuth checks that curl sent the AUTH command auth, with an
// initial response or without. Without one, a mechanism where the client
// speaks first must get the empty challenge "+ " (RFC 5034 §4).
func wantCurlAuth(t *testing.T, trace, auth string, ir bool) {
	t.Helper()
	clientFirst := !strings.Contains(auth, "LOGIN") && !strings.Contains(auth, "CRAM-MD5")
	lines := strings.Split(trace, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "> AUTH ") {
			continue
		}
		cmd := strings.TrimPrefix(line, "> ")
		switch {
		case ir && !strings.HasPrefix(cmd, auth+" "):
			t.Errorf("curl sent %q, want %q with an initial response\n%s", cmd, auth, trace)
		case !ir && cmd != auth:
			t.Errorf("curl sent %q, want %q without an initial response\n%s", cmd, auth, trace)
		case !ir && clientFirst && (i+1 >= len(lines) || lines[i+1] != "< + "):
			t.Errorf("after %q the server did not send the empty challenge \"+ \"\n%s", cmd, trace)
		}
		return
	}
	t.Errorf("curl sent no AUTH command, want %q\n%s", auth, trace)
}

// wantOAuthErrorChallenge checks the end of a refused OAuth exchange in a
// trace: a "+ " challenge carrying the RFC 7628 JSON error, then, if the
// client answered it (OAUTHBEARER), -ERR.
func wantOAuthErrorChallenge(t *testing.T, trace string, wantERR bool) {
	t.Helper()
	lines := strings.Split(trace, "\n")
	for i, line := range lines {
		challenge, ok := strings.CutPrefix(line, "< + ")
		if !ok || challenge == "" {
			continue
		}
		if !strings.Contains(string(decodeB64(t, challenge)), `"status":"invalid_token"`) {
			t.Errorf("error challenge %q does not carry status invalid_token", decodeB64(t, challenge))
		}
		if !wantERR {
			return
		}
		for _, later := range lines[i+1:] {
			if strings.HasPrefix(later, "< -ERR") {
				return
			}
		}
		t.Errorf("no -ERR after the error challenge\n%s", trace)
		return
	}
	t.Errorf("no RFC 7628 error challenge\n%s", trace)
}

// decodeB64 decodes a SASL challenge or response.
func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Errorf("%q is not base64: %v", s, err)
	}
	return b
}

// poplibAuthResult is what testdata/poplib_auth.py reports.
type poplibAuthResult struct {
	SASLBefore       []string `json:"sasl_before"`
	SASLTLS          []string `json:"sasl_tls"`
	AuthList         []string `json:"auth_list"`
	PlainEmptyIR     string   `json:"plain_empty_ir"`
	CancelChallenge  string   `json:"cancel_challenge"`
	Cancel           string   `json:"cancel"`
	UnknownMechanism string   `json:"unknown_mechanism"`
	Challenges       []string `json:"challenges"`
	Login            string   `json:"login"`
	SASLAfter        []string `json:"sasl_after"`
	SecondAuth       string   `json:"second_auth"`
	Stat             []int    `json:"stat"`
	Quit             string   `json:"quit"`
}

// TestPoplibSASL logs in with AUTH exchanges written by hand on top of
// Python's poplib (which has no AUTH of its own), over plain POP3, STLS
// and implicit TLS: PLAIN with and without an initial response, LOGIN
// with its two challenges, CRAM-MD5 and XOAUTH2; and, in the last
// session, what must fail: PLAIN with an empty initial response ("="),
// an exchange cancelled with "*", an unknown mechanism, a second AUTH
// after logging in. It checks the SASL capability before and after
// STLS and after login, and the bare AUTH listing.
func TestPoplibSASL(t *testing.T) {
	python := pythonExecutable(t, need(t, "python3"))
	t.Parallel()
	script, err := filepath.Abs(filepath.Join("testdata", "poplib_auth.py"))
	if err != nil {
		t.Fatal(err)
	}
	forEachLauncher(t, func(t *testing.T, launch launcher) {
		for _, mode := range []string{"plain", "stls", "ssl"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				_, srv, idp := saslSite(t, launch)
				token := idp.issue(alice)
				offered := saslOffered(mode != "plain")
				// Every exchange over plain POP3; over TLS, where only
				// the capabilities differ, those with a "+ " challenge.
				for _, c := range []struct {
					login, user, password string
					probes, everyMode     bool
					challenges            []string
				}{
					{"plain-ir", alice, alicePassword, false, false, nil},
					{"plain", alice, alicePassword, false, true, []string{""}},
					{"login", sam, samPassword, false, false, []string{"Username:", "Password:"}},
					{"cram-md5", carol, carolPassword, false, false, nil},
					{"xoauth2", alice, "", false, true, nil},
					// Last: its failures delay the next login from
					// this address (the binary's penalty).
					{"login", carol, carolPassword, true, true, []string{"Username:", "Password:"}},
				} {
					if mode != "plain" && !c.everyMode {
						continue
					}
					name := c.login + "-" + c.user
					if c.probes {
						name += "-probes"
					}
					t.Run(name, func(t *testing.T) {
						spec := poplibConnect(srv, mode)
						spec.OutDir = t.TempDir()
						arg, err := json.Marshal(map[string]any{
							"host": spec.Host, "port": spec.Port, "mode": mode, "cafile": spec.CAFile,
							"user": c.user, "password": c.password, "token": token,
							"login": c.login, "probes": c.probes, "outdir": spec.OutDir,
						})
						if err != nil {
							t.Fatal(err)
						}
						r := run(t, command{}, python, script, string(arg))
						if r.exitCode != 0 {
							t.Fatalf("poplib AUTH session %s: %s", arg, r.output())
						}
						var res poplibAuthResult
						if err := json.Unmarshal(r.stdout, &res); err != nil {
							t.Fatalf("poplib report: %v\n%s", err, r.output())
						}
						checkPoplibSASL(t, res, mode, offered, c.probes)
						if c.login == "cram-md5" {
							// RFC 2195: "<" unique "@" host ">".
							if len(res.Challenges) != 1 || !strings.HasPrefix(res.Challenges[0], "<") || !strings.HasSuffix(res.Challenges[0], "@localhost>") {
								t.Errorf("CRAM-MD5 challenge %q, want <...@localhost>", res.Challenges)
							}
						} else if !slices.Equal(res.Challenges, c.challenges) {
							t.Errorf("%s challenges %q, want %q", c.login, res.Challenges, c.challenges)
						}
						if !strings.HasPrefix(res.Login, "+OK") {
							t.Errorf("AUTH %s: %q", c.login, res.Login)
						}
						if want := []int{len(saslMessages), totalSize(saslMessages)}; !slices.Equal(res.Stat, want) {
							t.Errorf("STAT = %v, want %v", res.Stat, want)
						}
						wantSame(t, "RETR 1", saslMessages[0].wire(), readFile(t, spec.OutDir, "1.eml"))
						if !strings.HasPrefix(res.Quit, "+OK") {
							t.Errorf("QUIT: %q", res.Quit)
						}
					})
				}
				idp.wantAsked(t)
				srv.wantTLSSessions(t, mode != "plain")
			})
		}
	})
}

// checkPoplibSASL checks the capabilities and the refusals of a poplib
// AUTH session.
func checkPoplibSASL(t *testing.T, res poplibAuthResult, mode string, offered []string, probes bool) {
	t.Helper()
	before := offered
	if mode == "stls" {
		before = saslOffered(false)
		if !slices.Equal(res.SASLTLS, offered) {
			t.Errorf("CAPA after STLS: SASL %q, want %q", res.SASLTLS, offered)
		}
	}
	if !slices.Equal(res.SASLBefore, before) {
		t.Errorf("CAPA: SASL %q, want %q", res.SASLBefore, before)
	}
	if !slices.Equal(res.SASLAfter, offered) {
		t.Errorf("CAPA after login: SASL %q, want %q (RFC 2449 §6.3: it stays)", res.SASLAfter, offered)
	}
	if !strings.HasPrefix(res.SecondAuth, "-ERR") {
		t.Errorf("a second AUTH after login: %q, want -ERR", res.SecondAuth)
	}
	if !probes {
		return
	}
	if !slices.Equal(res.AuthList, offered) {
		t.Errorf("bare AUTH listed %q, want %q", res.AuthList, offered)
	}
	for what, reply := range map[string]string{
		"AUTH PLAIN =":       res.PlainEmptyIR,
		"AUTH LOGIN, then *": res.Cancel,
		"AUTH NO-SUCH-MECH":  res.UnknownMechanism,
	} {
		if !strings.HasPrefix(reply, "-ERR") {
			t.Errorf("%s: %q, want -ERR", what, reply)
		}
	}
	if res.CancelChallenge != "Username:" {
		t.Errorf("AUTH LOGIN challenge %q before the cancel, want \"Username:\"", res.CancelChallenge)
	}
}

// pythonExecutable returns the interpreter python runs: where python3 is
// a version manager's shim (pyenv's takes most of a second to start),
// this saves that for every session.
func pythonExecutable(t *testing.T, python string) string {
	t.Helper()
	r := run(t, command{}, python, "-c", "import sys; print(sys.executable)")
	path := strings.TrimSpace(string(r.stdout))
	if r.exitCode != 0 || !filepath.IsAbs(path) {
		return python
	}
	return path
}

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"

	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for host valid from
// notBefore to notAfter, and its key, as cert.pem and key.pem in dir.
func writeCert(t *testing.T, dir, host string, notBefore, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// checkSite is a complete, correct installation in a directory, which
// each test case then breaks in one way.
type checkSite struct {
	dir, config string
	extra       string // appended to the configuration
	location    string // maildir.location; "" for the default of the tests
}

func newCheckSite(t *testing.T) *checkSite {
	t.Helper()
	dir := t.TempDir()
	s := &checkSite{dir: dir, config: filepath.Join(dir, "postoffice.toml")}
	writeCert(t, dir, "pop.example.org", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	os.WriteFile(filepath.Join(dir, "passwd"), []byte("alice:{PLAIN}pw\nbob:{PLAIN}pw\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "mail"), 0o750)
	return s
}

func (s *checkSite) write(t *testing.T) {
	t.Helper()
	location := s.location
	if location == "" {
		location = "mail/{user}/Maildir"
	}
	doc := `[server]
hostname = "pop.example.org"
[pop3]
listen = ["127.0.0.1:1110"]
listen_tls = ["127.0.0.1:1995"]
[tls]
cert = "cert.pem"
key = "key.pem"
[users]
passwd_file = "passwd"
[maildir]
location = "` + location + `"
` + s.extra
	if err := os.WriteFile(s.config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, s *checkSite)
		args   []string
		code   int
		want   []string // in the output
	}{
		{"good", nil, nil, exitOK, []string{
			"ok       tls.cert: ", "pop.example.org, valid until",
			"ok       users.passwd_file: ", ": 2 users",
			"ok       maildir.location: ", "/mail exists, writable by",
			"127.0.0.1:1110               pop3   plain, STLS offered",
			"127.0.0.1:1995               pop3s  implicit TLS",
			"no problems",
		}},
		{"config errors, all listed", func(t *testing.T, s *checkSite) {
			s.extra = "[limits]\nidle_timeout = \"1m\"\nmax_line_length = 10\n"
		}, nil, exitConfig, []string{
			"postoffice.toml:14: limits.idle_timeout:", "postoffice.toml:15: limits.max_line_length:", "2 problem(s)",
		}},
		{"config syntax", func(t *testing.T, s *checkSite) { s.extra = "[limits\n" }, nil, exitConfig, []string{"postoffice.toml:13:8: expected ']'"}},
		{"certificate missing", func(t *testing.T, s *checkSite) { os.Remove(filepath.Join(s.dir, "cert.pem")) }, nil, exitConfig,
			[]string{"PROBLEM  tls.cert: stat ", "cert.pem: no such file"}},
		{"key of another certificate", func(t *testing.T, s *checkSite) {
			other := t.TempDir()
			writeCert(t, other, "pop.example.org", time.Now().Add(-time.Hour), time.Now().Add(time.Hour*24*90))
			data, _ := os.ReadFile(filepath.Join(other, "key.pem"))
			os.WriteFile(filepath.Join(s.dir, "key.pem"), data, 0o600)
		}, nil, exitConfig, []string{"PROBLEM  tls.cert:", "private key does not match public key"}},
		{"certificate expired", func(t *testing.T, s *checkSite) {
			writeCert(t, s.dir, "pop.example.org", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		}, nil, exitConfig, []string{"PROBLEM  tls.cert: ", "expired on"}},
		{"certificate expires soon", func(t *testing.T, s *checkSite) {
			writeCert(t, s.dir, "pop.example.org", time.Now().Add(-48*time.Hour), time.Now().Add(3*24*time.Hour))
		}, nil, exitOK, []string{"warning  tls.cert: ", "expires on", "in 2 days"}},
		{"certificate for another name", func(t *testing.T, s *checkSite) {
			writeCert(t, s.dir, "mail.example.net", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
		}, nil, exitOK, []string{`warning  tls.cert: does not name server.hostname "pop.example.org" (it names mail.example.net)`}},
		{"key readable by all", func(t *testing.T, s *checkSite) { os.Chmod(filepath.Join(s.dir, "key.pem"), 0o644) }, nil, exitConfig,
			[]string{"PROBLEM  tls.key: ", "is readable by every user (mode -rw-r--r--)"}},
		{"passwd-file bad lines", func(t *testing.T, s *checkSite) {
			os.WriteFile(filepath.Join(s.dir, "passwd"), []byte("alice:{PLAIN}pw\nbad user:{PLAIN}x\nbob:{NOSUCH}x\n"), 0o600)
		}, nil, exitConfig, []string{"passwd:2: ", "passwd:3: password of bob", "2 problem(s)"}},
		{"passwd-file readable by all", func(t *testing.T, s *checkSite) { os.Chmod(filepath.Join(s.dir, "passwd"), 0o644) }, nil, exitConfig,
			[]string{"PROBLEM  users.passwd_file: ", "readable by every user"}},
		{"passwd-file missing", func(t *testing.T, s *checkSite) { os.Remove(filepath.Join(s.dir, "passwd")) }, nil, exitConfig,
			[]string{"PROBLEM  users.passwd_file: stat "}},
		{"maildir root missing", func(t *testing.T, s *checkSite) { os.Remove(filepath.Join(s.dir, "mail")) }, nil, exitConfig,
			[]string{"PROBLEM  maildir.location: ", "/mail does not exist; create it"}},
		{"maildir root writable by all", func(t *testing.T, s *checkSite) { os.Chmod(filepath.Join(s.dir, "mail"), 0o777) }, nil, exitConfig,
			[]string{"PROBLEM  maildir.location: ", "writable by every user"}},
		{"files the run user cannot use", nil, []string{"-user", "nobody"}, exitConfig,
			[]string{"not writable by user nobody", "users.passwd_file: ", "not readable by user nobody"}},
		{"users without a home for {home}", func(t *testing.T, s *checkSite) {
			os.WriteFile(filepath.Join(s.dir, "passwd"), []byte("alice:{PLAIN}pw::::/home/alice\nbob:{PLAIN}pw\ncarol:{PLAIN}pw:::::: mail=/var/mail/carol\n"), 0o600)
			s.location = "{home}/Maildir"
		}, nil, exitConfig, []string{"PROBLEM  maildir.location: {home}/Maildir needs a home directory", "for bob\n"}},
		{"postgres unreachable", func(t *testing.T, s *checkSite) {
			s.extra = "[store]\nbackend = \"postgres\"\n[postgres]\ndsn = \"postgres://postoffice@127.0.0.1:1/mail?connect_timeout=2\"\n"
		}, nil, exitConfig, []string{"PROBLEM  postgres: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckSite(t)
			if tc.break_ != nil {
				tc.break_(t, s)
			}
			s.write(t)
			if len(tc.args) > 0 && os.Getuid() != 0 {
				t.Skip("checking for another user needs a test run as root")
			}
			stdout, stderr, code := runCmd(t, "", append([]string{"check", "-config", s.config}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if strings.Contains(stdout, "pw\n") || strings.Contains(stdout, "{PLAIN}") {
				t.Errorf("output shows a password:\n%s", stdout)
			}
		})
	}
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{{"check", "extra"}, {"check", "-user", "no-such-user-here"}, {"check", "-nope"}} {
		if _, stderr, code := runCmd(t, "", args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, stderr)
		}
	}
}

func TestMaildirRoot(t *testing.T) {
	for in, want := range map[string]string{
		"/var/mail/{user}/Maildir":  "/var/mail",
		"/var/mail/{domain}/{user}": "/var/mail",
		"/srv/m{user}":              "/srv",
		"{home}/Maildir":            ".",
	} {
		if got := maildirRoot(in); got != want {
			t.Errorf("maildirRoot(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

const demoUser = "demo"

// quickstartHelp is the help of "postoffice quickstart".
var quickstartHelp = &help{
	synopsis: []string{"quickstart [-dir DIR] [-port PORT] [-tls-port PORT]"},
	description: `Sets up a self-contained demonstration in a directory and serves it on
loopback: a configuration file, a self-signed certificate, a passwd-file
with the user "demo" and a welcome message in that user's Maildir. It
prints the demo password and a curl command that fetches the message, then
runs the server until Ctrl-C. Running it again reuses the directory, its
password and its mail. It is for trying postoffice out; for a real server,
see "postoffice serve".`,
	examples: []example{
		{"Create ./demo and serve it on 127.0.0.1:1110 (STLS) and 127.0.0.1:1995 (TLS).", "postoffice quickstart"},
		{"Another directory and other ports.", "postoffice quickstart -dir /tmp/po-demo -port 2110 -tls-port 2995"},
		{"Fetch the welcome message (with the password it printed).", "curl pop3://127.0.0.1:1110/1 --user demo:PASSWORD"},
	},
}

// runQuickstart sets up a self-contained demo in a directory (once) and
// serves it on loopback: a configuration file, a self-signed certificate,
// a passwd-file with a demo user and a welcome message in that user's
// Maildir. Running it again reuses the directory.
func runQuickstart(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("quickstart", quickstartHelp, stderr)
	dir := fs.String("dir", "demo", "`directory` for the demo's files")
	port := fs.Int("port", 1110, "loopback port for POP3 with STLS")
	tlsPort := fs.Int("tls-port", 1995, "loopback port for POP3 over implicit TLS")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return quickstart(ctx, *dir, *port, *tlsPort, stdout, stderr)
}

func quickstart(ctx context.Context, dir string, port, tlsPort int, stdout, stderr io.Writer) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	password, err := setUpDemo(ctx, dir, port, tlsPort)
	if err != nil {
		return fail(exitFailure, "set up %s: %v", dir, err)
	}
	cfg, err := config.Load(filepath.Join(dir, "postoffice.toml"))
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	return serve(ctx, cfg, stderr, func(plain, secure []net.Addr) {
		certFile := filepath.Join(dir, "cert.pem")
		fmt.Fprintf(stdout, `
postoffice demo server is running (files in %s)

  POP3 with STLS:     %s
  POP3 over TLS:      %s
  user:               %s
  password:           %s

Fetch the welcome message:

  curl pop3://%s/1 --user %s:%s
  curl --cacert %s pop3s://localhost:%d/1 --user %s:%s

The same setup runs with: postoffice serve -config %s
Press Ctrl-C to stop.

`, dir, plain[0], secure[0], demoUser, password,
			plain[0], demoUser, password,
			certFile, tlsPort, demoUser, password,
			filepath.Join(dir, "postoffice.toml"))
	})
}

// setUpDemo creates the demo's files unless they exist, and returns the
// demo user's password.
func setUpDemo(ctx context.Context, dir string, port, tlsPort int) (string, error) {
	passwordFile := filepath.Join(dir, "demo-password.txt")
	if pw, err := os.ReadFile(passwordFile); err == nil {
		return strings.TrimSpace(string(pw)), writeDemoConfig(dir, port, tlsPort)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if _, _, err := certs.WriteSelfSigned(dir, "localhost", "127.0.0.1", "::1"); err != nil {
		return "", err
	}
	password := randomPassword()
	passwd := filepath.Join(dir, "passwd")
	if err := passwdfile.Add(passwd, demoUser, password, "", ""); err != nil {
		return "", err
	}
	if err := writeDemoConfig(dir, port, tlsPort); err != nil {
		return "", err
	}
	mail, err := maildir.New(maildir.Config{Location: filepath.Join(dir, "mail", "{user}", "Maildir")})
	if err != nil {
		return "", err
	}
	if _, err := mail.Deliver(ctx, store.Account{Name: demoUser}, strings.NewReader(welcomeMessage())); err != nil {
		return "", err
	}
	// Written last: its presence means the demo is complete.
	return password, os.WriteFile(passwordFile, []byte(password+"\n"), 0o600)
}

func writeDemoConfig(dir string, port, tlsPort int) error {
	text := fmt.Sprintf(`# postoffice demo configuration, written by 'postoffice quickstart'.
# Every setting is described in docs/configuration.md.

[server]
hostname = "localhost"
state_dir = "state"

[pop3]
listen = ["127.0.0.1:%d"]
listen_tls = ["127.0.0.1:%d"]

[tls]
cert = "cert.pem"
key = "key.pem"

[users]
passwd_file = "passwd"

[maildir]
location = "%s"
`, port, tlsPort, filepath.Join(dir, "mail", "{user}", "Maildir"))
	return os.WriteFile(filepath.Join(dir, "postoffice.toml"), []byte(text), 0o600)
}

// randomPassword returns 16 characters from an alphabet without look-alike
// characters: about 80 bits.
func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
	return randomFrom(alphabet, 16)
}

// randomFrom picks n characters uniformly from alphabet (at most 256).
func randomFrom(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet) // reject bytes that would bias the pick
	out := make([]byte, 0, n)
	var b [1]byte
	for len(out) < n {
		rand.Read(b[:])
		if int(b[0]) < limit {
			out = append(out, alphabet[int(b[0])%len(alphabet)])
		}
	}
	return string(out)
}

func welcomeMessage() string {
	date := time.Now().Format(time.RFC1123Z)
	return "Return-Path: <postmaster@localhost>\n" +
		"From: postoffice <postmaster@localhost>\n" +
		"To: demo <demo@localhost>\n" +
		"Subject: Welcome to postoffice\n" +
		"Date: " + date + "\n" +
		"Message-ID: <welcome." + randomFrom("0123456789abcdef", 16) + "@localhost>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"\n" +
		"Hello!\n\n" +
		"This message was delivered into the demo user's Maildir by\n" +
		"'postoffice quickstart'. You fetched it over POP3.\n\n" +
		"Next steps:\n" +
		"  - add users with: postoffice user add -passwd-file demo/passwd NAME\n" +
		"  - read docs/configuration.md to run postoffice for real.\n" +
		".\n" +
		"(The line above is a lone dot: POP3 sends it stuffed as \"..\".)\n"
}

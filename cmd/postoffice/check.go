package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/config"
)

var checkCommandHelp = &help{
	synopsis: []string{"check [-config FILE] [-user NAME]"},
	description: `Checks a configuration before it is used: the file itself (every
problem with its file, line and setting), and the files and services it
names. The TLS certificate must be readable, match its key, be valid now
(a warning when it expires within 14 days) and name server.hostname (a
warning otherwise); its key must not be readable by others. Every line of
the passwd-file must parse, and the file must not be readable by others.
The fixed part of maildir.location must exist, be writable by the user the
server runs as (-user, by default the one running check) and not writable
by others; a location under {home} needs a home for every user. A PostgreSQL database must answer, with the schema this
postoffice needs, within 5 seconds.

It then prints what the server would listen on: address, protocol and TLS
mode. Every problem is listed, not only the first. The exit status is 0
when the configuration is usable (warnings allowed) and 78 (EX_CONFIG)
otherwise.`,
	examples: []example{
		{"Check the installed configuration for the postoffice user.", "postoffice check -config /etc/postoffice/postoffice.toml -user postoffice"},
		{"Check before a reload, then reload.", "postoffice check && systemctl reload postoffice"},
	},
}

// Thresholds of the checks.
const (
	certExpiryWarning = 14 * 24 * time.Hour
	checkDBTimeout    = 5 * time.Second
)

func runCheck(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", checkCommandHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	runAs := fs.String("user", "", "check permissions for this `user` (default: the user running check)")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if fs.NArg() > 0 {
		return fail(exitUsage, "unexpected argument %q", fs.Arg(0))
	}
	who, err := lookupServerUser(*runAs)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	r := &checkReport{out: stdout}
	cfg, err := config.Load(*configFile)
	if err != nil {
		var problems []error
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			problems = joined.Unwrap()
		} else {
			problems = []error{err}
		}
		for _, p := range problems {
			r.problem("%v", p)
		}
		return r.finish()
	}
	r.ok("%s: configuration file valid", *configFile)
	checkTLS(r, cfg, who)
	users := checkUsers(r, cfg, who)
	checkMaildir(r, cfg, who, users)
	checkPostgres(r, cfg)
	printListeners(r, cfg)
	return r.finish()
}

// checkReport collects the findings and prints them as they come.
type checkReport struct {
	out                io.Writer
	problems, warnings int
}

func (r *checkReport) ok(format string, args ...any) {
	fmt.Fprintf(r.out, "ok       "+format+"\n", args...)
}

func (r *checkReport) warn(format string, args ...any) {
	r.warnings++
	fmt.Fprintf(r.out, "warning  "+format+"\n", args...)
}

func (r *checkReport) problem(format string, args ...any) {
	r.problems++
	fmt.Fprintf(r.out, "PROBLEM  "+format+"\n", args...)
}

func (r *checkReport) info(format string, args ...any) {
	fmt.Fprintf(r.out, "         "+format+"\n", args...)
}

// finish prints the summary and returns the exit status: EX_CONFIG when
// there is a problem, already explained above.
func (r *checkReport) finish() error {
	if r.problems > 0 {
		fmt.Fprintf(r.out, "\n%d problem(s), %d warning(s): the server would not start, or not work, with this configuration\n", r.problems, r.warnings)
		return &exitError{code: exitConfig, err: errors.New("configuration has problems"), quiet: true}
	}
	fmt.Fprintf(r.out, "\nno problems, %d warning(s)\n", r.warnings)
	return nil
}

// serverUser is the user the server will run as.
type serverUser struct {
	name string
	uid  int
	gids []int
}

func lookupServerUser(name string) (*serverUser, error) {
	var u *user.User
	var err error
	if name == "" {
		u, err = user.Current()
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", name, err)
	}
	ru := &serverUser{name: u.Username}
	ru.uid, _ = strconv.Atoi(u.Uid)
	gids, _ := u.GroupIds()
	for _, g := range append([]string{u.Gid}, gids...) {
		if n, err := strconv.Atoi(g); err == nil {
			ru.gids = append(ru.gids, n)
		}
	}
	return ru, nil
}

// can reports whether the user has the permission bits in want (4 read,
// 2 write) on a file, by its owner, group and mode. Root can do
// anything.
func (u *serverUser) can(info fs.FileInfo, want fs.FileMode) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || u.uid == 0 {
		return true
	}
	mode := info.Mode().Perm()
	switch {
	case int(st.Uid) == u.uid:
		return mode>>6&want == want
	case containsInt(u.gids, int(st.Gid)):
		return mode>>3&want == want
	}
	return mode&want == want
}

func containsInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// checkReadable stats a file the server must read: it exists, is a
// regular file and the run user can read it.
func checkReadable(r *checkReport, setting, path string, who *serverUser) (fs.FileInfo, bool) {
	info, err := os.Stat(path)
	if err != nil {
		r.problem("%s: %v", setting, err)
		return nil, false
	}
	if !info.Mode().IsRegular() {
		r.problem("%s: %s is not a regular file", setting, path)
		return nil, false
	}
	if !who.can(info, 4) {
		r.problem("%s: %s is not readable by user %s (mode %v)", setting, path, who.name, info.Mode().Perm())
		return info, false
	}
	return info, true
}

func checkTLS(r *checkReport, cfg *config.Config, who *serverUser) {
	if cfg.TLS.Cert == "" {
		if len(cfg.POP3.Listen) > 0 {
			r.warn("tls: no certificate: STLS is not offered, and passwords are accepted only from loopback%s",
				map[bool]string{true: " (or anywhere: pop3.allow_insecure_auth is on)", false: ""}[cfg.POP3.AllowInsecureAuth])
		}
		return
	}
	_, certOK := checkReadable(r, "tls.cert", cfg.TLS.Cert, who)
	keyInfo, keyOK := checkReadable(r, "tls.key", cfg.TLS.Key, who)
	if keyInfo != nil && keyInfo.Mode().Perm()&0o004 != 0 {
		r.problem("tls.key: %s is readable by every user (mode %v); chmod o-r it", cfg.TLS.Key, keyInfo.Mode().Perm())
	}
	if !certOK || !keyOK {
		return
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		r.problem("tls.cert: %s with key %s: %v", cfg.TLS.Cert, cfg.TLS.Key, err)
		return
	}
	leaf := pair.Leaf
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		r.problem("tls.cert: %s expired on %s", cfg.TLS.Cert, leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		r.problem("tls.cert: %s is not valid before %s", cfg.TLS.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	case leaf.NotAfter.Sub(now) < certExpiryWarning:
		r.warn("tls.cert: %s expires on %s, in %d days", cfg.TLS.Cert, leaf.NotAfter.UTC().Format(time.DateOnly), int(leaf.NotAfter.Sub(now).Hours()/24))
	default:
		r.ok("tls.cert: %s: %s, valid until %s, key matches", cfg.TLS.Cert, certNames(leaf), leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	if err := leaf.VerifyHostname(cfg.Server.Hostname); err != nil {
		r.warn("tls.cert: does not name server.hostname %q (it names %s); clients that connect by that name will refuse it", cfg.Server.Hostname, certNames(leaf))
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter}); err != nil {
		r.warn("tls.cert: not trusted by this system's certificate authorities (%v); fine for a private CA, not for public clients", err)
	}
	if cfg.TLS.ClientCA != "" {
		if _, ok := checkReadable(r, "tls.client_ca", cfg.TLS.ClientCA, who); ok {
			data, _ := os.ReadFile(cfg.TLS.ClientCA)
			if block, _ := pem.Decode(data); block == nil || !x509.NewCertPool().AppendCertsFromPEM(data) {
				r.problem("tls.client_ca: %s holds no PEM certificate", cfg.TLS.ClientCA)
			}
		}
	}
}

func certNames(c *x509.Certificate) string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{"CN=" + c.Subject.CommonName}
	}
	return strings.Join(names, ", ")
}

// checkUsers checks the passwd-file and returns its users, nil when it
// is not used or cannot be read.
func checkUsers(r *checkReport, cfg *config.Config, who *serverUser) []passwdfile.Entry {
	if cfg.Users.Backend != "passwd-file" {
		return nil
	}
	path := cfg.Users.PasswdFile
	info, ok := checkReadable(r, "users.passwd_file", path, who)
	if info != nil && info.Mode().Perm()&0o004 != 0 {
		r.problem("users.passwd_file: %s is readable by every user (mode %v), and it holds password hashes; chmod o-r it", path, info.Mode().Perm())
	}
	if !ok {
		return nil
	}
	users, problems, err := passwdfile.Check(path)
	if err != nil {
		r.problem("users.passwd_file: %v", err)
		return nil
	}
	for _, p := range problems {
		r.problem("users.passwd_file: %v", p)
	}
	if len(problems) == 0 {
		r.ok("users.passwd_file: %s: %d users", path, len(users))
	}
	return users
}

// maildirRoot is the fixed directory a maildir.location starts with:
// "/var/mail" for "/var/mail/{user}/Maildir", "" for "{home}/Maildir".
func maildirRoot(location string) string {
	i := strings.IndexByte(location, '{')
	if i < 0 {
		return filepath.Dir(location)
	}
	return filepath.Dir(location[:i] + "x")
}

func checkMaildir(r *checkReport, cfg *config.Config, who *serverUser, users []passwdfile.Entry) {
	if cfg.Store.Backend != "maildir" {
		return
	}
	root := maildirRoot(cfg.Maildir.Location)
	if root == "" || root == "." {
		// {home}: each user needs a home, or a mail= field of their own.
		var homeless []string
		for _, u := range users {
			if u.Home == "" && u.Mail == "" {
				homeless = append(homeless, u.Name)
			}
		}
		if len(homeless) > 0 {
			if len(homeless) > 10 {
				homeless = append(homeless[:10], "...")
			}
			r.problem("maildir.location: %s needs a home directory, but the passwd-file gives none (nor mail=) for %s",
				cfg.Maildir.Location, strings.Join(homeless, ", "))
			return
		}
		r.info("maildir.location: %s: maildrops are under each user's home", cfg.Maildir.Location)
		return
	}
	info, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		r.problem("maildir.location: %s does not exist; create it, for example: install -d -o %s -m 0750 %s", root, who.name, root)
		return
	}
	if err != nil {
		r.problem("maildir.location: %v", err)
		return
	}
	if !info.IsDir() {
		r.problem("maildir.location: %s is not a directory", root)
		return
	}
	bad := false
	if info.Mode().Perm()&0o002 != 0 && info.Mode()&fs.ModeSticky == 0 {
		r.problem("maildir.location: %s is writable by every user (mode %v): anyone could plant or remove mail; chmod o-w it", root, info.Mode().Perm())
		bad = true
	}
	if !who.can(info, 6) {
		r.problem("maildir.location: %s is not writable by user %s (mode %v); chown it to %s", root, who.name, info.Mode().Perm(), who.name)
		bad = true
	}
	if !bad {
		r.ok("maildir.location: %s exists, writable by %s", root, who.name)
	}
}

func checkPostgres(r *checkReport, cfg *config.Config) {
	if !cfg.UsesPostgres() {
		return
	}
	pg, err := openPostgres(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		r.problem("postgres: %v", err)
		return
	}
	defer pg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), checkDBTimeout)
	defer cancel()
	start := time.Now()
	if err := pg.CheckSchema(ctx); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", checkDBTimeout, err)
		}
		r.problem("postgres: %v", err)
		return
	}
	r.ok("postgres: reachable, schema up to date (%s)", time.Since(start).Round(time.Millisecond))
}

// printListeners says what the server would listen on, as a table.
func printListeners(r *checkReport, cfg *config.Config) {
	fmt.Fprintln(r.out, "\nThe server would listen on (sockets passed by systemd take the place of a protocol's addresses):")
	row := func(addr, protocol, mode string) {
		note := ""
		if _, port, err := splitPort(addr); err == nil && port < 1024 {
			note = "  (port below 1024: systemd socket, CAP_NET_BIND_SERVICE or root)"
		}
		fmt.Fprintf(r.out, "  %-28s %-6s %s%s\n", addr, protocol, mode, note)
	}
	stls := "plain, STLS offered"
	if cfg.TLS.Cert == "" {
		stls = "plain, no TLS"
	}
	for _, a := range cfg.POP3.Listen {
		row(a, "pop3", stls)
	}
	for _, a := range cfg.POP3.ListenTLS {
		row(a, "pop3s", "implicit TLS")
	}
	for _, a := range cfg.LMTP.Listen {
		row(a, "lmtp", "plain")
	}
	if cfg.LMTP.Socket != "" {
		row(cfg.LMTP.Socket, "lmtp", "Unix socket")
	}
	if cfg.Admin.Listen != "" {
		row(cfg.Admin.Listen, "http", "admin: /metrics, /healthz, /readyz")
	}
}

func splitPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	port, err := strconv.Atoi(addr[i+1:])
	return addr[:i], port, err
}

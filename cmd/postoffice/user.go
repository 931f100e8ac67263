package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/pgusers"
	"github.com/postoffice-mail/postoffice/auth/scheme"
	"github.com/postoffice-mail/postoffice/config"
)

// userHelp is the help of "postoffice user".
var userHelp = &help{
	synopsis: []string{
		"user add    [flags] NAME",
		"user passwd [flags] NAME",
		"user del    [flags] NAME",
		"user list   [flags]",
	},
	description: `Adds a user (add), changes a user's password (passwd), deletes a user
(del) or lists the users (list) of the user database. The passwd-file is
the one -passwd-file names, or else the configuration file's
users.passwd_file; it is changed under a lock and replaced atomically, so
that a running server reads either the old file or the new one. With
users.backend = "postgres" in the configuration (and no -passwd-file), the
users table of [postgres] is changed instead.

New passwords are hashed with -scheme, else users.default_scheme
(ARGON2ID unless configured otherwise). They are read twice without echo
from a terminal, or as the first line of standard input when it is not a
terminal. Exit status: 0 done; 64 bad arguments; 67 no such user; 78 the
configuration cannot be read; 1 other failures.`,
	examples: []example{
		{"Add alice to the configured passwd-file, typing the password twice.", "postoffice user add alice"},
		{"Add a user with a password from a script, to a given passwd-file.", "printf '%s\\n' \"$PASSWORD\" | postoffice user add -passwd-file /etc/postoffice/passwd bob"},
		{"Store a SCRAM-SHA-256 secret, for clients that use SASL SCRAM.", "postoffice user passwd -scheme SCRAM-SHA-256 alice"},
		{"List the users with their password schemes.", "postoffice user list"},
	},
}

func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	fs := newFlagSet("user "+verb, userHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	passwdFile := fs.String("passwd-file", "", "passwd-`file` to edit (overrides the configuration)")
	schemeName := fs.String("scheme", "", "password `scheme` (default: users.default_scheme, "+scheme.DefaultScheme+")")
	home := fs.String("home", "", "home `directory` to record for a new user")
	switch {
	case verb == "add" || verb == "passwd" || verb == "del" || verb == "list":
	case isHelpFlag(verb):
		fs.Usage()
		return errHelpShown
	case verb == "":
		fs.Usage()
		return fail(exitUsage, "missing subcommand")
	default:
		fs.Usage()
		return fail(exitUsage, "unknown subcommand %q", verb)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fail(exitUsage, "%v", err)
	}
	path, defaultScheme, err := userFile(*passwdFile, *configFile)
	if errors.Is(err, errUsersInPostgres) {
		return runUserPostgres(verb, fs, *configFile, *schemeName, *home, stdin, stdout, stderr)
	}
	if err != nil {
		return err
	}
	if *schemeName == "" {
		*schemeName = defaultScheme
	}
	name := fs.Arg(0)
	wantName := verb != "list"
	if wantName && (fs.NArg() != 1 || name == "") || !wantName && fs.NArg() != 0 {
		fs.Usage()
		return fail(exitUsage, "wrong arguments")
	}
	if wantName {
		if err := auth.ValidUsername(name); err != nil {
			return fail(exitUsage, "invalid user name %q: %v", name, err)
		}
	}

	switch verb {
	case "add":
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := passwdfile.Add(path, name, pw, *schemeName, *home); err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(stdout, "added %s to %s\n", name, path)
	case "passwd":
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := passwdfile.SetPassword(path, name, pw, *schemeName); err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "changed the password of %s\n", name)
	case "del":
		if err := passwdfile.Delete(path, name); err != nil {
			return userError(err)
		}
		fmt.Fprintf(stdout, "deleted %s from %s\n", name, path)
	case "list":
		entries, err := passwdfile.List(path)
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tSCHEME\tHOME")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, e.Scheme, e.Home)
		}
		tw.Flush()
	}
	return nil
}

func userError(err error) error {
	if errors.Is(err, passwdfile.ErrNoSuchUser) {
		return fail(exitNoUser, "%v", err)
	}
	return fail(exitFailure, "%v", err)
}

// userFile picks the passwd-file: the flag, else the configuration's.
func userFile(flagPath, configFile string) (path, defaultScheme string, err error) {
	if flagPath != "" {
		return flagPath, scheme.DefaultScheme, nil
	}
	cfg, err := config.Load(configFile)
	if err != nil {
		return "", "", fail(exitConfig, "%v (or name the file with -passwd-file)", err)
	}
	if cfg.Users.Backend == "postgres" {
		return "", "", errUsersInPostgres
	}
	return cfg.Users.PasswdFile, cfg.Users.DefaultScheme, nil
}

// errUsersInPostgres tells runUser that the configuration keeps users in
// PostgreSQL.
var errUsersInPostgres = errors.New("users are in PostgreSQL")

// runUserPostgres is "postoffice user" on the users table of [postgres].
func runUserPostgres(verb string, fs *flag.FlagSet, configFile, schemeName, home string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := config.Load(configFile)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if schemeName == "" {
		schemeName = cfg.Users.DefaultScheme
	}
	name := fs.Arg(0)
	if verb != "list" && (fs.NArg() != 1 || name == "") || verb == "list" && fs.NArg() != 0 {
		fs.Usage()
		return fail(exitUsage, "wrong arguments")
	}
	if verb != "list" {
		if err := auth.ValidUsername(name); err != nil {
			return fail(exitUsage, "invalid user name %q: %v", name, err)
		}
	}
	pg, err := openPostgres(cfg, nil)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer pg.Close()
	ctx := context.Background()
	if err := pg.CheckSchema(ctx); err != nil {
		return fail(exitTempFail, "postgres: %v", err)
	}
	db := pgusers.New(pg.Pool(), cfg.Postgres.AcquireTimeout.Duration, nil)
	switch verb {
	case "add", "passwd":
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if verb == "add" {
			err = db.Add(ctx, name, pw, schemeName, home)
		} else {
			err = db.SetPassword(ctx, name, pw, schemeName)
		}
		if errors.Is(err, pgusers.ErrNotFound) {
			return fail(exitNoUser, "%v", err)
		}
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(stdout, "%s %s in the database\n", map[string]string{"add": "added", "passwd": "changed the password of"}[verb], name)
	case "del":
		if err := db.Delete(ctx, name); errors.Is(err, pgusers.ErrNotFound) {
			return fail(exitNoUser, "%v", err)
		} else if err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(stdout, "deleted %s from the database\n", name)
	case "list":
		entries, err := db.List(ctx)
		if err != nil {
			return fail(exitTempFail, "%v", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tSCHEME\tHOME")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, e.Scheme, e.Home)
		}
		tw.Flush()
	}
	return nil
}

// readPassword reads a new password: twice without echo from a terminal,
// or the first line of standard input.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "New password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fail(exitFailure, "read password: %v", err)
		}
		fmt.Fprint(stderr, "Repeat password: ")
		second, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fail(exitFailure, "read password: %v", err)
		}
		if string(first) != string(second) {
			return "", fail(exitUsage, "the passwords differ")
		}
		return checkPassword(string(first))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fail(exitFailure, "read password: %v", err)
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(pw string) (string, error) {
	if pw == "" {
		return "", fail(exitUsage, "empty password")
	}
	if strings.ContainsAny(pw, "\x00\r\n") {
		return "", fail(exitUsage, "the password contains a NUL or line break")
	}
	// Stored in SASLprep form, as the server prepares what clients send.
	prepared, err := auth.Prepare(pw)
	if err != nil {
		return "", fail(exitUsage, "the password is not valid UTF-8 text without control characters")
	}
	return prepared, nil
}

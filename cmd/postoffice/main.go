// Command postoffice is the POP3 server and its tools, in one binary:
//
//	postoffice serve -config FILE      run the server
//	postoffice check -config FILE [-user NAME]   check a configuration and the files it names
//	postoffice deliver -d USER [-a ADDRESS] [-f SENDER] < MESSAGE
//	                                   deliver one message (an MDA for a pipe)
//	postoffice quickstart [-dir DIR]   a demo server on loopback, ready for curl
//	postoffice user add|passwd|del|list  edit the passwd-file
//	postoffice db migrate|status|import-users   the PostgreSQL schema and users
//	postoffice migrate -to postgres|maildir [USER...]   copy maildrops between stores
//	postoffice import -mbox PATH|-maildir LOCATION [-check] [USER...]   import another server's mail
//
// Each subcommand only parses flags and wires packages together.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit codes, from sysexits.h where one fits.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 64 // EX_USAGE
	exitNoUser   = 67 // EX_NOUSER
	exitSoftware = 70 // EX_SOFTWARE
	exitTempFail = 75 // EX_TEMPFAIL
	exitConfig   = 78 // EX_CONFIG
)

// exitError carries a message and an exit code up to main.
type exitError struct {
	code int
	err  error
	// quiet: the exit code says it all (fetch's "no new mail", which a
	// cron job must not mail to its owner every few minutes).
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// fail returns an exitError with the formatted message. A flag.ErrHelp
// among the arguments, which every subcommand passes on from its flag
// set's Parse, means the help was asked for and printed: exit status 0,
// nothing more to say.
func fail(code int, format string, args ...any) error {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
	}
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

var subcommands = []struct {
	name, summary string
	run           func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}{
	{"serve", "run the POP3 server", runServe},
	{"check", "check a configuration and the files it names; show the listeners", runCheck},
	{"deliver", "deliver one message from standard input (an MDA for a pipe)", runDeliver},
	{"quickstart", "run a demo server on loopback with a demo user", runQuickstart},
	{"user", "add, change, delete or list users in the passwd-file", runUser},
	{"fetch", "download mail from POP3 accounts into a Maildir, mbox or MDA", runFetch},
	{"db", "create or upgrade the PostgreSQL schema, load users into it", runDB},
	{"migrate", "copy maildrops between Maildir and PostgreSQL, keeping unique ids", runMigrate},
	{"import", "import mbox files or other Maildirs, keeping unique ids (X-UIDL, Dovecot, Courier)", runImport},
	{"bench", "load-test a POP3 server on loopback (login, TLS, RETR, pipelining, idle, STAT)", runBench},
	{"man", "print the postoffice(8) manual page (roff)", runMan},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if isHelpFlag(args[0]) || args[0] == "help" && len(args) == 1 {
		usage(stdout)
		return exitOK
	}
	if args[0] == "help" {
		// "postoffice help user add" is "postoffice user add -h", on
		// standard output since it was asked for.
		args = append(args[1:], "-h")
		stderr = stdout
	}
	for _, sc := range subcommands {
		if sc.name == args[0] {
			err := sc.run(args[1:], stdin, stdout, stderr)
			if err == nil {
				return exitOK
			}
			var ee *exitError
			isExit := errors.As(err, &ee)
			if !isExit || !ee.quiet {
				fmt.Fprintf(stderr, "postoffice %s: %v\n", sc.name, err)
			}
			if isExit {
				return ee.code
			}
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "postoffice: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: postoffice <command> [flags]\n\ncommands:")
	for _, sc := range subcommands {
		fmt.Fprintf(w, "  %-11s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintln(w, "\nRun 'postoffice help <command>' (or 'postoffice <command> -h') for a command's\ndescription, flags and examples; 'man postoffice' for the manual.")
}

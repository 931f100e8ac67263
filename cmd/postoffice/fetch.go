package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/postoffice-mail/postoffice/fetch"
)

// fetchHelp is the help of "postoffice fetch".
var fetchHelp = &help{
	synopsis: []string{"fetch [-config FILE] [-account NAME]... [-dry-run] [-verbose | -quiet] [-daemon INTERVAL]"},
	description: `Downloads mail from the POP3 accounts in the accounts file into a Maildir,
an mbox file or a delivery program, deleting it from the server or keeping
it there and never downloading it twice. See docs/fetch.md for the
accounts file.

Exit status: 0 mail fetched, 1 no new mail, 69 server unusable (certificate,
TLS, UIDL), 74 destination or state file failed, 75 temporary failure (try
again later), 76 server broke the protocol, 77 login refused, 78 bad
accounts file, 64 bad command line. With several accounts the most serious
code wins.`,
	examples: []example{
		{"Fetch every account once.", "postoffice fetch"},
		{"Fetch one account, reporting each message.", "postoffice fetch -account work -verbose"},
		{"Log in and list, changing nothing.", "postoffice fetch -dry-run"},
		{"Keep polling every 5 minutes until SIGTERM.", "postoffice fetch -daemon 5m"},
	},
}

func runFetch(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("fetch", fetchHelp, stderr)
	configFile := fs.String("config", defaultFetchConfig(), "accounts `file`")
	var accounts []string
	fs.Func("account", "fetch only this account `name` (repeatable)", func(s string) error {
		accounts = append(accounts, s)
		return nil
	})
	dryRun := fs.Bool("dry-run", false, "log in and list; report what would be fetched and deleted, change nothing")
	verbose := fs.Bool("verbose", false, "report each message")
	quiet := fs.Bool("quiet", false, "no progress and no summary; errors only")
	progress := fs.String("progress", "auto", "progress display: `auto` (a bar on a terminal, lines otherwise), bar, lines, none")
	daemon := fs.Duration("daemon", 0, "keep running and poll every `interval` (such as 5m); 0 fetches once")
	if err := fs.Parse(args); err != nil {
		return fail(fetch.ExitUsage, "%v", err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fail(fetch.ExitUsage, "unexpected argument %q", fs.Arg(0))
	}
	if *daemon != 0 && *daemon < time.Minute {
		return fail(fetch.ExitUsage, "-daemon interval %v is shorter than a minute", *daemon)
	}
	cfg, err := fetch.LoadConfig(*configFile)
	if err != nil {
		return fail(fetch.ExitConfig, "%v", err)
	}
	for _, name := range accounts {
		if !hasAccount(cfg, name) {
			return fail(fetch.ExitUsage, "no account %q in %s", name, *configFile)
		}
	}

	opts := fetch.Options{DryRun: *dryRun, Verbose: *verbose, Log: stderr}
	if !*quiet {
		switch *progress {
		case "auto":
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opts.Progress = fetch.NewBarProgress(stderr)
			} else {
				opts.Progress = fetch.NewLineProgress(stderr)
			}
		case "bar":
			opts.Progress = fetch.NewBarProgress(stderr)
		case "lines":
			opts.Progress = fetch.NewLineProgress(stderr)
		case "none":
		default:
			return fail(fetch.ExitUsage, "-progress %q: use auto, bar, lines or none", *progress)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report := func(r fetch.Result) {
		if r.Err != nil {
			fmt.Fprintln(stderr, fetch.Summary(r))
		} else if !*quiet {
			fmt.Fprintln(stdout, fetch.Summary(r))
		}
	}
	if *daemon > 0 {
		fetch.Daemon(ctx, cfg, accounts, *daemon, opts, func(r fetch.Result) {
			// A daemon reports what happened, not every empty poll.
			if r.Err != nil || r.Fetched > 0 || r.Recovered > 0 || *verbose {
				report(r)
			}
		})
		return nil
	}
	results := fetch.Run(ctx, cfg, accounts, opts)
	for _, r := range results {
		report(r)
	}
	code := fetch.ExitCode(results)
	switch {
	case code == fetch.ExitFetched:
		return nil
	case code == fetch.ExitNoMail:
		return &exitError{code: code, err: errors.New("no new mail"), quiet: true}
	case ctx.Err() != nil:
		return fail(code, "interrupted")
	}
	return &exitError{code: code, err: errors.New("some accounts failed")}
}

func hasAccount(cfg *fetch.Config, name string) bool {
	for _, a := range cfg.Accounts {
		if a.Name == name {
			return true
		}
	}
	return false
}

// defaultFetchConfig is $XDG_CONFIG_HOME/postoffice/fetch.toml or
// ~/.config/postoffice/fetch.toml.
func defaultFetchConfig() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "postoffice", "fetch.toml")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "postoffice", "fetch.toml")
	}
	return "fetch.toml"
}

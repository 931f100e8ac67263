package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/pgusers"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/migrate"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
)

// migrateHelp is the help of "postoffice migrate".
var migrateHelp = &help{
	synopsis: []string{"migrate -to postgres|maildir [-config FILE] [-q] (-all | USER...)"},
	description: `Copies maildrops from the other store to the one named by -to: the Maildirs
of [maildir] and the database of [postgres], keeping unique ids, order,
arrival and first-retrieval times and Maildir flags, so that no client
downloads anything again. Each maildrop is locked on both sides while it
is copied. An interrupted run is resumed by running the same command
again; nothing is copied twice. The source is left as it was. -all
migrates every user of the user database ([users]), or with -to maildir
every maildrop in the database.`,
	examples: []example{
		{"Move every user's Maildir into PostgreSQL.", "postoffice migrate -config /etc/postoffice/postoffice.toml -to postgres -all"},
		{"Copy two users back from PostgreSQL to Maildir.", "postoffice migrate -to maildir alice bob"},
	},
}

// runMigrate is "postoffice migrate".
func runMigrate(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", migrateHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	to := fs.String("to", "", "destination store: `postgres` or maildir")
	all := fs.Bool("all", false, "migrate every user (or every maildrop in the database, with -to maildir)")
	quiet := fs.Bool("q", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if *to != "postgres" && *to != "maildir" || *all == (fs.NArg() > 0) {
		fs.Usage()
		return fail(exitUsage, "give -to postgres or -to maildir, and -all or user names")
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if cfg.Postgres.DSN == "" && cfg.Postgres.DSNFile == "" {
		return fail(exitConfig, "%s: [postgres] has neither dsn nor dsn_file", *configFile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger, closeLog, err := newLogger(cfg.Log, io.Discard)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer closeLog()
	pg, err := openPostgres(cfg, logger)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer pg.Close()
	if err := pg.CheckSchema(ctx); err != nil {
		return fail(exitTempFail, "postgres: %v", err)
	}
	md, err := maildir.New(maildir.Config{Location: cfg.Maildir.Location, LockLease: cfg.Maildir.LockLease.Duration, Logger: logger})
	if err != nil {
		return fail(exitConfig, "maildir: %v", err)
	}
	var users auth.UserLookup
	var list func(context.Context) ([]string, error)
	switch cfg.Users.Backend {
	case "postgres":
		db := pgusers.New(pg.Pool(), cfg.Postgres.AcquireTimeout.Duration, logger)
		users = db
		list = func(ctx context.Context) ([]string, error) {
			entries, err := db.List(ctx)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			return names, err
		}
	default:
		f, err := passwdfile.Open(cfg.Users.PasswdFile, passwdfile.WithLogger(logger))
		if err != nil {
			return fail(exitConfig, "users: %v", err)
		}
		users = f
		list = func(context.Context) ([]string, error) {
			entries, err := passwdfile.List(cfg.Users.PasswdFile)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			return names, err
		}
	}
	from, dest := migrate.Maildir(md), migrate.Postgres(pg)
	if *to == "maildir" {
		from, dest = dest, from
		list = pg.Maildrops
	}
	names := fs.Args()
	if *all {
		if names, err = list(ctx); err != nil {
			return fail(exitTempFail, "list users: %v", err)
		}
	}
	accounts, err := migrationAccounts(ctx, users, names)
	if err != nil {
		return err
	}
	var progress migrate.Progress
	if !*quiet {
		progress = newProgressBar(stdout, isTerminal(stdout))
	}
	start := time.Now()
	res, err := migrate.Run(ctx, from, dest, accounts, progress)
	fmt.Fprintf(stdout, "%d of %d maildrops migrated from %s to %s: %d messages (%s) copied, %d already there, in %s\n",
		res.Maildrops, len(accounts), from.Name, dest.Name, res.Copied, octets(res.Octets), res.Skipped, time.Since(start).Round(time.Millisecond))
	failed := make([]string, 0, len(res.Failed))
	for name := range res.Failed {
		failed = append(failed, name)
	}
	sort.Strings(failed)
	for _, name := range failed {
		fmt.Fprintf(stderr, "postoffice migrate: %s: %v\n", name, res.Failed[name])
	}
	if err != nil {
		return fail(exitTempFail, "interrupted (%v): run the same command again to resume", err)
	}
	if len(failed) > 0 {
		return fail(exitTempFail, "%d maildrops not migrated", len(failed))
	}
	return nil
}

// migrationAccounts finds each user's home and mail location (which the
// Maildir location template may need); a name the user database does not
// know (a maildrop whose user was deleted) is migrated by name alone.
func migrationAccounts(ctx context.Context, users auth.UserLookup, names []string) ([]store.Account, error) {
	var accounts []store.Account
	for _, name := range names {
		if err := auth.ValidUsername(name); err != nil {
			return nil, fail(exitUsage, "invalid user name %q: %v", name, err)
		}
		acct := store.Account{Name: name}
		u, err := users.LookupUser(ctx, name)
		switch {
		case err == nil:
			acct = store.Account{Name: u.Name, Home: u.Home, Mail: u.Mail}
		case !errors.Is(err, auth.ErrFailed):
			return nil, fail(exitTempFail, "look up %s: %v", name, err)
		}
		accounts = append(accounts, acct)
	}
	return accounts, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar draws one line per maildrop: redrawn in place on a
// terminal (at most ten times a second), written once when it is done
// otherwise.
type progressBar struct {
	w                   io.Writer
	tty                 bool
	name                string
	total, done         int
	totalOctets, octets int64
	drawn               time.Time
	start               time.Time
}

func newProgressBar(w io.Writer, tty bool) *progressBar { return &progressBar{w: w, tty: tty} }

func (p *progressBar) Start(name string, messages int, octets int64) {
	*p = progressBar{w: p.w, tty: p.tty, name: name, total: messages, totalOctets: octets, start: time.Now()}
	p.draw(true)
}

func (p *progressBar) Advance(octets int64) {
	p.done++
	p.octets += octets
	p.draw(false)
}

func (p *progressBar) Done(copied, skipped int, err error) {
	status := fmt.Sprintf("%d copied, %d already there", copied, skipped)
	if err != nil {
		status = "FAILED: " + err.Error()
	}
	if p.tty {
		p.draw(true)
		fmt.Fprintf(p.w, "  %s\n", status)
		return
	}
	fmt.Fprintf(p.w, "%s: %d messages, %s: %s\n", p.name, p.total, octets(p.totalOctets), status)
}

func (p *progressBar) draw(force bool) {
	if !p.tty || !force && time.Since(p.drawn) < 100*time.Millisecond {
		return
	}
	p.drawn = time.Now()
	const width = 30
	filled := width
	if p.totalOctets > 0 {
		filled = int(int64(width) * p.octets / p.totalOctets)
	}
	rate := float64(p.octets) / max(time.Since(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%-24s [%s%s] %d/%d %s %s/s", p.name, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		p.done, p.total, octets(p.octets), octets(int64(rate)))
}

// octets formats a size for people.
func octets(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

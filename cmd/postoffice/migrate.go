package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/progress"
	"github.com/postoffice-mail/postoffice/migrate"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
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
	// With the takeover settings of [maildir]: a maildrop no login has
	// opened yet keeps the ids the previous server showed.
	md, err := maildir.New(maildir.Config{Location: cfg.Maildir.Location, LockLease: cfg.Maildir.LockLease.Duration, Logger: logger,
		Legacy: legacy.Config{Source: legacy.Source(cfg.Maildir.ImportUIDL), DovecotFormat: cfg.Maildir.DovecotUIDLFormat,
			DovecotReuseXUIDL: cfg.Maildir.DovecotReuseXUIDL}})
	if err != nil {
		return fail(exitConfig, "maildir: %v", err)
	}
	users, list, err := userList(cfg, pg, logger)
	if err != nil {
		return err
	}
	from, dest := migrate.Maildir(md), migrate.Postgres(pg)
	if *to == "maildir" {
		from, dest = dest, from
		list = pg.Maildrops
	}
	accounts, err := migrationAccounts(ctx, users, list, *all, fs.Args())
	if err != nil {
		return err
	}
	var shown migrate.Progress
	if !*quiet {
		shown = newCopyProgress(stdout, "copy", true)
	}
	start := time.Now()
	res, err := migrate.Run(ctx, from, dest, accounts, shown)
	fmt.Fprintf(stdout, "%d of %d maildrops migrated from %s to %s: %d messages (%s) copied, %d already there, in %s\n",
		res.Maildrops, len(accounts), from.Name, dest.Name, res.Copied, progress.Size(res.Octets), res.Skipped, time.Since(start).Round(time.Millisecond))
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

// migrationAccounts finds the users to copy (the names given, or with all
// those list gives) and each one's home and mail location (which the
// Maildir location template may need); a name the user database does not
// know (a maildrop whose user was deleted) is copied by name alone.
func migrationAccounts(ctx context.Context, users auth.UserLookup, list func(context.Context) ([]string, error), all bool, names []string) ([]store.Account, error) {
	if all {
		var err error
		if names, err = list(ctx); err != nil {
			return nil, fail(exitTempFail, "list users: %v", err)
		}
	}
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

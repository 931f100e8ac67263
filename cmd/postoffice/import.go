package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/pgusers"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/progress"
	"github.com/postoffice-mail/postoffice/mbox"
	"github.com/postoffice-mail/postoffice/migrate"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// importHelp is the help of "postoffice import".
var importHelp = &help{
	synopsis: []string{
		"import -mbox PATH [-format auto|mboxrd|mboxo|mboxcl2] [-uidl-header] [-dovecot-uidl-format FORMAT] [-timezone ZONE] [-to maildir|postgres] [-check] [-q] (-all | USER...)",
		"import -maildir LOCATION [-import-uidl dovecot|courier|filename] [-dovecot-uidl-format FORMAT] [-to maildir|postgres] [-check] [-q] (-all | USER...)",
	},
	description: `Imports mail from another server's files into the store of the
configuration file ([store] backend, or -to): each user's mbox file
(-mbox, "{user}" in PATH is the user name, e.g. /var/mail/{user}) or
Maildir (-maildir, a location template as [maildir] location takes).
Order and arrival times are kept. With -uidl-header, an mbox message's
X-UIDL header becomes its unique id, so that clients that left mail on
the old server download none of it again; with -dovecot-uidl-format, an
mbox message's id is the one Dovecot made by that pop3_uidl_format from
the X-UID and X-IMAPbase headers it keeps in the file (an X-UIDL still
wins with -uidl-header, as with Dovecot's pop3_reuse_xuidl); with
-import-uidl, a Maildir's ids are those the named server showed (see
docs/migration.md). -check
with -maildir set to [maildir] location tells what serving those Maildirs
in place keeps of the ids ([maildir] import_uidl).

Every id that cannot be kept as it was is listed: duplicates made unique
("-2", "-3"... as Dovecot does), ids that are not valid POP3 ids, data
that is not a message. -check is the dry run: it lists that, per user,
and what is there already, and changes nothing.

An interrupted run is resumed by running the same command again, and a
second run imports nothing twice: messages are numbered in source order
and the destination knows the numbers it holds. The source is left as it
was. Exit status: 0 when every maildrop was imported (or checked), 65 when
a source is not readable as what it was said to be, 66 when a named
user's mbox file does not exist, 75 when a maildrop could not be imported
for now (locked, database away, interrupted): run again.`,
	examples: []example{
		{"Import every user's mbox file from /var/mail, keeping the X-UIDL ids.", "postoffice import -mbox /var/mail/{user} -uidl-header -all"},
		{"Copy two users' Maildirs from another directory, keeping the ids Dovecot showed.", "postoffice import -maildir /srv/old/{user}/Maildir -import-uidl dovecot alice bob"},
		{"Dry run: what serving the [maildir] location in place keeps of the ids ([maildir] location = \"{home}/Maildir\").", "postoffice import -maildir '{home}/Maildir' -check -all"},
	},
}

// exitNoInput is sysexits.h's EX_NOINPUT: a source file that does not
// exist.
const exitNoInput = 66

// runImport is "postoffice import".
func runImport(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", importHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	mboxPath := fs.String("mbox", "", "import each user's mbox `file` ({user} is the user name)")
	maildirLocation := fs.String("maildir", "", "import each user's Maildir at this `location` ({user}, {home}... as in [maildir] location)")
	formatName := fs.String("format", "auto", "mbox `variant`: auto, mboxrd, mboxo or mboxcl2")
	uidlHeader := fs.Bool("uidl-header", false, "keep each mbox message's X-UIDL header as its unique id; with -maildir and -import-uidl dovecot, Dovecot's pop3_reuse_xuidl was on")
	zone := fs.String("timezone", "Local", "time `zone` of mbox \"From \" line dates that name none")
	legacySource := fs.String("import-uidl", "", "keep the unique ids this `server` showed for the Maildirs: dovecot, courier or filename (default: [maildir] import_uidl when -maildir is [maildir] location)")
	dovecotFormat := fs.String("dovecot-uidl-format", "", "Dovecot's pop3_uidl_`format`: with -import-uidl dovecot (default: [maildir] dovecot_uidl_format, "+legacy.DefaultDovecotFormat+"); with -mbox, make the ids from the X-UID and X-IMAPbase headers Dovecot keeps in an mbox (%u and %v only)")
	to := fs.String("to", "", "destination store: `maildir` or postgres (default: [store] backend)")
	all := fs.Bool("all", false, "import every user of the user database")
	check := fs.Bool("check", false, "dry run: report what would be imported and which ids kept, change nothing")
	quiet := fs.Bool("q", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if (*mboxPath == "") == (*maildirLocation == "") || *all == (fs.NArg() > 0) {
		fs.Usage()
		return fail(exitUsage, "give -mbox or -maildir, and -all or user names")
	}
	format, err := mbox.ParseFormat(*formatName)
	if err != nil {
		return fail(exitUsage, "-format: %v", err)
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fail(exitUsage, "-timezone: %v", err)
	}
	if *maildirLocation != "" && *formatName != "auto" {
		return fail(exitUsage, "-format is for -mbox")
	}
	if *mboxPath != "" && *legacySource != "" {
		return fail(exitUsage, "-import-uidl is for -maildir")
	}
	var mboxFormat *legacy.Format
	if *mboxPath != "" && *dovecotFormat != "" {
		if mboxFormat, err = legacy.ParseFormat(*dovecotFormat); err != nil {
			return fail(exitUsage, "-dovecot-uidl-format: %v", err)
		}
		if mboxFormat.Uses('m') || mboxFormat.Uses('f') || mboxFormat.Uses('g') {
			return fail(exitUsage, "-dovecot-uidl-format %q: an mbox keeps X-UID and X-IMAPbase, so only %%u and %%v can be made", *dovecotFormat)
		}
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	dest := *to
	if dest == "" {
		dest = cfg.Store.Backend
	}
	if dest != "maildir" && dest != "postgres" {
		return fail(exitUsage, "-to %q: give maildir or postgres", dest)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger, closeLog, err := newLogger(cfg.Log, io.Discard)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer closeLog()

	var pg *postgres.Store
	if dest == "postgres" || cfg.Users.Backend == "postgres" {
		if pg, err = openPostgres(cfg, logger); err != nil {
			return fail(exitConfig, "%v", err)
		}
		defer pg.Close()
		if err := pg.CheckSchema(ctx); err != nil {
			return fail(exitTempFail, "postgres: %v", err)
		}
	}
	users, list, err := userList(cfg, pg, logger)
	if err != nil {
		return err
	}
	var toEnd migrate.End
	var toStore migrate.Destination
	if dest == "postgres" {
		toEnd, toStore = migrate.Postgres(pg), pg
	} else {
		md, err := maildir.New(maildir.Config{Location: cfg.Maildir.Location, LockLease: cfg.Maildir.LockLease.Duration, Logger: logger,
			Legacy: legacy.Config{Source: legacy.Source(cfg.Maildir.ImportUIDL), DovecotFormat: cfg.Maildir.DovecotUIDLFormat,
				DovecotReuseXUIDL: cfg.Maildir.DovecotReuseXUIDL}})
		if err != nil {
			return fail(exitConfig, "maildir: %v", err)
		}
		toEnd, toStore = migrate.Maildir(md), md
	}

	var from migrate.End
	inPlace := false
	if *mboxPath != "" {
		from = migrate.Mbox(migrate.MboxOptions{Path: *mboxPath, Format: format, UIDLHeader: *uidlHeader, DovecotFormat: mboxFormat, Location: loc})
	} else {
		sameLocation := *maildirLocation == cfg.Maildir.Location
		if inPlace = dest == "maildir" && sameLocation; inPlace && !*check {
			return fail(exitUsage, "-maildir %s is [maildir] location itself: those Maildirs are served in place, nothing to import (-check tells what [maildir] import_uidl keeps of the ids; docs/migration.md)", *maildirLocation)
		}
		takeover := legacy.Config{Source: legacy.Source(*legacySource), DovecotFormat: *dovecotFormat}
		if sameLocation && *legacySource == "" {
			// The Maildirs postoffice serves: a maildrop no login opened
			// yet is taken over as serving it would.
			takeover.Source = legacy.Source(cfg.Maildir.ImportUIDL)
		}
		if takeover.DovecotFormat == "" {
			takeover.DovecotFormat = cfg.Maildir.DovecotUIDLFormat
		}
		takeover.DovecotReuseXUIDL = *uidlHeader || sameLocation && *legacySource == "" && cfg.Maildir.DovecotReuseXUIDL
		if *uidlHeader && takeover.Source != legacy.Dovecot {
			return fail(exitUsage, "-uidl-header with -maildir is Dovecot's pop3_reuse_xuidl: give -import-uidl dovecot")
		}
		src, err := maildir.New(maildir.Config{Location: *maildirLocation, LockLease: cfg.Maildir.LockLease.Duration, Logger: logger,
			Legacy: takeover})
		if err != nil {
			return fail(exitUsage, "-maildir: %v", err)
		}
		from = migrate.Maildir(src)
	}

	accounts, err := migrationAccounts(ctx, users, list, *all, fs.Args())
	if err != nil {
		return err
	}
	if *check {
		if inPlace {
			// Served where they are: what the first login keeps of the
			// other server's ids, and no destination to look at.
			toStore, dest = nil, "place"
		}
		return importCheck(ctx, from, toStore, dest, accounts, *all, stdout, stderr)
	}
	var shown migrate.Progress
	if !*quiet {
		shown = newCopyProgress(stdout, "import", false)
	}
	return importRun(ctx, from, toEnd, accounts, *all, shown, stdout, stderr)
}

// importRun imports maildrop after maildrop, printing each one's report
// when it is done.
func importRun(ctx context.Context, from, to migrate.End, accounts []store.Account, all bool, shown migrate.Progress, stdout, stderr io.Writer) error {
	start := time.Now()
	var total migrate.Result
	var failures failureCodes
	done, none := 0, 0
	for _, acct := range accounts {
		res, err := migrate.Run(ctx, from, to, []store.Account{acct}, shown)
		total.Copied += res.Copied
		total.Skipped += res.Skipped
		total.Octets += res.Octets
		if err != nil {
			fmt.Fprintf(stdout, "%d messages (%s) imported into %s, %d already there, in %s\n",
				total.Copied, progress.Size(total.Octets), to.Name, total.Skipped, time.Since(start).Round(time.Millisecond))
			return fail(exitTempFail, "interrupted (%v): run the same command again to resume", err)
		}
		rep := res.Reports[acct.Name]
		if ferr := res.Failed[acct.Name]; ferr != nil {
			if errors.Is(ferr, migrate.ErrNoMbox) && all {
				none++
				continue // a user who never had mail
			}
			fmt.Fprintf(stderr, "postoffice import: %s: %v\n", acct.Name, ferr)
			failures.add(ferr)
			if rep != nil {
				printReport(stdout, acct.Name, rep, "")
			}
			continue
		}
		done++
		printReport(stdout, acct.Name, rep, fmt.Sprintf("%d imported, %d already there", res.Copied, res.Skipped))
	}
	summary := fmt.Sprintf("%d of %d maildrops imported into %s: %d messages (%s) imported, %d already there, in %s",
		done, len(accounts), to.Name, total.Copied, progress.Size(total.Octets), total.Skipped, time.Since(start).Round(time.Millisecond))
	if none > 0 {
		summary += fmt.Sprintf("; %d users have no mbox file", none)
	}
	fmt.Fprintln(stdout, summary)
	return failures.err()
}

// importCheck is the dry run.
func importCheck(ctx context.Context, from migrate.End, to migrate.Destination, dest string, accounts []store.Account, all bool, stdout, stderr io.Writer) error {
	results, err := migrate.Check(ctx, from, to, accounts)
	if err != nil {
		return fail(exitTempFail, "interrupted: %v", err)
	}
	var failures failureCodes
	var sum migrate.Report
	there, none := 0, 0
	for _, in := range results {
		if in.Err != nil {
			if errors.Is(in.Err, migrate.ErrNoMbox) {
				fmt.Fprintf(stdout, "%s: no mbox file: nothing to import\n", in.Account)
				if all {
					none++
					continue
				}
			} else {
				fmt.Fprintf(stdout, "%s: cannot be imported: %v\n", in.Account, in.Err)
			}
			failures.add(in.Err)
			continue
		}
		r := in.Report
		status := fmt.Sprintf("%d already in %s", in.There, dest)
		if to == nil {
			status = "served in place"
		}
		if in.Others > 0 {
			status += fmt.Sprintf(", and %d other messages there: the import is refused unless they are mail delivered after an earlier import of this source", in.Others)
		}
		printReport(stdout, in.Account, r, status)
		sum.Messages += r.Messages
		sum.Octets += r.Octets
		sum.Kept += r.Kept
		sum.New += r.New
		sum.Renamed = append(sum.Renamed, r.Renamed...)
		sum.NotKept = append(sum.NotKept, r.NotKept...)
		sum.Skipped = append(sum.Skipped, r.Skipped...)
		there += in.There
	}
	fmt.Fprintf(stdout, "dry run, nothing changed: %d maildrops, %d messages (%s) to import (%d already there): %d ids kept, %d renamed, %d not kept, %d new; %d pieces of data skipped",
		len(results)-none, sum.Messages, progress.Size(sum.Octets), there, sum.Kept, len(sum.Renamed), len(sum.NotKept), sum.New, len(sum.Skipped))
	if none > 0 {
		fmt.Fprintf(stdout, "; %d users have no mbox file", none)
	}
	fmt.Fprintln(stdout)
	return failures.err()
}

// printReport prints one maildrop's report: a summary line, then every
// id not kept as it was, every piece of data skipped, every note.
func printReport(w io.Writer, name string, r *migrate.Report, status string) {
	line := name + ": " + r.Summary()
	if status != "" {
		line += "; " + status
	}
	fmt.Fprintln(w, line)
	for _, d := range r.Details() {
		fmt.Fprintln(w, "  "+d)
	}
}

// failureCodes picks the exit status for the maildrops that failed: a
// source that is not what it was said to be (65) or is missing (66) will
// fail again, and says so before a failure for now (75).
type failureCodes struct{ data, noInput, temp int }

func (f *failureCodes) add(err error) {
	switch {
	case errors.Is(err, mbox.ErrNotMbox):
		f.data++
	case errors.Is(err, migrate.ErrNoMbox):
		f.noInput++
	default:
		f.temp++
	}
}

func (f *failureCodes) err() error {
	n := f.data + f.noInput + f.temp
	switch {
	case f.data > 0:
		return fail(exitDataErr, "%d maildrops not imported: a source is not readable as an mbox", n)
	case f.noInput > 0:
		return fail(exitNoInput, "%d maildrops not imported: a source does not exist", n)
	case f.temp > 0:
		return fail(exitTempFail, "%d maildrops not imported", n)
	}
	return nil
}

// userList opens the user database of [users]: to find each user's home
// and mail location, and with -all to list the users.
func userList(cfg *config.Config, pg *postgres.Store, logger *slog.Logger) (auth.UserLookup, func(context.Context) ([]string, error), error) {
	if cfg.Users.Backend == "postgres" {
		db := pgusers.New(pg.Pool(), cfg.Postgres.AcquireTimeout.Duration, logger)
		return db, func(ctx context.Context) ([]string, error) {
			entries, err := db.List(ctx)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			return names, err
		}, nil
	}
	f, err := passwdfile.Open(cfg.Users.PasswdFile, passwdfile.WithLogger(logger))
	if err != nil {
		return nil, nil, fail(exitConfig, "users: %v", err)
	}
	return f, func(context.Context) ([]string, error) {
		entries, err := passwdfile.List(cfg.Users.PasswdFile)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		return names, err
	}, nil
}

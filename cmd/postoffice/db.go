package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/auth/pgusers"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// dbHelp is the help of "postoffice db".
var dbHelp = &help{
	synopsis: []string{
		"db migrate      [-config FILE]",
		"db status       [-config FILE]",
		"db import-users [-config FILE] PASSWD-FILE",
	},
	description: `Manages the PostgreSQL database of the configuration file's [postgres]
table: migrate creates the schema or upgrades it to the one this release
needs (run it after installing a new release, before starting the
servers, which refuse a schema of another version); status shows the
schema version; import-users loads the users of a passwd-file into the
users table, keeping their password hashes. See docs/cluster.md.`,
	examples: []example{
		{"Create or upgrade the schema.", "postoffice db migrate -config /etc/postoffice/postoffice.toml"},
		{"Show the schema version.", "postoffice db status"},
		{"Copy the users of a passwd-file into the database.", "postoffice db import-users /etc/postoffice/passwd"},
	},
}

// runDB is "postoffice db": the PostgreSQL schema and users.
func runDB(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	fs := newFlagSet("db "+verb, dbHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	switch {
	case isHelpFlag(verb):
		fs.Usage()
		return errHelpShown
	case verb == "":
		fs.Usage()
		return fail(exitUsage, "missing subcommand")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fail(exitUsage, "%v", err)
	}
	wantArgs := 0
	switch verb {
	case "migrate", "status":
	case "import-users":
		wantArgs = 1
	default:
		fs.Usage()
		return fail(exitUsage, "unknown subcommand %q", verb)
	}
	if fs.NArg() != wantArgs {
		fs.Usage()
		return fail(exitUsage, "wrong arguments")
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
	logger, closeLog, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer closeLog()
	pg, err := openPostgres(cfg, logger)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer pg.Close()

	switch verb {
	case "migrate":
		applied, err := pg.Migrate(ctx)
		for _, m := range applied {
			fmt.Fprintf(stdout, "applied %d_%s\n", m.Version, m.Name)
		}
		if err != nil {
			return fail(exitTempFail, "%v", err)
		}
		fmt.Fprintf(stdout, "schema at version %d\n", postgres.LatestVersion())
	case "status":
		v, err := pg.SchemaVersion(ctx)
		if err != nil {
			return fail(exitTempFail, "%v", err)
		}
		fmt.Fprintf(stdout, "schema at version %d; this postoffice uses %d\n", v, postgres.LatestVersion())
		if v != postgres.LatestVersion() {
			return fail(exitFailure, "run \"postoffice db migrate\"")
		}
	case "import-users":
		if err := pg.CheckSchema(ctx); err != nil {
			return fail(exitTempFail, "%v", err)
		}
		n, err := importUsers(ctx, pgusers.New(pg.Pool(), 0, logger), fs.Arg(0))
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(stdout, "imported %d users from %s\n", n, fs.Arg(0))
	}
	return nil
}

// importUsers loads every user of a passwd-file into the users table,
// replacing users of the same name: password (as stored, any scheme),
// home and mail location. The file is read by package passwdfile, so it
// is checked exactly as the server checks it.
func importUsers(ctx context.Context, db *pgusers.DB, path string) (int, error) {
	file, err := passwdfile.Open(path)
	if err != nil {
		return 0, err
	}
	entries, err := passwdfile.List(path)
	if err != nil {
		return 0, err
	}
	for i, e := range entries {
		stored := ""
		if e.Scheme != "" {
			if _, stored, err = file.LookupPassword(ctx, e.Name); err != nil {
				return i, fmt.Errorf("%s: %w", e.Name, err)
			}
		}
		if err := db.Put(ctx, e.Name, stored, e.Home, e.Mail); err != nil {
			return i, err
		}
	}
	return len(entries), nil
}

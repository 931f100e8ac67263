package main

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/logging"
	"github.com/postoffice-mail/postoffice/pop3server"
)

// reloadable lists the settings SIGHUP applies. Every other setting is
// fixed for the life of the process: the listeners are open (and may
// have come from systemd), the store and the user database hold
// connections, locks and caches, and the LMTP server and the admin
// listener run with what they were given.
var reloadable = map[string]bool{
	"server.hostname":               true,
	"server.implementation":         true,
	"server.shutdown_timeout":       true,
	"log.level":                     true,
	"log.levels":                    true,
	"log.trace_user":                true,
	"pop3.allow_insecure_auth":      true,
	"pop3.apop":                     true,
	"pop3.expire":                   true,
	"pop3.login_delay":              true,
	"tls.cert":                      true,
	"tls.key":                       true,
	"tls.min_version":               true,
	"tls.client_ca":                 true,
	"limits.max_connections":        true,
	"limits.max_connections_per_ip": true,
	"limits.max_line_length":        true,
	"limits.max_bad_commands":       true,
	"limits.idle_timeout":           true,
	"limits.write_timeout":          true,
	"limits.tls_handshake_timeout":  true,
	"limits.auth_failure_delay":     true,
	"auth.mechanisms":               true,
	"auth.timeout":                  true,
	"auth.penalty_base":             true,
	"auth.penalty_max":              true,
	"auth.penalty_window":           true,
	"auth.trusted_networks":         true,
	"auth.max_tracked":              true,
}

// reloadableTables are tables whose every setting SIGHUP applies.
var reloadableTables = map[string]bool{"oauth": true}

// pinRestartSettings copies into next every setting of running that
// SIGHUP does not apply, and returns the names of those next wanted to
// change: they are reported as needing a restart and otherwise ignored.
func pinRestartSettings(running, next *config.Config) []string {
	var changed []string
	rv, nv := reflect.ValueOf(running).Elem(), reflect.ValueOf(next).Elem()
	for i := range rv.NumField() {
		table := tomlName(rv.Type().Field(i))
		if reloadableTables[table] {
			continue
		}
		rt, nt := rv.Field(i), nv.Field(i)
		for j := range rt.NumField() {
			name := table + "." + tomlName(rt.Type().Field(j))
			if reloadable[name] {
				continue
			}
			if !reflect.DeepEqual(rt.Field(j).Interface(), nt.Field(j).Interface()) {
				changed = append(changed, name)
				nt.Field(j).Set(rt.Field(j))
			}
		}
	}
	return changed
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// reloader applies a changed configuration file to a running server.
type reloader struct {
	path    string
	running *config.Config // as started: the settings a reload cannot change
	applied *config.Config // the last configuration applied
	logs    *logging.Logs
	log     *slog.Logger
	srv     *pop3server.Server
	b       *backends
	parts   *pop3Parts
}

// reload reads the configuration file again and applies what can change
// without a restart: certificates, the passwd-file, limits, protocol
// policy, the defence against password guessing and log levels. Every
// check is done before anything is applied, so a mistake anywhere keeps
// the whole running configuration, and is logged with its file, line and
// setting. Sessions in flight keep the configuration they started with.
func (r *reloader) reload() error {
	r.log.Info("reloading configuration", "file", r.path)
	next, err := config.Load(r.path)
	if err != nil {
		return r.refuse(err)
	}
	for _, name := range pinRestartSettings(r.running, next) {
		r.log.Warn("setting changed; it needs a restart and is ignored until then", "setting", name, "file", r.path)
	}
	scfg, parts, err := pop3Config(next, r.logs, r.b, r.parts)
	if err != nil {
		return r.refuse(err)
	}
	// The passwd-file reloads itself when it changes; reloading it here
	// as well makes a bad line fail the reload, with its line number.
	if pf, ok := r.b.users.(*passwdfile.File); ok {
		if err := pf.Reload(); err != nil {
			return r.refuse(err)
		}
	}
	if err := r.srv.Reconfigure(scfg); err != nil {
		return r.refuse(err)
	}
	// Cannot fail: Load checked the levels.
	r.logs.SetLevels(next.Log.Level, next.Log.Levels)
	if err := r.logs.Reopen(); err != nil {
		r.log.Error("reopening the log file failed; logging to the old one", "err", err)
	}
	r.applied, r.parts = next, parts
	r.log.Info("configuration reloaded", "file", r.path)
	return nil
}

// refuse logs why a reload failed, one record per problem, and keeps the
// running configuration.
func (r *reloader) refuse(err error) error {
	problems := []error{err}
	var ee *exitError
	if errors.As(err, &ee) {
		problems = []error{ee.err}
	}
	if joined, ok := problems[0].(interface{ Unwrap() []error }); ok {
		problems = joined.Unwrap()
	}
	for _, p := range problems {
		attrs := []any{"err", p}
		var ce *config.Error
		if errors.As(p, &ce) {
			attrs = []any{"file", ce.File, "line", ce.Line, "setting", ce.Setting, "err", ce.Err}
		}
		r.log.Error("configuration not reloaded; still running the previous one", attrs...)
	}
	return fmt.Errorf("reload: %w", err)
}

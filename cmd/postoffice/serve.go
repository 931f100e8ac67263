package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/logging"
	"github.com/postoffice-mail/postoffice/internal/proxy"
	"github.com/postoffice-mail/postoffice/internal/systemd"
	"github.com/postoffice-mail/postoffice/lmtp"
	"github.com/postoffice-mail/postoffice/pop3server"
)

// serveHelp is the help of "postoffice serve" (-h and the man page).
var serveHelp = &help{
	synopsis: []string{"serve [-config FILE]"},
	description: `Runs the POP3 server: the plain POP3 listeners (with STLS when a
certificate is configured), the implicit-TLS listeners, and the LMTP
listener if [lmtp] sets one, as the configuration file says. The file is
checked completely before anything is opened; a mistake is reported with
its file, line and setting, and exit status 78.

SIGHUP reads the file again and applies, without dropping a session,
what can change in a running server: certificates, limits, protocol
policy, authentication settings, [oauth] and log levels (the passwd-file
and renewed certificate files are picked up by themselves). A file with a
mistake is logged with its line and setting, and the running configuration
stays; settings that need a restart (listeners, stores) are logged as such
and ignored. SIGHUP also reopens log.file, for log rotation.

SIGTERM or SIGINT stops the server gracefully: it stops accepting, lets
sessions finish until server.shutdown_timeout, then closes the rest without
applying their deletions. Logs go to standard error unless log.file says
otherwise. Under systemd, the server takes the listening sockets a socket
unit passes (named pop3, pop3s and lmtp) in place of the addresses in the
file, and reports readiness (Type=notify).`,
	examples: []example{
		{"Run with /etc/postoffice/postoffice.toml.", "postoffice serve"},
		{"Run with another configuration file.", "postoffice serve -config /srv/mail/postoffice.toml"},
		{"Apply a changed configuration file to the running server.", "kill -HUP $(pidof postoffice)"},
	},
}

func runServe(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", serveHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return fail(exitUsage, "%v", err)
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveWith(ctx, cfg, stderr, serveOptions{configFile: *configFile, reload: hup})
}

// serveOptions are what serveWith needs beyond the configuration.
type serveOptions struct {
	// configFile is read again on each value from reload (SIGHUP).
	configFile string
	reload     <-chan os.Signal
	// ready, if set, is called with the bound addresses once every
	// listener is open.
	ready func(plain, tls []net.Addr)
}

// serve runs the server described by cfg until ctx is done, then shuts
// down gracefully. ready, if set, is called with the bound addresses once
// every listener is open.
func serve(ctx context.Context, cfg *config.Config, stderr io.Writer, ready func(plain, tls []net.Addr)) error {
	return serveWith(ctx, cfg, stderr, serveOptions{ready: ready})
}

// serveWith is serve with the reload signal. Under systemd it takes the
// listening sockets systemd passed and reports readiness, reloads and
// the shutdown (package internal/systemd); elsewhere both are no-ops.
func serveWith(ctx context.Context, cfg *config.Config, stderr io.Writer, opts serveOptions) error {
	logs, err := logging.New(logging.Options{
		Level: cfg.Log.Level, Levels: cfg.Log.Levels, Format: cfg.Log.Format, File: cfg.Log.File,
	}, stderr)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer logs.Close()
	logger := logs.Logger("server")

	activated, err := systemd.Listeners()
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	sockets, err := sortActivated(activated, cfg)
	if err != nil {
		return err
	}

	srv, b, parts, err := newServer(cfg, logs)
	if err != nil {
		sockets.closeAll()
		return err
	}
	// Runs after the sessions have ended: their leases are released
	// before the pool closes.
	defer b.close()
	// Start-up work (the user database's dummy password hash, tens of
	// MiB with ARGON2ID) leaves memory the server does not need again:
	// give it back now rather than whenever the runtime gets round to it.
	debug.FreeOSMemory()
	plain, secure, err := sockets.pop3Listeners(cfg, logger)
	if err != nil {
		sockets.closeAll()
		return err
	}
	proxyLog := logs.Logger("proxy")
	plain = withProxyProtocol(plain, cfg.ProxyNetworks(false), proxyLog)
	secure = withProxyProtocol(secure, cfg.ProxyNetworks(false), proxyLog)
	if len(plain)+len(secure) == 0 {
		sockets.closeAll()
		return fail(exitConfig, "no listeners: set pop3.listen or pop3.listen_tls")
	}
	lmtpSrv, lmtpListeners, err := startLMTP(cfg, b.users, b.mail, logs, sockets.lmtp)
	if err != nil {
		closeAll(plain)
		closeAll(secure)
		return err
	}
	adm, err := startAdmin(cfg, logs.Logger("admin"), srv, lmtpSrv, b) // [admin]: metrics, /healthz, /readyz
	if err != nil {
		closeAll(plain)
		closeAll(secure)
		closeAll(lmtpListeners)
		return err
	}
	defer adm.close()

	errc := make(chan error, len(plain)+len(secure)+len(lmtpListeners))
	for _, l := range plain {
		go func() { errc <- srv.Serve(l) }()
	}
	for _, l := range secure {
		go func() { errc <- srv.ServeTLS(l) }()
	}
	for _, l := range lmtpListeners {
		go func() { errc <- lmtpSrv.Serve(l) }()
	}
	adm.setReady(true)
	if opts.ready != nil {
		opts.ready(addrs(plain), addrs(secure))
	}
	if err := systemd.Ready(); err != nil {
		logger.Warn("telling systemd the server is ready failed", "err", err)
	}

	r := &reloader{path: opts.configFile, running: cfg, applied: cfg, logs: logs, log: logger, srv: srv, b: b, parts: parts}
	var serveErr error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case serveErr = <-errc:
			logger.Error("listener failed", "err", serveErr)
			break wait
		case <-opts.reload:
			if r.path == "" {
				continue
			}
			systemd.Reloading()
			// The log has the details; "systemctl status" shows
			// the outcome of the last reload.
			if err := r.reload(); err != nil {
				systemd.Status("last reload refused, running the previous configuration: see the log")
			} else {
				systemd.Status("configuration reloaded at " + time.Now().Format(time.DateTime))
			}
			systemd.Ready()
		}
	}
	systemd.Stopping()
	adm.setReady(false)
	timeout := r.applied.Server.ShutdownTimeout.Duration
	logger.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Both sides drain at once, within the one deadline. An LMTP
	// connection cut at the deadline was not acknowledged: the MTA sends
	// its mail again.
	lmtpDone := make(chan struct{})
	go func() {
		defer close(lmtpDone)
		if lmtpSrv == nil {
			return
		}
		if err := lmtpSrv.Shutdown(sctx); err != nil {
			logger.Warn("LMTP connections cut at the shutdown deadline", "err", err)
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("sessions cut at the shutdown deadline", "err", err)
	}
	<-lmtpDone
	logger.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, pop3server.ErrServerClosed) && !errors.Is(serveErr, lmtp.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// newLogger is the single logger of the one-shot commands (deliver, db,
// migrate): [log] format, level and file, without subsystems.
func newLogger(cfg config.Log, stderr io.Writer) (*slog.Logger, func(), error) {
	logs, err := logging.New(logging.Options{Level: cfg.Level, Format: cfg.Format, File: cfg.File}, stderr)
	if err != nil {
		return nil, nil, err
	}
	return logs.Logger("server"), func() { logs.Close() }, nil
}

func listenAll(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(ls)
			if errors.Is(err, syscall.EACCES) {
				return nil, fail(exitTempFail, "listen on %s: %v (ports below 1024 need systemd socket activation, CAP_NET_BIND_SERVICE or root: see docs/operations.md)", a, err)
			}
			return nil, fail(exitTempFail, "listen on %s: %v", a, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// withProxyProtocol makes listeners accept the PROXY protocol from the
// trusted networks ([pop3] or [lmtp] proxy_protocol_from); with none, they
// are returned as they are.
func withProxyProtocol(ls []net.Listener, trusted []netip.Prefix, logger *slog.Logger) []net.Listener {
	if len(trusted) == 0 {
		return ls
	}
	out := make([]net.Listener, len(ls))
	for i, l := range ls {
		out[i] = proxy.NewListener(l, proxy.Config{Trusted: trusted, Logger: logger})
	}
	return out
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

func addrs(ls []net.Listener) []net.Addr {
	var out []net.Addr
	for _, l := range ls {
		out = append(out, l.Addr())
	}
	return out
}

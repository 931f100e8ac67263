package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/proxy"
	"github.com/postoffice-mail/postoffice/lmtp"
	"github.com/postoffice-mail/postoffice/pop3server"
)

func runServe(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	return serve(ctx, cfg, stderr, nil)
}

// serve runs the server described by cfg until ctx is done, then shuts
// down gracefully. ready, if set, is called with the bound addresses once
// every listener is open.
func serve(ctx context.Context, cfg *config.Config, stderr io.Writer, ready func(plain, tls []net.Addr)) error {
	logger, closeLog, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	defer closeLog()

	srv, b, err := newServer(cfg, logger)
	if err != nil {
		return err
	}
	// Runs after the sessions have ended: their leases are released
	// before the pool closes.
	defer b.close()
	// Start-up work (the user database's dummy password hash, tens of
	// MiB with ARGON2ID) leaves memory the server does not need again:
	// give it back now rather than whenever the runtime gets round to it.
	debug.FreeOSMemory()
	plain, err := listenAll(cfg.POP3.Listen)
	if err != nil {
		return err
	}
	secure, err := listenAll(cfg.POP3.ListenTLS)
	if err != nil {
		closeAll(plain)
		return err
	}
	plain = withProxyProtocol(plain, cfg.ProxyNetworks(false), logger)
	secure = withProxyProtocol(secure, cfg.ProxyNetworks(false), logger)
	if len(plain)+len(secure) == 0 {
		return fail(exitConfig, "no listeners: set pop3.listen or pop3.listen_tls")
	}
	lmtpSrv, lmtpListeners, err := startLMTP(cfg, b.users, b.mail, logger)
	if err != nil {
		closeAll(plain)
		closeAll(secure)
		return err
	}

	errc := make(chan error, len(plain)+len(secure)+len(lmtpListeners))
	for _, l := range plain {
		logger.Info("listening", "addr", l.Addr().String(), "tls", "stls")
		go func() { errc <- srv.Serve(l) }()
	}
	for _, l := range secure {
		logger.Info("listening", "addr", l.Addr().String(), "tls", "implicit")
		go func() { errc <- srv.ServeTLS(l) }()
	}
	for _, l := range lmtpListeners {
		go func() { errc <- lmtpSrv.Serve(l) }()
	}
	if ready != nil {
		ready(addrs(plain), addrs(secure))
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout.Duration)
	case serveErr = <-errc:
		logger.Error("listener failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.Duration)
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

func newLogger(cfg config.Log, stderr io.Writer) (*slog.Logger, func(), error) {
	out, closeFn := stderr, func() {}
	if cfg.File != "" {
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		out, closeFn = f, func() { f.Close() }
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Format, "json") {
		return slog.New(slog.NewJSONHandler(out, opts)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(out, opts)), closeFn, nil
}

func listenAll(addrs []string) ([]net.Listener, error) {
	var ls []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			closeAll(ls)
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

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/lmtp"
	"github.com/postoffice-mail/postoffice/metrics"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/postgres"
)

// The admin listener ([admin] listen): /metrics, /healthz and /readyz
// over HTTP, for Prometheus, load balancers and orchestrators. Off by
// default; when off, no metric is counted at all (the servers get no
// Observer).

// Bounds of the admin listener's requests: a scraper or a probe that
// stalls holds one goroutine for seconds, never longer.
const (
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 60 * time.Second
	// readinessTimeout bounds each readiness check (a database ping, a
	// stat on a network file system that may hang).
	readinessTimeout = 2 * time.Second
)

// admin is the running admin listener. A nil *admin (the listener is
// off) accepts every method and does nothing.
type admin struct {
	metrics *metrics.Metrics
	server  *http.Server
	addr    net.Addr
	log     *slog.Logger
	checks  []readinessCheck
	// ready is set once the listeners serve and cleared when the server
	// starts shutting down.
	ready atomic.Bool
	// checking is held while the readiness checks run, so that probes
	// arriving faster than a hung check returns do not pile up.
	checking chan struct{}
	done     chan struct{}
}

// readinessCheck is one thing /readyz asks: name says what, check
// returns nil when it answers.
type readinessCheck struct {
	name  string
	check func(ctx context.Context) error
}

// startAdmin opens the admin listener if cfg asks for one, makes the
// metrics and attaches them to the servers and the store. lmtpSrv may be
// nil. The listener answers at once; /readyz says "not ready" until
// setReady(true).
func startAdmin(cfg *config.Config, logger *slog.Logger, srv *pop3server.Server, lmtpSrv *lmtp.Server, b *backends) (*admin, error) {
	if cfg.Admin.Listen == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, fail(exitTempFail, "admin.listen: listen on %s: %v", cfg.Admin.Listen, err)
	}
	m := metrics.New()
	mechanisms := append([]string{pop3server.MechanismUser}, cfg.Auth.Mechanisms...)
	if cfg.POP3.APOP {
		mechanisms = append(mechanisms, pop3server.MechanismAPOP)
	}
	m.POP3.InitLogins(mechanisms...)
	srv.SetObserver(m.POP3)
	if lmtpSrv != nil {
		lmtpSrv.SetObserver(m.LMTP)
	}
	if md, ok := b.mail.(*maildir.Store); ok {
		md.SetObserver(m.Maildir)
	}
	if b.pg != nil {
		m.WatchPool(poolStats(b.pg))
	}

	a := &admin{
		metrics:  m,
		addr:     l.Addr(),
		log:      logger,
		checks:   readinessChecks(cfg, b),
		checking: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	a.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(a.done)
		if err := a.server.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener failed", "err", err)
		}
	}()
	logger.Info("listening", "addr", l.Addr().String(), "protocol", "http", "serves", "/metrics /healthz /readyz")
	return a, nil
}

// setReady says whether the server takes connections: true once every
// listener serves, false from the start of a shutdown.
func (a *admin) setReady(ready bool) {
	if a != nil {
		a.ready.Store(ready)
	}
}

// close stops the admin listener, letting a scrape in progress finish
// for a moment.
func (a *admin) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.server.Shutdown(ctx); err != nil {
		a.server.Close()
	}
	<-a.done
}

// healthz answers while the process is alive and its HTTP server runs:
// a liveness probe restarts the process only when it stops answering.
func (a *admin) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 when the listeners serve and every readiness check
// passes, else 503 with the reasons, one a line.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	problems := a.readiness(r.Context())
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range problems {
			fmt.Fprintf(w, "not ready: %s\n", p)
		}
		return
	}
	fmt.Fprintln(w, "ready")
}

// readiness runs the checks and returns what fails. The checks run on a
// goroutine of their own, one run at a time: a check stuck in a system
// call (a hung NFS server) does not hold the probe past readinessTimeout,
// and probes arriving meanwhile do not start more runs.
func (a *admin) readiness(ctx context.Context) []string {
	if !a.ready.Load() {
		return []string{"listeners not serving (starting or shutting down)"}
	}
	select {
	case a.checking <- struct{}{}:
	default:
		return []string{"an earlier readiness check is still running"}
	}
	ctx, cancel := context.WithTimeout(ctx, readinessTimeout)
	result := make(chan []string, 1)
	go func() {
		var problems []string
		for _, c := range a.checks {
			if err := c.check(ctx); err != nil {
				problems = append(problems, c.name+": "+err.Error())
			}
		}
		cancel()
		// The run is over before its answer is: a probe that follows
		// the answer at once must not find this run still in progress.
		<-a.checking
		result <- problems
	}()
	timer := time.NewTimer(readinessTimeout + 100*time.Millisecond)
	defer timer.Stop()
	select {
	case problems := <-result:
		return problems
	case <-timer.C:
		return []string{fmt.Sprintf("the store gave no answer within %v", readinessTimeout)}
	}
}

// readinessChecks are the cheap questions that tell whether the store and
// the user database answer: a ping of PostgreSQL, a stat of the
// passwd-file, a stat of the fixed part of the Maildir location (the
// mount point of a network file system, typically).
func readinessChecks(cfg *config.Config, b *backends) []readinessCheck {
	var checks []readinessCheck
	if b.pg != nil {
		checks = append(checks, readinessCheck{"postgresql", postgresCheck(b.pg)})
	}
	if cfg.Users.Backend != "postgres" && cfg.Users.PasswdFile != "" {
		path := cfg.Users.PasswdFile
		checks = append(checks, readinessCheck{"users", func(context.Context) error {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("passwd-file: %w", err)
			}
			return nil
		}})
	}
	if cfg.Store.Backend != "postgres" {
		if dir := maildirBase(cfg.Maildir.Location); dir != "" {
			checks = append(checks, readinessCheck{"maildir", func(context.Context) error {
				return checkMaildirBase(dir)
			}})
		}
	}
	return checks
}

// postgresCheck pings the database with one of the pool's connections.
func postgresCheck(pg *postgres.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := pg.Pool().Ping(ctx); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return nil
	}
}

// poolStats reads the PostgreSQL pool's counters for the metrics.
func poolStats(pg *postgres.Store) func() metrics.PoolStats {
	return func() metrics.PoolStats {
		st := pg.Pool().Stat()
		return metrics.PoolStats{
			Acquired: st.AcquiredConns(), Idle: st.IdleConns(), Constructing: st.ConstructingConns(), Max: st.MaxConns(),
			Acquires: st.AcquireCount(), EmptyAcquires: st.EmptyAcquireCount(), CanceledAcquires: st.CanceledAcquireCount(),
			EmptyAcquireWait: st.EmptyAcquireWaitTime(),
		}
	}
}

// maildirBase returns the directory above the first placeholder of a
// maildir location template ("/srv/mail" for "/srv/mail/{domain}/{user}"),
// or "" when the template starts with one ({home}, ~).
func maildirBase(location string) string {
	location = strings.TrimPrefix(location, "maildir:")
	if i := strings.IndexByte(location, ':'); i >= 0 {
		location = location[:i] // Dovecot's ":LAYOUT=fs" and the like
	}
	if i := strings.IndexAny(location, "{%~"); i >= 0 {
		location = location[:i]
	}
	if !filepath.IsAbs(location) {
		return ""
	}
	dir := filepath.Dir(location)
	if dir == "/" {
		return ""
	}
	return dir
}

// checkMaildirBase stats the fixed part of the Maildir location. It may
// not exist yet (the store creates maildrops, and the directories above
// them, at first use); what must not happen is an I/O error, a stale
// network file system, or something other than a directory there.
func checkMaildirBase(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !info.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

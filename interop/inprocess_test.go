package interop

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/oauth"
	"github.com/postoffice-mail/postoffice/auth/passwdfile"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store/maildir"
	"github.com/postoffice-mail/postoffice/store/maildir/legacy"
)

// startInProcess runs the POP3 engine in the test process with the real
// Maildir store and passwd-file, on two loopback listeners.
func startInProcess(t *testing.T, s *site, opt options) *server {
	t.Helper()
	logs := &syncBuffer{}
	showLogsOnFailure(t, logs)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	users, err := passwdfile.Open(s.passwd)
	if err != nil {
		t.Fatal(err)
	}
	maildrops, err := maildir.New(maildir.Config{
		Location: filepath.Join(s.mailRoot, "{user}", "Maildir"),
		Logger:   logger,
		Legacy: legacy.Config{Source: legacy.Source(opt.importUIDL), DovecotFormat: opt.dovecotUIDLFormat,
			DovecotReuseXUIDL: opt.dovecotReuseXUIDL},
	})
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := certs.ServerConfig(s.certFile, s.keyFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	var tokens auth.TokenValidator
	if opt.oauth != nil {
		// What "postoffice serve" builds from its [oauth] table, with
		// every token asked about (no cache), as the binary is
		// configured.
		if tokens, err = oauth.New(oauth.Config{
			Mode:             oauth.ModeIntrospection,
			IntrospectionURL: opt.oauth.url,
			ClientID:         opt.oauth.clientID,
			ClientSecret:     opt.oauth.clientSecret,
		}); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := pop3server.New(pop3server.Config{
		Hostname:       "localhost",
		Auth:           users,
		Store:          maildrops,
		TLS:            tlsConfig,
		Logger:         logger,
		APOP:           opt.apop,
		Implementation: "postoffice-interop",
		SASLMechanisms: opt.mechanisms,
		Tokens:         tokens,
		// No pause before answering a failed login, as the binary is
		// configured (auth_failure_delay = "0s").
		AuthFailureDelay: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, implicit := freeLoopbackListener(t), freeLoopbackListener(t)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(plain) }()
	go func() { defer wg.Done(); srv.ServeTLS(implicit) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v (a client left a session open)", err)
		}
		wg.Wait()
		if n := srv.Panics(); n != 0 {
			t.Errorf("server recovered %d panics", n)
		}
	})
	return &server{
		plain:  plain.Addr().String(),
		tls:    implicit.Addr().String(),
		caFile: s.certFile,
		logs:   logs,
	}
}

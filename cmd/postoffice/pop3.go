package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"reflect"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/oauth"
	"github.com/postoffice-mail/postoffice/auth/penalty"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/internal/logging"
	"github.com/postoffice-mail/postoffice/pop3server"
)

// newServer wires the user database, the store, TLS, SASL and the
// brute-force defence into the POP3 engine.
func newServer(cfg *config.Config, logs *logging.Logs) (*pop3server.Server, *backends, *pop3Parts, error) {
	b, err := openBackends(cfg, logs.Logger, exitConfig)
	if err != nil {
		return nil, nil, nil, err
	}
	scfg, parts, err := pop3Config(cfg, logs, b, nil)
	if err != nil {
		b.close()
		return nil, nil, nil, err
	}
	srv, err := pop3server.New(scfg)
	if err != nil {
		b.close()
		return nil, nil, nil, fail(exitConfig, "%v", err)
	}
	return srv, b, parts, nil
}

// pop3Parts are the stateful pieces of a POP3 configuration: a reload
// keeps them while their settings stay the same, so that it does not
// forget the failed logins the guard counts or the keys and tokens the
// OAuth validator caches.
type pop3Parts struct {
	guard     pop3server.LoginGuard
	guardCfg  penalty.Config
	tokens    auth.TokenValidator
	tokensCfg config.OAuth
}

// pop3Config builds the POP3 engine's configuration. prev, if not nil,
// holds the parts of the configuration running now, reused where their
// settings did not change.
func pop3Config(cfg *config.Config, logs *logging.Logs, b *backends, prev *pop3Parts) (pop3server.Config, *pop3Parts, error) {
	scfg := pop3server.Config{
		Hostname:            cfg.Server.Hostname,
		Implementation:      cfg.Server.Implementation,
		Auth:                b.users,
		Store:               b.mail,
		Logger:              logs.Logger("pop3"),
		TraceUser:           cfg.Log.TraceUser,
		TraceLogger:         logs.Logger("trace"),
		AllowInsecureAuth:   cfg.POP3.AllowInsecureAuth,
		APOP:                cfg.POP3.APOP,
		LoginDelay:          cfg.POP3.LoginDelay.Duration,
		SASLMechanisms:      cfg.Auth.Mechanisms,
		AuthTimeout:         cfg.Auth.Timeout.Duration,
		MaxConnections:      cfg.Limits.MaxConnections,
		MaxConnectionsPerIP: cfg.Limits.MaxConnectionsPerIP,
		MaxLineLength:       cfg.Limits.MaxLineLength,
		MaxBadCommands:      cfg.Limits.MaxBadCommands,
		IdleTimeout:         cfg.Limits.IdleTimeout.Duration,
		WriteTimeout:        cfg.Limits.WriteTimeout.Duration,
		TLSHandshakeTimeout: cfg.Limits.TLSHandshakeTimeout.Duration,
		AuthFailureDelay:    cfg.Limits.AuthFailureDelay.Duration,
	}
	if cfg.Limits.AuthFailureDelay.Duration == 0 {
		scfg.AuthFailureDelay = -1 // configured off
	}
	scfg.ExpireDays, scfg.ExpireSet = cfg.ExpireDays()
	parts := &pop3Parts{}
	if cfg.Auth.PenaltyBase.Duration > 0 {
		parts.guardCfg = penalty.Config{
			Base:       cfg.Auth.PenaltyBase.Duration,
			Max:        cfg.Auth.PenaltyMax.Duration,
			Window:     cfg.Auth.PenaltyWindow.Duration,
			Trusted:    cfg.TrustedNetworks(),
			MaxTracked: cfg.Auth.MaxTracked,
		}
		if prev != nil && prev.guard != nil && reflect.DeepEqual(prev.guardCfg, parts.guardCfg) {
			parts.guard = prev.guard
		} else {
			parts.guard = penalty.New(parts.guardCfg)
		}
		scfg.LoginGuard = parts.guard
	}
	parts.tokensCfg = cfg.OAuth
	if prev != nil && prev.tokensCfg == cfg.OAuth {
		parts.tokens = prev.tokens
	} else {
		var err error
		if parts.tokens, err = newTokenValidator(cfg, logs.Logger("auth")); err != nil {
			return scfg, nil, fail(exitConfig, "oauth: %v", err)
		}
	}
	scfg.Tokens = parts.tokens
	if cfg.TLS.Cert != "" {
		var err error
		if scfg.TLS, err = serverTLS(cfg, logs.Logger("server")); err != nil {
			return scfg, nil, fail(exitConfig, "tls: %v", err)
		}
	}
	return scfg, parts, nil
}

// serverTLS loads the certificate and, for SASL EXTERNAL, the client CAs.
// The certificate is served by a certs.Reloader, so a renewed one is
// picked up from disk without a signal.
func serverTLS(cfg *config.Config, logger *slog.Logger) (*tls.Config, error) {
	r, err := certs.NewReloader(cfg.TLS.Cert, cfg.TLS.Key, logger)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		GetCertificate: r.GetCertificate,
		MinVersion:     max(cfg.TLSMinVersion(), tls.VersionTLS12),
	}
	if cfg.TLS.ClientCA != "" {
		pem, err := os.ReadFile(cfg.TLS.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca: no PEM certificates in %s", cfg.TLS.ClientCA)
		}
		// Asked for, not required: most clients log in with passwords.
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// newTokenValidator builds the OAuth bearer-token check from [oauth]; nil
// when OAuth is off.
func newTokenValidator(cfg *config.Config, logger *slog.Logger) (auth.TokenValidator, error) {
	o := cfg.OAuth
	return oauth.New(oauth.Config{
		Mode:             o.Mode,
		IntrospectionURL: o.IntrospectionURL,
		ClientID:         o.ClientID,
		ClientSecret:     o.ClientSecret,
		ClientSecretFile: o.ClientSecretFile,
		CacheTTL:         o.CacheTTL.Duration,
		JWKSURL:          o.JWKSURL,
		Issuer:           o.Issuer,
		Audience:         o.Audience,
		RequiredScope:    o.RequiredScope,
		UsernameClaim:    o.UsernameClaim,
		Timeout:          o.Timeout.Duration,
		Logger:           logger,
	})
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/oauth"
	"github.com/postoffice-mail/postoffice/auth/penalty"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3server"
)

// newServer wires the user database, the store, TLS, SASL and the
// brute-force defence into the POP3 engine.
func newServer(cfg *config.Config, logger *slog.Logger) (*pop3server.Server, *backends, error) {
	b, err := openBackends(cfg, logger, exitConfig)
	if err != nil {
		return nil, nil, err
	}
	srv, err := newPOP3(cfg, logger, b)
	if err != nil {
		b.close()
		return nil, nil, err
	}
	return srv, b, nil
}

// newPOP3 configures the POP3 engine on the backends.
func newPOP3(cfg *config.Config, logger *slog.Logger, b *backends) (*pop3server.Server, error) {
	users, mail := b.users, b.mail
	var err error
	scfg := pop3server.Config{
		Hostname:            cfg.Server.Hostname,
		Implementation:      cfg.Server.Implementation,
		Auth:                users,
		Store:               mail,
		Logger:              logger,
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
	if cfg.Auth.PenaltyBase.Duration > 0 {
		scfg.LoginGuard = penalty.New(penalty.Config{
			Base:       cfg.Auth.PenaltyBase.Duration,
			Max:        cfg.Auth.PenaltyMax.Duration,
			Window:     cfg.Auth.PenaltyWindow.Duration,
			Trusted:    cfg.TrustedNetworks(),
			MaxTracked: cfg.Auth.MaxTracked,
		})
	}
	if scfg.Tokens, err = newTokenValidator(cfg); err != nil {
		return nil, fail(exitConfig, "oauth: %v", err)
	}
	if cfg.TLS.Cert != "" {
		if scfg.TLS, err = serverTLS(cfg); err != nil {
			return nil, fail(exitConfig, "tls: %v", err)
		}
	}
	srv, err := pop3server.New(scfg)
	if err != nil {
		return nil, fail(exitConfig, "%v", err)
	}
	return srv, nil
}

// serverTLS loads the certificate and, for SASL EXTERNAL, the client CAs.
func serverTLS(cfg *config.Config) (*tls.Config, error) {
	tc, err := certs.ServerConfig(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLSMinVersion())
	if err != nil {
		return nil, err
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
func newTokenValidator(cfg *config.Config) (auth.TokenValidator, error) {
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
	})
}

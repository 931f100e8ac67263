package main

import (
	"log/slog"
	"net"
	"os"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/delivery"
	"github.com/postoffice-mail/postoffice/internal/logging"
	"github.com/postoffice-mail/postoffice/lmtp"
	"github.com/postoffice-mail/postoffice/store"
)

// newAgent wires the delivery agent of "serve" (LMTP) and "deliver".
func newAgent(cfg *config.Config, users auth.UserLookup, st store.Deliverer, logger *slog.Logger) (*delivery.Agent, error) {
	return delivery.New(delivery.Config{
		Hostname: cfg.Server.Hostname,
		Users:    users,
		Store:    st,
		Addresses: delivery.AddressPolicy{
			ByAddress:       cfg.Delivery.Recipient == "address",
			Domains:         cfg.Delivery.Domains,
			DetailDelimiter: cfg.Delivery.DetailDelimiter,
		},
		MaxMessageSize: cfg.DeliveryMaxMessageSize(),
		Quota:          delivery.Quota{Bytes: int64(cfg.Quota.Storage), Messages: int64(cfg.Quota.Messages)},
		Logger:         logger,
	})
}

// lmtpConfigured reports whether the configuration asks for an LMTP
// listener.
func lmtpConfigured(cfg *config.Config) bool {
	return len(cfg.LMTP.Listen) > 0 || cfg.LMTP.Socket != ""
}

// startLMTP builds the LMTP server and opens its listeners, or returns
// nils when LMTP is not configured. Listeners systemd passed (activated)
// take the place of lmtp.listen and lmtp.socket.
func startLMTP(cfg *config.Config, users auth.UserLookup, st store.Deliverer, logs *logging.Logs, activated []net.Listener) (*lmtp.Server, []net.Listener, error) {
	if !lmtpConfigured(cfg) && len(activated) == 0 {
		return nil, nil, nil
	}
	logger := logs.Logger("lmtp")
	agent, err := newAgent(cfg, users, st, logs.Logger("delivery"))
	if err != nil {
		return nil, nil, fail(exitConfig, "%v", err)
	}
	srv, err := lmtp.New(lmtp.Config{
		Hostname:       cfg.Server.Hostname,
		Agent:          agent,
		Logger:         logger,
		MaxRecipients:  cfg.LMTP.MaxRecipients,
		MaxConnections: cfg.LMTP.MaxConnections,
		ReadTimeout:    cfg.LMTP.ReadTimeout.Duration,
		WriteTimeout:   cfg.LMTP.WriteTimeout.Duration,
	})
	if err != nil {
		return nil, nil, fail(exitConfig, "%v", err)
	}
	if len(activated) > 0 {
		for _, l := range activated {
			logger.Info("listening", "addr", l.Addr().String(), "protocol", "lmtp", "from", "systemd")
		}
		return srv, withProxyProtocol(activated, cfg.ProxyNetworks(true), logs.Logger("proxy")), nil
	}
	ls, err := listenAll(cfg.LMTP.Listen)
	if err != nil {
		return nil, nil, err
	}
	ls = withProxyProtocol(ls, cfg.ProxyNetworks(true), logs.Logger("proxy"))
	if cfg.LMTP.Socket != "" {
		l, err := lmtp.ListenUnix(cfg.LMTP.Socket, os.FileMode(cfg.LMTPSocketMode()), cfg.LMTP.SocketGroup)
		if err != nil {
			closeAll(ls)
			return nil, nil, fail(exitTempFail, "%v", err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		logger.Info("listening", "addr", l.Addr().String(), "protocol", "lmtp")
	}
	return srv, ls, nil
}

package main

import (
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/postoffice-mail/postoffice/config"
)

// The names systemd socket units give the sockets they pass
// (FileDescriptorName= in contrib/systemd/*.socket): one per protocol.
const (
	socketPOP3  = "pop3"  // plain POP3, STLS offered
	socketPOP3S = "pop3s" // implicit TLS
	socketLMTP  = "lmtp"
)

// activatedSockets are the listening sockets systemd passed, by protocol.
// Sockets of a protocol take the place of the addresses the configuration
// lists for it: systemd has bound them already (to ports below 1024
// without the server needing root), and the unit file, not the
// configuration, says where.
type activatedSockets struct {
	pop3, pop3s, lmtp []net.Listener
}

// sortActivated sorts the sockets systemd passed by their names. A socket
// with any other name is an error rather than a socket left unused: the
// unit files and the server disagree, and silently serving nothing there
// would be worse.
func sortActivated(passed map[string][]net.Listener, cfg *config.Config) (*activatedSockets, error) {
	s := &activatedSockets{
		pop3:  passed[socketPOP3],
		pop3s: passed[socketPOP3S],
		lmtp:  passed[socketLMTP],
	}
	var unknown []string
	for name := range passed {
		if name != socketPOP3 && name != socketPOP3S && name != socketLMTP {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		s.closeAll()
		for _, ls := range passed {
			closeAll(ls)
		}
		return nil, fail(exitConfig, "systemd passed sockets named %s; name each socket %q, %q or %q with FileDescriptorName= (see contrib/systemd)",
			strings.Join(unknown, ", "), socketPOP3, socketPOP3S, socketLMTP)
	}
	if len(s.pop3s) > 0 && cfg.TLS.Cert == "" {
		s.closeAll()
		return nil, fail(exitConfig, "systemd passed a %q socket for implicit TLS, but tls.cert and tls.key are not set", socketPOP3S)
	}
	return s, nil
}

// pop3Listeners returns the plain and implicit-TLS POP3 listeners: those
// systemd passed, and for a protocol it passed none of, those the
// configuration lists, opened now.
func (s *activatedSockets) pop3Listeners(cfg *config.Config, logger *slog.Logger) (plain, secure []net.Listener, err error) {
	mode := "stls"
	if cfg.TLS.Cert == "" {
		mode = "none" // no certificate: STLS is not offered
	}
	plain, err = s.orListen(s.pop3, cfg.POP3.Listen, "pop3.listen", mode, logger)
	if err != nil {
		return nil, nil, err
	}
	secure, err = s.orListen(s.pop3s, cfg.POP3.ListenTLS, "pop3.listen_tls", "implicit", logger)
	if err != nil {
		closeAll(plain)
		return nil, nil, err
	}
	return plain, secure, nil
}

func (s *activatedSockets) orListen(passed []net.Listener, addrs []string, setting, mode string, logger *slog.Logger) ([]net.Listener, error) {
	if len(passed) > 0 {
		for _, l := range passed {
			logger.Info("listening", "addr", l.Addr().String(), "protocol", "pop3", "tls", mode, "from", "systemd")
		}
		if len(addrs) > 0 {
			logger.Info("using the sockets systemd passed instead of "+setting, "configured", strings.Join(addrs, " "))
		}
		return passed, nil
	}
	ls, err := listenAll(addrs)
	if err != nil {
		return nil, err
	}
	for _, l := range ls {
		logger.Info("listening", "addr", l.Addr().String(), "protocol", "pop3", "tls", mode)
	}
	return ls, nil
}

// closeAll closes every socket systemd passed.
func (s *activatedSockets) closeAll() {
	if s == nil {
		return
	}
	closeAll(s.pop3)
	closeAll(s.pop3s)
	closeAll(s.lmtp)
}

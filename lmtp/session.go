package lmtp

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postoffice-mail/postoffice/delivery"
)

// backend makes a session per connection (at LHLO).
type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{s: b.s, ctx: ctx, cancel: cancel, helo: c.Hostname()}
	if tcp, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		sess.remoteIP = tcp.IP.String()
	}
	b.s.logger.Debug("lmtp session", "remote", c.Conn().RemoteAddr().String(), "helo", sess.helo)
	return sess, nil
}

// session is one connection's state: the current transaction.
type session struct {
	s        *Server
	ctx      context.Context
	cancel   context.CancelFunc
	helo     string
	remoteIP string

	from    string
	hasFrom bool
	size    int64 // SIZE announced with MAIL, or 0
	rcpts   []*delivery.Recipient
	count   map[string]int // RCPT commands accepted per address
	id      string
}

var _ smtp.LMTPSession = (*session)(nil)

// Mail starts a transaction (RFC 5321 §4.1.1.2).
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := delivery.CheckSender(from); err != nil {
		return reply(err)
	}
	s.Reset()
	s.from, s.hasFrom = from, true
	if opts != nil {
		s.size = opts.Size
	}
	s.id = delivery.NewID()
	return nil
}

// Rcpt resolves a recipient and checks its quota at once, so that a
// refusal happens in the MTA's session, not as a later bounce.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	r, err := s.s.cfg.Agent.Resolve(s.ctx, to)
	if err == nil {
		err = s.s.cfg.Agent.CheckQuota(s.ctx, r, s.size)
	}
	if err != nil {
		s.s.logger.Info("recipient refused", "id", s.id, "to", to, "err", err)
		s.s.observeReply(err, 0, 0)
		return reply(err)
	}
	if s.count == nil {
		s.count = make(map[string]int)
	}
	if s.count[to] == 0 {
		s.rcpts = append(s.rcpts, r)
	}
	s.count[to]++
	return nil
}

// Data is the SMTP form of DATA; go-smtp calls LMTPData in LMTP mode, so
// this is used only if that changes: one status for all recipients.
func (s *session) Data(r io.Reader) error {
	var first error
	s.LMTPData(r, statusFunc(func(_ string, err error) {
		if first == nil {
			first = err
		}
	}))
	return first
}

// statusFunc adapts a function to smtp.StatusCollector.
type statusFunc func(rcpt string, err error)

func (f statusFunc) SetStatus(rcpt string, err error) { f(rcpt, err) }

// LMTPData reads the message once and delivers it to each recipient in
// turn, reporting each recipient's status as soon as its copy is durable
// (RFC 2033 §4.2). go-smtp sends one reply per RCPT, in order, also for an
// address given twice (delivered once).
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	agent := s.s.cfg.Agent
	msg, err := agent.ReadMessage(r)
	if err != nil {
		s.s.logger.Info("message refused", "id", s.id, "from", s.from, "err", err)
		for range s.rcpts {
			s.s.observeReply(err, 0, 0)
		}
		// go-smtp's own refusals (the size limit) come through the
		// reader.
		var smtpErr *smtp.SMTPError
		if errors.As(err, &smtpErr) {
			return smtpErr
		}
		return reply(err)
	}
	defer msg.Close()
	env := &delivery.Envelope{From: s.from, Helo: s.helo, RemoteIP: s.remoteIP, Protocol: "LMTP", ID: s.id}
	for _, rcpt := range s.rcpts {
		// The message is in the spool now: finish the deliveries even
		// if the connection goes, rather than stop half-way through a
		// store's steps (each step cleans up after itself either way).
		start := time.Now()
		info, err := agent.Deliver(context.WithoutCancel(s.ctx), env, msg, rcpt)
		s.s.observeReply(err, info.Size, time.Since(start))
		// go-smtp wants one status per RCPT command: an address given
		// twice was delivered once and gets the same reply twice.
		for range s.count[rcpt.Address] {
			status.SetStatus(rcpt.Address, reply(err))
		}
	}
	return nil
}

// Reset ends the transaction (RSET, a new MAIL, the end of DATA).
func (s *session) Reset() {
	s.from, s.hasFrom, s.size, s.rcpts, s.count, s.id = "", false, 0, nil, nil, ""
}

// Logout ends the session.
func (s *session) Logout() error {
	s.cancel()
	return nil
}

// reply turns a delivery error into go-smtp's reply; nil stays nil (250).
func reply(err error) error {
	if err == nil {
		return nil
	}
	var e *delivery.Error
	if !errors.As(err, &e) {
		e = delivery.ErrTemporary
	}
	return &smtp.SMTPError{
		Code:         e.Code,
		EnhancedCode: smtp.EnhancedCode(e.Enhanced),
		Message:      e.Text,
	}
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/config"
	"github.com/postoffice-mail/postoffice/delivery"
)

// Exit codes of "deliver", as MTAs read them (sysexits.h; Postfix's
// pipe(8) and Exim's pipe transport defer on 75 and bounce on the others).
const (
	exitDataErr    = 65 // EX_DATAERR: the message itself is refused
	exitCantCreate = 73 // EX_CANTCREAT: the maildrop is over quota
)

// deliverHelp is the help of "postoffice deliver".
var deliverHelp = &help{
	synopsis: []string{"deliver [-c FILE] (-d USER | -a ADDRESS) [-a ADDRESS] [-r ADDRESS] [-f SENDER] < MESSAGE"},
	description: `Delivers one message, read from standard input, to one user's maildrop:
a local delivery agent for an MTA's pipe (Postfix's pipe(8), Exim's pipe
transport, a .forward or procmail line), with dovecot-lda's options. It
follows the same rules as LMTP ([delivery] and [quota] in the
configuration file): the message is written, fsynced and renamed into
place before the command exits 0.

Exit status, as MTAs read it: 0 delivered; 67 unknown user; 65 message
refused (too large, a NUL octet, an over-long line, a mail loop); 73 over
quota; 75 temporary failure, so that the MTA keeps the message and tries
again. A wrong command line or configuration is 75 too: mail waits in the
queue while the administrator fixes it instead of bouncing. The reason is
one line on standard error.`,
	examples: []example{
		{"Deliver a message to alice.", "postoffice deliver -d alice < message.eml"},
		{"Postfix master.cf: deliver through a pipe as the vmail user.", `postoffice unix - n n - - pipe
  flags=hu user=vmail argv=/usr/local/bin/postoffice deliver -f ${sender} -a ${original_recipient} -d ${user}`},
	},
}

// runDeliver is "postoffice deliver": a local delivery agent for a pipe,
// with dovecot-lda's options. It reads one message on standard input and
// delivers it to one user, then exits 0 (delivered, durably), 67 (unknown
// user), 65 (message refused), 73 (over quota) or 75 (temporary failure:
// the MTA retries). Mistakes in the command line or the configuration are
// 75 too, so that mail waits in the queue while the administrator fixes
// them instead of bouncing. The reason goes to standard error, one line.
func runDeliver(args []string, stdin io.Reader, _, stderr io.Writer) error {
	fs := newFlagSet("deliver", deliverHelp, stderr)
	configFile := fs.String("config", "/etc/postoffice/postoffice.toml", "configuration `file`")
	fs.StringVar(configFile, "c", "/etc/postoffice/postoffice.toml", "configuration `file` (as dovecot-lda's -c)")
	user := fs.String("d", "", "destination `user` name, looked up in the user database")
	address := fs.String("a", "", "destination `address` (the original recipient); with no -d, the user is found from it as LMTP does")
	final := fs.String("r", "", "final recipient `address`, written into Delivered-To (default: -a, else the user name)")
	from := fs.String("f", "", "envelope `sender`; default: the mbox \"From \" line, if the message starts with one, else <>")
	fs.Bool("e", false, "ignored: rejections always go to standard error with an exit code (dovecot-lda compatibility)")
	fs.Bool("k", false, "ignored (dovecot-lda compatibility)")
	fs.String("m", "", "ignored: POP3 has one mailbox (dovecot-lda compatibility)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fail(exitTempFail, "%v", err)
	}
	if fs.NArg() > 0 {
		return fail(exitTempFail, "unexpected arguments %q", fs.Args())
	}
	if *user == "" && *address == "" && *final == "" {
		return fail(exitTempFail, "no recipient: give -d user or -a address")
	}
	cfg, err := config.Load(*configFile)
	if err != nil {
		return fail(exitTempFail, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger, closeLog, err := deliverLogger(cfg.Log)
	if err != nil {
		return fail(exitTempFail, "%v", err)
	}
	defer closeLog()
	b, err := openBackends(cfg, func(string) *slog.Logger { return logger }, exitTempFail)
	if err != nil {
		return err
	}
	defer b.close()
	users := b.users
	agent, err := newAgent(cfg, users, b.mail, logger)
	if err != nil {
		return fail(exitTempFail, "%v", err)
	}

	rcpt, err := deliverRecipient(ctx, agent, users, *user, *address, *final)
	if err != nil {
		return deliverFailure(err)
	}
	in := bufio.NewReaderSize(stdin, 64*1024)
	mboxSender, err := delivery.SkipMboxFromLine(in)
	if err != nil {
		return fail(exitTempFail, "read message: %v", err)
	}
	sender := *from
	if sender == "" {
		sender = mboxSender
	}
	if err := delivery.CheckSender(sender); err != nil {
		return deliverFailure(err)
	}
	msg, err := agent.ReadMessage(in)
	if err != nil {
		return deliverFailure(err)
	}
	defer msg.Close()
	env := &delivery.Envelope{From: sender, ID: delivery.NewID()}
	if _, err := agent.Deliver(ctx, env, msg, rcpt); err != nil {
		return deliverFailure(err)
	}
	return nil
}

// deliverRecipient finds the recipient: the user named by -d (Delivered-To
// then names the -r or -a address, or the user), or else the user the -a
// (or -r) address belongs to, mapped as LMTP maps it.
func deliverRecipient(ctx context.Context, agent *delivery.Agent, users auth.UserLookup, user, address, final string) (*delivery.Recipient, error) {
	shown := final
	if shown == "" {
		shown = address
	}
	if user == "" {
		r, err := agent.Resolve(ctx, shown)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	if shown == "" {
		shown = user
	}
	if err := delivery.CheckSender(shown); err != nil { // no control characters for Delivered-To
		return nil, delivery.ErrBadAddress
	}
	if auth.ValidUsername(user) != nil {
		return nil, delivery.ErrUnknownUser
	}
	u, err := users.LookupUser(ctx, user)
	if errors.Is(err, auth.ErrFailed) {
		return nil, delivery.ErrUnknownUser
	}
	if err != nil {
		return nil, delivery.ErrTemporary.With("User database unavailable", err)
	}
	return &delivery.Recipient{Address: shown, User: u}, nil
}

// deliverFailure turns a delivery error into the exit code an MTA
// understands and the one-line reason it shows.
func deliverFailure(err error) error {
	var e *delivery.Error
	if !errors.As(err, &e) {
		return fail(exitTempFail, "%v", err)
	}
	code := exitDataErr
	switch {
	case e.Temporary():
		code = exitTempFail
	case errors.Is(e, delivery.ErrQuota):
		code = exitCantCreate
	case errors.Is(e, delivery.ErrBadSender):
		code = exitDataErr
	case e.Enhanced[1] == 1: // X.1.x: the recipient's address
		code = exitNoUser
	}
	return &exitError{code: code, err: e}
}

// deliverLogger logs to the configured log file, or nowhere: standard
// error belongs to the MTA, which shows it in bounces and its own log.
func deliverLogger(cfg config.Log) (*slog.Logger, func(), error) {
	if cfg.File == "" {
		return slog.New(slog.DiscardHandler), func() {}, nil
	}
	return newLogger(cfg, os.Stderr)
}

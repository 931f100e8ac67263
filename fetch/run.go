package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postoffice-mail/postoffice/pop3client"
)

// now is the clock (tests move it).
var now = time.Now

// Options steer a run.
type Options struct {
	// DryRun connects, logs in and lists, and reports what would be
	// fetched and deleted; it writes nothing and deletes nothing.
	DryRun bool
	// Log receives warnings and, with Verbose, a line per message.
	Log io.Writer
	// Verbose logs each message.
	Verbose bool
	// Progress, when set, is told how the download advances.
	Progress Progress
	// Window is how many RETR commands are in flight at once when the
	// server offers PIPELINING (default 16).
	Window int
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Run fetches every account of cfg (or only those named) in turn and
// returns one Result per account.
func Run(ctx context.Context, cfg *Config, names []string, opts Options) []Result {
	var results []Result
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		if len(names) > 0 && !slices.Contains(names, a.Name) {
			continue
		}
		results = append(results, FetchAccount(ctx, cfg, a, opts))
	}
	return results
}

// FetchAccount runs one account: connect, log in, list, recover an
// interrupted run, download what is new, record it, delete what the
// policy says, QUIT. The returned Result's Err names the account and, for
// a failure with one message, the message.
func FetchAccount(ctx context.Context, cfg *Config, a *Account, opts Options) Result {
	start := now()
	r := &run{cfg: cfg, acct: a, opts: &opts, res: Result{Account: a.Name, DryRun: opts.DryRun}}
	err := r.run(ctx)
	r.res.Duration = now().Sub(start)
	if err != nil {
		r.res.Err = fmt.Errorf("account %s: %w", a.Name, err)
		r.res.Code = classify(err)
		return r.res
	}
	if r.res.Fetched > 0 {
		r.res.Code = ExitFetched
	} else {
		r.res.Code = ExitNoMail
	}
	return r.res
}

type run struct {
	cfg    *Config
	acct   *Account
	opts   *Options
	res    Result
	client *pop3client.Client
	state  *state
	dest   destination
	byUID  map[string]pop3client.MessageInfo
}

func (r *run) run(ctx context.Context) error {
	secret, err := r.secret(ctx)
	if err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	defer r.client.Close()
	if err := r.authenticate(ctx, secret); err != nil {
		return err
	}
	// RFC 2449 §5: capabilities may change after login.
	caps, err := r.client.Capabilities(ctx)
	if err != nil && !isNegativeReply(err) {
		return err
	}
	if d, ok := caps.LoginDelay(); ok {
		r.res.LoginDelay = d
	}
	msgs, err := r.client.Messages(ctx)
	if err != nil {
		if isNegativeReply(err) {
			return errorf(ExitUnavailable, "the server does not support UIDL, which fetch needs to tell new messages from old: %w", err)
		}
		return err
	}
	r.byUID = make(map[string]pop3client.MessageInfo, len(msgs))
	for _, m := range msgs {
		if _, dup := r.byUID[m.UID]; dup {
			return errorf(ExitProtocol, "the server lists unique id %q twice", m.UID)
		}
		r.byUID[m.UID] = m
	}

	r.state, err = openState(r.cfg.StateDir, r.acct.Name, r.opts.DryRun)
	if err != nil {
		if errors.Is(err, errLocked) {
			return withCode(ExitTempFail, err)
		}
		return withCode(ExitLocal, err)
	}
	defer r.state.close()
	if !r.opts.DryRun {
		if r.dest, err = r.newDestination(); err != nil {
			return withCode(ExitLocal, err)
		}
		defer r.dest.close()
		if err := r.recover(ctx, msgs); err != nil {
			return err
		}
	}

	var todo []pop3client.MessageInfo
	for _, m := range msgs {
		if _, seen := r.state.seen[m.UID]; !seen {
			todo = append(todo, m)
		}
	}
	if r.opts.DryRun {
		return r.dryRun(ctx, msgs, todo)
	}
	if err := r.state.beginRun(now()); err != nil {
		return withCode(ExitLocal, err)
	}
	deletes, err := r.download(ctx, todo)
	if err != nil {
		// Everything written was settled (committed and recorded, or
		// removed): the run ended cleanly even though it failed.
		if serr := r.state.endRun(); serr != nil {
			err = errors.Join(err, withCode(ExitLocal, serr))
		}
		return err
	}
	// Messages downloaded earlier that the policy now deletes.
	deletes = append(deletes, r.policyDeletes(ctx, msgs, todo)...)
	var deleErr error
	for _, d := range deletes {
		if err := d.resp.Wait(ctx); err != nil {
			deleErr = fmt.Errorf("message %d (uid %s): %w", d.msg.Number, d.msg.UID, err)
			break
		}
	}
	if deleErr == nil {
		if err := r.client.Quit(ctx); err != nil {
			deleErr = err
		} else {
			r.res.Deleted = len(deletes)
		}
	}
	r.res.Left = len(msgs) - r.res.Deleted
	// Forget the unique ids no longer on the server (never reused).
	deleted := make(map[string]bool, len(deletes))
	if deleErr == nil {
		for _, d := range deletes {
			deleted[d.msg.UID] = true
		}
	}
	if err := r.state.compact(func(uid string) bool {
		_, on := r.byUID[uid]
		return on && !deleted[uid]
	}); err != nil {
		return errors.Join(deleErr, withCode(ExitLocal, err))
	}
	return deleErr
}

// secret is the password or token: written in the file, or the first
// line of password_command's output.
func (r *run) secret(ctx context.Context) (string, error) {
	if r.acct.PasswordCommand == "" {
		return r.acct.Password, nil
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, "/bin/sh", "-c", r.acct.PasswordCommand).Output()
	if err != nil {
		return "", errorf(ExitTempFail, "password_command: %v", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errorf(ExitConfig, "password_command printed nothing")
	}
	return line, nil
}

func (r *run) connect(ctx context.Context) error {
	a := r.acct
	tlsConfig := &tls.Config{ServerName: a.TLSServerName}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return errorf(ExitConfig, "ca_file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return errorf(ExitConfig, "ca_file %s: no certificate in it", a.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	sec := map[string]pop3client.Security{"implicit": pop3client.SecurityTLS, "starttls": pop3client.SecuritySTLS, "none": pop3client.SecurityNone}[a.TLS]
	c, err := pop3client.Dial(ctx, net.JoinHostPort(a.Server, strconv.Itoa(a.Port)), &pop3client.Options{
		Security:          sec,
		TLSConfig:         tlsConfig,
		Timeout:           a.Timeout.Duration,
		AllowInsecureAuth: a.AllowInsecureAuth,
		DisablePipelining: !*a.Pipelining,
	})
	if err != nil {
		return err
	}
	r.client = c
	return nil
}

// authenticate logs in with the configured mechanism, or for "auto" the
// best the server offers: SCRAM-SHA-256, then USER/PASS, then PLAIN.
func (r *run) authenticate(ctx context.Context, secret string) error {
	a := r.acct
	caps, err := r.client.Capabilities(ctx)
	if err != nil && !isNegativeReply(err) {
		return err
	}
	mech := a.Mechanism
	if mech == "auto" {
		switch {
		case caps.HasSASL("SCRAM-SHA-256"):
			mech = "scram-sha-256"
		case caps.Has("USER") || len(caps) == 0:
			mech = "user"
		case caps.HasSASL("PLAIN"):
			mech = "plain"
		case r.client.APOPTimestamp() != "":
			mech = "apop"
		default:
			mech = "user"
		}
	} else if mech != "user" && mech != "apop" && len(caps) > 0 && !caps.HasSASL(mech) {
		return errorf(ExitUnavailable, "the server does not offer SASL %s (it offers: %s)", strings.ToUpper(mech), strings.Join(caps.SASL(), " "))
	}
	switch mech {
	case "user":
		err = r.client.Login(ctx, a.User, secret)
	case "apop":
		err = r.client.APOP(ctx, a.User, secret)
	case "plain":
		err = r.client.Auth(ctx, sasl.NewPlainClient("", a.User, secret))
	case "login":
		err = r.client.Auth(ctx, pop3client.NewLoginClient(a.User, secret))
	case "scram-sha-256":
		var m sasl.Client
		if m, err = pop3client.NewSCRAMSHA256Client(a.User, secret); err == nil {
			err = r.client.Auth(ctx, m)
		}
	case "xoauth2":
		err = r.client.Auth(ctx, pop3client.NewXOAUTH2Client(a.User, secret))
	case "oauthbearer":
		err = r.client.Auth(ctx, sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: a.User, Token: secret, Host: a.Server, Port: a.Port}))
	}
	if err == nil {
		return nil
	}
	if perr, ok := pop3client.ReplyError(err); ok && !perr.Temporary() {
		// Old servers send no [AUTH] code: a refused login is a refused
		// login.
		return withCode(ExitAuth, fmt.Errorf("login as %s (%s) failed: %w", a.User, mech, err))
	}
	return fmt.Errorf("login as %s (%s): %w", a.User, mech, err)
}

func isNegativeReply(err error) bool {
	_, ok := pop3client.ReplyError(err)
	return ok
}

func (r *run) newDestination() (destination, error) {
	a := r.acct
	switch {
	case a.Maildir != "":
		return newMaildirDest(a.Maildir)
	case a.Mbox != "":
		return newMboxDest(a.Mbox, r.state), nil
	default:
		return newMDADest(a.MDA, r.cfg.StateDir), nil
	}
}

// recover settles an interrupted run before anything new is fetched.
func (r *run) recover(ctx context.Context, msgs []pop3client.MessageInfo) error {
	if !r.state.unclean && len(r.state.pending) == 0 {
		return nil
	}
	var unseen []string
	for _, m := range msgs {
		if _, seen := r.state.seen[m.UID]; !seen {
			unseen = append(unseen, m.UID)
		}
	}
	found, err := r.dest.recover(ctx, &recovery{
		account: r.acct.Name,
		unseen:  unseen,
		pending: maps(r.state.pending),
		refetch: func(ctx context.Context, uid string) (io.ReadCloser, error) {
			m, ok := r.byUID[uid]
			if !ok {
				return nil, fmt.Errorf("message %s is no longer on the server", uid)
			}
			return r.client.Retr(ctx, m.Number)
		},
		warn: func(format string, args ...any) { r.opts.logf("%s: "+format, append([]any{r.acct.Name}, args...)...) },
	})
	if err != nil {
		if r.client.Noop(ctx) != nil {
			return err // the connection failed, not the destination
		}
		return withCode(ExitLocal, fmt.Errorf("recovering an interrupted run: %w", err))
	}
	at := now()
	for uid := range found {
		r.state.delivered(uid, at)
		r.res.Recovered++
	}
	for uid := range maps(r.state.pending) {
		r.state.cancel(uid)
	}
	if err := r.state.endRun(); err != nil {
		return withCode(ExitLocal, err)
	}
	if len(found) > 0 {
		r.opts.logf("%s: %d messages delivered by an interrupted run were recorded", r.acct.Name, len(found))
	}
	return nil
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// pendingDele is a DELE sent (or queued) and its message.
type pendingDele struct {
	msg  pop3client.MessageInfo
	resp *pop3client.Response
}

// download fetches todo in order, pipelined when the server allows, and
// settles the destination in batches: commit, record the batch in the
// journal (fsync), and only then queue its DELEs. On error, the messages
// already written are settled the same way and the failed one is removed.
func (r *run) download(ctx context.Context, todo []pop3client.MessageInfo) ([]pendingDele, error) {
	p := r.client.Pipeline()
	window := 1
	if p.Active() {
		window = r.opts.Window
		if window <= 0 {
			window = 16
		}
	}
	var total int64
	for _, m := range todo {
		total += m.Size
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Start(r.acct.Name, len(todo), total)
		defer r.opts.Progress.Finish()
	}
	resps := make([]*pop3client.Response, len(todo))
	sent := 0
	var batch []pop3client.MessageInfo
	var deletes []pendingDele
	settle := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.dest.commit(ctx); err != nil {
			batch = nil
			return withCode(ExitLocal, err)
		}
		if !r.dest.durableOnWrite() {
			at := now()
			for _, m := range batch {
				r.state.delivered(m.UID, at)
			}
		}
		if err := r.state.sync(); err != nil {
			return withCode(ExitLocal, err)
		}
		for _, m := range batch {
			r.res.Fetched++
			r.res.Bytes += m.Size
			if !r.acct.Keep {
				deletes = append(deletes, pendingDele{msg: m, resp: p.Dele(ctx, m.Number)})
			}
		}
		batch = nil
		return nil
	}
	for i, m := range todo {
		for sent < len(todo) && sent < i+window {
			resps[sent] = p.Retr(ctx, todo[sent].Number)
			sent++
		}
		err := r.fetchOne(ctx, resps[i], m)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("message %d (uid %s): %w", m.Number, m.UID, err), settle())
		}
		batch = append(batch, m)
		if r.dest.durableOnWrite() {
			// Delivered already (the MDA exited 0, the mbox was
			// synced): record it at once, in the file though not yet
			// fsynced, so that a killed fetch does not deliver it
			// again; the batch's fsync comes before its DELEs.
			r.state.delivered(m.UID, now())
			if err := r.state.flush(); err != nil {
				return nil, errors.Join(withCode(ExitLocal, err), settle())
			}
		}
		if len(batch) >= r.dest.batchSize() {
			if err := settle(); err != nil {
				return nil, err
			}
		}
	}
	if err := settle(); err != nil {
		return nil, err
	}
	return deletes, nil
}

// fetchOne streams one message into the destination, checking its size
// against LIST (RFC 1939 §5: the sizes are exact).
func (r *run) fetchOne(ctx context.Context, resp *pop3client.Response, m pop3client.MessageInfo) error {
	body, err := resp.Message(ctx)
	if err != nil {
		return err
	}
	checked := &sizeCheck{r: body, want: m.Size, strict: !r.acct.IgnoreSizes}
	msg := &message{account: r.acct.Name, uid: m.UID, number: m.Number, size: m.Size}
	if err := r.dest.write(ctx, msg, checked); err != nil {
		var se *sizeError
		switch {
		case errors.As(checked.err, &se):
			// The rest of the reply is unknown: read no further.
			r.client.Close()
			return withCode(ExitProtocol, se)
		case checked.err != nil, ctx.Err() != nil:
			return err // the server or the connection failed
		}
		var me *mdaError
		if errors.As(err, &me) {
			return withCode(ExitTempFail, err)
		}
		return withCode(ExitLocal, err)
	}
	if r.opts.Verbose {
		r.opts.logf("%s: message %d (uid %s, %d octets) -> %s", r.acct.Name, m.Number, m.UID, checked.n, r.dest)
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Advance(1, m.Size)
	}
	return nil
}

// sizeCheck fails a message that is longer than LIST announced as soon
// as it is, and one that is shorter at its end. One difference is
// tolerated: a message whose stored form does not end with a line end is
// sent with a CRLF added before the terminating line (RFC 1939 §3 needs
// one), and some servers (Dovecot 2.3 among them) leave those two octets
// out of the size they announce.
type sizeCheck struct {
	r      io.Reader
	want   int64
	n      int64
	strict bool
	err    error
	last   [2]byte // the last two octets read
}

type sizeError struct{ want, got int64 }

func (e *sizeError) Error() string {
	if e.got > e.want {
		return fmt.Sprintf("the server announced %d octets and sent more", e.want)
	}
	return fmt.Sprintf("the server announced %d octets and sent %d", e.want, e.got)
}

func (s *sizeCheck) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	switch {
	case n >= 2:
		s.last = [2]byte{p[n-2], p[n-1]}
	case n == 1:
		s.last = [2]byte{s.last[1], p[0]}
	}
	if !s.strict {
		return n, err
	}
	if s.n > s.want+2 {
		s.err = &sizeError{want: s.want, got: s.n}
		return 0, s.err
	}
	if err == io.EOF && s.n != s.want && !(s.n == s.want+2 && s.last == [2]byte{'\r', '\n'}) {
		s.err = &sizeError{want: s.want, got: s.n}
		return n, s.err
	}
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// policyDeletes queues the DELEs of messages downloaded before: all of
// them without keep, those downloaded DeleteAfterDays ago with it.
func (r *run) policyDeletes(ctx context.Context, msgs, todo []pop3client.MessageInfo) []pendingDele {
	fetchedNow := make(map[string]bool, len(todo))
	for _, m := range todo {
		fetchedNow[m.UID] = true
	}
	p := r.client.Pipeline()
	var out []pendingDele
	cutoff := now().Add(-time.Duration(r.acct.DeleteAfterDays) * 24 * time.Hour)
	for _, m := range msgs {
		at, seen := r.state.seen[m.UID]
		if !seen || fetchedNow[m.UID] {
			continue
		}
		if !r.acct.Keep || r.acct.DeleteAfterDays > 0 && at.Before(cutoff) {
			out = append(out, pendingDele{msg: m, resp: p.Dele(ctx, m.Number)})
		}
	}
	return out
}

// dryRun reports what a real run would do.
func (r *run) dryRun(ctx context.Context, msgs, todo []pop3client.MessageInfo) error {
	var bytes int64
	for _, m := range todo {
		bytes += m.Size
		if r.opts.Verbose {
			r.opts.logf("%s: would fetch message %d (uid %s, %d octets)", r.acct.Name, m.Number, m.UID, m.Size)
		}
	}
	r.res.Fetched, r.res.Bytes = len(todo), bytes
	cutoff := now().Add(-time.Duration(r.acct.DeleteAfterDays) * 24 * time.Hour)
	for _, m := range msgs {
		at, seen := r.state.seen[m.UID]
		switch {
		case !r.acct.Keep:
			r.res.Deleted++
		case r.acct.DeleteAfterDays > 0 && seen && at.Before(cutoff):
			r.res.Deleted++
		}
	}
	r.res.Left = len(msgs) - r.res.Deleted
	// QUIT without DELE: nothing changes on the server.
	return r.client.Quit(ctx)
}

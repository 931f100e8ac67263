package pop3server

import (
	"bytes"
	"log/slog"
	"strings"
)

// maxPendingTrace bounds the lines a session keeps before it is known
// whose it is: a client that never logs in cannot grow the buffer.
const maxPendingTrace = 32

// tracer writes the protocol trace of one user's sessions (Config.
// TraceUser): the commands, with secrets masked, and the first line of
// every reply. A session does not know its user until USER, APOP or a
// finished AUTH names it, so until then it keeps its lines aside; they
// are logged if the session turns out to be the traced user's, and
// dropped otherwise. Only the session's own goroutine uses it.
type tracer struct {
	log     *slog.Logger
	user    string
	on      bool // the session is the traced user's
	off     bool // the session is someone else's
	pending []traceLine
	dropped int // pending lines lost to the bound
	// wantReply: the next write to the client starts the reply to the
	// last traced command.
	wantReply bool
}

// traceLine is one line of the trace: "C" from the client, "S" from the
// server.
type traceLine struct{ dir, text string }

func newTracer(log *slog.Logger, user string) *tracer {
	return &tracer{log: log, user: user}
}

// command traces a command line the client sent.
func (t *tracer) command(line []byte) {
	name, args, _ := strings.Cut(string(line), " ")
	switch strings.ToUpper(name) {
	case "USER", "APOP":
		// The name is the first argument; the session may be the
		// traced user's before the credentials are checked, so that
		// a failing login is traced too.
		user, _, _ := strings.Cut(args, " ")
		t.named(user)
	}
	t.record("C", maskCommand(line))
	t.wantReply = true
}

// saslResponse traces one client line of an AUTH exchange: only a
// cancellation ("*") is shown, since every other response carries
// credentials or proof of them.
func (t *tracer) saslResponse(line string) {
	if line != "*" {
		line = "***"
	}
	t.record("C", line)
	t.wantReply = true
}

// expectReply marks the next write as a reply worth tracing (the
// greeting).
func (t *tracer) expectReply() { t.wantReply = true }

// reply sees every write to the client and traces the first line of the
// one expected; message bodies and listings are not traced.
func (t *tracer) reply(p []byte) {
	if !t.wantReply || t.off {
		return
	}
	t.wantReply = false
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		p = p[:i]
	}
	t.record("S", string(bytes.TrimSuffix(p, []byte("\r"))))
}

// named is told each user name the session presents; a login that
// succeeded or failed for a name is final.
func (t *tracer) named(name string) {
	if strings.EqualFold(name, t.user) {
		t.start()
	}
}

// loggedIn is told who the session logged in as: from then on it is the
// traced user's, or it is not.
func (t *tracer) loggedIn(name string) {
	if strings.EqualFold(name, t.user) {
		t.start()
		return
	}
	t.on, t.off, t.pending = false, true, nil
}

func (t *tracer) start() {
	if t.on {
		return
	}
	t.on, t.off = true, false
	if t.dropped > 0 {
		t.log.Info("trace", "dir", "-", "line", "", "dropped", t.dropped)
	}
	for _, l := range t.pending {
		t.log.Info("trace", "dir", l.dir, "line", l.text)
	}
	t.pending, t.dropped = nil, 0
}

func (t *tracer) record(dir, text string) {
	switch {
	case t.on:
		t.log.Info("trace", "dir", dir, "line", text)
	case t.off:
	case len(t.pending) == maxPendingTrace:
		copy(t.pending, t.pending[1:])
		t.pending[len(t.pending)-1] = traceLine{dir, text}
		t.dropped++
	default:
		t.pending = append(t.pending, traceLine{dir, text})
	}
}

// maskCommand returns a command line fit for a log: the password of
// PASS, the digest of APOP and the initial response of AUTH are
// replaced by "***". Everything else is shown as sent.
func maskCommand(line []byte) string {
	s := string(line)
	name, args, hasArgs := strings.Cut(s, " ")
	if !hasArgs {
		return s
	}
	switch strings.ToUpper(name) {
	case "PASS":
		return name + " ***"
	case "APOP", "AUTH":
		// APOP name digest; AUTH mechanism [initial-response].
		first, _, more := strings.Cut(args, " ")
		if more {
			return name + " " + first + " ***"
		}
	}
	return s
}

package pop3client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/postoffice-mail/postoffice/pop3"
)

// Every command goes through one queue: send writes the command and
// appends a Response; replies are read strictly in order by readThrough.
// The synchronous methods (Retr, Dele, ...) are a send followed by a
// wait; a Pipeline is sends without the waits.

type replyKind int

const (
	kindSingle  replyKind = iota // a status line only
	kindLines                    // a listing the client reads itself (CAPA, LIST, UIDL)
	kindMessage                  // a message (RETR, TOP) the caller streams
)

// Response is the reply to one command sent through a Pipeline (or
// internally by the synchronous methods). Its methods wait for the reply,
// first reading the replies to the commands sent before it.
type Response struct {
	c     *Client
	cmd   string // for errors, redacted
	kind  replyKind
	done  bool // the reply was read (or the command failed)
	err   error
	text  string   // the +OK text
	lines []string // a listing's lines, dot-stuffing removed
	msg   *MessageReader
	// skipped: a message reply whose body was discarded because a later
	// reply was read first.
	skipped bool
	taken   bool // Message was called
}

// send writes one command and queues its Response. Without pipelining it
// first reads the replies to everything sent before (RFC 2449 §6.6: only
// a server that lists PIPELINING may receive commands early).
func (c *Client) send(ctx context.Context, kind replyKind, line string) *Response {
	r := &Response{c: c, cmd: redact(line), kind: kind}
	if err := c.usable(); err != nil {
		r.finish(&CommandError{Command: r.cmd, Err: err})
		return r
	}
	if !c.pipelining || c.opts.DisablePipelining {
		if err := c.drainAll(ctx); err != nil {
			r.finish(&CommandError{Command: r.cmd, Err: err})
			return r
		}
	}
	stop := c.watch(ctx)
	defer stop()
	c.w.WriteString(line)
	if _, err := c.w.WriteString("\r\n"); err != nil {
		r.finish(&CommandError{Command: r.cmd, Err: c.fail(ctx, err)})
		return r
	}
	c.queue = append(c.queue, r)
	return r
}

// drainAll reads every outstanding reply, discarding unread message
// bodies, so that the next command is sent into a quiet connection.
func (c *Client) drainAll(ctx context.Context) error {
	if len(c.queue) > 0 {
		c.readThrough(ctx, c.queue[len(c.queue)-1], false)
	} else if c.reading != nil {
		stop := c.watch(ctx)
		err := c.reading.discard()
		stop()
		if err != nil {
			return err
		}
	}
	return c.usable()
}

// flush sends what is buffered.
func (c *Client) flush(ctx context.Context) error {
	if c.w.Buffered() == 0 {
		return nil
	}
	stop := c.watch(ctx)
	defer stop()
	if err := c.w.Flush(); err != nil {
		return c.fail(ctx, err)
	}
	return nil
}

// readThrough reads the replies up to and including target. When open is
// set and target is a message reply, its body is left for the caller
// (c.reading); every other message body on the way is discarded.
func (c *Client) readThrough(ctx context.Context, target *Response, open bool) {
	if err := c.flush(ctx); err != nil {
		c.failQueue(err)
		return
	}
	stop := c.watch(ctx)
	defer stop()
	for !target.done {
		if c.reading != nil {
			if err := c.reading.discard(); err != nil {
				c.failQueue(err)
				return
			}
		}
		if len(c.queue) == 0 {
			target.finish(&CommandError{Command: target.cmd, Err: errors.New("reply already consumed")})
			return
		}
		head := c.queue[0]
		c.queue = c.queue[1:]
		if err := c.readReply(ctx, head, open && head == target); err != nil {
			head.finish(&CommandError{Command: head.cmd, Err: err})
			c.failQueue(err)
			return
		}
	}
}

// failQueue ends every queued response with err: after an I/O error
// their replies will never be read.
func (c *Client) failQueue(err error) {
	for _, r := range c.queue {
		r.finish(&CommandError{Command: r.cmd, Err: fmt.Errorf("%w (%v)", ErrBroken, err)})
	}
	c.queue = nil
}

// readReply reads one reply. An error return means the connection failed
// or broke the protocol; a negative reply is stored in r.
func (c *Client) readReply(ctx context.Context, r *Response, open bool) error {
	line, err := c.readLine()
	if err != nil {
		return c.fail(ctx, err)
	}
	reply, ok := pop3.ParseReply(line)
	if !ok {
		return c.fail(ctx, fmt.Errorf("%w: %q", ErrMalformedReply, clip(line)))
	}
	if !reply.OK {
		r.finish(&CommandError{Command: r.cmd, Err: reply.AsError()})
		return nil
	}
	r.text = reply.Text
	switch r.kind {
	case kindLines:
		for {
			line, err := c.readLine()
			if err != nil {
				return c.fail(ctx, err)
			}
			if line == "." {
				break
			}
			r.lines = append(r.lines, strings.TrimPrefix(line, "."))
		}
	case kindMessage:
		m := &MessageReader{c: c, resp: r, dot: pop3.NewDotReader(c.r), status: reply.Text}
		r.msg = m
		c.reading = m
		if !open {
			if err := m.discard(); err != nil {
				return err
			}
			r.skipped = true
		}
	}
	r.finish(nil)
	return nil
}

func (r *Response) finish(err error) {
	r.done = true
	if r.err == nil {
		r.err = err
	}
}

// Wait waits for the reply and returns nil for +OK, or the error: a
// *CommandError wrapping the *pop3.Error of a -ERR reply, or the failure
// that kept the reply from arriving. For RETR and TOP, Wait reads and
// discards the message; use Message to read it.
func (r *Response) Wait(ctx context.Context) error {
	if !r.done {
		r.c.readThrough(ctx, r, false)
	}
	return r.err
}

// Text is the text of the +OK reply (after Wait).
func (r *Response) Text() string { return r.text }

// Message waits for a RETR or TOP reply and returns its body as a stream.
// The body must be read (or closed) before the next reply can be read;
// reading a later reply first discards it, and Message then fails with
// ErrSkipped. ctx governs the reads of the body as well.
func (r *Response) Message(ctx context.Context) (*MessageReader, error) {
	if r.kind != kindMessage {
		return nil, &CommandError{Command: r.cmd, Err: errors.New("not a message command")}
	}
	if r.taken {
		return nil, &CommandError{Command: r.cmd, Err: errors.New("message already taken")}
	}
	r.taken = true
	if !r.done {
		r.c.readThrough(ctx, r, true)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.skipped {
		return nil, &CommandError{Command: r.cmd, Err: ErrSkipped}
	}
	r.msg.ctx = ctx
	r.msg.stop = r.c.watch(ctx)
	return r.msg, nil
}

// Pipeline sends commands without waiting for their replies when the
// server offers PIPELINING (RFC 2449 §6.6), and one at a time otherwise.
// Read the replies through the returned Responses, in any order: a later
// Response reads the earlier replies first (discarding message bodies
// not yet taken).
//
// A window of a few dozen commands gains nearly all there is to gain;
// the caller bounds it (commands queue in memory until sent).
type Pipeline struct{ c *Client }

// Pipeline returns the client's pipeline. It is a view on the Client,
// not a separate connection.
func (c *Client) Pipeline() *Pipeline { return &Pipeline{c: c} }

// Active reports whether commands are really pipelined: the server
// listed PIPELINING in its last CAPA reply and the options allow it.
func (p *Pipeline) Active() bool { return p.c.pipelining && !p.c.opts.DisablePipelining }

// Retr queues RETR n.
func (p *Pipeline) Retr(ctx context.Context, n int) *Response {
	return p.c.send(ctx, kindMessage, "RETR "+strconv.Itoa(n))
}

// Top queues TOP n lines.
func (p *Pipeline) Top(ctx context.Context, n, lines int) *Response {
	return p.c.send(ctx, kindMessage, "TOP "+strconv.Itoa(n)+" "+strconv.Itoa(lines))
}

// Dele queues DELE n.
func (p *Pipeline) Dele(ctx context.Context, n int) *Response {
	return p.c.send(ctx, kindSingle, "DELE "+strconv.Itoa(n))
}

// Noop queues NOOP.
func (p *Pipeline) Noop(ctx context.Context) *Response {
	return p.c.send(ctx, kindSingle, "NOOP")
}

// Flush sends the queued commands now (reading a reply also does).
func (p *Pipeline) Flush(ctx context.Context) error {
	return p.c.flush(ctx)
}

// MessageReader is the body of a RETR or TOP reply: the message as sent,
// CRLF line ends included, with byte-stuffing removed. It returns io.EOF
// at the terminating "." line and an error if the connection ends or
// fails before it.
type MessageReader struct {
	c      *Client
	resp   *Response
	dot    *pop3.DotReader
	ctx    context.Context
	stop   func()
	status string
	n      int64
	eof    bool
	err    error
}

// Read implements io.Reader.
func (m *MessageReader) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if m.eof {
		return 0, io.EOF
	}
	n, err := m.dot.Read(p)
	m.n += int64(n)
	switch {
	case err == io.EOF:
		m.end(nil)
		return n, io.EOF
	case err != nil:
		ctx := m.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		m.end(&CommandError{Command: m.resp.cmd, Err: m.c.fail(ctx, err)})
		return n, m.err
	}
	return n, nil
}

// end marks the body finished (at EOF or after an error).
func (m *MessageReader) end(err error) {
	m.eof = err == nil
	m.err = err
	if m.stop != nil {
		m.stop()
		m.stop = nil
	}
	if m.c.reading == m {
		m.c.reading = nil
	}
}

// discard reads the rest of the body and throws it away.
func (m *MessageReader) discard() error {
	if m.eof || m.err != nil {
		if m.c.reading == m {
			m.c.reading = nil
		}
		return m.err
	}
	_, err := io.Copy(io.Discard, m)
	return err
}

// Close reads and discards what is left of the message, so that the
// connection can go on; it returns the error that ended the body early,
// if any.
func (m *MessageReader) Close() error {
	return m.discard()
}

// N is the number of octets of the message read so far: at io.EOF, its
// size as sent, which RFC 1939 §5 says equals the size in LIST.
func (m *MessageReader) N() int64 { return m.n }

// Status is the text of the +OK line, such as "120 octets".
func (m *MessageReader) Status() string { return m.status }

package pop3client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// MessageInfo describes one message of the maildrop, from LIST and UIDL.
type MessageInfo struct {
	// Number is the message number, fixed for the session.
	Number int
	// Size is the size LIST announced: octets with CRLF line ends,
	// before byte-stuffing (RFC 1939 §5).
	Size int64
	// UID is the unique id from UIDL (RFC 1939 §7), or "" when it was
	// not asked for.
	UID string
}

// simple sends a command with a one-line reply and waits for it.
func (c *Client) simple(ctx context.Context, line string) error {
	return c.send(ctx, kindSingle, line).Wait(ctx)
}

// Stat returns the number of messages and their total size (STAT).
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	r := c.send(ctx, kindSingle, "STAT")
	if err := r.Wait(ctx); err != nil {
		return 0, 0, err
	}
	f := strings.Fields(r.text)
	if len(f) >= 2 {
		count, err1 := strconv.Atoi(f[0])
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil && count >= 0 && size >= 0 {
			return count, size, nil
		}
	}
	return 0, 0, c.protocolError(ctx, "STAT", r.text)
}

// protocolError breaks the connection over a reply that makes no sense:
// a server that gets STAT wrong cannot be trusted with the rest.
func (c *Client) protocolError(ctx context.Context, cmd, text string) error {
	return &CommandError{Command: cmd, Err: c.fail(ctx, fmt.Errorf("%w: %q", ErrMalformedReply, clip(text)))}
}

// List returns the number and size of every message (LIST).
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	return c.listing(ctx, c.send(ctx, kindLines, "LIST"), false)
}

// Uidl returns the number and unique id of every message (UIDL).
func (c *Client) Uidl(ctx context.Context) ([]MessageInfo, error) {
	return c.listing(ctx, c.send(ctx, kindLines, "UIDL"), true)
}

// ListOne returns the size of message n (LIST n).
func (c *Client) ListOne(ctx context.Context, n int) (MessageInfo, error) {
	return c.listingOne(ctx, "LIST "+strconv.Itoa(n), false)
}

// UidlOne returns the unique id of message n (UIDL n).
func (c *Client) UidlOne(ctx context.Context, n int) (MessageInfo, error) {
	return c.listingOne(ctx, "UIDL "+strconv.Itoa(n), true)
}

func (c *Client) listingOne(ctx context.Context, line string, uid bool) (MessageInfo, error) {
	r := c.send(ctx, kindSingle, line)
	if err := r.Wait(ctx); err != nil {
		return MessageInfo{}, err
	}
	info, err := parseListing(r.text, uid)
	if err != nil {
		return MessageInfo{}, c.protocolError(ctx, r.cmd, r.text)
	}
	return info, nil
}

// Messages returns every message's number, size and unique id: LIST and
// UIDL, sent together when the server allows pipelining. A server without
// UIDL gives an error (a *pop3.Error from its -ERR reply).
func (c *Client) Messages(ctx context.Context) ([]MessageInfo, error) {
	list := c.send(ctx, kindLines, "LIST")
	uidl := c.send(ctx, kindLines, "UIDL")
	sizes, err := c.listing(ctx, list, false)
	if err != nil {
		uidl.Wait(ctx)
		return nil, err
	}
	uids, err := c.listing(ctx, uidl, true)
	if err != nil {
		return nil, err
	}
	byNumber := make(map[int]string, len(uids))
	for _, u := range uids {
		byNumber[u.Number] = u.UID
	}
	for i := range sizes {
		uid, ok := byNumber[sizes[i].Number]
		if !ok {
			return nil, c.protocolError(ctx, "UIDL", fmt.Sprintf("no unique id for message %d", sizes[i].Number))
		}
		sizes[i].UID = uid
	}
	if len(uids) != len(sizes) {
		return nil, c.protocolError(ctx, "UIDL", fmt.Sprintf("%d unique ids for %d messages", len(uids), len(sizes)))
	}
	return sizes, nil
}

func (c *Client) listing(ctx context.Context, r *Response, uid bool) ([]MessageInfo, error) {
	if err := r.Wait(ctx); err != nil {
		return nil, err
	}
	out := make([]MessageInfo, 0, len(r.lines))
	seen := make(map[int]bool, len(r.lines))
	for _, line := range r.lines {
		info, err := parseListing(line, uid)
		if err != nil || seen[info.Number] {
			return nil, c.protocolError(ctx, r.cmd, line)
		}
		seen[info.Number] = true
		out = append(out, info)
	}
	return out, nil
}

// parseListing reads "n size" or "n unique-id" (RFC 1939 §5, §7).
func parseListing(line string, uid bool) (MessageInfo, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return MessageInfo{}, ErrMalformedReply
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 1 {
		return MessageInfo{}, ErrMalformedReply
	}
	info := MessageInfo{Number: n}
	if uid {
		if !validUID(f[1]) {
			return MessageInfo{}, ErrMalformedReply
		}
		info.UID = f[1]
		return info, nil
	}
	info.Size, err = strconv.ParseInt(f[1], 10, 64)
	if err != nil || info.Size < 0 {
		return MessageInfo{}, ErrMalformedReply
	}
	return info, nil
}

// validUID accepts RFC 1939 §7 unique ids: printable ASCII 0x21–0x7E.
// The RFC's 70-octet limit is not enforced (some servers exceed it),
// but a bound is.
func validUID(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Retr retrieves message n (RETR) as a stream; read it to io.EOF or
// Close it before the next command.
func (c *Client) Retr(ctx context.Context, n int) (*MessageReader, error) {
	return c.Pipeline().Retr(ctx, n).Message(ctx)
}

// Top retrieves the header and the first lines of the body of message n
// (TOP, RFC 1939 §7) as a stream.
func (c *Client) Top(ctx context.Context, n, lines int) (*MessageReader, error) {
	return c.Pipeline().Top(ctx, n, lines).Message(ctx)
}

// Dele marks message n deleted; the server removes it at Quit.
func (c *Client) Dele(ctx context.Context, n int) error {
	return c.simple(ctx, "DELE "+strconv.Itoa(n))
}

// Rset unmarks every message marked deleted.
func (c *Client) Rset(ctx context.Context) error {
	return c.simple(ctx, "RSET")
}

// Noop does nothing but keeps the session alive.
func (c *Client) Noop(ctx context.Context) error {
	return c.simple(ctx, "NOOP")
}

// Quit ends the session: the server enters the UPDATE state and removes
// the messages marked deleted (RFC 1939 §6). A -ERR reply means some were
// not removed. The connection is closed either way.
func (c *Client) Quit(ctx context.Context) error {
	defer c.Close()
	return c.simple(ctx, "QUIT")
}

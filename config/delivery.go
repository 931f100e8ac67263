package config

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LMTP is the [lmtp] table: the RFC 2033 listener that mail transfer agents
// (Postfix, Exim) hand mail to; see docs/delivery.md. It is off by default:
// with neither `listen` nor `socket` set there is no LMTP listener. LMTP has
// no authentication, so whoever can connect can put mail into any maildrop:
// prefer the Unix socket, whose permissions decide who may deliver, or a
// loopback address.
type LMTP struct {
	// Listen lists TCP addresses (`host:port`, as in `pop3.listen`) to
	// accept LMTP on, such as `["127.0.0.1:24"]`. Not shared with
	// `pop3.listen` or `pop3.listen_tls`.
	Listen []string `toml:"listen"`
	// Socket is a Unix socket path to accept LMTP on, such as
	// `"/var/spool/postfix/private/postoffice-lmtp"` (inside Postfix's
	// chroot), or `""`. A stale socket left by a crashed server is
	// replaced; a socket another process is listening on is an error. At
	// most 107 octets.
	Socket string `toml:"socket"`
	// SocketMode is the socket's permission bits, in octal.
	SocketMode string `toml:"socket_mode"`
	// SocketGroup is the group the socket is given, such as `"postfix"`
	// (so that Postfix's lmtp client may connect with `socket_mode =
	// "0660"`), or `""` to keep the server's group. Another group needs
	// root or membership of it.
	SocketGroup string `toml:"socket_group"`
	// MaxConnections bounds the simultaneous LMTP connections; more wait
	// in the kernel's queue until one ends. At least 1.
	MaxConnections int `toml:"max_connections"`
	// MaxRecipients bounds the recipients of one transaction (`452 4.5.3`
	// for more; the client sends the rest in another): from 100 (RFC 5321
	// §4.5.3.1.8) to 100000.
	MaxRecipients int `toml:"max_recipients"`
	// ReadTimeout is how long the server waits for the client's next
	// octets, refreshed at every read, so that a slow but alive sender is
	// never cut off in the middle of a long message. RFC 5321 §4.5.3.2
	// suggests 5 minutes. At least `"1s"`.
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout is the deadline of each reply. At least `"1s"`.
	WriteTimeout Duration `toml:"write_timeout"`
	// ProxyProtocolFrom lists the load balancers whose LMTP connections
	// start with a PROXY protocol header, as `pop3.proxy_protocol_from`;
	// the client address goes into the Received field and the log. Applies
	// to `listen` (TCP).
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
}

// Delivery is the [delivery] table: the rules every delivery follows, through
// LMTP or `postoffice deliver` alike. A message is also refused when it
// contains a NUL octet or a line longer than 1000 octets (RFC 5321
// §4.5.3.1.6), and when it already carries a Delivered-To field with its
// recipient's address (a mail loop).
type Delivery struct {
	// Recipient is how a recipient address names a user: `"localpart"`
	// (the part before `@`: `alice@example.org` is user `alice`) or
	// `"address"` (the whole address, with the domain in lower case).
	Recipient string `toml:"recipient"`
	// Domains lists the domains whose addresses are accepted, such as
	// `["example.org"]`; others are refused with `550 5.1.2`. `[]` accepts
	// every domain, which suits an MTA that routes only its own domains
	// here. Host names, each once.
	Domains []string `toml:"domains"`
	// DetailDelimiter lists the characters that start an address
	// extension: `alice+lists@example.org` goes to `alice` when no user
	// `alice+lists` exists. Each character is a delimiter (`"+-"` allows
	// both); `""` disables extensions. Made of `+`, `-`, `_` and `=`.
	DetailDelimiter string `toml:"detail_delimiter"`
	// MaxMessageSize is the largest message accepted, in octets (50 MiB by
	// default), announced in LMTP's SIZE; larger ones are refused with
	// `552 5.3.4` (exit code 65 for `postoffice deliver`). From 1024 to
	// 2147483648.
	MaxMessageSize int `toml:"max_message_size"`
}

// Quota is the [quota] table: per-user limits, checked when mail arrives: at
// RCPT when the current usage or the size announced with `MAIL FROM ... SIZE=`
// already exceeds them, and again once the message is read. A delivery over
// quota is refused with `552 5.2.2` (exit code 73 for `postoffice deliver`).
// Concurrent deliveries may together overshoot a limit by a few messages.
type Quota struct {
	// Storage bounds the octets one maildrop may hold, counting each
	// message at its POP3 size; 0 means no limit.
	Storage int `toml:"storage"`
	// Messages bounds the number of messages one maildrop may hold; 0
	// means no limit.
	Messages int `toml:"messages"`
}

// defaultLMTP, defaultDelivery and defaultQuota are the parts of Default
// for these tables.
func defaultLMTP() LMTP {
	return LMTP{
		Listen:            []string{},
		ProxyProtocolFrom: []string{},
		SocketMode:        "0660",
		MaxConnections:    100,
		MaxRecipients:     100,
		// RFC 5321 §4.5.3.2 asks servers to wait at least 5 minutes for a
		// command.
		ReadTimeout:  Duration{5 * time.Minute},
		WriteTimeout: Duration{5 * time.Minute},
	}
}

func defaultDelivery() Delivery {
	return Delivery{
		Recipient:       "localpart",
		Domains:         []string{},
		DetailDelimiter: "+",
		MaxMessageSize:  50 << 20,
	}
}

// maxMessageSizeLimit is the largest delivery.max_message_size: the SIZE
// parameter go-smtp parses is a 32-bit number.
const maxMessageSizeLimit = 1 << 31

// deliveryRules are the validate rows of [lmtp], [delivery] and [quota].
func deliveryRules(c *Config) []problem {
	return []problem{
		{"lmtp.listen", listenAddresses(c.LMTP.Listen)},
		{"lmtp.listen", distinct(c.LMTP.Listen, append(slices.Clone(c.POP3.Listen), c.POP3.ListenTLS...), "pop3.listen or pop3.listen_tls")},
		{"lmtp.socket", socketPath(c.LMTP.Socket)},
		{"lmtp.socket_mode", fileMode(c.LMTP.SocketMode)},
		{"lmtp.socket_group", groupName(c.LMTP.SocketGroup)},
		{"lmtp.max_connections", between(c.LMTP.MaxConnections, 1, math.MaxInt32, "")},
		// RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted.
		{"lmtp.max_recipients", between(c.LMTP.MaxRecipients, 100, 100000, "the RFC 5321 §4.5.3.1.8 minimum")},
		{"lmtp.read_timeout", atLeast(c.LMTP.ReadTimeout, time.Second, "")},
		{"lmtp.write_timeout", atLeast(c.LMTP.WriteTimeout, time.Second, "")},

		{"delivery.recipient", oneOf(c.Delivery.Recipient, "localpart", "address")},
		{"delivery.domains", domainList(c.Delivery.Domains)},
		{"delivery.detail_delimiter", detailDelimiter(c.Delivery.DetailDelimiter)},
		{"delivery.max_message_size", between(c.Delivery.MaxMessageSize, 1024, maxMessageSizeLimit, "")},

		{"quota.storage", between(c.Quota.Storage, 0, math.MaxInt, "")},
		{"quota.messages", between(c.Quota.Messages, 0, math.MaxInt, "")},
	}
}

// socketPath refuses a relative socket path (resolve has made a relative
// one absolute already, so this only catches hand-built values) and one
// too long for a sockaddr_un.
func socketPath(s string) error {
	switch {
	case s == "":
		return nil
	case !filepath.IsAbs(s):
		return fmt.Errorf("%q is not an absolute path", s)
	case len(s) > 107:
		return fmt.Errorf("%q is longer than the 107 octets a Unix socket path may have", s)
	}
	return nil
}

// fileMode accepts permission bits in octal, such as "0660" or "600".
func fileMode(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("%q is not permission bits in octal such as \"0660\"", s)
	}
	return nil
}

// groupName refuses what cannot be a Unix group name.
func groupName(s string) error {
	if strings.ContainsAny(s, " \t\r\n:/\x00") {
		return fmt.Errorf("%q is not a group name", s)
	}
	return nil
}

// domainList checks each element is a host name, listed once.
func domainList(domains []string) error {
	for i, d := range domains {
		if err := hostName(d); err != nil {
			return &elementError{i, err}
		}
	}
	lower := make([]string, len(domains))
	for i, d := range domains {
		lower[i] = strings.ToLower(d)
	}
	return distinct(lower, nil, "")
}

// detailDelimiter accepts "" or characters a user name may contain but
// that rarely start one: each of them starts an address extension.
func detailDelimiter(s string) error {
	if strings.Trim(s, "+-_=") != "" || len(s) > 4 {
		return errors.New(`must be "" or made of the characters "+", "-", "_" and "="`)
	}
	return nil
}

// DeliveryMaxMessageSize returns delivery.max_message_size as an int64.
func (c *Config) DeliveryMaxMessageSize() int64 { return int64(c.Delivery.MaxMessageSize) }

// LMTPSocketMode returns lmtp.socket_mode as permission bits.
func (c *Config) LMTPSocketMode() uint32 {
	n, _ := strconv.ParseUint(c.LMTP.SocketMode, 8, 32)
	return uint32(n)
}

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

// LMTP is the [lmtp] table: the RFC 2033 listener that mail transfer
// agents (Postfix, Exim) hand mail to. With neither listen nor socket set
// (the default) there is no LMTP listener: LMTP has no authentication, so
// whoever can connect can put mail into any maildrop, and the
// administrator decides who can.
type LMTP struct {
	// Listen lists TCP addresses (host:port) to accept LMTP on.
	Listen []string `toml:"listen"`
	// Socket is a Unix socket path to accept LMTP on, or "".
	Socket string `toml:"socket"`
	// SocketMode is the socket's permission bits, in octal ("0660").
	SocketMode string `toml:"socket_mode"`
	// SocketGroup is the group the socket is given (such as "postfix"),
	// or "" to keep the server's.
	SocketGroup string `toml:"socket_group"`
	// MaxConnections bounds simultaneous LMTP connections.
	MaxConnections int `toml:"max_connections"`
	// MaxRecipients bounds the recipients of one transaction.
	MaxRecipients int `toml:"max_recipients"`
	// ReadTimeout is how long the server waits for the client's next
	// octets (refreshed at every read, so a slow but alive sender is
	// never cut off in the middle of a long message).
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout is the deadline of each reply.
	WriteTimeout Duration `toml:"write_timeout"`
	// ProxyProtocolFrom lists the load balancers whose LMTP connections
	// start with a PROXY protocol header, as pop3.proxy_protocol_from.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
}

// Delivery is the [delivery] table: the rules every delivery follows,
// through LMTP or "postoffice deliver".
type Delivery struct {
	// Recipient is how an address names a user: "localpart" (the part
	// before '@') or "address" (the whole address).
	Recipient string `toml:"recipient"`
	// Domains lists the domains accepted; empty accepts any domain (the
	// MTA has already decided the mail is for this server).
	Domains []string `toml:"domains"`
	// DetailDelimiter lists the characters that start an address
	// extension ("alice+lists"), which is stripped to find the user;
	// "" disables extensions.
	DetailDelimiter string `toml:"detail_delimiter"`
	// MaxMessageSize is the largest message accepted, in octets.
	MaxMessageSize int `toml:"max_message_size"`
}

// Quota is the [quota] table: per-user limits, checked at delivery.
type Quota struct {
	// Storage bounds the octets one maildrop may hold (sizes as POP3
	// announces them); 0 means no limit.
	Storage int `toml:"storage"`
	// Messages bounds the number of messages; 0 means no limit.
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

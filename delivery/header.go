package delivery

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// Envelope is what the sender said about a message besides its content.
type Envelope struct {
	// From is the reverse path; "" is the null sender of bounces.
	From string
	// Helo is the name the client gave in LHLO; "" for a local pipe.
	Helo string
	// RemoteIP is the client's IP address; "" for a Unix socket or pipe.
	RemoteIP string
	// Protocol names the transfer in the Received field: "LMTP", or ""
	// for a local pipe.
	Protocol string
	// ID identifies the transaction in the Received field and the log.
	ID string
}

// traceFields returns the fields Deliver puts in front of a message for
// one recipient, each line ending in LF like the rest of the message:
//
//	Return-Path: <sender>                       (RFC 5321 §4.4)
//	Delivered-To: recipient                     (loop detection, as Postfix and Dovecot write it)
//	Received: from helo (ip) by host (postoffice) with LMTP id ID
//		for <recipient>; date                   (RFC 5321 §4.4, RFC 5322 §3.6.7)
func traceFields(hostname string, env *Envelope, rcpt string, now time.Time) []byte {
	b := make([]byte, 0, 256+len(env.From)+2*len(rcpt))
	b = append(b, "Return-Path: <"...)
	b = append(b, headerSafe(env.From)...)
	b = append(b, ">\nDelivered-To: "...)
	b = append(b, headerSafe(rcpt)...)
	b = append(b, "\nReceived:"...)
	if env.Helo != "" || env.RemoteIP != "" {
		b = append(b, " from "...)
		helo := headerSafe(env.Helo)
		if helo == "" {
			helo = "unknown"
		}
		b = append(b, commentSafe(helo)...)
		if env.RemoteIP != "" {
			b = append(b, " ("...)
			b = append(b, commentSafe(headerSafe(env.RemoteIP))...)
			b = append(b, ')')
		}
		b = append(b, "\n\t"...)
	} else {
		b = append(b, ' ')
	}
	b = append(b, "by "...)
	b = append(b, headerSafe(hostname)...)
	b = append(b, " (postoffice)"...)
	if env.Protocol != "" {
		b = append(b, " with "...)
		b = append(b, env.Protocol...)
	}
	if env.ID != "" {
		b = append(b, " id "...)
		b = append(b, headerSafe(env.ID)...)
	}
	b = append(b, "\n\tfor <"...)
	b = append(b, headerSafe(rcpt)...)
	b = append(b, ">; "...)
	b = now.AppendFormat(b, time.RFC1123Z)
	b = append(b, '\n')
	return b
}

// headerSafe keeps a value from breaking a header field: control
// characters (CR and LF above all) become '?'. Values are checked before
// they get here; this is the last line of defence.
func headerSafe(s string) string {
	if strings.IndexFunc(s, isControl) < 0 && len(s) <= 512 {
		return s
	}
	if len(s) > 512 {
		s = s[:512]
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return '?'
		}
		return r
	}, s)
}

// commentSafe also keeps parentheses and backslashes, which would end or
// escape the comment they sit in, and white space out of a value.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '(', ')', '\\', ' ', '\t':
			return '_'
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }

// NewID returns a transaction id for Received fields and logs: 16
// characters of base32, random.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return base32.StdEncoding.EncodeToString(b[:])
}

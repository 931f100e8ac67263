package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDeliveryDefaults(t *testing.T) {
	t.Parallel()
	c := Default()
	checks := []struct {
		setting   string
		got, want any
	}{
		{"lmtp.listen", c.LMTP.Listen, []string{}},
		{"lmtp.socket", c.LMTP.Socket, ""},
		{"lmtp.socket_mode", c.LMTPSocketMode(), uint32(0o660)},
		{"lmtp.socket_group", c.LMTP.SocketGroup, ""},
		{"lmtp.max_connections", c.LMTP.MaxConnections, 100},
		{"lmtp.max_recipients", c.LMTP.MaxRecipients, 100},
		{"lmtp.read_timeout", c.LMTP.ReadTimeout.Duration, 5 * time.Minute},
		{"lmtp.write_timeout", c.LMTP.WriteTimeout.Duration, 5 * time.Minute},
		{"delivery.recipient", c.Delivery.Recipient, "localpart"},
		{"delivery.domains", c.Delivery.Domains, []string{}},
		{"delivery.detail_delimiter", c.Delivery.DetailDelimiter, "+"},
		{"delivery.max_message_size", c.DeliveryMaxMessageSize(), int64(50 << 20)},
		{"quota.storage", c.Quota.Storage, 0},
		{"quota.messages", c.Quota.Messages, 0},
	}
	for _, check := range checks {
		if !reflect.DeepEqual(check.got, check.want) {
			t.Errorf("%s = %v, want %v", check.setting, check.got, check.want)
		}
	}
}

func TestDeliverySettings(t *testing.T) {
	t.Parallel()
	doc := withCert + `[lmtp]
listen = ["127.0.0.1:24"]
socket = "run/lmtp.sock"
socket_mode = "600"
[delivery]
recipient = "address"
domains = ["example.org", "Example.NET"]
detail_delimiter = "+-"
[quota]
storage = 1048576
messages = 10
`
	c, err := Parse("/etc/postoffice/postoffice.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.LMTP.Socket != "/etc/postoffice/run/lmtp.sock" || c.LMTPSocketMode() != 0o600 {
		t.Errorf("socket %q mode %o", c.LMTP.Socket, c.LMTPSocketMode())
	}
	if c.Delivery.Recipient != "address" || len(c.Delivery.Domains) != 2 || c.Quota.Storage != 1<<20 || c.Quota.Messages != 10 {
		t.Errorf("parsed %+v %+v", c.Delivery, c.Quota)
	}
}

func TestDeliveryValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []failure{
		{"lmtp listen", withCert + "[lmtp]\nlisten = [\"nowhere\"]\n", 4, 0, "lmtp.listen[0]", "is not host:port"},
		{"lmtp shares pop3", withCert + "[pop3]\nlisten = [\"127.0.0.1:110\"]\n[lmtp]\nlisten = [\"127.0.0.1:110\"]\n", 6, 0, "lmtp.listen[0]", "also in pop3.listen"},
		{"socket mode", withCert + "[lmtp]\nsocket_mode = \"0999\"\n", 4, 0, "lmtp.socket_mode", "octal"},
		{"socket too long", withCert + "[lmtp]\nsocket = \"/" + string(make([]byte, 0)) + longPath + "\"\n", 4, 0, "lmtp.socket", "107 octets"},
		{"recipients", withCert + "[lmtp]\nmax_recipients = 10\n", 4, 0, "lmtp.max_recipients", "RFC 5321"},
		{"timeout", withCert + "[lmtp]\nread_timeout = \"0s\"\n", 4, 0, "lmtp.read_timeout", "below"},
		{"recipient", withCert + "[delivery]\nrecipient = \"user\"\n", 4, 0, "delivery.recipient", "not one of"},
		{"domains", withCert + "[delivery]\ndomains = [\"ok.example\", \"bad domain\"]\n", 4, 0, "delivery.domains[1]", "not a host name"},
		{"duplicate domain", withCert + "[delivery]\ndomains = [\"a.example\", \"A.example\"]\n", 4, 0, "delivery.domains[1]", "listed twice"},
		{"delimiter", withCert + "[delivery]\ndetail_delimiter = \"/\"\n", 4, 0, "delivery.detail_delimiter", "made of"},
		{"message size", withCert + "[delivery]\nmax_message_size = 10\n", 4, 0, "delivery.max_message_size", "below"},
		{"quota", withCert + "[quota]\nstorage = -1\n", 4, 0, "quota.storage", "below"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkFailure(t, tc) })
	}
}

const longPath = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestClusterValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []failure{
		{name: "store backend unknown", doc: withCert + "[store]\nbackend = \"mysql\"\n",
			line: 4, setting: "store.backend", msg: `"mysql" is not one of maildir, postgres`},
		{name: "users backend unknown", doc: withCert + "[users]\nbackend = \"ldap\"\n",
			line: 4, setting: "users.backend", msg: `"ldap" is not one of passwd-file, postgres`},
		{name: "postgres without dsn", doc: withCert + "[store]\nbackend = \"postgres\"\n",
			setting: "postgres.dsn", msg: "must be set, or postgres.dsn_file"},
		{name: "users in postgres without dsn", doc: withCert + "[users]\nbackend = \"postgres\"\n",
			setting: "postgres.dsn", msg: "must be set"},
		{name: "dsn and dsn file", doc: withCert + "[postgres]\ndsn = \"host=db\"\ndsn_file = \"/etc/dsn\"\n",
			line: 4, setting: "postgres.dsn", msg: "set one of them"},
		{name: "max conns zero", doc: withCert + "[postgres]\nmax_conns = 0\n",
			line: 4, setting: "postgres.max_conns", msg: "below the minimum of 1"},
		{name: "lease too short", doc: withCert + "[postgres]\nlease = \"1s\"\n",
			line: 4, setting: "postgres.lease", msg: `"1s" is below the minimum of 2s`},
		{name: "acquire timeout too long", doc: withCert + "[postgres]\nacquire_timeout = \"2m\"\n",
			line: 4, setting: "postgres.acquire_timeout", msg: "above the maximum of 1m"},
		{name: "proxy network with host bits", doc: withCert + "[pop3]\nproxy_protocol_from = [\"10.0.0.1/8\"]\n",
			line: 4, setting: "pop3.proxy_protocol_from[0]", msg: "host bits set"},
		{name: "lmtp proxy network bad", doc: withCert + "[lmtp]\nproxy_protocol_from = [\"127.0.0.1\", \"haproxy\"]\n",
			line: 4, setting: "lmtp.proxy_protocol_from[1]", msg: "neither an address nor a CIDR prefix"},
		{name: "passwd file empty for passwd-file backend", doc: withCert + "[users]\npasswd_file = \"\"\n",
			line: 4, setting: "users.passwd_file", msg: `must be set when users.backend is "passwd-file"`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkFailure(t, tc) })
	}
}

func TestClusterSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte("host=/run/postgresql dbname=po\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := withCert + `[pop3]
proxy_protocol_from = ["127.0.0.1", "2001:db8::/32"]
[lmtp]
proxy_protocol_from = ["10.0.0.0/8"]
[users]
backend = "postgres"
passwd_file = ""
[store]
backend = "postgres"
[postgres]
dsn_file = "dsn"
`
	c, err := Parse(filepath.Join(dir, "postoffice.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !c.UsesPostgres() {
		t.Error("UsesPostgres() = false")
	}
	if dsn, err := c.PostgresDSN(); err != nil || dsn != "host=/run/postgresql dbname=po" {
		t.Errorf("PostgresDSN() = %q, %v", dsn, err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/32")}
	if got := c.ProxyNetworks(false); !reflect.DeepEqual(got, want) {
		t.Errorf("ProxyNetworks(false) = %v", got)
	}
	if got := c.ProxyNetworks(true); len(got) != 1 || got[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("ProxyNetworks(true) = %v", got)
	}
	if Default().UsesPostgres() {
		t.Error("the default configuration uses PostgreSQL")
	}
}

package config

import "testing"

// TestAdminListen: the admin listener is off by default, loopback
// addresses are accepted, and anything else is refused, naming the file,
// the line and the setting, unless admin.allow_non_loopback consents.
func TestAdminListen(t *testing.T) {
	t.Parallel()
	c, err := Parse("postoffice.toml", []byte(withCert))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Listen != "" || c.Admin.AllowNonLoopback {
		t.Errorf("default [admin] = %+v, want it off", c.Admin)
	}

	for _, addr := range []string{"127.0.0.1:9110", "127.0.0.53:9110", "[::1]:9110", "localhost:9110", "LOCALHOST:1", "[::ffff:127.0.0.1]:9110"} {
		doc := withCert + "[admin]\nlisten = \"" + addr + "\"\n"
		c, err := Parse("postoffice.toml", []byte(doc))
		if err != nil {
			t.Errorf("%s refused: %v", addr, err)
		} else if c.Admin.Listen != addr {
			t.Errorf("admin.listen = %q, want %q", c.Admin.Listen, addr)
		}
	}

	for _, tc := range []failure{
		{name: "all addresses", doc: withCert + "[admin]\nlisten = \":9110\"\n",
			line: 4, setting: "admin.listen", msg: `":9110" is not a loopback address`},
		{name: "any IPv4", doc: withCert + "[admin]\nlisten = \"0.0.0.0:9110\"\n",
			line: 4, setting: "admin.listen", msg: "admin.allow_non_loopback = true"},
		{name: "any IPv6", doc: withCert + "[admin]\n\nlisten = \"[::]:9110\"\n",
			line: 5, setting: "admin.listen", msg: "is not a loopback address"},
		{name: "public address", doc: withCert + "[admin]\nlisten = \"192.0.2.7:9110\"\n",
			line: 4, setting: "admin.listen", msg: "is not a loopback address"},
		{name: "host name", doc: withCert + "[admin]\nlisten = \"monitor.example.org:9110\"\n",
			line: 4, setting: "admin.listen", msg: "is not a loopback address"},
		{name: "consent false", doc: withCert + "[admin]\nlisten = \"0.0.0.0:9110\"\nallow_non_loopback = false\n",
			line: 4, setting: "admin.listen", msg: "is not a loopback address"},
		{name: "not host:port", doc: withCert + "[admin]\nlisten = \"127.0.0.1\"\n",
			line: 4, setting: "admin.listen", msg: "is not host:port"},
		{name: "bad port", doc: withCert + "[admin]\nlisten = \"127.0.0.1:0\"\n",
			line: 4, setting: "admin.listen", msg: "want a number from 1 to 65535"},
		{name: "consent with a bad address", doc: withCert + "[admin]\nlisten = \"0.0.0.0\"\nallow_non_loopback = true\n",
			line: 4, setting: "admin.listen", msg: "is not host:port"},
		{name: "consent not a boolean", doc: withCert + "[admin]\nallow_non_loopback = \"yes\"\n",
			line: 4, column: 22, setting: "admin.allow_non_loopback", msg: "expected true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkFailure(t, tc) })
	}

	for _, addr := range []string{"0.0.0.0:9110", "[::]:9110", ":9110", "192.0.2.7:9110", "monitor.example.org:9110"} {
		doc := withCert + "[admin]\nlisten = \"" + addr + "\"\nallow_non_loopback = true\n"
		if _, err := Parse("postoffice.toml", []byte(doc)); err != nil {
			t.Errorf("%s with consent refused: %v", addr, err)
		}
	}
}

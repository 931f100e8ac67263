package config

import (
	"reflect"
	"testing"
	"time"
)

// TestTOMLValue checks the defaults as the reference writes them: each
// must read back in a configuration file as the same value.
func TestTOMLValue(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{"", `""`},
		{`say "hi" \ bye`, `"say \"hi\" \\ bye"`},
		{"tab\there", `"tab\u0009here"`},
		{42, "42"},
		{true, "true"},
		{[]string{}, "[]"},
		{[]string{"[::]:110", "a"}, `["[::]:110", "a"]`},
		{map[string]string{}, "{}"},
		{map[string]string{"pop3": "debug", "auth": "warn"}, `{ "auth" = "warn", "pop3" = "debug" }`},
		{Duration{90 * time.Second}, `"1m30s"`},
		{Duration{10 * time.Minute}, `"10m"`},
		{Expire{}, `"never"`},
		{Expire{Days: 30, Set: true}, `"30"`},
	} {
		if got := tomlValue(reflect.ValueOf(c.v)); got != c.want {
			t.Errorf("tomlValue(%#v) = %s, want %s", c.v, got, c.want)
		}
	}
}

func TestTableAndSettingDoc(t *testing.T) {
	for _, c := range []struct{ goName, name, doc, want string }{
		{"LMTP", "lmtp", "LMTP is the [lmtp] table: the listener.", "The listener."},
		{"Log", "log", "Log is the [log] table.", ""},
		{"Odd", "odd", "Something else entirely.", "Something else entirely."},
	} {
		if got := tableDoc(c.goName, c.name, c.doc); got != c.want {
			t.Errorf("tableDoc(%q) = %q, want %q", c.doc, got, c.want)
		}
	}
	if got := settingDoc("ListenTLS", "listen_tls", "ListenTLS lists addresses."); got != "`listen_tls` lists addresses." {
		t.Errorf("settingDoc = %q", got)
	}
	if got := settingDoc("Listen", "listen", "Listening is not the name."); got != "Listening is not the name." {
		t.Errorf("settingDoc = %q", got)
	}
}

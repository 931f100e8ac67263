package scheme

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
)

func TestTypical(t *testing.T) {
	h := func(s, pw string) string {
		t.Helper()
		stored, err := HashWithParams(s, pw, cheap)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	crypt1, crypt2 := h("SHA512-CRYPT", "a"), h("SHA512-CRYPT", "b")
	ssha := h("SSHA512", "c")
	tests := []struct {
		name   string
		stored []string
		want   string
	}{
		{"empty", nil, ""},
		{"no passwords", []string{"", ""}, ""},
		{"one", []string{ssha}, ssha},
		{"majority wins, first of it", []string{ssha, crypt1, "", crypt2}, crypt1},
		{"a tie goes to the first to get there", []string{crypt1, ssha}, crypt1},
		{"unparsable ignored", []string{"{NOSUCH}x", ssha}, ssha},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Typical(tt.stored); got != tt.want {
				t.Errorf("Typical = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	stored, err := HashWithParams("SSHA512", "right", cheap)
	if err != nil {
		t.Fatal(err)
	}
	standIn, err := HashWithParams("SSHA512", "standin", cheap)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stored, password string
		want                   bool
	}{
		{"right", stored, "right", true},
		{"wrong", stored, "wrong", false},
		// An unknown user is refused even with the stand-in's password.
		{"unknown", "", "standin", false},
		{"unknown, other password", "", "x", false},
		{"empty password matching {PLAIN}", "{PLAIN}", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := CheckPassword(tt.stored, standIn, tt.password)
			if err != nil || ok != tt.want {
				t.Errorf("CheckPassword = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
	if _, err := CheckPassword("{NOSUCH}x", standIn, "x"); err == nil {
		t.Error("an uncheckable stored password gives no error")
	}
}

func TestCheckAPOP(t *testing.T) {
	const ts = "<1896.697170952@dbc.mtview.ca.us>"
	digest := func(secret string) string {
		sum := md5.Sum([]byte(ts + secret))
		return hex.EncodeToString(sum[:])
	}
	// RFC 1939 §7's example.
	if d := digest("tanstaaf"); d != "c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatalf("digest %s", d)
	}
	tests := []struct {
		name, secret, digest string
		want                 bool
	}{
		{"right", "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb", true},
		{"upper case", "tanstaaf", strings.ToUpper("c4c9334bac560ecc979e58001b3e22fb"), true},
		{"wrong", "tanstaaf", digest("other"), false},
		{"no secret", "", digest(""), false},
		{"garbage", "tanstaaf", "zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := CheckAPOP(tt.secret, ts, tt.digest)
			if err != nil || ok != tt.want {
				t.Errorf("CheckAPOP = %v, %v; want %v", ok, err, tt.want)
			}
		})
	}
}

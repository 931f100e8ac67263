package pop3server

import (
	"strings"
	"testing"
)

// FuzzMaskCommand: whatever the spelling, the secret of PASS, APOP and
// AUTH never reaches the trace.
func FuzzMaskCommand(f *testing.F) {
	f.Add("PASS", "", "s3cret")
	f.Add("pass", "", "two words")
	f.Add("APOP", "alice", "c4c9334bac560ecc979e58001b3e22fb")
	f.Add("AUTH", "PLAIN", "AGFsaWNlAHdvbmRlcmxhbmQ=")
	f.Add("aUtH", "XOAUTH2", "dXNlcj1h")
	f.Fuzz(func(t *testing.T, name, first, secret string) {
		if strings.ContainsAny(name+first, " \r\n") || len(secret) < 4 || strings.Contains(secret, "***") {
			return
		}
		var line string
		switch strings.ToUpper(name) {
		case "PASS":
			line = name + " " + secret
		case "APOP", "AUTH":
			if first == "" {
				return
			}
			line = name + " " + first + " " + secret
		default:
			return
		}
		// The secret may also occur in what is shown: the name, the
		// first argument, and the space after it ("AUTH 000 000 " shows
		// "AUTH 000 ***", which holds the secret "000 ").
		if strings.Contains(name+" "+first+" ", secret) {
			return
		}
		if got := maskCommand([]byte(line)); strings.Contains(got, secret) {
			t.Errorf("maskCommand(%q) = %q shows the secret", line, got)
		}
	})
}

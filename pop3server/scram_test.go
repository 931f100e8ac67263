package pop3server

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/xdg-go/scram"

	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
)

// scramLogin runs a SCRAM exchange the way mpop (GNU SASL) does: no
// initial response, then client-first, client-final, and an empty
// response to the server-final challenge. It returns the final status
// line's response code ("" for +OK) and the server-first message.
func scramLogin(t *testing.T, c *testConn, mech, user, password string, cb *scram.ChannelBinding) (code, serverFirst string) {
	t.Helper()
	hash := scram.SHA256
	if mech == sasl.SCRAMSHA1 {
		hash = scram.SHA1
	}
	client, err := hash.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := client.NewConversation()
	if cb != nil {
		conv = client.NewConversationWithChannelBinding(*cb)
	}
	c.send("AUTH " + mech)
	if got := c.wantChallenge(); got != "" {
		t.Fatalf("first challenge %q, want empty", got)
	}
	first, _ := conv.Step("")
	c.send(b64(first))
	serverFirst = c.wantChallenge()
	final, err := conv.Step(serverFirst)
	if err != nil {
		t.Fatalf("server-first %q: %v", serverFirst, err)
	}
	c.send(b64(final))
	line := c.readLine()
	if strings.HasPrefix(line, "-ERR") {
		r, _ := pop3.ParseReply(line)
		return "[" + r.Code + "]", serverFirst
	}
	if !strings.HasPrefix(line, "+ ") {
		t.Fatalf("after client-final: %q, want the server-final challenge", line)
	}
	serverFinal := decode(t, line[2:])
	if _, err := conv.Step(serverFinal); err != nil || !conv.Valid() {
		t.Fatalf("server signature %q not valid: %v", serverFinal, err)
	}
	c.send("").wantOK()
	return "", serverFirst
}

func decode(t *testing.T, s string) string {
	b, err := pop3.DecodeSASL(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuthSCRAM(t *testing.T) {
	ts := saslServer(t, sasl.SCRAMSHA256, sasl.SCRAMSHA1, sasl.SCRAMSHA256Plus)
	for _, mech := range []string{sasl.SCRAMSHA256, sasl.SCRAMSHA1} {
		c := ts.dial()
		if code, _ := scramLogin(t, c, mech, "alice", "nope", nil); code != "[AUTH]" {
			t.Errorf("%s with a wrong password: %q", mech, code)
		}
		if code, _ := scramLogin(t, c, mech, "alice", "wonderland", nil); code != "" {
			t.Fatalf("%s: %q", mech, code)
		}
		c.send("QUIT").wantOK()
		c.wantClosed()
	}
}

// An unknown user gets a salt and iteration count like everyone else and
// fails only at the proof, unlike servers that refuse the name at once.
func TestAuthSCRAMUnknownUserNotRevealed(t *testing.T) {
	ts := saslServer(t, sasl.SCRAMSHA256)
	c := ts.dial()
	code, first := scramLogin(t, c, sasl.SCRAMSHA256, "nobody", "x", nil)
	if code != "[AUTH]" || !strings.Contains(first, ",s=") || !strings.Contains(first, ",i=4096") {
		t.Fatalf("unknown user: code %q, server-first %q", code, first)
	}
	_, again := scramLogin(t, c, sasl.SCRAMSHA256, "nobody", "x", nil)
	salt := func(s string) string { return s[strings.Index(s, ",s="):] }
	if salt(first) != salt(again) {
		t.Errorf("unknown user's salt changed between attempts: %q vs %q", first, again)
	}
}

func TestAuthSCRAMStoredCredentials(t *testing.T) {
	ts := saslServer(t, sasl.SCRAMSHA256)
	// Stored as Dovecot writes it: the server never sees the password.
	ts.auth.stored = map[string]string{"dora": storedSCRAM(t, "explorer")}
	c := ts.dial()
	if code, _ := scramLogin(t, c, sasl.SCRAMSHA256, "dora", "explorer", nil); code != "" {
		t.Fatalf("stored SCRAM credentials: %q", code)
	}
}

func TestAuthSCRAMPlus(t *testing.T) {
	ts := saslServer(t, sasl.SCRAMSHA256Plus, sasl.SCRAMSHA256)
	c := ts.dialTLS()
	c.send("CAPA").wantOK()
	c.wantLinesContaining("SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256")
	state := c.nc.(*tls.Conn).ConnectionState()
	cb, err := scram.NewTLSExporterBinding(&state)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := scramLogin(t, c, sasl.SCRAMSHA256Plus, "alice", "wonderland", &cb); code != "" {
		t.Fatalf("SCRAM-SHA-256-PLUS: %q", code)
	}
	// Binding data from another connection is refused.
	c2 := ts.dialTLS()
	if code, _ := scramLogin(t, c2, sasl.SCRAMSHA256Plus, "bob", "builder", &cb); code != "[AUTH]" {
		t.Fatalf("foreign channel binding accepted: %q", code)
	}
	// Without TLS, -PLUS is not offered.
	c3 := ts.dial()
	c3.send("AUTH SCRAM-SHA-256-PLUS").wantErr("")
}

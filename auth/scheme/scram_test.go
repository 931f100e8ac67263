package scheme

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"testing"
)

// rfcExchange is one example SCRAM exchange from an RFC, as the messages
// a server sees. A server holding the right StoredKey and ServerKey
// accepts the client's proof and produces the server's signature: that
// checks DeriveSCRAM against the RFC without trusting any other
// implementation.
type rfcExchange struct {
	name        string
	hashName    string
	new         func() hash.Hash
	password    string
	clientFirst string // client-first-message-bare
	serverFirst string // server-first-message (holds the salt and count)
	clientFinal string // client-final-message-without-proof
	proof       string // base64 ClientProof, "p="
	signature   string // base64 ServerSignature, "v="
}

var rfcExchanges = []rfcExchange{
	{
		name:        "RFC 5802 §5",
		hashName:    "SHA-1",
		new:         sha1.New,
		password:    "pencil",
		clientFirst: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
		proof:       "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		signature:   "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	},
	{
		name:        "RFC 7677 §3",
		hashName:    "SHA-256",
		new:         sha256.New,
		password:    "pencil",
		clientFirst: "n=user,r=rOprNGfwEbeRWgbNEkqO",
		serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		proof:       "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		signature:   "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	},
}

// serverFirstSalt returns the salt of a server-first-message.
func serverFirstSalt(t *testing.T, msg string) []byte {
	t.Helper()
	for attr := range strings.SplitSeq(msg, ",") {
		if v, ok := strings.CutPrefix(attr, "s="); ok {
			salt, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			return salt
		}
	}
	t.Fatalf("no salt in %q", msg)
	return nil
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeriveSCRAMAgainstRFCExchanges plays the server side of the RFC
// examples (RFC 5802 §3) with credentials from DeriveSCRAM.
func TestDeriveSCRAMAgainstRFCExchanges(t *testing.T) {
	t.Parallel()
	for _, ex := range rfcExchanges {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			salt := serverFirstSalt(t, ex.serverFirst)
			cred := DeriveSCRAM(ex.hashName, ex.password, salt, 4096)
			authMessage := []byte(ex.clientFirst + "," + ex.serverFirst + "," + ex.clientFinal)

			mac := hmac.New(ex.new, cred.StoredKey)
			mac.Write(authMessage)
			clientSignature := mac.Sum(nil)
			proof := mustBase64(t, ex.proof)
			if len(proof) != len(clientSignature) {
				t.Fatalf("proof is %d bytes, want %d", len(proof), len(clientSignature))
			}
			clientKey := make([]byte, len(proof))
			for i := range proof {
				clientKey[i] = proof[i] ^ clientSignature[i]
			}
			h := ex.new()
			h.Write(clientKey)
			if !bytes.Equal(h.Sum(nil), cred.StoredKey) {
				t.Error("the RFC's ClientProof does not match the derived StoredKey")
			}

			mac = hmac.New(ex.new, cred.ServerKey)
			mac.Write(authMessage)
			if got := base64.StdEncoding.EncodeToString(mac.Sum(nil)); got != ex.signature {
				t.Errorf("ServerSignature = %s, want the RFC's %s", got, ex.signature)
			}
			if cred.Iterations != 4096 || !bytes.Equal(cred.Salt, salt) {
				t.Errorf("credentials carry %d, %x; want 4096, %x", cred.Iterations, cred.Salt, salt)
			}
		})
	}
}

// TestVerifySCRAMVectors checks stored strings written by other
// implementations: Dovecot's own test suite, `doveadm pw`, and GNU SASL's
// `gsasl --mkpasswd` for the RFC 7677 example.
func TestVerifySCRAMVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stored, password string
	}{
		{"Dovecot SHA-1", "{SCRAM-SHA-1}4096,GetyLXdBuHzf1FWf8SLz2Q==,NA/OqmF4hhrsrB9KR7po+dliTGM=,QBiURvQaE6H6qYTmeghDHLANBFQ=", "test"},
		{"Dovecot SHA-256", "{SCRAM-SHA-256}4096,LfNGSFqiFykEZ1xDAYlnKQ==,HACNf9CII7cMz3XjRy/Oh3Ae2LHApoDyNw74d3YtFws=,AQH0j7Hf8J12g8eNBadvzlNB2am3PxgNwFCFd3RxEaw=", "test"},
		{"doveadm pw", "{SCRAM-SHA-256}4096,kUUWnvu6LCpRsZ2kf2ET8Q==,gxa9gYcu7AKRFeHC78hBUcmzLXF1LXd0xJVbLnUT8RY=,P1Su/6jHm9awXwS3Y2RGr56KbooOKvcO7Jw6zNTx9k8=", "pass"},
		{"gsasl RFC 7677", "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", "pencil"},
		{"lower-case scheme", "{scram-sha-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=", "pencil"},
		{"unpadded base64", "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU", "pencil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if ok, err := Verify(tt.stored, tt.password); !ok || err != nil {
				t.Errorf("Verify(right) = %v, %v", ok, err)
			}
			if ok, err := Verify(tt.stored, tt.password+"x"); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v", ok, err)
			}
			mech, cred, ok := ParseSCRAM(tt.stored)
			if !ok {
				t.Fatal("ParseSCRAM refused it")
			}
			hashName := strings.TrimPrefix(mech, "SCRAM-")
			want := DeriveSCRAM(hashName, tt.password, cred.Salt, cred.Iterations)
			if !bytes.Equal(cred.StoredKey, want.StoredKey) || !bytes.Equal(cred.ServerKey, want.ServerKey) {
				t.Errorf("ParseSCRAM keys differ from DeriveSCRAM's")
			}
		})
	}
}

// TestHashSCRAMFormat checks that new credentials are written the way
// Dovecot writes them: four comma-separated fields, padded base64, a
// 16-byte salt, and read back by ParseSCRAM.
func TestHashSCRAMFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		scheme string
		size   int
	}{{"SCRAM-SHA-1", sha1.Size}, {"SCRAM-SHA-256", sha256.Size}} {
		stored, err := HashWithParams(tt.scheme, "correct horse", cheap)
		if err != nil {
			t.Fatal(err)
		}
		data := strings.TrimPrefix(stored, "{"+tt.scheme+"}")
		fields := strings.Split(data, ",")
		if len(fields) != 4 || fields[0] != "4096" {
			t.Fatalf("HashWithParams(%s) = %q, want 4096,salt,StoredKey,ServerKey", tt.scheme, stored)
		}
		for i, want := range []int{scramSaltBytes, tt.size, tt.size} {
			raw, err := base64.StdEncoding.Strict().DecodeString(fields[i+1])
			if err != nil || len(raw) != want {
				t.Errorf("field %d = %q: %d bytes, %v; want %d bytes of padded base64", i+1, fields[i+1], len(raw), err, want)
			}
		}
		mech, cred, ok := ParseSCRAM(stored)
		if !ok || mech != tt.scheme || cred.Iterations != 4096 {
			t.Errorf("ParseSCRAM(%q) = %q, %d, %v", stored, mech, cred.Iterations, ok)
		}
		if formatSCRAM(cred) != data {
			t.Errorf("formatSCRAM(ParseSCRAM(x)) = %q, want %q", formatSCRAM(cred), data)
		}
	}
}

func TestParseSCRAMRefuses(t *testing.T) {
	t.Parallel()
	const (
		salt   = "W22ZaJ0SNY7soEsUEjb6gQ=="
		key256 = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
		key1   = "NA/OqmF4hhrsrB9KR7po+dliTGM="
	)
	tests := []struct{ name, stored string }{
		{"other scheme", "{PLAIN}pencil"},
		{"crypt", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"unknown scheme", "{SCRAM-SHA-512}4096," + salt + "," + key256 + "," + key256},
		{"three fields", "{SCRAM-SHA-256}4096," + salt + "," + key256},
		{"five fields", "{SCRAM-SHA-256}4096," + salt + "," + key256 + "," + key256 + ",x"},
		{"count too low", "{SCRAM-SHA-256}4095," + salt + "," + key256 + "," + key256},
		{"count too high", "{SCRAM-SHA-256}4000001," + salt + "," + key256 + "," + key256},
		{"count huge", "{SCRAM-SHA-256}99999999999," + salt + "," + key256 + "," + key256},
		{"count signed", "{SCRAM-SHA-256}+4096," + salt + "," + key256 + "," + key256},
		{"count empty", "{SCRAM-SHA-256}," + salt + "," + key256 + "," + key256},
		{"empty salt", "{SCRAM-SHA-256}4096,," + key256 + "," + key256},
		{"bad salt", "{SCRAM-SHA-256}4096,!!!!," + key256 + "," + key256},
		{"SHA-1 keys for SHA-256", "{SCRAM-SHA-256}4096," + salt + "," + key1 + "," + key1},
		{"SHA-256 keys for SHA-1", "{SCRAM-SHA-1}4096," + salt + "," + key256 + "," + key256},
		{"bad server key", "{SCRAM-SHA-256}4096," + salt + "," + key256 + ",#"},
		{"encoding suffix", "{SCRAM-SHA-256.B64}4096," + salt + "," + key256 + "," + key256},
	}
	for _, tt := range tests {
		if mech, _, ok := ParseSCRAM(tt.stored); ok {
			t.Errorf("%s: ParseSCRAM(%q) = %q, true", tt.name, tt.stored, mech)
		}
		if strings.HasPrefix(tt.name, "other") || tt.name == "crypt" {
			continue
		}
		ok, err := Verify(tt.stored, "pencil")
		if ok || !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownScheme) {
			t.Errorf("%s: Verify = %v, %v; want a malformed or unknown scheme error", tt.name, ok, err)
		}
	}
}

func TestDeriveSCRAMPanics(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		hashName string
		iter     int
	}{{"SHA-512", 4096}, {"sha-256", 4096}, {"SHA-256", 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("DeriveSCRAM(%q, %d) did not panic", tt.hashName, tt.iter)
				}
			}()
			DeriveSCRAM(tt.hashName, "pw", []byte("salt"), tt.iter)
		}()
	}
}

// TestDeriveSCRAMCopiesSalt checks that the credentials do not alias the
// caller's salt buffer.
func TestDeriveSCRAMCopiesSalt(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	cred := DeriveSCRAM("SHA-256", "pw", salt, 4096)
	salt[0] = 'X'
	if cred.Salt[0] != '0' {
		t.Error("DeriveSCRAM kept the caller's salt slice")
	}
}

// FuzzParseSCRAM checks that ParseSCRAM never panics, and that what it
// accepts is well formed and agrees with Identify and Verify.
func FuzzParseSCRAM(f *testing.F) {
	f.Add("{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")
	f.Add("{SCRAM-SHA-1}4096,GetyLXdBuHzf1FWf8SLz2Q==,NA/OqmF4hhrsrB9KR7po+dliTGM=,QBiURvQaE6H6qYTmeghDHLANBFQ=")
	f.Add("{SCRAM-SHA-1}4096,,,")
	f.Add("{SCRAM-SHA-256}0,a,b,c")
	f.Fuzz(func(t *testing.T, stored string) {
		mech, cred, ok := ParseSCRAM(stored)
		if !ok {
			return
		}
		size := map[string]int{"SCRAM-SHA-1": sha1.Size, "SCRAM-SHA-256": sha256.Size}[mech]
		if size == 0 || len(cred.StoredKey) != size || len(cred.ServerKey) != size ||
			len(cred.Salt) == 0 || cred.Iterations < MinSCRAMIterations {
			t.Fatalf("ParseSCRAM(%q) = %q, %+v", stored, mech, cred)
		}
		if name, err := Identify(stored); name != mech || err != nil {
			t.Fatalf("ParseSCRAM(%q) = %q but Identify = %q, %v", stored, mech, name, err)
		}
	})
}

package scheme

import (
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

// cheap are parameters that keep the round-trip tests fast; the defaults
// are exercised once each in TestHashDefaults.
var cheap = Params{
	Argon2Memory:    64,
	Argon2Time:      1,
	Argon2Threads:   1,
	BcryptCost:      4,
	SHACryptRounds:  1000,
	SCRAMIterations: MinSCRAMIterations,
}

// TestVerifyVectors checks known answers. The SHA-crypt vectors are the
// ones published with Ulrich Drepper's specification (also produced by
// `openssl passwd -5/-6`), the Argon2 ones come from the reference
// implementation's test suite, the bcrypt ones from crypt_blowfish's, and
// the unsalted digests can be checked with sha256sum and friends.
func TestVerifyVectors(t *testing.T) {
	const longText = "a very much longer text to encrypt.  This one even stretches over more" + "than one line."
	t.Parallel()
	tests := []struct {
		stored, password string
		// slow vectors are checked with the right password only, and
		// not at all under the race detector, to keep test runs short.
		slow bool
	}{
		// SHA-256-crypt.
		{"{SHA256-CRYPT}$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!", false},
		{"{SHA256-CRYPT}$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA", "Hello world!", false},
		{"{SHA256-CRYPT}$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5", "This is just a test", false},
		{"{SHA256-CRYPT}$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1", longText, false},
		{"{SHA256-CRYPT}$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/", "we have a short salt string but not a short password", true},
		{"{SHA256-CRYPT}$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD", "a short string", true},
		{"{SHA256-CRYPT}$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", "the minimum number is still observed", false},
		// glibc clamps rounds=10 to 1000 rather than refusing it.
		{"{SHA256-CRYPT}$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC", "the minimum number is still observed", false},
		// SHA-512-crypt.
		{"{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!", false},
		{"{SHA512-CRYPT}$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", "Hello world!", false},
		{"{SHA512-CRYPT}$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0", "This is just a test", false},
		{"{SHA512-CRYPT}$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1", longText, false},
		{"{SHA512-CRYPT}$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0", "we have a short salt string but not a short password", true},
		{"{SHA512-CRYPT}$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1", "a short string", true},
		{"{SHA512-CRYPT}$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.", "the minimum number is still observed", false},
		// CRYPT recognises the prefix, and so does a bare string.
		{"{CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!", false},
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!", false},
		{"{sha512-crypt}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "Hello world!", false},

		// Argon2.
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", "password", false},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "password", true},
		{"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", "password", false},
		// A regression vector computed with x/crypto, in Dovecot's layout.
		{"{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$cG9zdG9mZmljZXNhbHQ$wwv3MKREoTz9HDvIB0ItJcg9zkIw1K3dYfhUXifwscY", "secret", false},

		// bcrypt.
		{"{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", false},
		{"{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", "U*U*", false},
		{"$2b$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a", "U*U*U", false},
		// Like crypt(3), only the first 72 bytes count.
		{"{BLF-CRYPT}$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored", false},

		// Unsalted digests of "password".
		{"{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=", "password", false},
		{"{SHA256}5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", "password", false},
		{"{SHA256.HEX}5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8", "password", false},
		{"{SHA256.b64}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg", "password", false},
		{"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password", false},
		{"{SHA1}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password", false},
		{"{SHA512}sQnzu7wkTrgkQZF+0G1hi5AI3Qmzvv0bXgc5THBqi7mAsdd4Xll27ASbRt9fEyavWi6m0QP9B8lThf+rDKy8hg==", "password", false},
		{"{PLAIN-MD5}5f4dcc3b5aa765d61d8327deb882cf99", "password", false},
		{"{PLAIN-MD5.B64}X03MO1qnZdYdgyfeuILPmQ==", "password", false},

		// Plaintext.
		{"{PLAIN}password", "password", false},
		{"{CLEAR}pass word", "pass word", false},
		{"{CLEARTEXT}", "", false},
		{"{plain.b64}cGFzczp3b3Jk", "pass:word", false},
		{"{PLAIN.HEX}70617373", "pass", false},
	}
	for _, tt := range tests {
		if tt.slow && raceEnabled {
			continue
		}
		ok, err := Verify(tt.stored, tt.password)
		if err != nil || !ok {
			t.Errorf("Verify(%q, %q) = %v, %v; want true, nil", tt.stored, tt.password, ok, err)
			continue
		}
		if tt.slow {
			continue
		}
		ok, err = Verify(tt.stored, "x"+tt.password)
		if err != nil || ok {
			t.Errorf("Verify(%q, wrong password) = %v, %v; want false, nil", tt.stored, ok, err)
		}
	}
}

// TestVerifySSHA512 builds the salted digest by hand, as Dovecot defines
// it: base64(sha512(password || salt) || salt).
func TestVerifySSHA512(t *testing.T) {
	salt := []byte("NaCl\x00\xff")
	sum := sha512.Sum512(append([]byte("hunter2"), salt...))
	raw := append(sum[:], salt...)
	for _, stored := range []string{
		"{SSHA512}" + base64.StdEncoding.EncodeToString(raw),
		"{SSHA512.B64}" + base64.RawStdEncoding.EncodeToString(raw),
		"{ssha512.hex}" + strings.ToUpper(encHex.encode(raw)),
	} {
		if ok, err := Verify(stored, "hunter2"); !ok || err != nil {
			t.Errorf("Verify(%q, right) = %v, %v", stored, ok, err)
		}
		if ok, err := Verify(stored, "hunter3"); ok || err != nil {
			t.Errorf("Verify(%q, wrong) = %v, %v", stored, ok, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	tests := []struct {
		stored string
		want   error
	}{
		{"{NOPE}abc", ErrUnknownScheme},
		{"{MD5}$1$salt$hash", ErrUnknownScheme}, // MD5-crypt is not supported
		{"{SHA256.ROT13}abc", ErrUnknownScheme},
		{"{ARGON2ID.HEX}abc", ErrUnknownScheme}, // takes no suffix
		{"{PLAIN", ErrMalformed},
		{"", ErrUnknownScheme},
		{"plaintext-without-scheme", ErrUnknownScheme},
		{"$1$saltsalt$hash", ErrUnknownScheme},
		{"$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrUnknownScheme},
		{"{SHA256}abc", ErrMalformed},
		{"{SHA256}!!!!", ErrMalformed},
		{"{SHA256.HEX}zz", ErrMalformed},
		{"{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", ErrMalformed}, // no salt
		{"{PLAIN.B64}***", ErrMalformed},
		{"{BLF-CRYPT}$2y$05$short", ErrMalformed},
		{"{BLF-CRYPT}$2y$+5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrMalformed},
		{"{BLF-CRYPT}$2y$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", ErrMalformed},
		{"{BLF-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", ErrMalformed},
		{"{SHA512-CRYPT}$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", ErrMalformed},
		{"{SHA256-CRYPT}$5$saltstring", ErrMalformed},
		{"{SHA256-CRYPT}$5$saltstring$tooshort", ErrMalformed},
		{"{SHA256-CRYPT}$5$toolongsaltstring$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5", ErrMalformed},
		{"{ARGON2ID}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=16$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=2$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=1,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=0,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=0$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=7,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=+2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=256$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed},
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=1$c2FsdA$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", ErrMalformed}, // salt < 8
		{"{ARGON2I}$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$aWVr", ErrMalformed},                                   // hash < 4
	}
	for _, tt := range tests {
		ok, err := Verify(tt.stored, "password")
		if ok || !errors.Is(err, tt.want) {
			t.Errorf("Verify(%q) = %v, %v; want false, %v", tt.stored, ok, err, tt.want)
		}
		if _, err := Identify(tt.stored); !errors.Is(err, tt.want) {
			t.Errorf("Identify(%q) = %v, want %v", tt.stored, err, tt.want)
		}
	}
}

// TestErrorsKeepSecrets pins that error messages never echo stored data,
// since they are logged.
func TestErrorsKeepSecrets(t *testing.T) {
	const secret = "Sup3rS3cr3tSalt"
	for _, stored := range []string{
		"{SHA256-CRYPT}$5$" + secret + "$tooshort",
		"{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$" + secret + "$x",
		"{SSHA}" + secret,
		"$9$" + secret,
	} {
		_, err := Verify(stored, "pw")
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("Verify(%q) error %v; want an error without the data", stored, err)
		}
	}
}

func TestHashRoundTrip(t *testing.T) {
	tests := []struct {
		scheme, prefix string
	}{
		{"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$"},
		{"argon2i", "{ARGON2I}$argon2i$v=19$m=64,t=1,p=1$"},
		{"SHA512-CRYPT", "{SHA512-CRYPT}$6$rounds=1000$"},
		{"SHA256-CRYPT", "{SHA256-CRYPT}$5$rounds=1000$"},
		{"BLF-CRYPT", "{BLF-CRYPT}$2y$04$"},
		{"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,"},
		{"scram-sha-1", "{SCRAM-SHA-1}4096,"},
		{"SSHA512", "{SSHA512}"},
		{"SSHA256", "{SSHA256}"},
		{"SSHA", "{SSHA}"},
		{"SSHA512.HEX", "{SSHA512.HEX}"},
		{"PLAIN", "{PLAIN}"},
		{"CLEAR", "{CLEAR}"},
		{"CLEARTEXT", "{CLEARTEXT}"},
		{"PLAIN.B64", "{PLAIN.B64}"},
	}
	for _, tt := range tests {
		for _, password := range []string{"correct horse", "", "pässwörd:\x00\n"} {
			stored, err := HashWithParams(tt.scheme, password, cheap)
			if err != nil {
				t.Errorf("HashWithParams(%s) = %v", tt.scheme, err)
				continue
			}
			if !strings.HasPrefix(stored, tt.prefix) {
				t.Errorf("HashWithParams(%s) = %q, want prefix %q", tt.scheme, stored, tt.prefix)
			}
			if ok, err := Verify(stored, password); !ok || err != nil {
				t.Errorf("Verify(%q, right) = %v, %v", stored, ok, err)
			}
			if ok, err := Verify(stored, password+"!"); ok || err != nil {
				t.Errorf("Verify(%q, wrong) = %v, %v", stored, ok, err)
			}
		}
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	a, _ := HashWithParams("SSHA512", "pw", cheap)
	b, _ := HashWithParams("SSHA512", "pw", cheap)
	if a == b {
		t.Errorf("two hashes of one password are equal: %q", a)
	}
}

// TestHashDefaults hashes once with each slow scheme's real defaults; the
// round trip with cheap parameters covers verification.
func TestHashDefaults(t *testing.T) {
	if raceEnabled {
		t.Skip("default costs are too slow under the race detector")
	}
	t.Parallel()
	tests := []struct{ scheme, prefix string }{
		{DefaultScheme, "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"},
		{"SHA512-CRYPT", "{SHA512-CRYPT}$6$rounds=100000$"},
		{"BLF-CRYPT", "{BLF-CRYPT}$2y$10$"},
		{"SCRAM-SHA-256", "{SCRAM-SHA-256}10000,"},
	}
	for _, tt := range tests {
		stored, err := Hash(tt.scheme, "pw")
		if err != nil {
			t.Fatalf("Hash(%s) = %v", tt.scheme, err)
		}
		if !strings.HasPrefix(stored, tt.prefix) {
			t.Errorf("Hash(%s) = %q, want prefix %q", tt.scheme, stored, tt.prefix)
		}
		if _, err := Identify(stored); err != nil {
			t.Errorf("Identify(%q) = %v", stored, err)
		}
	}
}

func TestHashErrors(t *testing.T) {
	tests := []struct {
		scheme string
		p      Params
	}{
		{"NOPE", cheap},
		{"SHA256", cheap},    // unsalted: verify only
		{"PLAIN-MD5", cheap}, // unsalted: verify only
		{"CRYPT", cheap},
		{"BLF-CRYPT", Params{BcryptCost: 3}},
		{"BLF-CRYPT", Params{BcryptCost: 32}},
		{"SHA512-CRYPT", Params{SHACryptRounds: 999}},
		{"ARGON2ID", Params{Argon2Memory: 7, Argon2Time: 1, Argon2Threads: 1}},
		{"ARGON2ID", Params{Argon2Memory: 64, Argon2Time: 0, Argon2Threads: 1}},
		{"ARGON2ID", Params{Argon2Memory: 64, Argon2Time: 1, Argon2Threads: 0}},
		{"SCRAM-SHA-256", Params{SCRAMIterations: MinSCRAMIterations - 1}},
		{"SCRAM-SHA-1", Params{SCRAMIterations: maxSCRAMIterations + 1}},
		{"SCRAM-SHA-256.B64", cheap}, // SCRAM takes no encoding suffix
	}
	for _, tt := range tests {
		if got, err := HashWithParams(tt.scheme, "pw", tt.p); err == nil {
			t.Errorf("HashWithParams(%s, %+v) = %q, want an error", tt.scheme, tt.p, got)
		}
	}
	if _, err := HashWithParams("BLF-CRYPT", strings.Repeat("x", 73), cheap); err == nil {
		t.Error("bcrypt hashed a password it would truncate")
	}
}

func TestPlaintext(t *testing.T) {
	tests := []struct {
		stored, want string
		ok           bool
	}{
		{"{PLAIN}secret", "secret", true},
		{"{clear}secret", "secret", true},
		{"{CLEARTEXT}", "", true},
		{"{PLAIN.B64}c2VjcmV0", "secret", true},
		{"{PLAIN.HEX}736563726574", "secret", true},
		{"{PLAIN.HEX}zz", "", false},
		{"{SHA256}XohImNooBHFR0OVvjcYpJ3NgPQ1qq73WKhHvch0VQtg=", "", false},
		{"secret", "", false}, // CRYPT
		{"{NOPE}secret", "", false},
	}
	for _, tt := range tests {
		got, ok := Plaintext(tt.stored)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Plaintext(%q) = %q, %v; want %q, %v", tt.stored, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIdentify(t *testing.T) {
	tests := []struct{ stored, want string }{
		{"{plain}x", "PLAIN"},
		{"{SHA256.HEX}5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", "SHA256"},
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "CRYPT"},
		{"{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "BLF-CRYPT"},
	}
	for _, tt := range tests {
		if got, err := Identify(tt.stored); got != tt.want || err != nil {
			t.Errorf("Identify(%q) = %q, %v; want %q", tt.stored, got, err, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	names := Names()
	for _, want := range []string{"ARGON2ID", "ARGON2I", "BLF-CRYPT", "CLEAR", "CLEARTEXT", "CRYPT", "PLAIN", "PLAIN-MD5",
		"SCRAM-SHA-1", "SCRAM-SHA-256", "SHA", "SHA256", "SHA256-CRYPT", "SHA512", "SHA512-CRYPT", "SSHA", "SSHA256", "SSHA512"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, missing %s", names, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() = %v, not sorted", names)
	}
	if !slices.Contains(names, DefaultScheme) {
		t.Errorf("DefaultScheme %s is not a known scheme", DefaultScheme)
	}
}

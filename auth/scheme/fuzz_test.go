package scheme

import (
	"errors"
	"testing"
)

// fuzzLimits keep every input cheap to verify, so the fuzzer explores the
// parsers instead of waiting on key stretching. Parameters above them are
// refused as malformed, which is itself a path worth fuzzing.
var fuzzLimits = limits{
	maxArgon2Memory:    64,
	maxArgon2Time:      2,
	maxBcryptCost:      4,
	maxSHACryptRounds:  1000,
	maxSCRAMIterations: MinSCRAMIterations,
}

// FuzzVerify checks that no stored string, however broken, makes Verify
// panic, that it never both matches and fails, and that Identify agrees
// with it about which strings are well formed.
func FuzzVerify(f *testing.F) {
	seeds := []string{
		"{PLAIN}pw",
		"{PLAIN.B64}cHc=",
		"{SHA256.HEX}5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
		"{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9hzYWx0",
		"{SHA256-CRYPT}$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
		"$5$rounds=$x$y",
		"{BLF-CRYPT}$2y$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"{ARGON2ID}$argon2id$v=19$m=64,t=1,p=1$cG9zdG9mZmljZXNhbHQ$wwv3MKREoTz9HDvIB0ItJcg9zkIw1K3dYfhUXifwscY",
		"$argon2i$v=19$m=8,t=1,p=1$c29tZXNhbHQ$aaaa",
		"{SCRAM-SHA-1}4096,GetyLXdBuHzf1FWf8SLz2Q==,NA/OqmF4hhrsrB9KR7po+dliTGM=,QBiURvQaE6H6qYTmeghDHLANBFQ=",
		"{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"{SCRAM-SHA-256}4095,c2FsdA==,,",
		"{",
		"{}",
		"{.HEX}",
		"",
	}
	for _, s := range seeds {
		f.Add(s, "pw")
	}
	f.Fuzz(func(t *testing.T, stored, password string) {
		ok, err := verify(stored, password, &fuzzLimits)
		if ok && err != nil {
			t.Fatalf("verify(%q) = true, %v", stored, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownScheme) {
			t.Fatalf("verify(%q) error %v wraps neither ErrMalformed nor ErrUnknownScheme", stored, err)
		}
		// What passes the fuzz limits passes the real ones.
		if _, idErr := Identify(stored); err == nil && idErr != nil {
			t.Fatalf("verify(%q) succeeded but Identify = %v", stored, idErr)
		}
		if secret, isPlain := Plaintext(stored); isPlain && err == nil {
			if match, _ := verify(stored, secret, &fuzzLimits); !match {
				t.Fatalf("Plaintext(%q) = %q, which does not verify", stored, secret)
			}
		}
	})
}

package scheme

import (
	"strings"
	"testing"
)

// BenchmarkVerify is the cost of checking a password against each
// scheme's stored form, at the default parameters: what a login pays for
// the user database's choice. Hashes of the slow schemes are meant to
// cost milliseconds; PLAIN and the salted digests cost microseconds.
func BenchmarkVerify(b *testing.B) {
	for _, name := range []string{"PLAIN", "SSHA256", "SSHA512", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID", "SCRAM-SHA-256"} {
		b.Run(name, func(b *testing.B) {
			stored, err := Hash(name, "correct horse battery staple")
			if err != nil {
				if strings.Contains(err.Error(), "unknown") {
					b.Skip(err)
				}
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				ok, err := Verify(stored, "correct horse battery staple")
				if err != nil || !ok {
					b.Fatalf("Verify = %v, %v", ok, err)
				}
			}
		})
	}
}

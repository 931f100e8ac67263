package pop3server

import (
	"crypto/tls"
	"testing"
)

// TLS 1.2 clients get the AEAD suites alone unless the configuration lists
// suites of its own; TLS 1.0 and 1.1 are refused (the testssl.sh audit in
// package chaos checks the same from outside, on the real binary).
func TestTLSDefaults(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"TLS 1.2 CBC only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}, false},
		{"TLS 1.2 GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true},
		{"TLS 1.2 ChaCha20", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.client
			cfg.RootCAs, cfg.ServerName = ts.roots, "localhost"
			c, err := tls.Dial("tcp", ts.tls, cfg)
			if err == nil {
				defer c.Close()
				err = c.Handshake()
			}
			if tc.ok && err != nil {
				t.Fatalf("handshake failed: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("handshake succeeded with %s", tls.CipherSuiteName(c.ConnectionState().CipherSuite))
			}
		})
	}
}

package pop3server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/postoffice-mail/postoffice/auth/sasl"
	"github.com/postoffice-mail/postoffice/pop3"
)

// clientCert issues a client certificate for email from a new CA.
func clientCert(t *testing.T, email string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		EmailAddresses: []string{email},
		NotBefore:      time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestAuthExternal(t *testing.T) {
	cert, pool := clientCert(t, "alice")
	ts := newTestServer(t, func(c *Config) {
		c.SASLMechanisms = []string{sasl.External, sasl.Plain}
		c.TLS.ClientCAs = pool
		c.TLS.ClientAuth = tls.VerifyClientCertIfGiven
	})
	dial := func(withCert bool) *testConn {
		cfg := &tls.Config{RootCAs: ts.roots, ServerName: "localhost"}
		if withCert {
			cfg.Certificates = []tls.Certificate{cert}
		}
		nc, err := tls.Dial("tcp", ts.tls, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return newTestConn(t, nc)
	}
	c := dial(true)
	c.send("CAPA").wantOK()
	c.wantLinesContaining("SASL EXTERNAL PLAIN")
	c.send("AUTH EXTERNAL " + b64("bob")).wantErr(pop3.CodeAuth) // not the certificate's user
	c.send("AUTH EXTERNAL =").wantOK()
	c.send("STAT").wantOK()

	c = dial(false)
	c.send("CAPA").wantOK()
	c.wantLinesContaining("SASL PLAIN") // no certificate, no EXTERNAL
	c.send("AUTH EXTERNAL =").wantErr("")

	// STLS: the certificate presented in the handshake after STLS counts.
	c = ts.dial()
	c.send("STLS").wantOK()
	tc := tls.Client(c.nc, &tls.Config{RootCAs: ts.roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	c.send("AUTH EXTERNAL").wantChallenge()
	c.send("").wantErr(pop3.CodeInUse) // authenticated as alice, whose maildrop is open above
}

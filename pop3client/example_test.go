package pop3client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/internal/certs"
	"github.com/postoffice-mail/postoffice/pop3client"
	"github.com/postoffice-mail/postoffice/pop3server"
	"github.com/postoffice-mail/postoffice/store"
	"github.com/postoffice-mail/postoffice/store/memstore"
)

// The examples run against postoffice's own server, started in the test
// process on loopback ports with an in-memory store.

type exampleUsers map[string]string

func (u exampleUsers) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	if pw, ok := u[name]; ok && pw == password {
		return &auth.User{Name: name}, nil
	}
	return nil, auth.ErrFailed
}

// exampleServer starts a server with alice's two messages and returns
// its plain and TLS addresses, a TLS configuration that trusts it, and a
// function that stops it.
func exampleServer() (plainAddr, tlsAddr string, tlsConfig *tls.Config, stop func()) {
	plainAddr, tlsAddr, tlsConfig, st, stop := exampleServerWithStore()
	for _, m := range []string{
		"Subject: hello\n\nfirst message\n",
		"Subject: dots\n\n.a line that starts with a dot\n.\n",
	} {
		if _, err := st.Deliver(context.Background(), store.Account{Name: "alice"}, strings.NewReader(m)); err != nil {
			log.Fatal(err)
		}
	}
	return plainAddr, tlsAddr, tlsConfig, stop
}

// exampleServerWithStore starts a server with an empty store.
func exampleServerWithStore() (plainAddr, tlsAddr string, tlsConfig *tls.Config, st *memstore.Store, stop func()) {
	cert, certPEM, _, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	st = memstore.New()
	srv, err := pop3server.New(pop3server.Config{
		Hostname:         "pop.example",
		Auth:             exampleUsers{"alice": "wonderland"},
		Store:            st,
		TLS:              &tls.Config{Certificates: []tls.Certificate{cert}},
		AuthFailureDelay: -1,
	})
	if err != nil {
		log.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(pl)
	go srv.ServeTLS(tl)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	return pl.Addr().String(), tl.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"}, st, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
}

// Download every message over implicit TLS, streaming each one to
// standard output, and leave them on the server.
func Example() {
	_, tlsAddr, tlsConfig, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := pop3client.Dial(ctx, tlsAddr, &pop3client.Options{
		Security:  pop3client.SecurityTLS,
		TLSConfig: tlsConfig,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "wonderland"); err != nil {
		log.Fatal(err)
	}
	msgs, err := c.Messages(ctx) // LIST and UIDL
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		body, err := c.Retr(ctx, m.Number)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("--- message %d (%d octets):\n", m.Number, m.Size)
		// The body keeps the CRLF line ends of the wire; the dots
		// the server added are gone.
		if _, err := io.Copy(os.Stdout, crlfToLF{body}); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Quit(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// --- message 1 (33 octets):
	// Subject: hello
	//
	// first message
	// --- message 2 (52 octets):
	// Subject: dots
	//
	// .a line that starts with a dot
	// .
}

// STLS: a plaintext connection upgraded before anything else. With
// SecuritySTLS, Dial fails rather than continue in plaintext if the
// server does not offer STLS.
func ExampleDial_stls() {
	plainAddr, _, tlsConfig, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c, err := pop3client.Dial(ctx, plainAddr, &pop3client.Options{
		Security:  pop3client.SecuritySTLS,
		TLSConfig: tlsConfig,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("encrypted:", c.IsTLS())
	if err := c.Login(ctx, "alice", "wonderland"); err != nil {
		log.Fatal(err)
	}
	count, size, err := c.Stat(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages, %d octets\n", count, size)
	// Output:
	// encrypted: true
	// 2 messages, 85 octets
}

// A wrong password is a *pop3.Error with the RFC 3206 AUTH code.
func ExampleHasCode() {
	_, tlsAddr, tlsConfig, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := pop3client.Dial(ctx, tlsAddr, &pop3client.Options{TLSConfig: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Login(ctx, "alice", "guess")
	fmt.Println(err)
	fmt.Println("wrong credentials:", pop3client.HasCode(err, "AUTH"))
	perr, _ := pop3client.ReplyError(err)
	fmt.Println("try again later:", perr.Temporary())
	// Output:
	// PASS: -ERR [AUTH] authentication failed
	// wrong credentials: true
	// try again later: false
}

// Pipelining: RETR every message and DELE it, sending the commands in
// batches when the server lists PIPELINING (postoffice's server does).
func ExamplePipeline() {
	_, tlsAddr, tlsConfig, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := pop3client.Dial(ctx, tlsAddr, &pop3client.Options{TLSConfig: tlsConfig})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "wonderland"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Capabilities(ctx); err != nil { // learn PIPELINING
		log.Fatal(err)
	}
	msgs, err := c.Messages(ctx)
	if err != nil {
		log.Fatal(err)
	}
	p := c.Pipeline()
	fmt.Println("pipelining:", p.Active())
	var retrs []*pop3client.Response
	for _, m := range msgs {
		retrs = append(retrs, p.Retr(ctx, m.Number)) // queued, not yet read
	}
	var deles []*pop3client.Response
	for i, r := range retrs {
		body, err := r.Message(ctx)
		if err != nil {
			log.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("message %d: %d octets, uid %s\n", msgs[i].Number, n, msgs[i].UID)
		deles = append(deles, p.Dele(ctx, msgs[i].Number))
	}
	for _, d := range deles {
		if err := d.Wait(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Quit(ctx); err != nil { // the deletions happen now
		log.Fatal(err)
	}
	// Output:
	// pipelining: true
	// message 1: 33 octets, uid 1
	// message 2: 52 octets, uid 2
}

// crlfToLF shows a message with local line ends.
type crlfToLF struct{ r io.Reader }

func (c crlfToLF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	out := p[:0]
	for _, b := range p[:n] {
		if b != '\r' {
			out = append(out, b)
		}
	}
	return len(out), err
}

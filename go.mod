module github.com/postoffice-mail/postoffice

go 1.26.8

require (
	github.com/go-crypt/crypt v0.14.15
	github.com/pelletier/go-toml/v2 v2.4.3
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require github.com/go-crypt/x v0.4.16 // indirect

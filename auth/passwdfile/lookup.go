package passwdfile

import (
	"context"

	"github.com/postoffice-mail/postoffice/auth"
)

// Compile-time checks for the lookups the SASL mechanisms need.
var (
	_ auth.PasswordLookup = (*File)(nil)
	_ auth.UserLookup     = (*File)(nil)
)

// LookupPassword returns a user and their stored password exactly as the
// file has it, "{SCHEME}data", for the challenge-response mechanisms
// (CRAM-MD5 needs a plaintext scheme, SCRAM a SCRAM or plaintext one; see
// scheme.Plaintext and scheme.ParseSCRAM). An unknown or invalid user
// name, and a user without a password, give auth.ErrFailed; a file that
// cannot be read gives an error wrapping auth.ErrUnavailable.
//
// Unlike Authenticate it does no hashing, so it answers faster for
// unknown users than for known ones. Callers must make the rest of the
// exchange take the same path either way (SCRAM servers send made-up
// salts for unknown users, for instance).
func (f *File) LookupPassword(ctx context.Context, username string) (*auth.User, string, error) {
	r, err := f.lookupLoginable(ctx, username)
	if err != nil {
		return nil, "", err
	}
	return r.user(), r.password, nil
}

// LookupUser returns the user called username, for mechanisms that
// authenticate without a password (OAuth bearer tokens, TLS client
// certificates). A user whose password field is empty counts as unknown:
// the file format documents such a user as one who cannot log in, and an
// administrator who disables an account by clearing its password expects
// every mechanism to refuse it. Errors are as for LookupPassword.
func (f *File) LookupUser(ctx context.Context, username string) (*auth.User, error) {
	r, err := f.lookupLoginable(ctx, username)
	if err != nil {
		return nil, err
	}
	return r.user(), nil
}

// lookupLoginable returns the record of a user who may log in: listed,
// with a valid name and a password.
func (f *File) lookupLoginable(ctx context.Context, username string) (*record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := f.current()
	if err != nil {
		return nil, err
	}
	r := db.lookup(username)
	if r == nil || r.password == "" {
		return nil, auth.ErrFailed
	}
	return r, nil
}

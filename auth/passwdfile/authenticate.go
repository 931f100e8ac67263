package passwdfile

import (
	"context"
	"fmt"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// Compile-time checks that File is what the server expects.
var (
	_ auth.Authenticator     = (*File)(nil)
	_ auth.APOPAuthenticator = (*File)(nil)
)

// Authenticate checks a user name and password. An unknown user, an
// invalid user name, a user without a password, an empty password and a
// wrong password all return auth.ErrFailed after the same work: an
// unknown user's password is checked against a hash stored the way most
// users of the file are (scheme.Typical), so response time does not
// reveal which users exist. A file that cannot be read gives an error
// wrapping auth.ErrUnavailable.
func (f *File) Authenticate(ctx context.Context, username, password string) (*auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := f.current()
	if err != nil {
		return nil, err
	}
	standIn := db.standIn
	if standIn == "" {
		if standIn, err = scheme.DefaultStandIn(); err != nil {
			return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
		}
	}
	r := db.lookup(username)
	stored := ""
	if r != nil {
		stored = r.password
	}
	ok, err := scheme.CheckPassword(stored, standIn, password)
	if err != nil {
		// Open validated every password, so this is a bug or a
		// limit; either way the user cannot log in until fixed.
		f.log.Error("cannot check stored password", "user", username, "err", err)
		return nil, auth.ErrFailed
	}
	if !ok {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}

// AuthenticateAPOP checks an RFC 1939 §7 APOP digest. Only users whose
// password is stored in a plaintext scheme have a shared secret; everyone
// else gets auth.ErrFailed, after the same work.
func (f *File) AuthenticateAPOP(ctx context.Context, username, timestamp, digest string) (*auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	db, err := f.current()
	if err != nil {
		return nil, err
	}
	r := db.lookup(username)
	secret := ""
	if r != nil && r.hasPlaintext {
		secret = r.plaintext
	}
	ok, err := scheme.CheckAPOP(secret, timestamp, digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrUnavailable, err)
	}
	if !ok {
		return nil, auth.ErrFailed
	}
	return r.user(), nil
}

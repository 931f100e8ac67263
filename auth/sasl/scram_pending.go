//go:build !scramready

package sasl

import (
	"errors"
	"fmt"

	"github.com/postoffice-mail/postoffice/auth"
)

// Temporary until auth/scheme grows SCRAM credentials.
func newSCRAM(s *Server, name string, c Conn) (Mechanism, error) {
	return nil, fmt.Errorf("%s: not available yet", name)
}

func isFailed(err error) bool { return errors.Is(err, auth.ErrFailed) }

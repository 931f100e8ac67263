package fetch

import (
	"testing"

	"github.com/postoffice-mail/postoffice/internal/leakcheck"
)

// TestMain fails the run if the tests leave goroutines or open file
// descriptors behind (sessions that never end, sockets never closed).
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}
